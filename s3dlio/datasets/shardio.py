"""Shards read front to back in ``part_size`` range requests, the next parts fetched ahead.

:class:`PartStream` is the I/O engine of :class:`~s3dlio.datasets.streaming.StreamingDataset`.
Given the shards one reader (a rank's DataLoader worker) visits, in order, it reads them as one
sequence of parts: part *k* of a shard is the byte range ``[k * part_size, (k+1) * part_size)``,
read with ONE request (never split further, so a shard of ``size`` bytes costs exactly
``ceil(size / part_size)`` requests), pinned to the version (etag) the shard was listed with, so
an object replaced mid-epoch fails with :class:`~s3dlio.errors.IntegrityError` and one deleted
fails with :class:`~s3dlio.errors.NotFoundError`, both naming it. Up to ``ahead`` parts are in
flight on the shared I/O pool while the consumer parses the current one, crossing into the next
shard at a shard's end; memory is bounded by ``(ahead + 1) * (part_size + headroom)`` of buffers
(reused once the consumer drops its views).

Local files are read with ``preadv`` through :class:`~s3dlio.io.rangefile.RangeReader` (one
descriptor per shard); other backends through the RangeEngine's :func:`fetch` with splitting off.
With a :class:`~s3dlio.datasets.cache.ShardCache`, a shard with a complete local copy is read
from that copy (after one ``HEAD`` that checks the object still has the listed size and etag),
and a shard read from the store is written to the cache as its parts pass by.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass

from ..errors import IntegrityError, NotFoundError
from ..formats.blocks import BufferPool, FetchStats, Window
from ..io import ops
from ..io.backends.file import FileReadStream, FileStore
from ..io.executor import get_executor
from ..io.range_engine import fetch
from ..io.rangefile import RangeReader
from ..io.store import HasStores, ObjectStore, backend_for
from ..io.uri import ObjectURI, parse_uri
from .cache import CacheFill, ShardCache
from .dataset import NO_SPLIT

__all__ = ["PartStream", "Shard", "ShardPass"]

HEADROOM = 64 * 1024  #: free bytes in front of each part, where parsers join a cut record


@dataclass(frozen=True)
class Shard:
    """One shard of a streaming dataset.

    Attributes:
        index: Its position in the dataset's shard list.
        uri: The object.
        size: Its size in bytes (from the listing or a ``HEAD``).
        etag: Its version token, if the store gives one.
    """

    index: int
    uri: str
    size: int
    etag: str | None


class _Source:
    """Where one shard's bytes come from (the store, or a cached copy) and how to read them.

    A cached copy is opened once (through the file backend) and read with ``preadv`` on that
    descriptor: its name holds the version, so its bytes never change, and the open
    descriptor keeps them readable even if another process evicts the file or renames an
    identical copy over it meanwhile.
    """

    __slots__ = ("_lock", "_stream", "backend", "cached", "fill", "reader", "uri")

    def __init__(self, uri: ObjectURI, backend: ObjectStore, cached: bool) -> None:
        self.uri = uri
        self.backend = backend
        self.cached = cached
        self.reader: RangeReader | None = None
        self._stream: FileReadStream | None = None
        self._lock = threading.Lock()
        if type(backend) is FileStore and not cached:
            self.reader = RangeReader(uri, backend=backend)
        self.fill: CacheFill | None = None

    def _cached_fd(self) -> int:
        with self._lock:
            if self._stream is None:
                stream = self.backend.open_read(self.uri, 0, None)
                assert isinstance(stream, FileReadStream)
                self._stream = stream
            return self._stream.fd

    def read(self, offset: int, dst: memoryview, etag: str | None) -> int:
        if self.cached:
            fd = self._cached_fd()
            done = 0
            while done < len(dst):
                got = os.preadv(fd, [dst[done:]], offset + done)
                if not got:
                    break
                done += got
            return done
        if self.reader is not None:
            return self.reader.read_into(offset, dst)[0]
        result = fetch(
            self.backend,
            self.uri,
            offset,
            len(dst),
            into=dst,
            if_match=etag,
            config=NO_SPLIT,
            op="GET_RANGE",
        )
        return result.nbytes

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        if self.fill is not None:
            self.fill.abort()
            self.fill = None


class _Part:
    __slots__ = ("buf", "future", "head", "length", "offset", "shard", "source")

    def __init__(self, shard: int, offset: int, length: int, head: int, buf: bytearray) -> None:
        self.shard, self.offset, self.length, self.head = shard, offset, length, head
        self.buf = buf
        self.source: _Source | None = None
        self.future: Future[None] | None = None


class ShardPass:
    """One shard as the consumer sees it: :meth:`windows` yields its parts in order.

    Attributes:
        shard: The shard.
        position: Its position in the stream's shard list.
    """

    def __init__(self, stream: PartStream, position: int) -> None:
        self.stream = stream
        self.position = position
        self.shard = stream.shards[position]
        self.done = False

    def windows(self) -> Iterator[Window]:
        """The shard's bytes as ``(buffer, start, end)`` windows, fetched ahead."""
        return self.stream._windows(self)


