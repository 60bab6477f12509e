"""The flat, URI-driven public API: the same functions for every backend.

Each function is the method of the same name of :func:`~s3dlio.default_client` (as
``httpx.get`` is to ``httpx.Client.get``): configured by the environment and by
:func:`~s3dlio.configure`. Use :class:`s3dlio.Client` for a second configuration. Every
function takes URIs (``s3://``, ``az://``, ``gs://``/``gcs://``, ``file://``, ``direct://``)
and has an ``*_async`` twin for asyncio code.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal, overload

from .client import default_client
from .io import transfer
from .io.buffers import BytesView
from .io.uri import ObjectURI

__all__ = [
    "copy",
    "copy_async",
    "create_bucket",
    "create_bucket_async",
    "delete",
    "delete_async",
    "delete_bucket",
    "delete_bucket_async",
    "download",
    "download_async",
    "exists",
    "exists_async",
    "get",
    "get_async",
    "get_into",
    "get_into_async",
    "get_many",
    "get_many_async",
    "get_range",
    "get_range_async",
    "list",
    "list_async",
    "list_buckets",
    "list_containers",
    "list_containers_async",
    "list_iter",
    "mkdir",
    "mkdir_async",
    "put_bytes",
    "put_bytes_async",
    "put_many",
    "put_many_async",
    "stat",
    "stat_async",
    "stat_many",
    "stat_many_async",
    "upload",
    "upload_async",
]

URI = str | ObjectURI


def put_bytes(uri: URI, data: Any) -> None:
    """Store ``data`` (any buffer) at ``uri``, atomically: :meth:`Client.put_bytes`."""
    default_client().put_bytes(uri, data)


def put_many(items: Iterable[tuple[URI, Any]], max_in_flight: int = 64) -> None:
    """Store many ``(uri, data)`` pairs concurrently: :meth:`Client.put_many`."""
    default_client().put_many(items, max_in_flight)


def get(uri: URI) -> BytesView:
    """The whole object as a zero-copy :class:`BytesView`: :meth:`Client.get`."""
    return default_client().get(uri)


def get_range(uri: URI, offset: int, length: int | None = None) -> BytesView:
    """``length`` bytes from ``offset`` (empty past the end): :meth:`Client.get_range`."""
    return default_client().get_range(uri, offset, length)


def get_many(uris: Iterable[URI], max_in_flight: int = 64) -> builtins.list[tuple[str, BytesView]]:
    """Fetch many objects concurrently, in input order: :meth:`Client.get_many`."""
    return default_client().get_many(uris, max_in_flight)


def get_into(uri: URI, buffer: Any, offset: int = 0) -> int:
    """Read the object into a writable ``buffer``: :meth:`Client.get_into`."""
    return default_client().get_into(uri, buffer, offset)


def stat(uri: URI) -> dict[str, Any]:
    """Metadata of one object (``size``, ``etag``, ...): :meth:`Client.stat`."""
    return default_client().stat(uri)


def stat_many(uris: Iterable[URI], max_in_flight: int = 64) -> builtins.list[dict[str, Any]]:
    """``stat`` of many objects concurrently: :meth:`Client.stat_many`."""
    return default_client().stat_many(uris, max_in_flight)


def exists(uri: URI) -> bool:
    """Whether an object (or, for ``.../``, anything below) exists: :meth:`Client.exists`."""
    return default_client().exists(uri)


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
    """Stream the URIs (or, with ``detail``, dicts) ``uri`` selects: :meth:`Client.list_iter`."""
    if detail:
        return default_client().list_iter(uri, recursive, pattern, detail=True)
    return default_client().list_iter(uri, recursive, pattern)


def list(  # noqa: A001 - the original's name
    uri: URI, recursive: bool = False, pattern: str | re.Pattern[str] | None = None
) -> builtins.list[str]:
    """Full URIs under ``uri`` (globs, regex ``pattern``): :meth:`Client.list`."""
    return default_client().list(uri, recursive, pattern)


def delete(
    uri: URI, recursive: bool = False, pattern: str | None = None, missing_ok: bool = False
) -> int:
    """Delete one object, or recursively what ``uri`` selects: :meth:`Client.delete`."""
    return default_client().delete(uri, recursive, pattern, missing_ok)


def mkdir(uri: URI) -> None:
    """Create a local directory (object stores need none): :meth:`Client.mkdir`."""
    default_client().mkdir(uri)


def create_bucket(uri: URI) -> None:
    """Create a bucket/container: :meth:`Client.create_bucket`."""
    default_client().create_bucket(uri)


def delete_bucket(uri: URI) -> None:
    """Delete an empty bucket/container: :meth:`Client.delete_bucket`."""
    default_client().delete_bucket(uri)


def list_containers(uri: URI = "s3://") -> builtins.list[str]:
    """Buckets/containers visible through ``uri``'s account: :meth:`Client.list_containers`."""
    return default_client().list_containers(uri)


