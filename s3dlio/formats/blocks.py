"""Sequential reading of an object in large blocks, into a few reused buffers.

Format readers that stream through an object (TFRecord iteration, index building, raw records)
read it through :class:`BlockSource`: over a network block *k+1* is fetched in the background
while block *k* is parsed (local files are read in place, through one descriptor: see
:class:`~s3dlio.io.rangefile.RangeReader`), each block lands in a buffer from a small
:class:`BufferPool`, and every block after the first is pinned to the version of the first
(``if_match``; a ``stat`` check locally), so a replaced object fails loudly instead of mixing
versions.

Every buffer keeps some headroom free in front of its data. A parser whose last record runs past
the end of a block copies that partial record into the headroom of the next block, so records
are always contiguous without copying the block itself; and it tells the source what the next
block must hold (:meth:`BlockSource.expect`), so that streams of large records are read one
record per request, with no copying at all.

Zero-copy views handed to users stay valid: a buffer is refilled only when nothing references it
any more (a ``bytearray`` with live ``memoryview`` exports refuses to resize, which is how the pool
tells), otherwise the pool allocates another one.
"""

from __future__ import annotations

import mmap
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, NamedTuple

from ..errors import IntegrityError
from ..io.buffers import BytesView
from ..io.config import MiB
from ..io.executor import get_executor
from ..io.rangefile import RangeReader
from ..io.store import ObjectStore, backend_for
from ..io.uri import ObjectURI

if TYPE_CHECKING:
    from .mapped import MappedSource

__all__ = [
    "BlockSource",
    "BufferPool",
    "FetchStats",
    "GzipBlockSource",
    "Window",
    "default_block_size",
]

HEADROOM_MIN = 16  # a partial record header (< 12 bytes) always fits
_PAGE = 4096
_GZIP_INPUT = 256 * 1024  # compressed bytes fed to zlib at a time (bounds each output piece)

#: ``(buffer, start, end)``: the bytes ``buffer[start:end]``, with ``start`` bytes of headroom
#: (a ``bytearray``; or an ``mmap`` whose windows continue each other, see
#: :mod:`~s3dlio.formats.mapped`).
Window = tuple[bytearray | mmap.mmap, int, int]


