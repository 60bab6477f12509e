"""Single-object operations with retries and op-log records, over any backend.

This is the layer the public API, the writers and the transfer functions call. Each function
takes a parsed :class:`ObjectURI`, picks the backend by scheme, and performs one logical
operation: reads go through the RangeEngine, everything else through :func:`call`, which
retries transient faults and writes one op-log line per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..errors import IsDirectoryError, NotFoundError, S3DlioError
from . import oplog, retry
from .buffers import BytesView
from .range_engine import FetchResult, fetch
from .store import HasStores, ObjectMeta, ObjectStore, backend_for
from .uri import ObjectURI

__all__ = ["call", "delete", "get", "get_into", "get_range", "list_pages", "put", "stat"]

T = TypeVar("T")


def call(
    op: str,
    backend: ObjectStore,
    uri: ObjectURI,
    fn: Callable[[], T],
    *,
    nbytes: int = 0,
    n_objects: int = 1,
    retries: bool = True,
) -> T:
    """Run one request ``fn`` with retries, logging every attempt as ``op`` on ``uri``."""

    def attempt() -> T:
        start = time.time_ns()
        try:
            result = fn()
        except S3DlioError as exc:
            _record(op, backend, uri, start, nbytes=0, n_objects=n_objects, error=str(exc))
            raise
        _record(op, backend, uri, start, nbytes=nbytes, n_objects=n_objects)
        return result

    if not retries:
        return attempt()
    return retry.call(attempt, op=op, uri=uri, config=backend.retry_config)


def _record(
    op: str,
    backend: ObjectStore,
    uri: ObjectURI,
    start: int,
    *,
    nbytes: int,
    n_objects: int,
    error: str = "",
) -> None:
    if oplog.is_op_log_active():
        oplog.record(
            op,
            uri.key,
            endpoint=backend.endpoint(uri),
            nbytes=nbytes,
            start_ns=start,
            end_ns=time.time_ns(),
            error=error,
            n_objects=n_objects,
        )


def get(uri: ObjectURI, client: HasStores | None = None) -> BytesView:
    """The whole object, in a new :class:`BytesView`."""
    result = fetch(backend_for(uri, client), uri)
    return result.data  # type: ignore[return-value]


def get_range(
    uri: ObjectURI, offset: int, length: int | None = None, client: HasStores | None = None
) -> BytesView:
    """``length`` bytes at ``offset`` (to the end when ``None``; empty past the end)."""
    result = fetch(backend_for(uri, client), uri, offset, length, op="GET_RANGE")
    return result.data  # type: ignore[return-value]


def get_into(
    uri: ObjectURI, buffer: memoryview, offset: int = 0, client: HasStores | None = None
) -> FetchResult:
    """Read the object (from ``offset``) into ``buffer``; it must be large enough."""
    return fetch(backend_for(uri, client), uri, offset, None, into=buffer)


def put(
    uri: ObjectURI,
    data: memoryview,
    *,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
    client: HasStores | None = None,
) -> str | None:
    """Store ``data`` as the whole object (atomically); return its etag if known."""
    backend = backend_for(uri, client)
    return call(
        "PUT",
        backend,
        uri,
        lambda: backend.put(uri, data, content_type=content_type, metadata=metadata),
        nbytes=len(data),
    )


def stat(uri: ObjectURI, client: HasStores | None = None) -> ObjectMeta:
    """Metadata of one object (``NotFoundError`` if missing)."""
    backend = backend_for(uri, client)
    return call("HEAD", backend, uri, lambda: backend.stat(uri))


def delete(uri: ObjectURI, *, missing_ok: bool = False, client: HasStores | None = None) -> bool:
    """Delete exactly one object; returns whether one was deleted (False: missing and allowed).

    Raises:
        IsDirectoryError: ``uri`` names a directory (a key ending in ``/``, or a local
            directory, or a key that is missing while objects exist below ``key/``).
        NotFoundError: no such object (unless ``missing_ok``).
    """
    backend = backend_for(uri, client)
    if uri.key == "" or uri.key.endswith("/"):
        raise IsDirectoryError(
            "names a directory; use recursive=True to delete what is under it",
            uri=str(uri),
            op="DELETE",
        )
    if not backend.local:
        try:
            stat(uri, client)
        except NotFoundError:
            if _has_children(uri, client):
                raise IsDirectoryError(
                    "names a directory; use recursive=True to delete what is under it",
                    uri=str(uri),
                    op="DELETE",
                ) from None
            if missing_ok:
                return False
            raise
    try:
        call("DELETE", backend, uri, lambda: backend.delete(uri))
    except NotFoundError:
        if not missing_ok:
            raise
        return False
    return True


def _has_children(uri: ObjectURI, client: HasStores | None) -> bool:
    prefix = uri.with_key(uri.key + "/")
    return any(page for page in list_pages(prefix, recursive=True, client=client))


def list_pages(
    prefix: ObjectURI, *, recursive: bool, client: HasStores | None = None
) -> Iterator[list[ObjectMeta]]:
    """The backend's listing pages, each logged as one ``LIST`` operation (an empty listing
    as one, with no objects)."""
    backend = backend_for(prefix, client)
    pages = backend.list_pages(prefix, recursive=recursive)
    first = True
    while True:
        start = time.time_ns()
        try:
            page = next(pages)
        except StopIteration:
            if first:
                _record("LIST", backend, prefix, start, nbytes=0, n_objects=0)
            return
        except S3DlioError as exc:
            _record("LIST", backend, prefix, start, nbytes=0, n_objects=0, error=str(exc))
            raise exc.with_context(uri=str(prefix), op="LIST") from exc.__cause__
        _record("LIST", backend, prefix, start, nbytes=0, n_objects=len(page))
        first = False
        yield page
