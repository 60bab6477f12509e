"""Sequential reading of an object in large blocks, into a few reused buffers.

Format readers that stream through an object (TFRecord iteration, index building, raw records)
read it through :class:`BlockSource`: block *k+1* is fetched in the background while block *k*
is parsed, each block lands in a buffer from a small :class:`BufferPool`, and every block after
the first carries the version token of the first (``if_match``), so a replaced object fails
loudly instead of mixing versions.

Every buffer keeps ``headroom`` bytes free in front of its data. A parser whose last record runs
past the end of a block copies that partial record into the headroom of the next block, so
records are always contiguous without copying the block itself.

Zero-copy views handed to users stay valid: a buffer is refilled only when nothing references it
any more (a ``bytearray`` with live ``memoryview`` exports refuses to resize, which is how the pool
tells), otherwise the pool allocates another one.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future

from ..errors import IntegrityError
from ..io.buffers import BytesView
from ..io.config import MiB
from ..io.executor import get_executor
from ..io.range_engine import fetch
from ..io.store import backend_for
from ..io.uri import ObjectURI

__all__ = ["BlockSource", "BufferPool", "FetchStats", "GzipBlockSource", "Window"]

_GZIP_INPUT = 256 * 1024  # compressed bytes fed to zlib at a time (bounds each output piece)

#: ``(buffer, start, end)``: the bytes ``buffer[start:end]``, with ``start`` bytes of headroom.
Window = tuple[bytearray, int, int]


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
    """A few equally sized buffers, handed out again once nothing refers to them.

    Args:
        size: Bytes per buffer.
        keep: Buffers kept for reuse; more are allocated (and dropped) when all are in use.
    """

    def __init__(self, size: int, keep: int = 4) -> None:
        self.size = size
        self.keep = keep
        self._buffers: list[bytearray] = []

    def acquire(self, *busy: bytearray) -> bytearray:
        """A buffer of :attr:`size` bytes that nothing refers to and is not in ``busy``."""
        for buf in self._buffers:
            if len(buf) == self.size and all(buf is not b for b in busy) and _unreferenced(buf):
                return buf
        buf = BytesView.allocate(self.size)
        self._buffers = [b for b in self._buffers if len(b) == self.size][-(self.keep - 1) :]
        self._buffers.append(buf)
        return buf

    def resize(self, size: int) -> None:
        """Hand out buffers of ``size`` bytes from now on."""
        self.size = size


class BlockSource:
    """The bytes ``[start, end)`` of one object as a sequence of :data:`Window` blocks.

    Args:
        uri: The object.
        start: First byte.
        end: End of the span (``None``: the end of the object).
        block_size: Bytes fetched per request.
        headroom: Free bytes in front of each block's data.
        prefetch: Fetch the next block in the background while the caller works.
        etag: Pin every request to this version (default: the version of the first block).
        stats: Where requests and bytes are counted (a new :class:`FetchStats` by default).

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
        block_size: int = 4 * MiB,
        headroom: int = MiB,
        prefetch: bool = True,
        etag: str | None = None,
        stats: FetchStats | None = None,
    ) -> None:
        self.uri = uri
        self.start = start
        self.end = end
        self.block_size = block_size
        self.headroom = headroom
        self.prefetch = prefetch
        self.size: int | None = None
        self.etag = etag
        self.stats = stats or FetchStats()
        self._backend = backend_for(uri)
        self._pool = BufferPool(headroom + block_size)

    def grow(self, block_size: int, headroom: int) -> None:
        """Use larger blocks (and headroom) for blocks not yet requested."""
        self.block_size = max(self.block_size, block_size)
        self.headroom = max(self.headroom, headroom)
        self._pool.resize(self.headroom + self.block_size)

    def _read(self, buf: bytearray, head: int, offset: int) -> tuple[int, int]:
        """Fill ``buf`` after ``head`` bytes with the block at ``offset``; ``(head, nbytes)``."""
        want = len(buf) - head
        if self.end is not None:
            want = min(want, self.end - offset)
        if self.size is not None:
            want = min(want, self.size - offset)
        if want <= 0:
            return head, 0
        result = fetch(
            self._backend, self.uri, offset, want, into=memoryview(buf)[head : head + want],
            if_match=self.etag, op="GET_RANGE",
        )  # fmt: skip
        if self.size is None:
            self.size, self.etag = result.size, self.etag or result.etag
        self.stats.add(result.requests, result.nbytes)
        return head, result.nbytes

    def __iter__(self) -> Iterator[Window]:
        offset = self.start
        current = self._pool.acquire()
        pending: Future[tuple[int, int]] | None = None
        head, n = self._read(current, self.headroom, offset)
        while n:
            offset += n
            nxt: bytearray | None = None
            if self.prefetch and self._more(offset):
                nxt = self._pool.acquire(current)
                job = (nxt, self.headroom, offset)
                pending = get_executor().submit(self._read, *job)
            try:
                yield current, head, head + n
            except GeneratorExit:
                if pending is not None:
                    pending.cancel()
                raise
            if not self._more(offset):
                return
            if pending is not None and nxt is not None:
                if pending.cancel():  # not started (busy pool): read here, never wait for it
                    head, n = self._read(*job)
                else:
                    head, n = pending.result()
                pending = None
                current = nxt
            else:
                current = self._pool.acquire()
                head, n = self._read(current, self.headroom, offset)

    def _more(self, offset: int) -> bool:
        limit = self.size if self.end is None else min(self.end, self.size or self.end)
        return limit is None or offset < limit


class GzipBlockSource:
    """The decompressed bytes of a gzip-compressed object, as :data:`Window` blocks.

    Concatenated gzip members are read one after the other, as ``gzip`` does. Reading is
    sequential only: a position in the decompressed stream cannot be reached without
    decompressing everything before it.
    """

    def __init__(
        self,
        uri: ObjectURI,
        *,
        block_size: int = 4 * MiB,
        headroom: int = MiB,
        stats: FetchStats | None = None,
    ) -> None:
        self.uri = uri
        self.block_size = block_size
        self.headroom = headroom
        self.raw = BlockSource(uri, block_size=block_size, headroom=0, stats=stats)
        self.stats = self.raw.stats
        self._pool = BufferPool(headroom + block_size)
        self.size: int | None = None  # the decompressed size is not known in advance

    def grow(self, block_size: int, headroom: int) -> None:
        """Use larger output blocks (and headroom) from now on."""
        self.block_size = max(self.block_size, block_size)
        self.headroom = max(self.headroom, headroom)
        self._pool.resize(self.headroom + self.block_size)

    def __iter__(self) -> Iterator[Window]:
        inflater = zlib.decompressobj(wbits=31)
        started = False  # the current gzip member has received input
        out = self._pool.acquire()
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
                            out = self._pool.acquire(out)
                            head, fill = self.headroom, 0
                        step = min(len(piece) - taken, len(out) - head - fill)
                        out[head + fill : head + fill + step] = piece[taken : taken + step]
                        fill += step
                        taken += step
            del view
        if started:
            raise IntegrityError(
                "gzip stream ends in the middle of a member (truncated)", uri=str(self.uri),
                op="GET",
            )  # fmt: skip
        if fill:
            yield out, head, head + fill