class FetchStats:
    """Counters of the range requests a reader made.

    Attributes:
        requests: Requests made.
        bytes_fetched: Bytes received.
    """

    __slots__ = ("_lock", "bytes_fetched", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_fetched = 0
        self._lock = threading.Lock()

    def add(self, requests: int, nbytes: int) -> None:
        """Count ``requests`` more requests that received ``nbytes`` bytes (thread-safe)."""
        with self._lock:
            self.requests += requests
            self.bytes_fetched += nbytes


def _unreferenced(buf: bytearray) -> bool:
    """Whether no ``memoryview`` (or NumPy array) still refers to ``buf``."""
    try:  # shrinking by one byte checks for exports without reallocating; then restore it
        last = buf.pop()
    except BufferError:
        return False
    buf.append(last)
    return True


class BufferPool:
    """A few buffers, handed out again once nothing refers to them.

    Args:
        keep: Buffers kept for reuse; more are allocated (and dropped) when all are in use.
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._buffers: list[bytearray] = []

    def acquire(self, size: int, *busy: bytearray) -> bytearray:
        """A buffer of at least ``size`` bytes that nothing refers to and is not in ``busy``."""
        for buf in self._buffers:
            if len(buf) < size:
                continue
            for b in busy:  # a plain loop: this runs once per block, a generator costs more
                if b is buf:
                    break
            else:
                if _unreferenced(buf):
                    return buf
        buf = BytesView.allocate(size)
        self._buffers = [b for b in self._buffers if len(b) >= size][-(self.keep - 1) :]
        self._buffers.append(buf)
        return buf


def default_block_size(backend: ObjectStore) -> int:
    """Block size for sequential reads: 1 MiB locally (the block stays in the CPU cache while
    it is parsed, which beats fewer larger reads), 8 MiB over a network (fewer round trips)."""
    return MiB if backend.local else 8 * MiB


class BlockSource:
    """The bytes ``[start, end)`` of one object as a sequence of :data:`Window` blocks.

    Args:
        uri: The object.
        start: First byte.
        end: End of the span (``None``: the end of the object).
        block_size: Bytes fetched per request (``None``: :func:`default_block_size`).
        headroom: Free bytes in front of prefetched blocks' data (grown as records require;
            blocks sized by :meth:`expect` get exactly what the parser asks for).
        prefetch: Read the next block in the background while the caller works on this one
            (``None``: for network backends only).
        etag: Pin every request to this version (default: the version of the first block).
        stats: Where requests and bytes are counted (a new :class:`FetchStats` by default).
        announced: The consumer calls :meth:`expect` once after parsing each block (as
            :func:`~s3dlio.formats.framing.scan_windows` does): a prefetched block is then
            requested at that moment, sized to what the parser needs, rather than when the
            previous block is handed out.

    Attributes:
        size: The object's size, known after the first block.
        etag: The version token every block is read at.
        stats: Request counters.
    """

    def __init__(
        self,
        uri: ObjectURI,
        *,
        start: int = 0,
        end: int | None = None,
        block_size: int | None = None,
        headroom: int = 64 * 1024,
        prefetch: bool | None = None,
        etag: str | None = None,
        stats: FetchStats | None = None,
        announced: bool = False,
        backend: ObjectStore | None = None,
    ) -> None:
        self.uri = uri
        self._backend = backend or backend_for(uri)
        self.start = start
        self.end = end
        self.block_size = block_size or default_block_size(self._backend)
        self.headroom = headroom
        self.prefetch = not self._backend.local if prefetch is None else prefetch
        self.announced = announced
        self.size: int | None = None
        self.etag = etag
        self.stats = stats or FetchStats()
        self._pool = BufferPool()
        self._want = 0
        self._head = 0
        self._reader: RangeReader | None = None
        self._offset = start  # where the next block starts
        self._current: bytearray | None = None  # the block being parsed
        self._pending: _Pending | None = None

    def expect(self, nbytes: int, headroom: int) -> None:
        """Say what the next block must bring: ``nbytes`` after ``headroom`` free bytes.

        A parser calls it when it is done with a block. ``headroom`` is the part of a record
        it holds (copied in front of the next block) and ``nbytes`` the rest of that record
        plus the next record's header (``0``: nothing in particular, a full block). When that
        record is large next to a block, the next read is exactly ``nbytes`` long: from then on
        each read ends just after the next header, so a stream of large records costs one read
        per record and no copies. With ``announced`` and ``prefetch``, that read starts now, in
        the background; without ``announced``, prefetched blocks were requested before this
        was known, so they grow to twice the record instead.
        """
        if self.prefetch and not self.announced:
            self.headroom = max(self.headroom, headroom)
            self.block_size = max(self.block_size, 2 * (nbytes + headroom))
            return
        self._head = headroom
        self._want = nbytes if nbytes + headroom > self.block_size // 2 else 0
        if (
            self.prefetch
            and self._current is not None
            and self._pending is None
            and self._more(self._offset)
        ):
            self._start_next()

    def _next_buffer(self, *busy: bytearray) -> tuple[bytearray, int, int]:
        """``(buffer, head, size)`` for the next block, honouring :meth:`expect`.

        Blocks sized by the parser get the headroom it announced (or room for a partial
        header, which is all it can hold otherwise); other prefetched blocks get the largest
        headroom seen, since they are requested before the parser knows. Headroom is rounded
        up to a page so that data lands page-aligned (buffers from the pool are page-aligned).
        """
        size = self._want or self.block_size
        sized = self.announced or not self.prefetch
        head = max(self._head, HEADROOM_MIN) if sized else self.headroom
        head = -(-head // _PAGE) * _PAGE  # data on a page boundary: kernel copies run fastest
        self._want = self._head = 0
        return self._pool.acquire(head + size, *busy), head, size

    def _read(self, buf: bytearray, head: int, size: int, offset: int) -> tuple[int, int]:
        """Read up to ``size`` bytes at ``offset`` into ``buf[head:]``; ``(head, nbytes)``."""
        want = size
        if self.end is not None and self.end - offset < want:
            want = self.end - offset
        if self.size is not None and self.size - offset < want:
            want = self.size - offset
        if want <= 0:
            return head, 0
        assert self._reader is not None
        nbytes, requests = self._reader.read_into(offset, memoryview(buf)[head : head + want])
        if self.size is None:
            self.size, self.etag = self._reader.size, self._reader.etag
        self.stats.add(requests, nbytes)
        return head, nbytes

    def _start_next(self) -> None:
        """Start reading the block at ``self._offset`` in the background."""
        assert self._current is not None
        buf, head, size = self._next_buffer(self._current)
        job = (buf, head, size, self._offset)
        self._pending = _Pending(get_executor().submit(self._read, *job), job)

    def _finish_next(self) -> tuple[bytearray, int, int]:
        """The block started by :meth:`_start_next`: ``(buffer, head, nbytes)``."""
        pending, self._pending = self._pending, None
        assert pending is not None
        buf = pending.job[0]
        if pending.future.cancel():  # not started (busy pool): read here, never wait for it
            head, n = self._read(*pending.job)
        else:
            head, n = pending.future.result()
        return buf, head, n

    def _drop_pending(self) -> None:
        """Cancel the background read, or wait until it is done (its file must stay open)."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.future.cancel():
            wait([pending.future])

    def __iter__(self) -> Iterator[Window]:
        self._reader = reader = RangeReader(self.uri, etag=self.etag, backend=self._backend)
        try:
            self._offset = self.start
            buf, head, size = self._next_buffer()
            head, n = self._read(buf, head, size, self._offset)
            while n:
                self._offset += n
                self._current = buf
                if self.prefetch and not self.announced and self._more(self._offset):
                    self._start_next()
                yield buf, head, head + n
                self._current = None
                if not self._more(self._offset):
                    return
                if self._pending is not None:
                    buf, head, n = self._finish_next()
                else:
                    buf, head, size = self._next_buffer(buf)
                    head, n = self._read(buf, head, size, self._offset)
        finally:
            self._current = None
            self._drop_pending()
            reader.close()

    def _more(self, offset: int) -> bool:
        end, size = self.end, self.size
        return (end is None or offset < end) and (size is None or offset < size)


