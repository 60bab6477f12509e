"""A read-only, seekable file object over any object URI, read through range requests.

:class:`RangeFile` lets code written for local files (``h5py``, ``zipfile``, ``numpy.load``,
``torch.load``, ``pickle``) read an object on any backend without downloading it. Reads go
through an LRU cache of aligned blocks:

- the blocks a read needs and does not have are fetched with ONE range request (adjacent
  misses are coalesced), so a reader hopping through a file pays one round trip per hop;
- a run of sequential reads grows a read-ahead window (doubling up to ``max_readahead``),
  so streaming small reads turn into a few large requests, while random reads fetch only
  their own blocks;
- a read of at least ``direct_threshold`` bytes bypasses the cache and lands straight in the
  caller's buffer (``readinto``), the RangeEngine splitting it when it is large.

Every request carries the version token (etag) seen when the file was opened, so an object
replaced while it is being read raises :class:`~s3dlio.errors.IntegrityError` instead of
mixing two versions, and every request is op-logged. Requests go through :class:`RangeReader`:
a ranged GET per read on object stores (retried by the RangeEngine), and on ``file://`` a
``preadv`` on one descriptor kept open, after a ``stat`` that checks the version.
:attr:`RangeFile.requests` and :attr:`RangeFile.bytes_fetched` count what was fetched.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from ..errors import IntegrityError, InvalidArgumentError
from . import oplog, ops, retry
from .backends.file import FileReadStream, file_etag
from .buffers import BytesView
from .config import KiB, MiB, parse_size
from .range_engine import fetch
from .store import HasStores, ObjectStore, backend_for
from .uri import ObjectURI, parse_uri

__all__ = ["RangeFile", "RangeReader"]


class RangeReader:
    """Byte ranges of one version of one object, each read at the least cost the backend allows.

    Every read is pinned to one version: ``etag`` if given, else the version the first read
    finds. On ``file://`` the reader keeps one descriptor open and, before each read, checks that
    the path still names that version (one ``stat``: inode, size and modification time make up
    the etag), so a file replaced, rewritten or cut short fails with
    :class:`~s3dlio.errors.IntegrityError` exactly as a changed object does elsewhere; a read then
    costs a ``stat`` and a ``preadv`` instead of an open, ``fstat`` and close plus the
    RangeEngine's layers (~20 µs less per read), and is op-logged as ``GET_RANGE`` like those.
    Any error on that path is retried once through :func:`~s3dlio.io.range_engine.fetch`, which
    maps, retries and reports it. Other backends make a ranged GET with ``if_match`` per read.

    Reads may run concurrently from several threads; :meth:`close` must not race with a read.

    Args:
        uri: The object.
        etag: Pin reads to this version (``None``: the version the first read sees).
        backend: The store serving ``uri`` (looked up when ``None``).

    Attributes:
        size: The object's size, known after the first read.
        etag: The version every read is pinned to, known after the first read.
    """

    def __init__(
        self, uri: ObjectURI, *, etag: str | None = None, backend: ObjectStore | None = None
    ) -> None:
        self._stream: FileReadStream | None = None
        self.uri = uri
        self.backend = backend or backend_for(uri)
        self.etag = etag
        self.size: int | None = None
        # exactly file:// (direct:// needs aligned reads and must not touch the page cache)
        self._local = self.backend.local_path(uri) is not None
        self._version: tuple[int, int, int] | None = None  # (inode, mtime, size) of the etag
        self._lock = threading.Lock()

    def read_into(self, offset: int, dst: memoryview) -> tuple[int, int]:
        """Read up to ``len(dst)`` bytes at ``offset`` into ``dst``.

        Returns:
            ``(nbytes, requests)``: bytes read (fewer than asked only at the end of the object)
            and requests made.

        Raises:
            IntegrityError: the object is not the pinned version any more.
        """
        if self._local:
            try:
                return self._pread(offset, dst), 1
            except OSError:
                pass  # not the fast path's business: fetch maps it, retries it, or reports it
        result = fetch(
            self.backend,
            self.uri,
            offset,
            len(dst),
            into=dst,
            if_match=self.etag,
            op="GET_RANGE",
        )
        if self.size is None:
            self.size, self.etag = result.size, self.etag or result.etag
        return result.nbytes, result.requests

    def _pread(self, offset: int, dst: memoryview) -> int:
        stream = self._stream or self._open()
        logging = oplog.is_op_log_active()
        start = time.time_ns() if logging else 0
        st = os.stat(self.uri.key)
        if (st.st_ino, st.st_mtime_ns, st.st_size) != self._version:
            raise IntegrityError(
                "object changed during the read (version token differs)",
                uri=str(self.uri),
                op="GET_RANGE",
                byte_range=(offset, len(dst)),
            )
        want = min(len(dst), stream.size - offset)
        done = 0
        while done < want:
            got = os.preadv(
                stream.fd, [dst[done:want] if done or want < len(dst) else dst], offset + done
            )
            if not got:
                raise IntegrityError(
                    f"object shrank during the read: ended at {offset + done}, expected "
                    f"{stream.size} bytes",
                    uri=str(self.uri),
                    op="GET_RANGE",
                    byte_range=(offset, want),
                )
            done += got
        if logging:
            oplog.record(
                "GET_RANGE",
                self.uri.key,
                endpoint=self.backend.endpoint(self.uri),
                nbytes=done,
                start_ns=start,
                first_byte_ns=start,
                end_ns=time.time_ns(),
            )
        return done

    def _open(self) -> FileReadStream:
        with self._lock:
            if self._stream is not None:
                return self._stream
            stream = retry.call(
                lambda: self.backend.open_read(self.uri, 0, None, if_match=self.etag),
                op="GET_RANGE",
                uri=self.uri,
                config=self.backend.retry_config,
            )
            if not isinstance(stream, FileReadStream):  # pragma: no cover - FileStore's own
                stream.close()
                raise TypeError(f"unexpected stream type {type(stream).__name__}")
            st = os.fstat(stream.fd)
            if file_etag(st) != stream.etag:  # changed between open_read's fstat and this one
                stream.close()
                raise IntegrityError(
                    "object changed during the read (version token differs)",
                    uri=str(self.uri),
                    op="GET_RANGE",
                )
            self._version = (st.st_ino, st.st_mtime_ns, st.st_size)
            self.size, self.etag = stream.size, stream.etag
            self._stream = stream
            return stream

    def close(self) -> None:
        """Close the local file descriptor, if one is open (idempotent)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def __del__(self) -> None:
        self.close()


