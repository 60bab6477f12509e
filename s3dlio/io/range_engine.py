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

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidURIError, S3DlioError, TransientError
from . import oplog, retry
from .buffers import BytesView
from .config import RangeEngineConfig, settings
from .executor import run_claimed
from .store import ObjectStore, ReadStream
from .uri import ObjectURI

__all__ = ["FetchResult", "fetch", "fill_from_stream", "plan_ranges"]


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


def _logged_read(
    backend: ObjectStore,
    uri: ObjectURI,
    offset: int,
    buf: memoryview,
    *,
    if_match: str | None,
    op: str,
    stream: ReadStream | None = None,
    started_ns: int = 0,
    first_byte_ns: int = 0,
) -> int:
    """One request: open (unless ``stream`` is already open) and fill ``buf``; log it."""
    start = started_ns or time.time_ns()
    first = first_byte_ns
    nbytes = 0
    try:
        if stream is None:
            stream = backend.open_read(uri, offset, len(buf), if_match=if_match)
            first = time.time_ns()
        with stream:
            nbytes = fill_from_stream(stream, buf)
    except S3DlioError as exc:
        _log(backend, uri, op, nbytes, start, first, str(exc))
        raise
    _log(backend, uri, op, nbytes, start, first, "")
    return nbytes


def _log(
    backend: ObjectStore, uri: ObjectURI, op: str, nbytes: int, start: int, first: int, err: str
) -> None:
    if oplog.is_op_log_active():
        oplog.record(
            op, uri.key, endpoint=backend.endpoint(uri), nbytes=nbytes, start_ns=start,
            first_byte_ns=first, end_ns=time.time_ns(), error=err,
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

    Returns:
        A :class:`FetchResult`; ``data`` is ``into`` or a new :class:`BytesView`.
    """
    if offset < 0 or (length is not None and length < 0):
        raise InvalidURIError("offset and length must be >= 0", uri=str(uri), op=op)
    cfg = config or settings().range
    threshold = cfg.threshold_for(backend.local) if cfg.enabled else None
    span = length
    if into is not None:
        span = len(into) if span is None else min(span, len(into))
    first_len = span
    if threshold is not None:
        if span is None or span <= threshold:
            first_len = span if span is not None else threshold
        else:
            first_len = cfg.chunk_for(span, backend.local)

    state: dict[str, object] = {}
    asked = (offset, length) if offset or length is not None else None  # for error messages

    def first_attempt() -> ReadStream:
        start = time.time_ns()
        try:
            stream = backend.open_read(uri, offset, first_len, if_match=if_match)
        except S3DlioError as exc:
            _log(backend, uri, op, 0, start, 0, str(exc))
            raise
        state["start"], state["first"] = start, time.time_ns()
        return stream

    stream = retry.call(
        first_attempt, op=op, uri=uri, byte_range=asked, should_stop=should_stop
    )
    size, etag = stream.size, stream.etag
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
    pieces = [(offset, head)]
    if total > head:
        chunk = cfg.chunk_for(total, backend.local)
        pieces += plan_ranges(offset + head, offset + total, chunk)
    guard = if_match or etag

    def read_piece(index: int) -> None:
        piece_off, piece_len = pieces[index]
        target = view[piece_off - offset : piece_off - offset + piece_len]
        if index == 0:
            opened: list[ReadStream | None] = [stream]

            def attempt() -> int:
                first_stream, opened[0] = opened[0], None
                return _logged_read(
                    backend, uri, piece_off, target, if_match=guard, op=op,
                    stream=first_stream,
                    started_ns=int(state["start"]) if first_stream else 0,  # type: ignore[call-overload]
                    first_byte_ns=int(state["first"]) if first_stream else 0,  # type: ignore[call-overload]
                )  # fmt: skip
        else:

            def attempt() -> int:
                return _logged_read(backend, uri, piece_off, target, if_match=guard, op="GET_RANGE")

        retry.call(
            attempt, op=op if index == 0 else "GET_RANGE", uri=uri,
            byte_range=(piece_off, piece_len), should_stop=should_stop,
        )  # fmt: skip

    try:
        if len(pieces) == 1:
            read_piece(0)
        else:
            concurrency = cfg.concurrency_for(total, cfg.chunk_for(total, backend.local)) + 1
            run_claimed(len(pieces), read_piece, concurrency)
    finally:
        stream.close()
    return FetchResult(out, total, size, etag, len(pieces))