class _Pending(NamedTuple):
    """A block being read in the background, and the arguments of its read."""

    future: Future[tuple[int, int]]
    job: tuple[bytearray, int, int, int]


class GzipBlockSource:
    """The decompressed bytes of a gzip-compressed object, as :data:`Window` blocks.

    Concatenated gzip members are read one after the other, as ``gzip`` does. Reading is
    sequential only: a position in the decompressed stream cannot be reached without
    decompressing everything before it. The compressed bytes come from ``raw`` (default: a
    :class:`BlockSource` of ``uri``; a :class:`~s3dlio.formats.mapped.MappedSource` reads them
    from a mapping).
    """

    def __init__(
        self,
        uri: ObjectURI,
        *,
        block_size: int | None = None,
        headroom: int = MiB,
        stats: FetchStats | None = None,
        raw: BlockSource | MappedSource | None = None,
        backend: ObjectStore | None = None,
    ) -> None:
        self.uri = uri
        backend = backend or backend_for(uri)
        self.raw = raw or BlockSource(
            uri, block_size=block_size, headroom=0, stats=stats, backend=backend
        )
        self.block_size = block_size or default_block_size(backend)
        self.headroom = headroom
        self.stats = self.raw.stats
        self._pool = BufferPool()
        self.size: int | None = None  # the decompressed size is not known in advance

    def expect(self, nbytes: int, headroom: int) -> None:
        """Make later output blocks large enough for a record (see :meth:`BlockSource.expect`)."""
        self.block_size = max(self.block_size, 2 * (nbytes + headroom))
        self.headroom = max(self.headroom, headroom)

    def __iter__(self) -> Iterator[Window]:
        inflater = zlib.decompressobj(wbits=31)
        started = False  # the current gzip member has received input
        out = self._pool.acquire(self.headroom + self.block_size)
        head, fill = self.headroom, 0
        for raw, lo, hi in self.raw:
            view = memoryview(raw)[lo:hi]
            for at in range(0, len(view), _GZIP_INPUT):
                data: bytes | memoryview = view[at : at + _GZIP_INPUT]
                while data:
                    try:
                        piece = inflater.decompress(data)
                    except zlib.error as exc:
                        raise IntegrityError(
                            f"not a valid gzip stream: {exc}", uri=str(self.uri), op="GET"
                        ) from None
                    started = True
                    data = b""
                    if inflater.eof:  # one gzip member ended: another may follow
                        data = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=31)
                        started = False
                    taken = 0
                    while taken < len(piece):
                        if head + fill == len(out):
                            yield out, head, head + fill
                            out = self._pool.acquire(self.headroom + self.block_size, out)
                            head, fill = self.headroom, 0
                        step = min(len(piece) - taken, len(out) - head - fill)
                        out[head + fill : head + fill + step] = piece[taken : taken + step]
                        fill += step
                        taken += step
            del view
        if started:
            raise IntegrityError(
                "gzip stream ends in the middle of a member (truncated)",
                uri=str(self.uri),
                op="GET",
            )
        if fill:
            yield out, head, head + fill
