"""``s3dlio.Client``: a store configuration as a value, with the flat API as its methods.

As ``httpx.get`` is ``httpx.Client().get``, ``s3dlio.get(uri)`` is
``s3dlio.default_client().get(uri)``. A :class:`Client` holds its own options
(:class:`~s3dlio.io.client_config.ClientConfig`) and its own backends, credentials and
connection pools, so two clients pointed at two services (or at one service with two sets of
credentials) work side by side in one process, and in DataLoader workers: clients rebuild their
connections after ``fork`` and pickle as their options (a spawned worker builds its own).

:func:`configure` replaces the default client (closing the old one's connections), for every
backend at once.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import fields
from typing import Any, Literal, TypeVar, overload

from .errors import (
    ArgumentTypeError,
    BatchError,
    InvalidArgumentError,
    IsDirectoryError,
    NotFoundError,
)
from .io import config as _config
from .io import ops, transfer
from .io.buffers import BytesView, as_readonly_view
from .io.client_config import ClientConfig
from .io.config import RangeEngineConfig, RetryConfig
from .io.executor import get_executor
from .io.listing import Selection, has_glob, select
from .io.store import ObjectStore, StoreSet, default_stores, set_default_stores
from .io.uri import AZURE_ACCOUNTS, ObjectURI, parse_uri
from .io.writer import ObjectWriter, WriterOptions

__all__ = ["Client", "configure", "configure_s3", "default_client"]

R = TypeVar("R")
URI = str | ObjectURI


class Client:
    """Storage operations on every backend, through one configuration.

    Every option is keyword-only and defaults to the environment (see
    :class:`~s3dlio.io.client_config.ClientConfig` for each): ``endpoint_url``, ``region``,
    ``profile``, ``access_key_id``, ``secret_access_key``, ``session_token``, ``ca_bundle``,
    ``addressing_style``, ``proxy``, ``azure_connection_string``, ``azure_account_name``,
    ``azure_account_key``, ``azure_account_url``, ``gcs_project``, ``gcs_emulator_host``,
    ``range_engine`` (:class:`~s3dlio.RangeEngineConfig`), ``retry``
    (:class:`~s3dlio.RetryConfig`), ``max_connections``, ``connect_timeout``,
    ``operation_timeout``.

    Example::

        with s3dlio.Client(endpoint_url="http://127.0.0.1:9000", region="us-east-1") as minio:
            minio.put_bytes("s3://bucket/a.bin", b"hello")
            data = minio.get("s3://bucket/a.bin")

    Raises:
        InvalidArgumentError: an option that does not exist or has the wrong type (named).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        ca_bundle: str | None = None,
        addressing_style: str = "auto",
        proxy: str | None = None,
        azure_connection_string: str | None = None,
        azure_account_name: str | None = None,
        azure_account_key: str | None = None,
        azure_account_url: str | None = None,
        gcs_project: str | None = None,
        gcs_emulator_host: str | None = None,
        range_engine: RangeEngineConfig | None = None,
        retry: RetryConfig | None = None,
        max_connections: int | None = None,
        connect_timeout: float | None = None,
        operation_timeout: float | None = None,
        **unknown: Any,
    ) -> None:
        options = {k: v for k, v in locals().items() if k not in ("self", "unknown")}
        config = ClientConfig.from_options(**options, **unknown)  # names unknown options
        self._init(StoreSet(config))

    def _init(self, stores: StoreSet) -> None:
        self.stores = stores
        account = stores.config.azure_account()
        if account:
            AZURE_ACCOUNTS.add(account)

    @classmethod
    def from_config(cls, config: ClientConfig) -> Client:
        """A client with the options of ``config``."""
        client = cls.__new__(cls)
        client._init(StoreSet(config))
        return client

    # -- the client itself ------------------------------------------------------------------
    @property
    def config(self) -> ClientConfig:
        """This client's options (frozen)."""
        return self.stores.config

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.stores.closed

    def backend(self, uri: URI) -> ObjectStore:
        """The :class:`~s3dlio.ObjectStore` serving ``uri`` for this client."""
        return self.stores.backend(uri)

    def close(self) -> None:
        """Close this client's connections; later calls raise ``InvalidArgumentError``.

        Closing the default client only drops its connections: the next flat call builds
        fresh ones with the same options.
        """
        self.stores.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.config.options(),))

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<s3dlio.Client{state} {self.config!r}>"

    # -- objects ----------------------------------------------------------------------------
    def put_bytes(self, uri: URI, data: Any) -> None:
        """Store ``data`` (bytes, bytearray, memoryview, NumPy array: any buffer) at ``uri``.

        The write is atomic: readers see the previous object or the new one, never a part.
        """
        ops.put(parse_uri(uri), as_readonly_view(data), client=self)

    def put_many(self, items: Iterable[tuple[URI, Any]], max_in_flight: int = 64) -> None:
        """Store many ``(uri, data)`` pairs concurrently (a dict ``{uri: data}`` also works)."""
        transfer.put_many(items, max_in_flight, client=self)

    def get(self, uri: URI) -> BytesView:
        """The whole object as a zero-copy :class:`~s3dlio.BytesView` (large objects read in
        parallel ranges)."""
        return ops.get(parse_uri(uri), self)

    def get_range(self, uri: URI, offset: int, length: int | None = None) -> BytesView:
        """``length`` bytes from ``offset`` (to the end when ``None``); empty past the end."""
        return ops.get_range(parse_uri(uri), offset, length, self)

    def get_many(
        self, uris: Iterable[URI], max_in_flight: int = 64
    ) -> builtins.list[tuple[str, BytesView]]:
        """Fetch many objects concurrently; returns ``[(uri, data), ...]`` in input order."""
        return transfer.get_many(uris, max_in_flight, client=self)

    def get_into(self, uri: URI, buffer: Any, offset: int = 0) -> int:
        """Read the object (from ``offset``) into a writable ``buffer``; returns the bytes read.

        Raises:
            ArgumentTypeError: ``buffer`` is read-only.
            InvalidArgumentError: ``buffer`` is smaller than what remains of the object.
        """
        view = memoryview(buffer)
        if view.readonly:
            raise ArgumentTypeError(
                "get_into needs a writable buffer (bytearray, numpy array, ...)",
                uri=str(uri),
                op="GET",
            )
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        return ops.get_into(parse_uri(uri), view, offset, self).nbytes

    def stat(self, uri: URI) -> dict[str, Any]:
        """Metadata: ``size``, ``last_modified``, ``etag``, ``content_type``, ``metadata``..."""
        return ops.stat(parse_uri(uri), self).as_dict()

    def stat_many(
        self, uris: Iterable[URI], max_in_flight: int = 64
    ) -> builtins.list[dict[str, Any]]:
        """``stat`` of many objects concurrently, in input order."""
        return transfer.run_batch(self.stat, uris, max_in_flight, what="HEAD")

    def exists(self, uri: URI) -> bool:
        """Whether an object exists at ``uri`` (for a URI ending in ``/``: whether anything is
        under it). Errors other than "not found" (permissions, network) are raised."""
        parsed = parse_uri(uri)
        if parsed.key == "" or parsed.key.endswith("/"):
            if parsed.is_local:
                return os.path.isdir(parsed.key)
            return next(iter(select(parsed, recursive=True, client=self)), None) is not None
        try:
            ops.stat(parsed, self)
        except NotFoundError:
            return False
        return True

    @overload
    def list_iter(
        self,
        uri: URI,
        recursive: bool = ...,
        pattern: str | re.Pattern[str] | None = ...,
        *,
        detail: Literal[False] = ...,
    ) -> Iterator[str]: ...

    @overload
    def list_iter(
        self,
        uri: URI,
        recursive: bool = ...,
        pattern: str | re.Pattern[str] | None = ...,
        *,
        detail: Literal[True],
    ) -> Iterator[dict[str, Any]]: ...

    def list_iter(
        self,
        uri: URI,
        recursive: bool = False,
        pattern: str | re.Pattern[str] | None = None,
        *,
        detail: bool = False,
    ) -> Iterator[str] | Iterator[dict[str, Any]]:
        """Stream the URIs ``uri`` selects (see :meth:`list`), page by page, in key order.

        With ``detail=True`` each entry is a :meth:`stat`-style dict instead (``uri``,
        ``size``, ``last_modified``, ``etag``, ``is_dir``, ...) taken from the listing itself,
        with no extra request per object.
        """
        entries = select(parse_uri(uri), recursive=recursive, pattern=pattern, client=self)
        if detail:
            return (meta.as_dict() for meta in entries)
        return (str(meta.uri) for meta in entries)

    def list(
        self, uri: URI, recursive: bool = False, pattern: str | re.Pattern[str] | None = None
    ) -> builtins.list[str]:
        """Full URIs under ``uri``; "directories" end with ``/`` when not recursive.

        ``uri`` may end in ``/`` (a directory), name one object exactly (never ``name.bak``),
        or hold ``*``/``?`` (one level) and ``**`` (any depth) globs. ``pattern`` is a regex
        searched in each key relative to the listed directory. Use :meth:`list_iter` to stream.
        """
        return builtins.list(self.list_iter(uri, recursive, pattern))

    def delete(
        self,
        uri: URI,
        recursive: bool = False,
        pattern: str | None = None,
        missing_ok: bool = False,
    ) -> int:
        """Delete one object, or with ``recursive=True`` everything ``uri`` selects.

        Without ``recursive`` exactly one key is deleted; a directory is refused with
        :class:`~s3dlio.errors.IsDirectoryError` and nothing is deleted. Returns the number of
        objects deleted.
        """
        parsed = parse_uri(uri)
        if recursive or pattern is not None:
            return transfer.delete_recursive(parsed, pattern=pattern, client=self)
        if parsed.is_local and os.path.isdir(parsed.key):
            raise IsDirectoryError(
                "is a directory; use recursive=True", uri=str(parsed), op="DELETE"
            )
        return int(ops.delete(parsed, missing_ok=missing_ok, client=self))

    def mkdir(self, uri: URI) -> None:
        """Create a directory (``file://``, ``direct://``); object stores need none."""
        parsed = parse_uri(uri)
        self.backend(parsed).mkdir(parsed)

    # -- buckets ----------------------------------------------------------------------------
    def create_bucket(self, uri: URI) -> None:
        """Create a bucket/container (``"name"`` alone means ``s3://name``; local: a directory)."""
        parsed = _bucket_uri(uri)
        backend = self.backend(parsed)
        ops.call("CREATE_BUCKET", backend, parsed, lambda: backend.create_bucket(parsed))

    def delete_bucket(self, uri: URI) -> None:
        """Delete an empty bucket/container (``"name"`` alone means ``s3://name``)."""
        parsed = _bucket_uri(uri)
        backend = self.backend(parsed)
        ops.call("DELETE_BUCKET", backend, parsed, lambda: backend.delete_bucket(parsed))

    def list_containers(self, uri: URI = "s3://") -> builtins.list[str]:
        """Buckets/containers (as URIs ending in ``/``) visible through ``uri``'s account."""
        text = str(uri)
        if isinstance(uri, str) and re.fullmatch(r"[A-Za-z0-9]+://", uri):
            text = uri + "_/"  # scheme only: a placeholder bucket, replaced by the listing
        parsed = parse_uri(text)
        backend = self.backend(parsed)
        found = ops.call("LIST_BUCKETS", backend, parsed, lambda: backend.list_containers(parsed))
        return [str(u) for u in found]

    list_buckets = list_containers

    # -- transfers --------------------------------------------------------------------------
    def copy(
        self,
        src: URI,
        dst: URI,
        recursive: bool = False,
        max_in_flight: int = 32,
        progress: transfer.Progress | None = None,
    ) -> builtins.list[str]:
        """Copy between any two backends, streamed (no temp files, bounded memory).

        ``dst`` ending in ``/`` receives the source's name below it. With ``recursive=True``
        (or a source ending in ``/`` or holding a glob), every selected object is copied,
        keeping keys relative to the source directory. Returns the destination URIs.
        ``progress(nbytes, objects)`` is called as in :meth:`upload` (it may raise to stop).
        """
        source, target = parse_uri(src), parse_uri(dst)
        if not (recursive or source.key.endswith("/") or has_glob(source.key)):
            if target.key.endswith("/") or (target.is_local and os.path.isdir(target.key)):
                target = target.join(source.name)
            transfer.copy_reporting(source, target, None, progress, self)
            return [str(target)]

        selection = Selection.of(source.key, True)

        def one(meta: Any) -> str:
            dest = target.join(selection.relative(meta.key))
            transfer.copy_reporting(meta.uri, dest, meta.size, progress, self)
            return str(dest)

        entries = (m for m in select(source, recursive=True, client=self) if not m.is_prefix)
        return transfer.run_batch(
            one, entries, max_in_flight, what="COPY", name=lambda m: str(m.uri)
        )

    def upload(
        self,
        src_patterns: str | Iterable[str],
        dest_prefix: URI,
        max_in_flight: int = 32,
        create_bucket: bool = False,
        progress: transfer.Progress | None = None,
    ) -> builtins.list[str]:
        """Upload local files (paths, globs, regexes) below ``dest_prefix``; returns the URIs.

        ``dir/**`` uploads the tree with paths relative to ``dir/``. ``progress(nbytes,
        objects)``, if given, is called from worker threads with increments; if it raises,
        the objects in flight are aborted (no partial object) and reported as failed.
        """
        return transfer.upload(
            src_patterns, dest_prefix, max_in_flight, create_bucket, progress, client=self
        )

    def download(
        self,
        src_uri: URI,
        dest_dir: str | os.PathLike[str],
        max_in_flight: int = 64,
        recursive: bool = True,
        pattern: str | None = None,
        progress: transfer.Progress | None = None,
    ) -> builtins.list[str]:
        """Download what ``src_uri`` selects into ``dest_dir``, keeping the key layout.

        Keys that would land outside ``dest_dir`` are refused and reported in the
        ``BatchError``; the rest are downloaded. Returns the local paths written.
        """
        return transfer.download(
            src_uri, dest_dir, max_in_flight, recursive, pattern, progress, client=self
        )

    def open_writer(self, uri: URI, options: WriterOptions | None = None) -> ObjectWriter:
        """A streaming writer for ``uri`` (multipart / blocks / resumable / temp file), atomic:
        nothing is visible before ``finalize()``/``close()``; an exception aborts it."""
        return ObjectWriter(parse_uri(uri), options, client=self)

    # -- asyncio twins ----------------------------------------------------------------------
    async def _on_pool(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(get_executor(), functools.partial(fn, *args, **kwargs))

    async def put_bytes_async(self, uri: URI, data: Any) -> None:
        """Async :meth:`put_bytes`."""
        await self._on_pool(self.put_bytes, uri, data)

    async def get_async(self, uri: URI) -> BytesView:
        """Async :meth:`get`."""
        return await self._on_pool(self.get, uri)

    async def get_range_async(self, uri: URI, offset: int, length: int | None = None) -> BytesView:
        """Async :meth:`get_range`."""
        return await self._on_pool(self.get_range, uri, offset, length)

    async def get_into_async(self, uri: URI, buffer: Any, offset: int = 0) -> int:
        """Async :meth:`get_into`."""
        return await self._on_pool(self.get_into, uri, buffer, offset)

    async def stat_async(self, uri: URI) -> dict[str, Any]:
        """Async :meth:`stat`."""
        return await self._on_pool(self.stat, uri)

    async def exists_async(self, uri: URI) -> bool:
        """Async :meth:`exists`."""
        return await self._on_pool(self.exists, uri)

    async def mkdir_async(self, uri: URI) -> None:
        """Async :meth:`mkdir`."""
        await self._on_pool(self.mkdir, uri)

    async def create_bucket_async(self, uri: URI) -> None:
        """Async :meth:`create_bucket`."""
        await self._on_pool(self.create_bucket, uri)

    async def delete_bucket_async(self, uri: URI) -> None:
        """Async :meth:`delete_bucket`."""
        await self._on_pool(self.delete_bucket, uri)

    async def list_containers_async(self, uri: URI = "s3://") -> builtins.list[str]:
        """Async :meth:`list_containers`."""
        return await self._on_pool(self.list_containers, uri)

    # Many-object operations use the pool themselves: they run on a thread of their own.
    async def list_async(
        self, uri: URI, recursive: bool = False, pattern: str | re.Pattern[str] | None = None
    ) -> builtins.list[str]:
        """Async :meth:`list`."""
        return await asyncio.to_thread(self.list, uri, recursive, pattern)

    async def delete_async(self, uri: URI, recursive: bool = False, **kwargs: Any) -> int:
        """Async :meth:`delete`."""
        return await asyncio.to_thread(self.delete, uri, recursive, **kwargs)

    async def copy_async(self, src: URI, dst: URI, **kwargs: Any) -> builtins.list[str]:
        """Async :meth:`copy`."""
        return await asyncio.to_thread(self.copy, src, dst, **kwargs)

    async def upload_async(
        self, src_patterns: str | Iterable[str], dest_prefix: URI, **kwargs: Any
    ) -> builtins.list[str]:
        """Async :meth:`upload`."""
        return await asyncio.to_thread(self.upload, src_patterns, dest_prefix, **kwargs)

    async def download_async(
        self, src_uri: URI, dest_dir: str | os.PathLike[str], **kwargs: Any
    ) -> builtins.list[str]:
        """Async :meth:`download`."""
        return await asyncio.to_thread(self.download, src_uri, dest_dir, **kwargs)

    async def get_many_async(
        self, uris: Iterable[URI], max_in_flight: int = 64
    ) -> builtins.list[tuple[str, BytesView]]:
        """Async :meth:`get_many`: at most ``max_in_flight`` GETs at once, in input order."""

        async def one(uri: URI) -> tuple[str, BytesView]:
            return str(uri), await self.get_async(uri)

        return await _gather_bounded(one, uris, max_in_flight, what="GET")

    async def put_many_async(
        self, items: Iterable[tuple[URI, Any]], max_in_flight: int = 64
    ) -> None:
        """Async :meth:`put_many`."""
        pairs = items.items() if isinstance(items, dict) else items

        async def one(pair: tuple[URI, Any]) -> None:
            await self.put_bytes_async(*pair)

        await _gather_bounded(one, pairs, max_in_flight, what="PUT", name=lambda p: str(p[0]))

    async def stat_many_async(
        self, uris: Iterable[URI], max_in_flight: int = 64
    ) -> builtins.list[dict[str, Any]]:
        """Async :meth:`stat_many`."""
        return await _gather_bounded(self.stat_async, uris, max_in_flight, what="HEAD")


def _rebuild(options: dict[str, Any]) -> Client:
    return Client(**options)


def _bucket_uri(name: URI) -> ObjectURI:
    if isinstance(name, str) and "://" not in name:
        return parse_uri(f"s3://{name}")
    return parse_uri(name)


async def _gather_bounded(
    fn: Callable[[Any], Awaitable[R]],
    items: Iterable[Any],
    max_in_flight: int,
    *,
    what: str,
    name: Callable[[Any], str] = str,
) -> builtins.list[R]:
    """Await ``fn(item)`` for every item, ``max_in_flight`` at a time, in input order; a
    failure of some items raises ``BatchError`` after the others are done."""
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


# -- the default client -------------------------------------------------------------------------

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client the flat functions (``s3dlio.get``...) use: configured by the environment
    and by :func:`configure`."""
    global _default
    stores = default_stores()
    client = _default
    if client is None or client.stores is not stores:
        with _default_lock:
            client = _default
            if client is None or client.stores is not stores:
                client = Client.__new__(Client)
                client._init(stores)
                _default = client
    return client


_SETTINGS_FIELDS = frozenset(f.name for f in fields(_config.Settings))
_CLIENT_FIELDS = frozenset(f.name for f in fields(ClientConfig))


def configure(**changes: Any) -> _config.Settings:
    """Change the default client and the process settings; returns the process settings.

    Keywords are the options of :class:`Client` (``endpoint_url``, ``region``, credentials,
    ``ca_bundle``, Azure and GCS settings, ``range_engine``, ...) and the process settings of
    :class:`~s3dlio.Settings` (``threads``, ``oplog_level``, ``huge_pages``, ``malloc_keep``,
    ``range``). ``max_connections``, ``connect_timeout``, ``operation_timeout`` and ``retry``
    are process settings that every client without its own value follows. The default client
    is replaced: its connections on every backend are closed and rebuilt with the new values
    on next use; clients made with :class:`Client` keep their own options.

    Raises:
        InvalidArgumentError: an unknown keyword (named) or a bad value.

    Example:
        ``s3dlio.configure(operation_timeout=5, range=RangeEngineConfig(threshold="16MiB"))``
    """
    unknown = sorted(set(changes) - _SETTINGS_FIELDS - _CLIENT_FIELDS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown setting(s): {', '.join(unknown)}",
            op="CONFIGURE",
        )
    process = {k: v for k, v in changes.items() if k in _SETTINGS_FIELDS}
    options = {k: v for k, v in changes.items() if k in _CLIENT_FIELDS and k not in process}
    new_settings = _config.configure(**process)
    old = default_stores()
    set_default_stores(StoreSet(old.config.replace(**options)))
    old.close()
    return new_settings


def configure_s3(
    endpoint_url: str | None = None,
    region: str | None = None,
    ca_bundle: str | None = None,
    *,
    profile: str | None = None,
    addressing_style: str = "auto",
) -> None:
    """Set how the default client's ``s3://`` URIs reach their service (the original's name).

    Arguments left ``None`` come from the environment; ``configure_s3()`` with none goes back
    to the environment entirely (and rebuilds the clients, e.g. after the environment changed).
    ``s3dlio.Client(endpoint_url=..., ...)`` gives a separate client instead.

    Raises:
        InvalidArgumentError: a malformed endpoint URL or addressing style.
    """
    configure(
        endpoint_url=endpoint_url,
        region=region,
        ca_bundle=ca_bundle,
        profile=profile,
        addressing_style=addressing_style,
    )