class PartStream:
    """Reads ``shards`` front to back as ``part_size`` range requests (see the module docs).

    Args:
        shards: The shards, in reading order.
        part_size: Bytes per request.
        ahead: Parts fetched ahead of the one being parsed.
        cache: Local shard cache (``None``: none).
        client: The client to read through (default: the default client).
        stats: Where requests and bytes are counted.

    Attributes:
        headroom: Free bytes in front of each new part (a parser may raise it).
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        part_size: int,
        *,
        ahead: int = 2,
        cache: ShardCache | None = None,
        client: HasStores | None = None,
        stats: FetchStats | None = None,
    ) -> None:
        self.shards = list(shards)
        self.part_size = part_size
        self.ahead = max(0, ahead)
        self.cache = cache
        self.client = client
        self.stats = stats or FetchStats()
        self.headroom = HEADROOM
        self._pool = BufferPool(self.ahead + 3)
        self._queue: deque[_Part] = deque()
        self._sources: dict[int, _Source] = {}
        self._uncached: set[int] = set()  # shards whose cached copy vanished: read the store
        self._held: bytearray | None = None  # the part the consumer holds
        self._plan_shard = 0  # next shard whose parts are not all queued
        self._plan_offset = 0

    # -- planning (consumer thread) -----------------------------------------------------------
    def _resolve(self, position: int) -> _Source:
        """Where shard ``position`` is read from: a cached copy, else the store."""
        shard = self.shards[position]
        cache = self.cache
        if cache is not None and position not in self._uncached:
            path = cache.lookup(shard.uri, shard.size, shard.etag)
            if path is not None:
                local = parse_uri("file://" + path)
                return _Source(local, backend_for(local), True)
        uri = parse_uri(shard.uri)
        source = _Source(uri, backend_for(uri, self.client), False)
        if cache is not None and cache.admits(shard.size) and position not in self._uncached:
            source.fill = cache.open_fill(shard.uri, shard.size, shard.etag)
        return source

    def _top_up(self) -> None:
        """Queue parts until ``ahead + 1`` are queued or in the consumer's hands."""
        while len(self._queue) <= self.ahead and self._plan_shard < len(self.shards):
            position = self._plan_shard
            shard = self.shards[position]
            if position not in self._sources:
                self._sources[position] = self._resolve(position)
            length = max(0, min(self.part_size, shard.size - self._plan_offset))
            busy = [p.buf for p in self._queue]
            if self._held is not None:
                busy.append(self._held)
            buf = self._pool.acquire(self.headroom + length, *busy)
            part = _Part(position, self._plan_offset, length, self.headroom, buf)
            part.source = self._sources[position]
            part.future = get_executor().submit(self._read, part)
            self._queue.append(part)
            self._plan_offset += self.part_size
            if self._plan_offset >= shard.size:
                self._plan_shard += 1
                self._plan_offset = 0

    # -- reading (pool threads) ---------------------------------------------------------------
    def _read(self, part: _Part) -> None:
        source = part.source
        assert source is not None
        shard = self.shards[part.shard]
        if part.offset == 0 and source.cached:
            self._revalidate(shard)
        if part.length == 0:
            return
        dst = memoryview(part.buf)[part.head : part.head + part.length]
        try:
            got = source.read(part.offset, dst, None if source.cached else shard.etag)
        except NotFoundError as exc:
            if source.cached:  # evicted by another process before we opened it
                raise _CacheGone() from exc
            raise
        finally:
            del dst
        self.stats.add(0 if source.cached else 1, got)
        if got != part.length:
            raise IntegrityError(
                f"shard is shorter than listed: {part.offset + got} bytes, expected {shard.size}",
                uri=shard.uri,
                op="GET_RANGE",
                byte_range=(part.offset, part.length),
            )

    def _revalidate(self, shard: Shard) -> None:
        """Check that the object still is the version that was cached (one HEAD)."""
        meta = ops.stat(parse_uri(shard.uri), self.client)
        if meta.size != shard.size or (shard.etag and meta.etag and meta.etag != shard.etag):
            assert self.cache is not None
            self.cache.invalidate(shard.uri)
            raise IntegrityError(
                f"shard changed since it was listed (size {shard.size} -> {meta.size}, "
                f"etag {shard.etag} -> {meta.etag}); list the dataset again",
                uri=shard.uri,
                op="HEAD",
            )

    def _take(self, part: _Part) -> None:
        future = part.future
        assert future is not None
        if future.cancel():  # not started yet (busy pool): read it here instead of waiting
            self._read(part)
        else:
            future.result()

    # -- consuming ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ShardPass]:
        """The shards in order; iterate each one's :meth:`ShardPass.windows` before the next."""
        try:
            for position in range(len(self.shards)):
                shard_pass = ShardPass(self, position)
                yield shard_pass
                if not shard_pass.done:
                    self._skip_rest(position)
        finally:
            self.close()

    def _windows(self, shard_pass: ShardPass) -> Iterator[Window]:
        position = shard_pass.position
        try:
            self._top_up()
            while self._queue and self._queue[0].shard == position:
                part = self._queue.popleft()
                try:
                    self._take(part)
                except _CacheGone:
                    self._replan(position, part.offset, uncached=True)
                    self._top_up()
                    continue
                buf = self._held = part.buf
                self._top_up()
                source = self._sources[position]
                if source.fill is not None and part.length:
                    source.fill.write(memoryview(buf)[part.head : part.head + part.length])
                if part.length:
                    yield buf, part.head, part.head + part.length
                self._held = None
                del buf
            finished = self._sources.pop(position, None)
            if finished is not None:
                fill, finished.fill = finished.fill, None
                if fill is not None:
                    fill.commit()
                finished.close()
            shard_pass.done = True
        finally:
            self._held = None
            if not shard_pass.done:
                self._skip_rest(position)
                shard_pass.done = True

    def _drop_queue(self) -> None:
        """Drop every queued part (waiting for those already running)."""
        running = [p.future for p in self._queue if p.future is not None and not p.future.cancel()]
        self._queue.clear()
        if running:
            wait(running)

    def _replan(self, position: int, offset: int, *, uncached: bool = False) -> None:
        """Plan again from byte ``offset`` of shard ``position`` (dropping what was queued)."""
        self._drop_queue()
        for later in [p for p in self._sources if p >= position]:
            self._sources.pop(later).close()
        if uncached:
            self._uncached.add(position)
        self._plan_shard, self._plan_offset = position, offset

    def _skip_rest(self, position: int) -> None:
        """The consumer left shard ``position`` early: drop its parts, keep no partial copy."""
        if self._plan_shard <= position or any(p.shard == position for p in self._queue):
            self._replan(position + 1, 0)
        source = self._sources.pop(position, None)
        if source is not None:
            source.close()

    def close(self) -> None:
        """Stop: drop queued parts (waiting for running ones), close files, abort cache fills."""
        self._drop_queue()
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        self._plan_shard = len(self.shards)


class _CacheGone(Exception):
    """A cached copy was deleted (evicted) between the lookup and the first read."""
