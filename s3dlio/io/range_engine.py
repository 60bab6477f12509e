"""The GET data path: one request for small objects, concurrent ranges for large ones.

:func:`fetch` reads a span of an object into one preallocated buffer. Its first request asks
for at most the split threshold; the response says how big the object is and which version
(etag) it is. If more remains, the rest is cut into chunks fetched concurrently, each carrying
``if_match`` so that an object replaced mid-read fails with
:class:`~s3dlio.errors.IntegrityError` instead of mixing versions. Every request is retried
whole (a short body is never returned) and recorded in the op-log. The engine only calls
:meth:`ObjectStore.open_read`, so every backend gets it.
"""

from __future__ import annotations

import functools
import queue
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import (
    IntegrityError,
    InvalidArgumentError,
    S3DlioError,
    TransientError,
)
from . import oplog, retry
from .buffers import BytesView
from .config import RangeEngineConfig
from .executor import get_executor, run_claimed
from .store import ObjectStore, PartRead, ReadStream
from .uri import ObjectURI

__all__ = [
    "FetchResult",
    "fetch",
    "fetch_many",
    "fetch_ranges",
    "fill_from_stream",
    "plan_ranges",
]


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch` read.

    Attributes:
        data: The buffer holding the span (the caller's, or a new :class:`BytesView`).
        nbytes: Bytes read into it.
        size: Total size of the object.
        etag: The object's version token.
        requests: How many requests were made (1 unless the span was split).
    """

    data: BytesView | memoryview
    nbytes: int
    size: int
    etag: str | None
    requests: int


def fill_from_stream(stream: ReadStream, buf: memoryview) -> int:
    """Read ``stream`` until ``buf`` is full or the stream's range is done.

    Raises:
        TransientError: the body ended before the length the server announced.
    """
    want = min(len(buf), stream.length)
    done = 0
    while done < want:
        got = stream.readinto(buf[done:want])
        if not got:
            raise TransientError(f"truncated body: got {done} of {want} bytes")
        done += got
    return done


def plan_ranges(start: int, end: int, chunk: int) -> list[tuple[int, int]]:
    """Cut ``[start, end)`` into ``(offset, length)`` pieces of ``chunk`` bytes (last shorter)."""
    return [(off, min(chunk, end - off)) for off in range(start, end, chunk)]


class _Request:
    """What every request of one :func:`fetch` shares: where, which version, how to log."""

    __slots__ = ("backend", "endpoint", "guard", "logging", "should_stop", "uri")

    def __init__(
        self,
        backend: ObjectStore,
        uri: ObjectURI,
        guard: str | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.backend = backend
        self.uri = uri
        self.guard = guard
        self.should_stop = should_stop
        self.logging = oplog.is_op_log_active()
        self.endpoint = backend.endpoint(uri) if self.logging else ""

    def log(self, op: str, nbytes: int, start: int, first: int, error: str = "") -> None:
        if self.logging:
            oplog.record(
                op,
                self.uri.key,
                endpoint=self.endpoint,
                nbytes=nbytes,
                start_ns=start,
                first_byte_ns=first,
                end_ns=time.time_ns(),
                error=error,
            )

    def open(self, offset: int, length: int | None, op: str) -> tuple[ReadStream, int, int]:
        """One attempt to open a (ranged) read; returns the stream and its start/first-byte times."""
        start = time.time_ns()
        try:
            stream = self.backend.open_read(self.uri, offset, length, if_match=self.guard)
        except S3DlioError as exc:
            self.log(op, 0, start, 0, str(exc))
            raise
        return stream, start, time.time_ns()

    def fill(self, stream: ReadStream, target: memoryview, op: str, start: int, first: int) -> int:
        """Read an open stream into ``target``, close it, log the request."""
        nbytes = 0
        try:
            with stream:
                nbytes = fill_from_stream(stream, target)
        except S3DlioError as exc:
            self.log(op, nbytes, start, first, str(exc))
            raise
        self.log(op, nbytes, start, first)
        return nbytes

    def read(self, offset: int, target: memoryview, op: str, opened: Any = None) -> int:
        """Read ``len(target)`` bytes at ``offset``, retrying whole requests.

        ``opened`` is ``(stream, start_ns, first_byte_ns)`` of a stream already open on this
        range: the first attempt reads it instead of making a request.
        """
        pending = [opened]

        def attempt() -> int:
            current, pending[0] = pending[0], None
            if current is None:
                current = self.open(offset, len(target), op)
            return self.fill(current[0], target, op, current[1], current[2])

        return retry.call(
            attempt,
            op=op,
            uri=self.uri,
            byte_range=(offset, len(target)),
            should_stop=self.should_stop,
            config=self.backend.retry_config,
        )


def fetch(
    backend: ObjectStore,
    uri: ObjectURI,
    offset: int = 0,
    length: int | None = None,
    *,
    into: memoryview | None = None,
    if_match: str | None = None,
    config: RangeEngineConfig | None = None,
    op: str = "GET",
    should_stop: Callable[[], bool] | None = None,
    failed: TransientError | None = None,
) -> FetchResult:
    """Read ``length`` bytes at ``offset`` (to the end when ``None``) of one object.

    Args:
        backend: The store serving ``uri``.
        uri: The object.
        offset: First byte; at or past the end gives an empty result.
        length: Bytes wanted; ``None`` = to the end of the object.
        into: Read into this writable buffer instead of allocating; it must be large enough
            for the span (else ``InvalidArgumentError``, before any data is read into it).
        if_match: Require this version token on every request.
        config: Range-engine settings (the backend's client's when ``None``).
        op: Op-log name of the first request (``"GET"`` or ``"GET_RANGE"``).
        should_stop: Checked between retries (cancellation).
        failed: The error of a first request already made for this span elsewhere (see
            :func:`fetch_many`): it counts as the first attempt.

    Returns:
        A :class:`FetchResult`; ``data`` is ``into`` or a new :class:`BytesView`.
    """
    if offset < 0 or (length is not None and length < 0):
        raise InvalidArgumentError("offset and length must be >= 0", uri=str(uri), op=op)
    cfg = config or backend.range_config
    local = backend.local
    span = length
    if into is not None:
        span = len(into) if span is None else min(span, len(into))
    first_len = span
    if cfg.enabled:
        threshold = cfg.threshold_for(local)
        if span is None:
            first_len = threshold
        elif span > threshold:
            first_len = cfg.chunk_for(span, local)

    request = _Request(backend, uri, if_match, should_stop)
    asked = (offset, length) if offset or length is not None else None  # for error messages
    opened = retry.call(
        lambda: request.open(offset, first_len, op),
        op=op,
        uri=uri,
        byte_range=asked,
        should_stop=should_stop,
        failed=failed,
        config=backend.retry_config,
    )
    stream = opened[0]
    size, etag = stream.size, stream.etag
    request.guard = if_match or etag
    end = size if length is None else min(size, offset + length)
    total = max(0, end - offset)
    if into is not None:
        if total > len(into):
            stream.close()
            raise InvalidArgumentError(
                f"buffer of {len(into)} bytes is too small for {total} bytes",
                uri=str(uri),
                op=op,
                byte_range=(offset, length),
            )
        out: BytesView | memoryview = into
        view = into[:total]
    else:
        out = backend.allocate(total)
        view = memoryview(out)

    head = min(stream.length, total)
    if head == total:  # one request holds it all: the common case, kept lean
        try:
            request.read(offset, view, op, opened)
        finally:
            stream.close()
        return FetchResult(out, total, size, etag, 1)

    pieces = [
        (offset, head),
        *plan_ranges(offset + head, offset + total, cfg.chunk_for(total, local)),
    ]

    def read_piece(index: int) -> None:
        piece_off, piece_len = pieces[index]
        target = view[piece_off - offset : piece_off - offset + piece_len]
        if index == 0:
            request.read(piece_off, target, op, opened)
        else:
            request.read(piece_off, target, "GET_RANGE")

    try:
        concurrency = cfg.concurrency_for(total, cfg.chunk_for(total, local)) + 1
        run_claimed(len(pieces), read_piece, concurrency)
    finally:
        stream.close()
    return FetchResult(out, total, size, etag, len(pieces))


def fetch_many(
    backend: ObjectStore,
    uris: Sequence[ObjectURI],
    width: int,
    *,
    config: RangeEngineConfig | None = None,
) -> Iterator[tuple[int, FetchResult | BaseException]]:
    """Read whole objects of a :attr:`~ObjectStore.multiplexed` backend, ``width`` requests at a
    time, all from the calling thread.

    The requests are :func:`fetch`'s: a first one up to the split threshold, then, for larger
    objects, the rest in ranges pinned to the first answer's etag. Here they all run through
    :meth:`ObjectStore.read_parts`, many connections waited on at once, the ranges of objects
    already started ahead of new objects. A request that fails transiently is retried by
    :func:`fetch` on the shared pool, under the retry policy, the failed request counting as
    its first attempt. Each request is op-logged.

    Yields:
        ``(index, result)`` for every object as it completes, in no particular order; the
        result is a :class:`FetchResult` or the error that ended that object (an
        :class:`~s3dlio.errors.S3DlioError`, or whatever else a pool task raised).
    """
    run = _ManyRun(backend, uris, config or backend.range_config)
    for part in backend.read_parts(run.feed(), width):
        run.outstanding -= 1
        yield from run.finished(part)
        for key, outcome in run.follow.done():
            yield from run.followed(key, outcome)
    for key, outcome in run.follow.wait():
        yield from run.followed(key, outcome)


def fetch_ranges(
    backend: ObjectStore,
    uri: ObjectURI,
    ranges: Sequence[tuple[int, int]],
    intos: Sequence[memoryview],
    *,
    if_match: str | None = None,
    width: int = 16,
    op: str = "GET_RANGE",
    config: RangeEngineConfig | None = None,
) -> list[FetchResult]:
    """Read several ``(offset, length)`` ranges of one object, each into its buffer in
    ``intos`` (at least ``length`` bytes long), up to ``width`` requests at a time.

    A :attr:`~ObjectStore.multiplexed` backend runs them all from the calling thread through
    :meth:`ObjectStore.read_parts` (no thread, no hand-off per range; ranges over the split
    threshold are cut as :func:`fetch` cuts them); a request that fails transiently is then
    retried by :func:`fetch`, the failed request counting as its first attempt. Other
    backends run one :func:`fetch` per range on the shared pool, the calling thread taking
    part. Every request carries ``if_match`` and is op-logged.

    Returns:
        One :class:`FetchResult` per range, in order (``nbytes`` may be short only where the
        object ends before the range does: the caller checks).
    """
    cfg = config or backend.range_config
    if len(ranges) != len(intos):
        raise InvalidArgumentError("one buffer per range is needed", uri=str(uri), op=op)
    if len(ranges) < 2 or not backend.multiplexed:

        def one(i: int) -> None:
            off, n = ranges[i]
            results[i] = fetch(
                backend, uri, off, n, into=intos[i][:n], if_match=if_match, config=cfg, op=op
            )

        results: list[Any] = [None] * len(ranges)
        run_claimed(len(ranges), one, max(1, min(width, len(ranges))))
        return results
    parts: list[PartRead] = []
    for i, (off, n) in enumerate(ranges):
        view = intos[i][:n]
        pieces = [(off, n)]
        if cfg.enabled and n > cfg.threshold_for(backend.local):
            pieces = plan_ranges(off, off + n, cfg.chunk_for(n, backend.local))
        parts.extend(
            PartRead(i, uri, p_off, p_n, if_match, view[p_off - off : p_off - off + p_n], op)
            for p_off, p_n in pieces
        )
    got = [0] * len(ranges)
    size = [0] * len(ranges)
    etag: list[str | None] = [None] * len(ranges)
    requests = [0] * len(ranges)
    retries: list[tuple[PartRead, TransientError]] = []
    logging = oplog.is_op_log_active()
    finished = backend.read_parts(iter(parts), max(1, width))
    try:
        for part in finished:
            if logging:
                _record(backend, part)
            error = part.error
            if isinstance(error, TransientError):
                retries.append((part, error))
                continue
            if error is not None:
                error.attempts = error.attempts or 1
                raise error.with_context(
                    uri=str(uri), op=part.op, byte_range=(part.offset, part.length)
                )
            i = part.tag
            got[i] += part.nbytes
            size[i], etag[i] = part.size, part.etag
            requests[i] += 1
    finally:
        close = getattr(finished, "close", None)
        if close is not None:  # the connections of reads still in flight
            close()

    def again(k: int) -> None:
        part, error = retries[k]
        assert part.into is not None
        redo = fetch(
            backend,
            uri,
            part.offset,
            part.length,
            into=part.into,
            if_match=part.if_match,
            config=cfg,
            op=part.op,
            failed=error,
        )
        redone[k] = redo

    redone: list[Any] = [None] * len(retries)
    run_claimed(len(retries), again, max(1, min(width, len(retries))))
    for (part, _), redo in zip(retries, redone, strict=True):
        i = part.tag
        got[i] += redo.nbytes
        size[i], etag[i] = redo.size, redo.etag
        requests[i] += redo.requests
    return [
        FetchResult(intos[i], got[i], size[i], etag[i], requests[i]) for i in range(len(ranges))
    ]


def _record(backend: ObjectStore, part: PartRead) -> None:
    """Op-log one finished :meth:`ObjectStore.read_parts` read."""
    error = part.error
    oplog.record(
        part.op,
        part.uri.key,
        endpoint=backend.endpoint(part.uri),
        nbytes=part.nbytes,
        start_ns=part.start_ns,
        first_byte_ns=part.first_byte_ns,
        end_ns=part.end_ns,
        error="" if error is None else str(error),
    )


class _ManyRun:
    """The state of one :func:`fetch_many`: objects started, ranges to send, follow-ups."""

    def __init__(self, backend: ObjectStore, uris: Sequence[ObjectURI], cfg: RangeEngineConfig):
        self.backend = backend
        self.uris = uris
        self.cfg = cfg
        self.first = cfg.threshold_for(backend.local) if cfg.enabled else None
        self.logging = oplog.is_op_log_active()
        self.ranges: deque[PartRead] = deque()  # of objects already started: sent first
        self.started: dict[int, _Started] = {}
        self.follow = _FollowUps()
        self.outstanding = 0  # parts handed to read_parts and not back yet

    def feed(self) -> Iterator[PartRead | None]:
        """The reads to make: ranges of started objects first, then new objects."""
        fresh = enumerate(self.uris)
        while True:
            if self.ranges:
                part = self.ranges.popleft()
                if part.tag not in self.started:
                    continue  # its object failed meanwhile
            else:
                nxt = next(fresh, None)
                if nxt is None:
                    if not self.outstanding:
                        return
                    yield None  # more ranges may follow from the reads in flight
                    continue
                part = PartRead(nxt[0], nxt[1], 0, self.first)
            self.outstanding += 1
            yield part

    def finished(self, part: PartRead) -> Iterator[tuple[int, FetchResult | BaseException]]:
        """Account for one read that :meth:`ObjectStore.read_parts` finished."""
        index, uri, error = part.tag, part.uri, part.error
        if self.logging:
            _record(self.backend, part)
        if isinstance(error, TransientError):  # again, on the pool, under the retry policy
            if part.into is None:
                task = functools.partial(fetch, self.backend, uri, config=self.cfg, failed=error)
            else:
                task = functools.partial(
                    fetch,
                    self.backend,
                    uri,
                    part.offset,
                    part.length,
                    into=part.into,
                    if_match=part.if_match,
                    config=self.cfg,
                    op=part.op,
                    failed=error,
                )
            self.follow.add((index, part), task)
        elif part.into is not None:
            yield from self._range_done(part, error or part.nbytes)
        elif error is not None:
            error.attempts = error.attempts or 1
            yield index, error.with_context(uri=str(uri), op=part.op)
        else:
            yield from self._first_done(part)

    def followed(self, key: tuple[int, PartRead], outcome: Any) -> Iterator[tuple[int, Any]]:
        """Account for a follow-up: a whole object (its first read failed) or a range."""
        index, part = key
        if part.into is None:
            yield index, outcome
        else:
            yield from self._range_done(
                part, outcome.nbytes if isinstance(outcome, FetchResult) else outcome
            )

    def _first_done(self, part: PartRead) -> Iterator[tuple[int, FetchResult]]:
        data: Any = part.data
        if part.nbytes >= part.size:
            yield part.tag, FetchResult(data, part.size, part.size, part.etag, 1)
            return
        view = memoryview(data)
        chunk = self.cfg.chunk_for(part.size, self.backend.local)
        pieces = plan_ranges(part.nbytes, part.size, chunk)
        self.started[part.tag] = _Started(data, part.size, part.etag, len(pieces))
        self.ranges.extend(
            PartRead(part.tag, part.uri, off, n, part.etag, view[off : off + n], "GET_RANGE")
            for off, n in pieces
        )

    def _range_done(
        self, part: PartRead, outcome: int | BaseException
    ) -> Iterator[tuple[int, FetchResult | BaseException]]:
        """One range of a started object is in: ``outcome`` is its byte count or its error."""
        started = self.started.get(part.tag)
        if started is None:  # the object failed already
            return
        if isinstance(outcome, int) and outcome != len(part.into or ()):
            outcome = IntegrityError(
                f"object changed during the read: a range ended after {outcome} of "
                f"{part.length} bytes",
                uri=str(part.uri),
                op=part.op,
                byte_range=(part.offset, part.length),
            )
        if isinstance(outcome, BaseException):
            del self.started[part.tag]
            yield part.tag, outcome
            return
        started.left -= 1
        started.requests += 1
        if not started.left:
            del self.started[part.tag]
            yield (
                part.tag,
                FetchResult(
                    started.data, started.size, started.size, started.etag, started.requests
                ),
            )


@dataclass(eq=False)
class _Started:
    """An object :func:`fetch_many` is reading in ranges."""

    data: Any
    size: int
    etag: str | None
    left: int  # ranges still to come
    requests: int = 1


class _FollowUps:
    """Work handed from :func:`fetch_many`'s thread to the shared pool.

    The waiting thread runs the tasks no pool thread has started yet itself, and then waits
    only for tasks that are running, so waiting inside a pool task cannot deadlock.
    """

    def __init__(self) -> None:
        self._backlog: deque[tuple[Any, Callable[[], FetchResult]]] = deque()
        self._results: queue.SimpleQueue[tuple[Any, FetchResult | BaseException]]
        self._results = queue.SimpleQueue()
        self._pending = 0

    def add(self, key: Any, task: Callable[[], FetchResult]) -> None:
        """Run ``task`` on the pool; its outcome comes back with ``key``."""
        self._pending += 1
        self._backlog.append((key, task))
        get_executor().submit(self._run_one)

    def _run_one(self) -> None:
        try:
            key, task = self._backlog.popleft()
        except IndexError:  # another thread took it
            return
        try:
            outcome: FetchResult | BaseException = task()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome = exc
        self._results.put((key, outcome))

    def done(self) -> Iterator[tuple[Any, FetchResult | BaseException]]:
        """Outcomes that are in."""
        while self._pending:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return
            self._pending -= 1
            yield item

    def wait(self) -> Iterator[tuple[Any, FetchResult | BaseException]]:
        """Every remaining outcome, running the tasks not started yet in this thread."""
        while self._backlog:
            self._run_one()
        while self._pending:
            self._pending -= 1
            yield self._results.get()
