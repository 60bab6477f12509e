"""s3dlio as an fsspec filesystem and a pyarrow filesystem: pandas, pyarrow and Dask read through it.

:class:`S3dlioFileSystem` is an ``fsspec.AbstractFileSystem`` over every scheme s3dlio serves
(``s3://``, ``az://``, ``gs://``/``gcs://``, ``file://``, ``direct://``). Its protocol is
``"s3dlio"`` (registered through the ``fsspec.specs`` entry point, so
``fsspec.filesystem("s3dlio")`` works without importing s3dlio) and its paths are full URIs::

    fs = fsspec.filesystem("s3dlio", endpoint_url="http://127.0.0.1:9000", region="us-east-1")
    fs.ls("s3://bucket/prefix/")          # ['s3://bucket/prefix/a.parquet', ...]

:func:`register` makes plain URLs of some protocols go through s3dlio in this process
(obstore's convention), so code that never heard of s3dlio uses it, without s3fs::

    s3dlio.fsspec.register(["s3", "gs", "az"])
    pd.read_parquet("s3://bucket/t.parquet", storage_options={"endpoint_url": ...})
    dd.read_parquet("s3://bucket/dir/*.parquet")
    fsspec.open("s3dlio::s3://bucket/key")   # chained URLs resolve once "s3" is registered

:func:`arrow_filesystem` gives a ``pyarrow.fs.FileSystem`` for ``pyarrow.dataset`` and
``pyarrow.parquet``. Storage options are :class:`s3dlio.Client` options or s3fs's spellings
(``key``, ``secret``, ``token``, ``client_kwargs={"endpoint_url": ..., "region_name": ...}``);
see :mod:`s3dlio._fsspec_options`. A filesystem pickles as its options (Dask and Ray send it to
workers that rebuild it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

try:
    import fsspec
    from fsspec.utils import stringify_path
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "s3dlio.fsspec needs fsspec; install it with: pip install 's3dlio[fsspec]'",
        name="fsspec",
    ) from exc

from ._fsspec_files import S3dlioReadFile, S3dlioWriteFile
from ._fsspec_options import split_storage_options
from ._fsspec_paths import PROTOCOL, PathsFileSystem, normalize
from .client import Client, default_client
from .errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    IsDirectoryError,
    NotFoundError,
    UnsupportedOperationError,
)
from .io import transfer
from .io.executor import bounded_map
from .io.uri import ObjectURI, parse_uri

__all__ = [
    "DEFAULT_PROTOCOLS",
    "PROTOCOL",
    "SUPPORTED_PROTOCOLS",
    "S3dlioFileSystem",
    "arrow_filesystem",
    "register",
    "registered_protocols",
]

#: Protocols :func:`register` takes over when called without arguments.
DEFAULT_PROTOCOLS = ("s3", "gs", "gcs", "az")
#: Protocols :func:`register` accepts (the schemes s3dlio serves).
SUPPORTED_PROTOCOLS = frozenset({"s3", "gs", "gcs", "az", "azure", "file", "direct"})


class S3dlioFileSystem(PathsFileSystem):
    """An fsspec filesystem over every s3dlio scheme; paths are full URIs.

    Directories follow s3fs on object stores (a prefix with objects below it is a directory;
    ``mkdir`` inside a bucket does nothing, on a bucket root it creates the bucket) and are
    real directories on ``file://``/``direct://``. Reads are buffered random reads through
    range requests (:class:`~s3dlio.io.rangefile.RangeFile`), writes stream through s3dlio's
    atomic writers, ``cat_ranges``/``cat`` run concurrently on the storage pool, ``cp_file``
    copies inside the service where the backend can. Missing paths raise
    :class:`~s3dlio.errors.NotFoundError` (a ``FileNotFoundError``).

    Args:
        client: The :class:`s3dlio.Client` to use (default: one built from the other options,
            or the default client when there are none).
        **storage_options: :class:`s3dlio.Client` options (``endpoint_url``, ``region``,
            ``access_key_id``...), s3fs's spellings (``key``, ``secret``, ``token``,
            ``client_kwargs``, ``endpoint_url``), file options (``block_size``,
            ``cache_size``, ``max_readahead``, ``direct_threshold`` of read files;
            ``max_in_flight`` for concurrent operations, default 32) and fsspec's own.

    Raises:
        InvalidArgumentError: an unknown or unsupported storage option (named).
    """

    def __init__(self, *args: Any, client: Client | None = None, **storage_options: Any) -> None:
        opts = split_storage_options(storage_options)
        super().__init__(*args, **opts.fsspec)
        if client is not None:
            if not isinstance(client, Client):
                raise ArgumentTypeError(
                    f"client must be an s3dlio.Client, got {type(client).__name__}", op="FSSPEC"
                )
            if opts.client:
                raise InvalidArgumentError(
                    "pass either client= or client options "
                    f"({', '.join(sorted(opts.client))}), not both",
                    op="FSSPEC",
                )
        self._own_client = client
        self._client_options = opts.client
        self._built: Client | None = None
        self.file_options = {k: v for k, v in opts.files.items() if k != "max_in_flight"}
        self.max_in_flight = opts.files.get("max_in_flight", 32)
        self.target_protocol = opts.target_protocol
        self._chained_path = storage_options.get("fo")

    # -- the client -------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The :class:`s3dlio.Client` this filesystem works through."""
        if self._own_client is not None:
            return self._own_client
        if not self._client_options:
            return default_client()
        if self._built is None or self._built.closed:
            self._built = Client(**self._client_options)
        return self._built

    def close(self) -> None:
        """Close the client this filesystem built from its options (not one passed as
        ``client=``, nor the default client); a later call builds a new one."""
        built, self._built = getattr(self, "_built", None), None
        if built is not None:
            built.close()

    def __del__(self) -> None:
        self.close()

    # -- metadata ---------------------------------------------------------------------------
    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        """``name``, ``size``, ``type`` (``"file"``/``"directory"``), ``etag``, ``mtime``.

        Raises:
            NotFoundError: nothing at ``path`` (neither an object nor a prefix with objects).
        """
        uri = self._uri(path)
        name = normalize(str(uri))
        cached = self._cached_info(uri, name)
        if cached is not None:
            return cached
        if uri.is_local or uri.key not in ("", "/"):
            object_uri = uri.with_key(uri.key.rstrip("/")) if not uri.is_local else uri
            try:
                entry = self._entry(self.client.stat(object_uri))
            except NotFoundError:
                pass
            else:
                entry["name"] = name
                return entry
            if uri.is_local:
                raise NotFoundError("no such file or directory", uri=name, op="INFO")
        # an object store's prefix (or bucket root) is a directory when something is below it
        # (a bucket root is one when it exists: its listing does not fail)
        listing = self.client.list_iter(self._dir(uri.with_key(uri.key.rstrip("/"))), True)
        first = next(iter(listing), None)  # NotFoundError: no such bucket
        if first is not None or uri.key.strip("/") == "":
            return {"name": name, "size": 0, "type": "directory"}
        raise NotFoundError("no such file or directory", uri=name, op="INFO")

    def ls(self, path: Any, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The entries directly below ``path`` (a file lists as itself)."""
        uri = self._uri(path)
        base = normalize(str(uri))
        if not uri.is_local and base in self.dircache:
            listing = self.dircache[base]
            return list(listing) if detail else [e["name"] for e in listing]
        try:
            metas = list(self.client.list_iter(self._dir(uri), detail=True))
        except NotFoundError:
            metas = []
        entries = [self._entry(m) for m in metas]
        entries = [e for e in entries if e["name"] != base]
        if entries and not uri.is_local:
            self.dircache[base] = sorted(entries, key=lambda e: e["name"])
        if not entries:
            info = self.info(path)  # raises NotFoundError when nothing is there
            if info["type"] == "file":
                entries = [info]
        entries.sort(key=lambda e: e["name"])
        return entries if detail else [e["name"] for e in entries]

    def find(
        self,
        path: Any,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Everything below ``path``; on object stores one recursive listing (directories
        derived from the keys) instead of one listing per directory."""
        uri = self._uri(path)
        if uri.is_local or maxdepth is not None:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail)
        base = normalize(str(uri))
        out: dict[str, dict[str, Any]] = {}
        for meta in self.client.list_iter(self._dir(uri), recursive=True, detail=True):
            entry = self._entry(meta)
            if entry["type"] == "file":
                out[entry["name"]] = entry
            parent = self._parent(entry["name"])  # directories: for the cache and withdirs
            while len(parent) > len(base) and parent not in out:
                out[parent] = {"name": parent, "size": 0, "type": "directory"}
                parent = self._parent(parent)
        if out:
            self._cache_tree(base, out)
        if out and withdirs:
            out[base] = {"name": base, "size": 0, "type": "directory"}
        if not out:
            try:
                info = self.info(path)
            except FileNotFoundError:
                info = None
            if info is not None and (info["type"] == "file" or withdirs):
                out[base] = info
        if not withdirs:
            out = {n: e for n, e in out.items() if e["type"] == "file"}
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def modified(self, path: Any) -> datetime:
        """The last modification time (UTC)."""
        info = self.info(path)
        if info.get("mtime") is None:
            raise UnsupportedOperationError("no modification time", uri=info["name"], op="INFO")
        return datetime.fromtimestamp(info["mtime"], tz=timezone.utc)

    def ukey(self, path: Any) -> str:
        """A key that changes whenever the object does (from its etag)."""
        info = self.info(path)
        token = info.get("etag") or f"{info['size']}:{info.get('mtime')}"
        return hashlib.sha256(f"{info['name']}\0{token}".encode()).hexdigest()

    def checksum(self, path: Any) -> int:
        """An integer that changes whenever the object does (from its etag)."""
        return int(self.ukey(path)[:32], 16)

    # -- directories ------------------------------------------------------------------------
    def mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a directory (local) or a bucket (a bucket root); inside a bucket, nothing.

        Raises:
            FileExistsError: the local directory exists.
        """
        uri = self._uri(path)
        if uri.is_local:
            if os.path.exists(uri.key):
                raise FileExistsError(str(uri))
            if not create_parents and not os.path.isdir(os.path.dirname(uri.key.rstrip("/"))):
                raise NotFoundError("parent directory is missing", uri=str(uri), op="MKDIR")
            self.client.mkdir(uri)
        elif uri.key.strip("/") == "":
            self.client.create_bucket(uri)
            self.invalidate_cache(str(uri))

    def makedirs(self, path: Any, exist_ok: bool = False) -> None:
        """Create a directory and its parents (object stores: only a missing bucket)."""
        uri = self._uri(path)
        if uri.is_local:
            if os.path.exists(uri.key) and not exist_ok:
                raise FileExistsError(str(uri))
            self.client.mkdir(uri)
        elif uri.key.strip("/") == "" and not self.exists(path):
            self.client.create_bucket(uri)
            self.invalidate_cache(str(uri))

    def rmdir(self, path: Any) -> None:
        """Remove an empty local directory, or an empty bucket (a bucket root)."""
        uri = self._uri(path)
        if uri.is_local or uri.key.strip("/") == "":
            self.client.delete_bucket(uri)
            self.invalidate_cache(str(uri))

    # -- reading ----------------------------------------------------------------------------
    def cat_file(
        self, path: Any, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The object's bytes, or ``[start, end)`` of them (negative: from the end)."""
        uri = self._uri(path)
        if start is None and end is None:
            return bytes(self.client.get(uri))
        start = start or 0
        if start < 0 or (end is not None and end < 0):
            size = self.info(path)["size"]
            start = max(0, size + start) if start < 0 else start
            end = size + end if end is not None and end < 0 else end
        length = None if end is None else max(0, end - start)
        if length == 0:
            return b""
        return bytes(self.client.get_range(uri, start, length))

    def cat_ranges(
        self,
        paths: list[Any],
        starts: int | list[int | None] | None,
        ends: int | list[int | None] | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """``cat_file(paths[i], starts[i], ends[i])`` for every ``i``, concurrently (at most
        ``max_in_flight`` requests at once), in input order; with ``on_error="return"`` a
        failed range gives its exception in its place."""
        if not isinstance(paths, list):
            raise ArgumentTypeError("cat_ranges needs a list of paths", op="FSSPEC")
        n = len(paths)
        starts_l = list(starts) if isinstance(starts, Iterable) else [starts] * n
        ends_l = list(ends) if isinstance(ends, Iterable) else [ends] * n
        if len(starts_l) != n or len(ends_l) != n:
            raise InvalidArgumentError("paths, starts and ends differ in length", op="FSSPEC")

        def one(item: tuple[Any, int | None, int | None]) -> bytes:
            return self.cat_file(*item)

        out: list[Any] = []
        for _, outcome in bounded_map(
            one, zip(paths, starts_l, ends_l, strict=True), self.max_in_flight
        ):
            error = outcome.exception()
            if error is None:
                out.append(outcome.result())
            elif on_error == "return":
                out.append(error)
            else:
                raise error
        return out

    def cat(
        self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any
    ) -> Any:
        """Like fsspec's ``cat``; several paths are fetched concurrently."""
        paths = self.expand_path(path, recursive=recursive)
        if (
            len(paths) == 1
            and not isinstance(path, list)
            and paths[0] == self._strip_protocol(path)
        ):
            return self.cat_file(paths[0], **kwargs)
        out: dict[str, Any] = {}
        for name, outcome in bounded_map(
            lambda p: self.cat_file(p, **kwargs), paths, self.max_in_flight
        ):
            error = outcome.exception()
            if error is None:
                out[name] = outcome.result()
            elif on_error == "raise":
                raise error
            elif on_error == "return":
                out[name] = error
        return out

    def _open(
        self,
        path: Any,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> S3dlioReadFile | S3dlioWriteFile:
        uri = self._uri(path)
        name = normalize(str(uri))
        if mode == "rb":
            details = kwargs.get("details") or self.info(name)
            if details["type"] != "file":
                raise IsDirectoryError("is a directory", uri=name, op="GET")
            options = dict(self.file_options)
            if block_size and block_size > 0 and block_size != self.blocksize:
                options["block_size"] = block_size
            return S3dlioReadFile(self, name, uri, details, **options)
        if mode in ("wb", "xb"):
            if mode == "xb" and self.exists(name):
                raise FileExistsError(name)
            if uri.is_local and os.path.isdir(uri.key):
                raise IsDirectoryError("is a directory", uri=name, op="PUT")
            return S3dlioWriteFile(self, name, uri, autocommit=autocommit)
        if mode == "ab":
            raise UnsupportedOperationError(
                "appending is not supported (objects are written whole)", uri=name, op="PUT"
            )
        raise InvalidArgumentError(f"unsupported file mode {mode!r}", uri=name, op="OPEN")

    # -- writing ----------------------------------------------------------------------------
    def pipe_file(self, path: Any, value: Any, mode: str = "overwrite", **kwargs: Any) -> None:
        """Store ``value`` at ``path`` (atomically); ``mode="create"`` refuses an existing one.

        Raises:
            FileExistsError: ``mode="create"`` and something exists at ``path``.
        """
        uri = self._uri(path)
        if mode == "create" and self.exists(path):
            raise FileExistsError(normalize(str(uri)))
        self.client.put_bytes(uri, value)
        self.invalidate_cache(str(uri))

    def put_file(self, lpath: Any, rpath: Any, callback: Any = None, **kwargs: Any) -> None:
        """Upload one local file (streamed, atomic); a local directory makes a directory."""
        local = os.path.abspath(stringify_path(lpath))
        target = self._uri(rpath)
        if os.path.isdir(local):
            if target.is_local:
                self.makedirs(str(target), exist_ok=True)
            return
        if kwargs.get("mode") == "create" and self.exists(str(target)):
            raise FileExistsError(str(target))
        source = parse_uri("file://" + local)
        self._copy(source, target, callback)

    def get_file(self, rpath: Any, lpath: Any, callback: Any = None, **kwargs: Any) -> None:
        """Download one object to a local file (streamed, atomic); a directory makes one."""
        local = os.path.abspath(stringify_path(lpath))
        source = self._uri(rpath)
        try:
            self._copy(source, parse_uri("file://" + local), callback)
        except (FileNotFoundError, IsADirectoryError):
            if not self.isdir(str(source)):
                raise
            self.client.mkdir("file://" + local)

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        """Copy one object, inside the service where the backend can (S3 to S3 on one
        endpoint); a directory makes a directory."""
        source, target = self._uri(path1), self._uri(path2)
        try:
            self._copy(source, target, None)
        except (FileNotFoundError, IsADirectoryError):
            if not self.isdir(str(source)):
                raise
            if target.is_local:
                self.makedirs(str(target), exist_ok=True)

    def _copy(self, source: ObjectURI, target: ObjectURI, callback: Any) -> None:
        on_bytes = None
        if callback is not None and hasattr(callback, "relative_update"):
            on_bytes = callback.relative_update
        transfer.copy_object(source, target, on_bytes=on_bytes, client=self.client)
        self.invalidate_cache(str(target))

    # -- deleting ---------------------------------------------------------------------------
    def rm_file(self, path: Any) -> None:
        """Delete one object (``NotFoundError`` if missing)."""
        uri = self._uri(path)
        self.client.delete(uri)
        self.invalidate_cache(str(uri))

    def _rm(self, path: Any) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete ``path`` (several, globs; a directory with ``recursive=True``).

        Raises:
            NotFoundError: nothing matches ``path``.
        """
        names = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        infos = {}
        for name in names:
            try:
                infos[name] = self.info(name)["type"]
            except FileNotFoundError:
                continue
        files = [n for n, kind in infos.items() if kind == "file"]
        for name, outcome in bounded_map(
            lambda n: self.client.delete(self._uri(n), missing_ok=True), files, self.max_in_flight
        ):
            self.invalidate_cache(name)
            error = outcome.exception()
            if error is not None:
                raise error
        # directories, deepest first: local ones are removed (object stores have none left)
        for name in sorted((n for n, k in infos.items() if k == "directory"), reverse=True):
            uri = self._uri(name)
            self.invalidate_cache(name)
            if uri.is_local and os.path.isdir(uri.key):
                self.client.delete(self._dir(uri), recursive=True)


# -- register(): plain URLs of a protocol through s3dlio ------------------------------------------

_CLASSES: dict[str, type[S3dlioFileSystem]] = {}


def _protocol_class(protocol: str) -> type[S3dlioFileSystem]:
    """The subclass serving plain ``protocol://`` URLs, created once and importable by name
    (``s3dlio.fsspec.S3dlioFileSystem_s3``), so its instances pickle to workers that never
    called :func:`register`."""
    cls = _CLASSES.get(protocol)
    if cls is None:
        name = f"S3dlioFileSystem_{protocol}"
        cls = type(
            name,
            (S3dlioFileSystem,),
            {
                "protocol": protocol,
                "default_scheme": protocol,
                "__module__": __name__,
                "__qualname__": name,
                "__doc__": f"S3dlioFileSystem serving plain ``{protocol}://`` URLs.",
            },
        )
        _CLASSES[protocol] = cls
    return cls


def __getattr__(name: str) -> Any:
    prefix = "S3dlioFileSystem_"
    if name.startswith(prefix) and name[len(prefix) :] in SUPPORTED_PROTOCOLS:
        return _protocol_class(name[len(prefix) :])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(protocols: str | Iterable[str] | None = None) -> None:
    """Make plain URLs of ``protocols`` go through s3dlio in this process.

    After ``register("s3")`` (or ``register(["s3", "gs", "gcs", "az"])``; ``None`` means
    :data:`DEFAULT_PROTOCOLS`), ``fsspec.open("s3://b/k")``, ``fsspec.filesystem("s3")``,
    ``pd.read_parquet("s3://...", storage_options=...)``, ``dd.read_parquet("s3://...")`` and
    chained URLs such as ``"s3dlio::s3://b/k"`` use :class:`S3dlioFileSystem` (replacing any
    implementation registered before, s3fs included; obstore's convention). Each protocol gets
    a subclass ``S3dlioFileSystem_<protocol>`` whose bare paths (``"bucket/key"``) are of that
    scheme. It is per process: Dask and Ray workers call it where they start (see
    docs/ecosystem.md); filesystems pickled to a worker work there without it.

    Raises:
        InvalidArgumentError: a protocol s3dlio does not serve (named).
    """
    if protocols is None:
        names: list[str] = list(DEFAULT_PROTOCOLS)
    elif isinstance(protocols, str):
        names = [protocols]
    else:
        names = list(protocols)
    unknown = [p for p in names if p not in SUPPORTED_PROTOCOLS]
    if unknown:
        raise InvalidArgumentError(
            f"cannot register {', '.join(map(repr, unknown))}: s3dlio serves "
            f"{', '.join(sorted(SUPPORTED_PROTOCOLS))}",
            op="FSSPEC",
        )
    for protocol in names:
        fsspec.register_implementation(protocol, _protocol_class(protocol), clobber=True)


def registered_protocols() -> list[str]:
    """The protocols whose fsspec implementation is currently s3dlio's."""
    from fsspec.registry import _registry

    return sorted(
        p
        for p, cls in _registry.items()
        if isinstance(cls, type) and issubclass(cls, S3dlioFileSystem)
    )


# -- pyarrow --------------------------------------------------------------------------------------


def arrow_filesystem(**storage_options: Any) -> Any:
    """A ``pyarrow.fs.FileSystem`` reading and writing through s3dlio (paths are full URIs).

    Args:
        **storage_options: As for :class:`S3dlioFileSystem` (``client=``, Client options,
            s3fs's spellings, file options).

    Returns:
        ``pyarrow.fs.PyFileSystem`` over an ``FSSpecHandler`` of an :class:`S3dlioFileSystem`
        whose input files open with one metadata request and hand pyarrow zero-copy buffers.

    Example::

        fs = s3dlio.fsspec.arrow_filesystem(endpoint_url="http://127.0.0.1:9000")
        table = pyarrow.parquet.read_table("s3://bucket/t.parquet", filesystem=fs)
        ds = pyarrow.dataset.dataset("s3://bucket/dir/", filesystem=fs, format="parquet")
    """
    from ._fsspec_arrow import make_arrow_filesystem

    return make_arrow_filesystem(S3dlioFileSystem(**storage_options))