list_buckets = list_containers


def copy(
    src: URI,
    dst: URI,
    recursive: bool = False,
    max_in_flight: int = 32,
    progress: transfer.Progress | None = None,
) -> builtins.list[str]:
    """Copy between any two backends, streamed: :meth:`Client.copy`."""
    return default_client().copy(src, dst, recursive, max_in_flight, progress)


def upload(
    src_patterns: str | Iterable[str],
    dest_prefix: URI,
    max_in_flight: int = 32,
    create_bucket: bool = False,
    progress: transfer.Progress | None = None,
) -> builtins.list[str]:
    """Upload local files (paths, globs, regexes) below ``dest_prefix``: :meth:`Client.upload`."""
    return default_client().upload(
        src_patterns, dest_prefix, max_in_flight, create_bucket, progress
    )


def download(
    src_uri: URI,
    dest_dir: str | os.PathLike[str],
    max_in_flight: int = 64,
    recursive: bool = True,
    pattern: str | None = None,
    progress: transfer.Progress | None = None,
) -> builtins.list[str]:
    """Download what ``src_uri`` selects into ``dest_dir``: :meth:`Client.download`."""
    return default_client().download(src_uri, dest_dir, max_in_flight, recursive, pattern, progress)


# -- asyncio twins ------------------------------------------------------------------------------


async def put_bytes_async(uri: URI, data: Any) -> None:
    """Async :func:`put_bytes`."""
    await default_client().put_bytes_async(uri, data)


async def get_async(uri: URI) -> BytesView:
    """Async :func:`get`."""
    return await default_client().get_async(uri)


async def get_range_async(uri: URI, offset: int, length: int | None = None) -> BytesView:
    """Async :func:`get_range`."""
    return await default_client().get_range_async(uri, offset, length)


async def get_into_async(uri: URI, buffer: Any, offset: int = 0) -> int:
    """Async :func:`get_into`."""
    return await default_client().get_into_async(uri, buffer, offset)


async def stat_async(uri: URI) -> dict[str, Any]:
    """Async :func:`stat`."""
    return await default_client().stat_async(uri)


async def exists_async(uri: URI) -> bool:
    """Async :func:`exists`."""
    return await default_client().exists_async(uri)


async def mkdir_async(uri: URI) -> None:
    """Async :func:`mkdir`."""
    await default_client().mkdir_async(uri)


async def create_bucket_async(uri: URI) -> None:
    """Async :func:`create_bucket`."""
    await default_client().create_bucket_async(uri)


async def delete_bucket_async(uri: URI) -> None:
    """Async :func:`delete_bucket`."""
    await default_client().delete_bucket_async(uri)


async def list_containers_async(uri: URI = "s3://") -> builtins.list[str]:
    """Async :func:`list_containers`."""
    return await default_client().list_containers_async(uri)


async def list_async(
    uri: URI, recursive: bool = False, pattern: str | re.Pattern[str] | None = None
) -> builtins.list[str]:
    """Async :func:`list`."""
    return await default_client().list_async(uri, recursive, pattern)


async def delete_async(uri: URI, recursive: bool = False, **kwargs: Any) -> int:
    """Async :func:`delete`."""
    return await default_client().delete_async(uri, recursive, **kwargs)


async def copy_async(src: URI, dst: URI, **kwargs: Any) -> builtins.list[str]:
    """Async :func:`copy`."""
    return await default_client().copy_async(src, dst, **kwargs)


async def upload_async(
    src_patterns: str | Iterable[str], dest_prefix: URI, **kwargs: Any
) -> builtins.list[str]:
    """Async :func:`upload`."""
    return await default_client().upload_async(src_patterns, dest_prefix, **kwargs)


async def download_async(
    src_uri: URI, dest_dir: str | os.PathLike[str], **kwargs: Any
) -> builtins.list[str]:
    """Async :func:`download`."""
    return await default_client().download_async(src_uri, dest_dir, **kwargs)


async def get_many_async(
    uris: Iterable[URI], max_in_flight: int = 64
) -> builtins.list[tuple[str, BytesView]]:
    """Async :func:`get_many`."""
    return await default_client().get_many_async(uris, max_in_flight)


async def put_many_async(items: Iterable[tuple[URI, Any]], max_in_flight: int = 64) -> None:
    """Async :func:`put_many`."""
    await default_client().put_many_async(items, max_in_flight)


async def stat_many_async(
    uris: Iterable[URI], max_in_flight: int = 64
) -> builtins.list[dict[str, Any]]:
    """Async :func:`stat_many`."""
    return await default_client().stat_many_async(uris, max_in_flight)
