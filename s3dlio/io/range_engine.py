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
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError, InvalidURIError, S3DlioError, TransientError
from . import oplog, retry
from .buffers import BytesView
from .config import RangeEngineConfig, settings
from .executor import get_executor, run_claimed
from .store import FirstPart, ObjectStore, ReadStream
from .uri import ObjectURI

__all__ = ["FetchResult", "fetch", "fetch_many", "fill_from_stream", "plan_ranges"]


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
        self, backend: ObjectStore, uri: ObjectURI, guard: str | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.uri = uri
        self.guard = guard
        self.should_stop = should_stop
        self.logging = oplog.is_op_log_active()
        self.endpoint = backend.endpoint(uri) if self.logging else ""

    def log(self, op: str, nbytes: int, start: int, first: int, error: str = "") -> None:
        if self.logging:
            oplog.record(
                op, self.uri.key, endpoint=self.endpoint, nbytes=nbytes, start_ns=start,
                first_byte_ns=first, end_ns=time.time_ns(), error=error,
            )  # fmt: skip

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
            attempt, op=op, uri=self.uri, byte_range=(offset, len(target)),
            should_stop=self.should_stop,
        )  # fmt: skip


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
            for the span (else ``InvalidURIError``, before any data is read into it).
        if_match: Require this version token on every request.
        config: Range-engine settings (process defaults when ``None``).
        op: Op-log name of the first request (``"GET"`` or ``"GET_RANGE"``).
        should_stop: Checked between retries (cancellation).
        failed: The error of a first request already made for this span elsewhere (see
            :func:`fetch_many`): it counts as the first attempt.

    Returns:
        A :class:`FetchResult`; ``data`` is ``into`` or a new :class:`BytesView`.
    """
    if offset < 0 or (length is not None and length < 0):
        raise InvalidURIError("offset and length must be >= 0", uri=str(uri), op=op)
    cfg = config or settings().range
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
        lambda: request.open(offset, first_len, op), op=op, uri=uri, byte_range=asked,
        should_stop=should_stop, failed=failed,
    )  # fmt: skip
    stream = opened[0]
    size, etag = stream.size, stream.etag
    request.guard = if_match or etag
    end = size if length is None else min(size, offset + length)
    total = max(0, end - offset)
    if into is not None:
        if total > len(into):
            stream.close()
            raise InvalidURIError(
                f"buffer of {len(into)} bytes is too small for {total} bytes",
                uri=str(uri), op=op, byte_range=(offset, length),
            )  # fmt: skip
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
    """Read whole objects of a :attr:`~ObjectStore.multiplexed` backend, ``width`` at a time.

    The first request of every object is :func:`fetch`'s (up to the split threshold), but all
    of them run from the calling thread through :meth:`ObjectStore.read_first_parts`, many
    connections waited on at once. What one request does not finish goes to :func:`fetch` on
    the shared pool: the rest of a larger object (split into ranges, each pinned to the first
    answer's etag), and objects whose first request failed transiently (retried under the retry
    policy, that request counting as the first attempt). Each request is op-logged.

    Yields:
        ``(index, result)`` for every object as it completes, in no particular order; the
        result is a :class:`FetchResult` or the error that ended that object (an
        :class:`~s3dlio.errors.S3DlioError`, or whatever else a pool task raised).
    """
    cfg = config or settings().range
    first = cfg.threshold_for(backend.local) if cfg.enabled else None
    logging = oplog.is_op_log_active()
    follow = _FollowUps()
    for part in backend.read_first_parts(uris, first, width):
        uri = uris[part.index]
        if logging:
            oplog.record(
                "GET", uri.key, endpoint=backend.endpoint(uri), nbytes=part.nbytes,
                start_ns=part.start_ns, first_byte_ns=part.first_byte_ns, end_ns=part.end_ns,
                error="" if part.error is None else str(part.error),
            )  # fmt: skip
        error = part.error
        if isinstance(error, TransientError):
            follow.add(part.index, functools.partial(fetch, backend, uri, config=cfg, failed=error))
        elif error is not None:
            error.attempts = error.attempts or 1
            yield part.index, error.with_context(uri=str(uri), op="GET")
        elif part.nbytes >= part.size:
            data: Any = part.data
            yield part.index, FetchResult(data, part.size, part.size, part.etag, 1)
        else:
            follow.add(part.index, functools.partial(_rest, backend, uri, part, cfg))
        yield from follow.done()
    yield from follow.wait()


def _rest(
    backend: ObjectStore, uri: ObjectURI, part: FirstPart, cfg: RangeEngineConfig
) -> FetchResult:
    """Read what follows ``part`` into its buffer (the object pinned to the part's etag)."""
    data = part.data
    assert data is not None
    rest = fetch(
        backend, uri, part.nbytes, part.size - part.nbytes, into=memoryview(data)[part.nbytes :],
        if_match=part.etag, config=cfg, op="GET_RANGE",
    )  # fmt: skip
    if rest.nbytes != part.size - part.nbytes:  # the object shrank: another version
        raise IntegrityError(
            f"object changed during the read: {part.nbytes + rest.nbytes} of {part.size} bytes",
            uri=str(uri), op="GET",
        )  # fmt: skip
    return FetchResult(data, part.size, part.size, part.etag, 1 + rest.requests)


class _FollowUps:
    """Work handed from :func:`fetch_many`'s thread to the shared pool.

    The waiting thread runs the tasks no pool thread has started yet itself, and then waits
    only for tasks that are running, so waiting inside a pool task cannot deadlock.
    """

    def __init__(self) -> None:
        self._backlog: deque[tuple[int, Callable[[], FetchResult]]] = deque()
        self._results: queue.SimpleQueue[tuple[int, FetchResult | BaseException]]
        self._results = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._running = 0
        self._pending = 0

    def add(self, index: int, task: Callable[[], FetchResult]) -> None:
        self._pending += 1
        self._backlog.append((index, task))
        get_executor().submit(self._run_one)

    def _run_one(self) -> None:
        with self._cond:
            if not self._backlog:
                return
            index, task = self._backlog.popleft()
            self._running += 1
        try:
            outcome: FetchResult | BaseException = task()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome = exc
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()
        self._results.put((index, outcome))

    def done(self) -> Iterator[tuple[int, FetchResult | BaseException]]:
        """Results that are in."""
        while self._pending:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return
            self._pending -= 1
            yield item

    def wait(self) -> Iterator[tuple[int, FetchResult | BaseException]]:
        """Every remaining result, running tasks not started yet in this thread."""
        while True:
            with self._cond:
                if not self._backlog:
                    break
            self._run_one()
        while self._pending:
            self._pending -= 1
            yield self._results.get()
