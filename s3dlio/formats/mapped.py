"""Sequential reading of a local file through a memory map, with no copy at all.

:class:`MappedSource` is the ``mmap=True`` counterpart of
:class:`~s3dlio.formats.blocks.BlockSource`: it yields the same :data:`~s3dlio.formats.blocks.Window`
blocks, but every window is a slice of ONE private (copy-on-write) mapping of the file, so the
parser reads the page cache directly and the record views it hands out point into the mapping.
A record cut by a window's end needs no carrying either: the next window continues the same
mapping (the parser sees that and takes the record where it is). Records are writable like
those of the copying reader; a write changes this process's copy of that page, never the file.

What that buys: no kernel copy per block, so a CRC-verified iteration reads each byte once
(about the speed of ``crc32c`` over the same bytes in memory) instead of twice.

What it costs, as with any mapped file (Arrow, safetensors, ``torch.load(mmap=True)``):

- the records handed out stay backed by the file. Replacing the file (a new file renamed over
  it, as every s3dlio write does) is harmless: the mapping keeps the old contents. Rewriting it
  in place changes records already handed out, and truncating it makes the next touch of a
  mapped page beyond the new end fail with ``SIGBUS``, which kills the process. The file's size
  and modification time are checked before each window and each random read (an
  :class:`~s3dlio.errors.IntegrityError` instead of a crash in most cases), which cannot protect
  records already handed out. Use it for data that is not modified while it is read;
- a mapping lives until the last record view of it is released, and holds a file descriptor
  meanwhile (Python's ``mmap`` keeps its own).
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterator

from ..errors import IntegrityError, UnsupportedOperationError
from ..io import oplog, retry
from ..io.backends.file import FileReadStream, map_os_error
from ..io.config import MiB
from ..io.store import HasStores, ObjectStore, backend_for
from ..io.uri import ObjectURI
from .blocks import FetchStats, Window

__all__ = ["WINDOW", "MappedFile", "MappedSource", "mappable"]

#: Default window: the bytes of a mapping the parser works on at a time.
WINDOW = 16 * MiB


class MappedFile:
    """One version of a ``file://`` object, mapped copy-on-write: bytes ``[start, end)`` of it.

    The file stays open (one descriptor) so that :meth:`check` can tell whether it was modified
    in place since it was mapped; :meth:`close` closes it. The mapping itself lives as long as
    this object or any view of it does.

    Args:
        uri: The object (``file://`` only, see :func:`mappable`).
        start: First byte wanted.
        end: End of the span (``None``: the end of the file).
        etag: The version to map (an :class:`~s3dlio.errors.IntegrityError` if the file is
            another one).

    Attributes:
        buffer: The mapping (``None`` when the span is empty); byte ``o`` of the file is
            ``buffer[o - base]``.
        base: File offset of ``buffer[0]`` (``start`` rounded down to the mapping granularity).
        start: First byte of the span.
        end: End of the span (within the file).
        size: The file's size.
        etag: The version mapped.

    Raises:
        NotFoundError, IntegrityError, UnsupportedOperationError: as a GET of ``uri`` would;
            another scheme than ``file://``.
    """

    def __init__(
        self, uri: ObjectURI, *, start: int = 0, end: int | None = None, etag: str | None = None
    ) -> None:
        backend = mappable(uri)
        begin = time.time_ns()
        stream = retry.call(
            lambda: backend.open_read(uri, 0, None, if_match=etag),
            op="GET",
            uri=uri,
            config=backend.retry_config,
        )
        assert isinstance(stream, FileReadStream)
        self.uri = uri
        self.size, self.etag = stream.size, stream.etag
        self.start = min(start, stream.size)
        self.end = stream.size if end is None else max(self.start, min(end, stream.size))
        self.base = self.start - self.start % mmap.ALLOCATIONGRANULARITY
        self.buffer: mmap.mmap | None = None
        self._stream = stream
        try:
            self._version = _version(os.fstat(stream.fd))
            if self.end > self.start:
                self.buffer = mmap.mmap(
                    stream.fd, self.end - self.base, access=mmap.ACCESS_COPY, offset=self.base
                )
        except OSError as exc:
            stream.close()
            raise map_os_error(exc, uri, "GET") from exc
        except ValueError:  # "mmap length is greater than file size": it shrank meanwhile
            stream.close()
            raise IntegrityError(
                "object changed during the read (cut short while being mapped)",
                uri=str(uri),
                op="GET",
                byte_range=(self.start, self.end - self.start),
            ) from None
        if oplog.is_op_log_active():
            oplog.record(
                "GET",
                uri.key,
                endpoint=backend.endpoint(uri),
                nbytes=self.end - self.start,
                start_ns=begin,
                first_byte_ns=begin,
                end_ns=time.time_ns(),
            )

    def check(self, offset: int, length: int) -> None:
        """Raise unless the file is as it was when mapped (size and modification time), before
        the bytes ``[offset, offset + length)`` are read.

        Raises:
            IntegrityError: the file was modified in place (or cut short) since.
        """
        try:
            version = _version(os.fstat(self._stream.fd))
        except OSError as exc:  # closed meanwhile
            raise map_os_error(exc, self.uri, "GET") from exc
        if version != self._version:
            raise IntegrityError(
                "object changed during the read (modified in place while mapped)",
                uri=str(self.uri),
                op="GET",
                byte_range=(offset, length),
            )

    def close(self) -> None:
        """Close the file (idempotent); the mapping goes with the last reference to it."""
        self._stream.close()
        self.buffer = None

    def __del__(self) -> None:
        stream = getattr(self, "_stream", None)  # absent if __init__ failed
        if stream is not None:
            stream.close()


class MappedSource:
    """The bytes ``[start, end)`` of a ``file://`` object as windows of one mapping.

    Args:
        uri: The object (``file://`` only, see :func:`mappable`).
        start: First byte.
        end: End of the span (``None``: the end of the file).
        block_size: Bytes per window (the parser's unit of work; nothing is copied; default
            :data:`WINDOW`).
        etag: The version to read (an :class:`~s3dlio.errors.IntegrityError` if the file is
            another one).
        stats: Where the mapping is counted (one request of the span's size).

    Attributes:
        size: The file's size, known once iteration starts.
        etag: The version mapped.
        stats: Request counters.

    Raises:
        UnsupportedOperationError: ``uri`` is not a ``file://`` object.
    """

    def __init__(
        self,
        uri: ObjectURI,
        *,
        start: int = 0,
        end: int | None = None,
        block_size: int | None = None,
        etag: str | None = None,
        stats: FetchStats | None = None,
    ) -> None:
        mappable(uri)
        self.uri = uri
        self.start = start
        self.end = end
        self.block_size = block_size or WINDOW
        self.size: int | None = None
        self.etag = etag
        self.stats = stats or FetchStats()
        self._want = 0

    def expect(self, nbytes: int, headroom: int) -> None:
        """Make the next window reach at least ``nbytes`` further (the rest of a record cut by
        this window, and the next header); ``headroom`` is already in the mapping."""
        self._want = nbytes

    def __iter__(self) -> Iterator[Window]:
        mapped = MappedFile(self.uri, start=self.start, end=self.end, etag=self.etag)
        try:
            self.size, self.etag = mapped.size, mapped.etag
            buffer = mapped.buffer
            if buffer is None:
                return
            self.stats.add(1, mapped.end - mapped.start)
            pos, stop = mapped.start - mapped.base, mapped.end - mapped.base
            while pos < stop:
                hi = min(stop, pos + max(self.block_size, self._want))
                self._want = 0
                mapped.check(mapped.base + pos, hi - pos)
                yield buffer, pos, hi
                pos = hi
        finally:
            mapped.close()


def mappable(uri: ObjectURI, client: HasStores | None = None) -> ObjectStore:
    """The backend of ``uri`` if its objects can be mapped (``file://``).

    Raises:
        UnsupportedOperationError: any other scheme (``direct://`` bypasses the page cache that
            a mapping reads; object stores have no file to map).
    """
    backend = backend_for(uri, client)
    if backend.local_path(uri) is None:
        raise UnsupportedOperationError(
            f"mmap=True maps local files only (file://), not {uri.scheme}://",
            uri=str(uri),
            op="GET",
        )
    return backend


def _version(st: os.stat_result) -> tuple[int, int]:
    return st.st_size, st.st_mtime_ns
