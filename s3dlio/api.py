"""The flat, URI-driven public API: the same functions for every backend.

Every function takes URIs (``s3://``, ``az://``, ``gs://``/``gcs://``, ``file://``,
``direct://``) and has an ``*_async`` twin for asyncio code. See ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal, ParamSpec, TypeVar, overload

from .errors import BatchError, IsDirectoryError, NotFoundError
from .io import ops, transfer
from .io.buffers import BytesView, as_readonly_view
from .io.executor import get_executor
from .io.listing import Selection, has_glob, select
from .io.store import backend_for
from .io.uri import ObjectURI, parse_uri

__all__ = [
    "copy",
    "create_bucket",
    "delete",
    "delete_bucket",
    "download",
    "exists",
    "get",
    "get_into",
    "get_many",
    "get_range",
    "list",
    "list_buckets",
    "list_containers",
    "list_iter",
    "mkdir",
    "put_bytes",
    "put_many",
    "stat",
    "stat_many",
    "upload",
]

P = ParamSpec("P")
R = TypeVar("R")
URI = str | ObjectURI


def put_bytes(uri: URI, data: Any) -> None:
    """Store ``data`` (bytes, bytearray, memoryview, NumPy array: any buffer) at ``uri``.

    The write is atomic: readers see the previous object or the new one, never a part.
    """
    ops.put(parse_uri(uri), as_readonly_view(data))


def put_many(items: Iterable[tuple[URI, Any]], max_in_flight: int = 64) -> None:
    """Store many ``(uri, data)`` pairs concurrently (a dict ``{uri: data}`` also works)."""
    transfer.put_many(items, max_in_flight)


def get(uri: URI) -> BytesView:
    """The whole object as a zero-copy :class:`BytesView` (large objects read in parallel ranges)."""
    return ops.get(parse_uri(uri))


def get_range(uri: URI, offset: int, length: int | None = None) -> BytesView:
    """``length`` bytes from ``offset`` (to the end when ``None``); empty past the end."""
    return ops.get_range(parse_uri(uri), offset, length)


def get_many(uris: Iterable[URI], max_in_flight: int = 64) -> builtins.list[tuple[str, BytesView]]:
    """Fetch many objects concurrently; returns ``[(uri, data), ...]`` in input order."""
    return transfer.get_many(uris, max_in_flight)


def get_into(uri: URI, buffer: Any, offset: int = 0) -> int:
    """Read the object (from ``offset``) into a writable ``buffer``; returns the bytes read.

    Raises:
        InvalidURIError: ``buffer`` is smaller than what remains of the object.
    """
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError("get_into needs a writable buffer (bytearray, numpy array, ...)")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return ops.get_into(parse_uri(uri), view, offset).nbytes


def stat(uri: URI) -> dict[str, Any]:
    """Metadata: ``size``, ``last_modified``, ``etag``, ``content_type``, ``metadata``, ..."""
    return ops.stat(parse_uri(uri)).as_dict()


def stat_many(uris: Iterable[URI], max_in_flight: int = 64) -> builtins.list[dict[str, Any]]:
    """``stat`` of many objects concurrently, in input order."""
    return transfer.run_batch(lambda u: stat(u), uris, max_in_flight, what="HEAD")


def exists(uri: URI) -> bool:
    """Whether an object exists at ``uri`` (for a URI ending in ``/``: whether anything is under it).

    Errors other than "not found" (permissions, network) are raised, not reported as False.
    """
    parsed = parse_uri(uri)
    if parsed.key == "" or parsed.key.endswith("/"):
        if parsed.is_local:
            return os.path.isdir(parsed.key)
        return next(iter(select(parsed, recursive=True)), None) is not None
    try:
        ops.stat(parsed)
    except NotFoundError:
        return False
    return True


@overload
def list_iter(
    uri: URI,
    recursive: bool = ...,
    pattern: str | re.Pattern[str] | None = ...,
    *,
    detail: Literal[False] = ...,
) -> Iterator[str]: ...


@overload
def list_iter(
    uri: URI,
    recursive: bool = ...,
    pattern: str | re.Pattern[str] | None = ...,
    *,
    detail: Literal[True],
) -> Iterator[dict[str, Any]]: ...


def list_iter(
    uri: URI,
    recursive: bool = False,
    pattern: str | re.Pattern[str] | None = None,
    *,
    detail: bool = False,
) -> Iterator[str] | Iterator[dict[str, Any]]:
    """Stream the URIs ``uri`` selects (see :func:`list`), page by page, in key order.

    With ``detail=True`` each entry is a :func:`stat`-style dict instead (``uri``, ``size``,
    ``last_modified``, ``etag``, ``is_dir``, ...) taken from the listing itself, with no extra
    request per object.
    """
    entries = select(parse_uri(uri), recursive=recursive, pattern=pattern)
    if detail:
        return (meta.as_dict() for meta in entries)
    return (str(meta.uri) for meta in entries)


def list(  # noqa: A001 - the original's name
    uri: URI, recursive: bool = False, pattern: str | re.Pattern[str] | None = None
) -> builtins.list[str]:
    """Full URIs under ``uri``; "directories" end with ``/`` when not recursive.

    ``uri`` may end in ``/`` (a directory), name one object exactly (never ``name.bak``), or
    hold ``*``/``?`` (one level) and ``**`` (any depth) globs. ``pattern`` is a regex searched
    in each key relative to the listed directory. Use :func:`list_iter` to stream.
    """
    return builtins.list(list_iter(uri, recursive, pattern))


def delete(
    uri: URI, recursive: bool = False, pattern: str | None = None, missing_ok: bool = False
) -> int:
    """Delete one object, or with ``recursive=True`` everything ``uri`` selects.

    Without ``recursive`` exactly one key is deleted; a directory is refused with
    :class:`~s3dlio.errors.IsDirectoryError` and nothing is deleted. Returns the number of
    objects deleted.
    """
    parsed = parse_uri(uri)
    if recursive or pattern is not None:
        return transfer.delete_recursive(parsed, pattern=pattern)
    if parsed.is_local and os.path.isdir(parsed.key):
        raise IsDirectoryError("is a directory; use recursive=True", uri=str(parsed), op="DELETE")
    return int(ops.delete(parsed, missing_ok=missing_ok))


def mkdir(uri: URI) -> None:
    """Create a directory (``file://``, ``direct://``); object stores need none (no-op)."""
    parsed = parse_uri(uri)
    backend_for(parsed).mkdir(parsed)


def _bucket_uri(name: URI) -> ObjectURI:
    if isinstance(name, str) and "://" not in name:
        return parse_uri(f"s3://{name}")
    return parse_uri(name)


def create_bucket(uri: URI) -> None:
    """Create a bucket/container (``"name"`` alone means ``s3://name``; local: a directory)."""
    parsed = _bucket_uri(uri)
    backend = backend_for(parsed)
    ops.call("CREATE_BUCKET", backend, parsed, lambda: backend.create_bucket(parsed))


def delete_bucket(uri: URI) -> None:
    """Delete an empty bucket/container (``"name"`` alone means ``s3://name``)."""
    parsed = _bucket_uri(uri)
    backend = backend_for(parsed)
    ops.call("DELETE_BUCKET", backend, parsed, lambda: backend.delete_bucket(parsed))


def list_containers(uri: URI = "s3://") -> builtins.list[str]:
    """Buckets/containers (as URIs ending in ``/``) visible through ``uri``'s account."""
    text = str(uri)
    if isinstance(uri, str) and re.fullmatch(r"[A-Za-z0-9]+://", uri):
        text = uri + "_/"  # scheme only: a placeholder bucket, replaced by the listing
    parsed = parse_uri(text)
    backend = backend_for(parsed)
    found = ops.call("LIST_BUCKETS", backend, parsed, lambda: backend.list_containers(parsed))
    return [str(u) for u in found]


list_buckets = list_containers


def copy(
    src: URI,
    dst: URI,
    recursive: bool = False,
    max_in_flight: int = 32,
    progress: transfer.Progress | None = None,
) -> builtins.list[str]:
    """Copy between any two backends, streamed (no temp files, bounded memory).

    ``dst`` ending in ``/`` receives the source's name below it. With ``recursive=True`` (or a
    source ending in ``/`` or holding a glob), every selected object is copied, keeping keys
    relative to the source directory. Returns the destination URIs. ``progress(nbytes,
    objects)`` is called as in :func:`upload` (it may raise to stop the copy).
    """
    source, target = parse_uri(src), parse_uri(dst)
    if not (recursive or source.key.endswith("/") or has_glob(source.key)):
        if target.key.endswith("/") or (target.is_local and os.path.isdir(target.key)):
            target = target.join(source.name)
        transfer.copy_reporting(source, target, None, progress)
        return [str(target)]

    selection = Selection.of(source.key, True)

    def one(meta: Any) -> str:
        dest = target.join(selection.relative(meta.key))
        transfer.copy_reporting(meta.uri, dest, meta.size, progress)
        return str(dest)

    entries = (m for m in select(source, recursive=True) if not m.is_prefix)
    return transfer.run_batch(one, entries, max_in_flight, what="COPY", name=lambda m: str(m.uri))


upload = transfer.upload
download = transfer.download


# -- asyncio twins ------------------------------------------------------------------------------


def _async_on_pool(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """An ``async`` twin of ``fn`` run on the shared I/O pool (for single-object operations)."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(get_executor(), functools.partial(fn, *args, **kwargs))

    run.__name__ = run.__qualname__ = fn.__name__ + "_async"
    run.__doc__ = f"Async variant of :func:`{fn.__name__}`."
    return run


def _async_on_thread(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """An ``async`` twin of a many-object ``fn``, run on its own thread (it uses the pool)."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    run.__name__ = run.__qualname__ = fn.__name__ + "_async"
    run.__doc__ = f"Async variant of :func:`{fn.__name__}`."
    return run


put_bytes_async = _async_on_pool(put_bytes)
get_async = _async_on_pool(get)
get_range_async = _async_on_pool(get_range)
get_into_async = _async_on_pool(get_into)
stat_async = _async_on_pool(stat)
exists_async = _async_on_pool(exists)
mkdir_async = _async_on_pool(mkdir)
create_bucket_async = _async_on_pool(create_bucket)
delete_bucket_async = _async_on_pool(delete_bucket)
list_containers_async = _async_on_pool(list_containers)
list_async = _async_on_thread(list)
delete_async = _async_on_thread(delete)
copy_async = _async_on_thread(copy)
upload_async = _async_on_thread(upload)
download_async = _async_on_thread(download)


async def _gather_bounded(
    fn: Callable[[Any], Awaitable[R]],
    items: Iterable[Any],
    max_in_flight: int,
    *,
    what: str,
    name: Callable[[Any], str] = str,
) -> builtins.list[R]:
    """Await ``fn(item)`` for every item, ``max_in_flight`` at a time, in input order.

    Like the synchronous batch functions, a failure of some items raises ``BatchError`` after
    the others are done.
    """
    gate = asyncio.Semaphore(max_in_flight)

    async def one(item: Any) -> R:
        async with gate:
            return await fn(item)

    items = builtins.list(items)
    outcomes = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    failures: builtins.list[tuple[str, BaseException]] = [
        (name(item), out)
        for item, out in zip(items, outcomes, strict=True)
        if isinstance(out, Exception)
    ]
    if failures:
        raise BatchError(what, failures=failures, succeeded=len(items) - len(failures))
    return builtins.list(outcomes)  # type: ignore[arg-type]


async def get_many_async(
    uris: Iterable[URI], max_in_flight: int = 64
) -> builtins.list[tuple[str, BytesView]]:
    """Async :func:`get_many`: at most ``max_in_flight`` GETs at once, results in input order."""

    async def one(uri: URI) -> tuple[str, BytesView]:
        return str(uri), await get_async(uri)

    return await _gather_bounded(one, uris, max_in_flight, what="GET")


async def put_many_async(items: Iterable[tuple[URI, Any]], max_in_flight: int = 64) -> None:
    """Async :func:`put_many`."""
    pairs = items.items() if isinstance(items, dict) else items

    async def one(pair: tuple[URI, Any]) -> None:
        await put_bytes_async(*pair)

    await _gather_bounded(one, pairs, max_in_flight, what="PUT", name=lambda p: str(p[0]))


async def stat_many_async(
    uris: Iterable[URI], max_in_flight: int = 64
) -> builtins.list[dict[str, Any]]:
    """Async :func:`stat_many`."""
    return await _gather_bounded(stat_async, uris, max_in_flight, what="HEAD")


__all__ += [
    "copy_async",
    "create_bucket_async",
    "delete_async",
    "delete_bucket_async",
    "download_async",
    "exists_async",
    "get_async",
    "get_into_async",
    "get_many_async",
    "get_range_async",
    "list_async",
    "list_containers_async",
    "mkdir_async",
    "put_bytes_async",
    "put_many_async",
    "stat_async",
    "stat_many_async",
    "upload_async",
]