class RangeFile(io.RawIOBase):
    """A read-only, seekable binary file over one object on any backend.

    On ``file://`` it holds the file open (one descriptor) until :meth:`close`, like a file
    object; a file replaced or modified meanwhile fails the next read with
    :class:`~s3dlio.errors.IntegrityError`.

    Args:
        uri: The object (a URI, or a bare local path).
        block_size: Cache granularity in bytes (``"64KiB"`` accepted).
        cache_size: Bytes of blocks kept in the LRU cache (at least one block).
        max_readahead: Upper bound of the sequential read-ahead window in bytes (0 disables
            read-ahead); at most half the cache.
        direct_threshold: Reads of at least this many bytes skip the cache (default: 4 blocks).
        size: The object's size, if known (skips the HEAD request made on open).
        etag: The object's version token, if known (with ``size``).
        client: The :class:`s3dlio.Client` to read through (default: the default client).

    Attributes:
        uri: The parsed object URI.
        size: The object's size in bytes.
        etag: The version every request is pinned to (``None`` if the store has none).
        requests: Range requests made so far (the HEAD on open is not counted).
        bytes_fetched: Bytes received by those requests.
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        *,
        block_size: int | str = 64 * KiB,
        cache_size: int | str = 32 * MiB,
        max_readahead: int | str = 8 * MiB,
        direct_threshold: int | str | None = None,
        size: int | None = None,
        etag: str | None = None,
        client: HasStores | None = None,
    ) -> None:
        super().__init__()
        self.uri = parse_uri(uri, allow_bare=True)
        self.block_size = parse_size(block_size)
        if self.block_size < 1:
            raise InvalidArgumentError("block_size must be >= 1", uri=str(self.uri), op="GET")
        self.cache_blocks = max(1, parse_size(cache_size) // self.block_size)
        self.max_readahead_blocks = min(
            parse_size(max_readahead) // self.block_size, self.cache_blocks // 2
        )
        self.direct_threshold = (
            4 * self.block_size if direct_threshold is None else parse_size(direct_threshold)
        )
        self._backend = backend_for(self.uri, client)
        if size is None:
            meta = ops.stat(self.uri, client)
            size, etag = meta.size, meta.etag
        self.size: int = size
        self.etag: str | None = etag
        self.requests = 0
        self.bytes_fetched = 0
        self._pos = 0
        self._cache: OrderedDict[int, memoryview] = OrderedDict()
        self._readahead = 0  # current window, in blocks
        self._last_end = -1  # end of the previous read, to detect sequential access
        self._lock = threading.Lock()
        self._reader = RangeReader(self.uri, etag=etag, backend=self._backend)

    # -- io.RawIOBase ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The object's URI."""
        return str(self.uri)

    @property
    def mode(self) -> str:
        """Always ``"rb"``."""
        return "rb"

    def readable(self) -> bool:
        """True: the file can be read."""
        return True

    def seekable(self) -> bool:
        """True: any position can be read."""
        return True

    def writable(self) -> bool:
        """False: a RangeFile is read-only (use :func:`s3dlio.open_writer` to write)."""
        return False

    def tell(self) -> int:
        """The current position."""
        self._check_closed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` relative to the start, the current position or the end.

        Positions past the end are allowed (reads there return nothing).
        """
        self._check_closed()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise InvalidArgumentError(f"invalid whence {whence!r}")
        if target < 0:
            raise InvalidArgumentError(f"negative seek position {target}")
        self._pos = target
        return target

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes at the current position into ``buffer``."""
        self._check_closed()
        view = memoryview(buffer)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        with self._lock:
            n = self._read_at(self._pos, view)
            self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that remains when negative or ``None``)."""
        self._check_closed()
        with self._lock:
            remaining = max(0, self.size - self._pos)
            n = remaining if size is None or size < 0 else min(size, remaining)
            out = BytesView.allocate(n)
            got = self._read_at(self._pos, memoryview(out))
            self._pos += got
        return bytes(out)

    def readall(self) -> bytes:
        """Read everything from the current position to the end."""
        return self.read(-1)

    def read_at(self, offset: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``offset`` without moving the position (thread-safe)."""
        self._check_closed()
        with self._lock:
            n = max(0, min(size, self.size - offset))
            out = BytesView.allocate(n)
            got = self._read_at(offset, memoryview(out))
        return bytes(out[:got])

    def close(self) -> None:
        """Drop the cache and close the local file, if any; further reads raise ``ValueError``."""
        lock = getattr(self, "_lock", None)  # absent if __init__ failed
        if lock is not None:
            with lock:
                self._cache.clear()
                self._reader.close()
        super().close()

    def __repr__(self) -> str:
        return f"RangeFile({str(self.uri)!r}, size={self.size})"

    # -- internals -------------------------------------------------------------------------------
    def _check_closed(self) -> None:
        if self.closed:
            raise InvalidArgumentError("I/O operation on closed file")

    def _read_at(self, offset: int, dst: memoryview) -> int:
        """Fill ``dst`` with bytes at ``offset`` (fewer at the end of the object)."""
        n = max(0, min(len(dst), self.size - offset))
        if n == 0:
            return 0
        sequential = offset == self._last_end
        self._last_end = offset + n
        if sequential:
            self._readahead = min(max(1, 2 * self._readahead), self.max_readahead_blocks)
        else:
            self._readahead = 0
        if n >= self.direct_threshold:
            self._fetch(offset, dst if n == len(dst) else dst[:n])
            return n
        bs = self.block_size
        first, last = offset // bs, (offset + n - 1) // bs
        missing = [i for i in range(first, last + 1) if i not in self._cache]
        if missing:
            self._fill_blocks(missing[0], missing[-1])
        done = 0
        for index in range(first, last + 1):
            block = self._cache[index]
            self._cache.move_to_end(index)
            start = offset + done - index * bs
            take = min(len(block) - start, n - done)
            dst[done : done + take] = block[start : start + take]
            done += take
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return n

    def _fill_blocks(self, lo: int, hi: int) -> None:
        """Fetch blocks ``lo..hi`` (plus the read-ahead window) with one request."""
        bs = self.block_size
        last_block = (self.size - 1) // bs
        ahead = hi
        while ahead < last_block and ahead - hi < self._readahead and ahead + 1 not in self._cache:
            ahead += 1
        start, end = lo * bs, min((ahead + 1) * bs, self.size)
        data = BytesView.allocate(end - start)
        view = memoryview(data)
        self._fetch(start, view)
        for index in range(lo, ahead + 1):
            self._cache[index] = view[(index - lo) * bs : (index - lo + 1) * bs]
            self._cache.move_to_end(index)

    def _fetch(self, offset: int, dst: memoryview) -> None:
        nbytes, requests = self._reader.read_into(offset, dst)
        self.requests += requests
        self.bytes_fetched += nbytes
        if nbytes != len(dst):
            raise IntegrityError(
                f"object is {self._reader.size} bytes, expected {self.size} (changed while open)",
                uri=str(self.uri),
                op="GET_RANGE",
                byte_range=(offset, len(dst)),
            )
