"""``direct://``: local files through O_DIRECT, bypassing the page cache.

O_DIRECT wants the buffer address, the file offset and the length all aligned to 4096 bytes.
Reads go straight into the caller's buffer when it is aligned (``get`` allocates aligned
buffers) and through a small aligned bounce buffer for unaligned heads and tails; any offset and
length return exact bytes. Writes copy into an aligned staging buffer, pad the final block with
zeros and cut the file back to its true size before the atomic rename.

Where the file system refuses O_DIRECT (``EINVAL`` at open), the backend falls back to buffered
I/O for that directory and says so once with a :class:`DirectIOFallbackWarning`.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import warnings

from ...errors import InvalidArgumentError
from ..buffers import ALIGN, BytesView, aligned_buffer, buffer_address
from ..store import ReadStream, Upload
from ..uri import ObjectURI
from .file import FileReadStream, FileStore, FileUpload, map_os_error

__all__ = ["DirectIOFallbackWarning", "DirectStore"]

_O_DIRECT = getattr(os, "O_DIRECT", 0)
BOUNCE = 4 * 1024 * 1024


class DirectIOFallbackWarning(RuntimeWarning):
    """O_DIRECT was refused by the file system; buffered I/O is used instead."""


_bounce = threading.local()


def _bounce_buffer() -> mmap.mmap:
    buf = getattr(_bounce, "buf", None)
    if buf is None:
        buf = _bounce.buf = aligned_buffer(BOUNCE)
    return buf


def _round_down(value: int) -> int:
    return value - value % ALIGN


class DirectReadStream(FileReadStream):
    """Aligned O_DIRECT reads; unaligned pieces pass through a bounce buffer."""

    def readinto(self, buf: memoryview) -> int:
        want = min(len(buf), self._end - self._pos)
        if want <= 0:
            return 0
        pos = self._pos
        if pos % ALIGN == 0 and want >= ALIGN and buffer_address(buf) % ALIGN == 0:
            got = os.preadv(self.fd, [buf[: _round_down(want)]], pos)
        else:
            start = _round_down(pos)
            span = min(BOUNCE, -(-(pos + want - start) // ALIGN) * ALIGN)
            with memoryview(_bounce_buffer()) as view:
                read = os.preadv(self.fd, [view[:span]], start)
                got = max(0, min(want, read - (pos - start)))
                buf[:got] = view[pos - start : pos - start + got]
        if got <= 0:
            return super().readinto(buf)  # raises the "file shrank" error
        self._pos += got
        return got


class DirectUpload(FileUpload):
    """O_DIRECT writes through an aligned staging buffer; the tail is padded, then truncated."""

    def __init__(self, store: DirectStore, uri: ObjectURI) -> None:
        super().__init__(store, uri)
        self._size = 0
        self._lock = threading.Lock()

    def write_part(self, number: int, offset: int, data: memoryview, last: bool) -> None:
        super().write_part(number, offset, data, last)
        with self._lock:
            self._size = max(self._size, offset + len(data))

    def commit(self) -> str | None:
        try:
            os.ftruncate(self.fd, self._size)
        except OSError as exc:
            self.abort()
            raise map_os_error(exc, self.uri, "PUT") from exc
        return super().commit()


class DirectStore(FileStore):
    """The ``direct://`` backend (O_DIRECT, with a buffered fallback)."""

    scheme = "direct"
    part_multiple = ALIGN
    _refused: set[str] = set()

    def local_path(self, uri: ObjectURI) -> str | None:
        """``None``: direct:// bypasses the page cache that mappings and cached reads use."""
        return None

    def allocate(self, size: int) -> BytesView:
        """Aligned buffers let reads land in place without a bounce copy."""
        return BytesView.allocate_aligned(size)

    def os_open(self, path: str, flags: int) -> int:
        directory = os.path.dirname(path)
        if _O_DIRECT and directory not in self._refused:
            try:
                return os.open(path, flags | _O_DIRECT, 0o644)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                if os.path.isdir(path):
                    raise IsADirectoryError(errno.EISDIR, "is a directory", path) from exc
                self._refused.add(directory)
                warnings.warn(
                    f"O_DIRECT refused in {directory} ({exc.strerror}); using buffered I/O there",
                    DirectIOFallbackWarning,
                    stacklevel=4,
                )
                if flags & os.O_CREAT and flags & os.O_EXCL and os.path.exists(path):
                    # some file systems (ramfs) create the file before refusing O_DIRECT; the
                    # name is a fresh random temp name, so the file is the one we just made
                    flags &= ~os.O_EXCL
        return os.open(path, flags, 0o644)

    def make_stream(self, fd: int, size: int, etag: str, offset: int, length: int) -> ReadStream:
        return DirectReadStream(fd, size, etag, offset, length)

    def pwrite_all(self, fd: int, data: memoryview, offset: int) -> None:
        if offset % ALIGN:
            raise InvalidArgumentError(f"direct:// parts must start on a {ALIGN}-byte boundary")
        if buffer_address(data) % ALIGN == 0 and len(data) % ALIGN == 0:
            super().pwrite_all(fd, data, offset)
            return
        with memoryview(_bounce_buffer()) as view:
            while len(data):
                n = min(len(data), BOUNCE)
                view[:n] = data[:n]
                padded = -(-n // ALIGN) * ALIGN
                if padded > n:
                    view[n:padded] = bytes(padded - n)
                super().pwrite_all(fd, view[:padded], offset)
                data, offset = data[n:], offset + n

    def begin_upload(
        self,
        uri: ObjectURI,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Upload:
        return DirectUpload(self, uri)
