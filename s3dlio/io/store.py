"""The :class:`ObjectStore` contract every backend implements, and the scheme registry.

A backend does only what is specific to its service: open a (ranged) read, put bytes, run a
multi-part upload, stat, list one page at a time, delete. Range splitting, retries, the op-log,
compression, globbing and batch transfers live once, above the backends (``ops.py``,
``range_engine.py``, ``writer.py``, ``listing.py``, ``transfer.py``).

Backends are registered by scheme as ``"module:Class"`` strings and imported on first use, so
``import s3dlio`` never imports boto3 or the Azure/Google SDKs.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol

from ..errors import InvalidArgumentError, InvalidURIError, S3DlioError, UnsupportedOperationError
from .buffers import BytesView
from .client_config import ClientConfig, Network
from .config import RangeEngineConfig, RetryConfig
from .uri import ObjectURI, parse_uri

__all__ = [
    "ObjectMeta",
    "ObjectStore",
    "PartRead",
    "ReadStream",
    "StoreSet",
    "Upload",
    "backend_for",
    "default_stores",
    "register_backend",
    "set_default_stores",
]


@dataclass(frozen=True)
class ObjectMeta:
    """What a listing or a HEAD tells about one object (or a "directory" prefix).

    Attributes:
        uri: The parsed location.
        size: Size in bytes (0 for prefixes).
        last_modified: Modification time (UTC), if known.
        etag: Entity tag / generation / version token used for consistent ranged reads.
        content_type: MIME type, if stored.
        metadata: User metadata.
        is_prefix: True for a "directory" (shown with a trailing ``/``).
        extra: Service-specific fields (storage class, version id, ...).
    """

    uri: ObjectURI
    size: int = 0
    last_modified: datetime | None = None
    etag: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    is_prefix: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The object key (or absolute path for local backends)."""
        return self.uri.key

    def as_dict(self) -> dict[str, Any]:
        """The ``stat()`` dictionary: JSON-friendly, with the original's field names too."""
        modified = self.last_modified
        return {
            "uri": str(self.uri),
            "key": self.uri.key,
            "size": self.size,
            "last_modified": _rfc3339(modified) if modified else None,
            "mtime": modified.timestamp() if modified else None,
            "etag": self.etag,
            "e_tag": self.etag,
            "content_type": self.content_type,
            "metadata": dict(self.metadata),
            "is_dir": self.is_prefix,
            **self.extra,
        }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class ReadStream(ABC):
    """The body of one (ranged) GET, read into caller buffers.

    Attributes:
        size: Total size of the object (not just of this range).
        etag: The object's version token, for ``if_match`` on later ranges.
        offset: First byte this stream delivers.
        length: Bytes this stream delivers (``0`` when ``offset >= size``).
    """

    size: int
    etag: str | None
    offset: int
    length: int

    @abstractmethod
    def readinto(self, buf: memoryview) -> int:
        """Fill up to ``len(buf)`` bytes; return how many (``0`` once the body is done).

        Raises:
            TransientError: the connection broke or the body ended before ``length`` bytes.
        """

    def close(self) -> None:
        """Release the connection or file handle (idempotent)."""

    def __enter__(self) -> ReadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True, eq=False)
class PartRead:
    """One read of :meth:`ObjectStore.read_parts`: what to read, and then what was read.

    Attributes:
        tag: Anything the caller needs to recognise the read.
        uri: The object.
        offset: First byte.
        length: Bytes wanted (``None``: to the end of the object).
        if_match: Require this version token.
        into: Read into this buffer (``len(into)`` bytes are expected, fewer only at the end of
            the object); ``None`` reads a first part (``offset`` 0) into a new buffer sized
            for the whole object, :attr:`data`.
        op: The op-log name of the request.
        data: The new buffer (when ``into`` is ``None``), its first ``nbytes`` filled.
        nbytes: Bytes read.
        size: Total size of the object.
        etag: The object's version token.
        error: Why the read failed, else ``None``.
        start_ns: ``time.time_ns()`` when the request started.
        first_byte_ns: When the answer began (0 if it never did).
        end_ns: When the request finished.
    """

    tag: Any
    uri: ObjectURI
    offset: int = 0
    length: int | None = None
    if_match: str | None = None
    into: memoryview | None = None
    op: str = "GET"
    data: BytesView | None = None
    nbytes: int = 0
    size: int = 0
    etag: str | None = None
    error: S3DlioError | None = None
    start_ns: int = 0
    first_byte_ns: int = 0
    end_ns: int = 0


class Upload(ABC):
    """One multi-part upload in progress: nothing is visible until :meth:`commit`.

    The part layout rules are the store's (:attr:`ObjectStore.min_part_size`, ...).
    """

    @abstractmethod
    def write_part(self, number: int, offset: int, data: memoryview, last: bool) -> None:
        """Send part ``number`` (0-based) holding bytes ``[offset, offset + len(data))``.

        Must be safe to call again for the same part (a retry).
        """

    @abstractmethod
    def commit(self) -> str | None:
        """Make the object visible, atomically; return its etag if known."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything sent; leave no object and no pending upload (idempotent)."""


class ObjectStore(ABC):
    """One storage service. Subclasses implement the abstract methods for their scheme.

    Class attributes:
        scheme: The canonical scheme (``"s3"``, ``"file"``, ...).
        local: True for file systems (RangeEngine uses the local defaults).
        min_part_size: Smallest upload part but the last (S3: 5 MiB).
        part_multiple: Parts but the last must be a multiple of this (GCS: 256 KiB).
        max_parallel_parts: Parts that may upload at once (1 = strictly in order).
        multiplexed: Whether :meth:`read_parts` runs many reads at once from one thread
            (``get_many`` then uses it instead of a thread per request).
    """

    scheme: ClassVar[str]
    local: ClassVar[bool] = False
    min_part_size: ClassVar[int] = 1
    part_multiple: ClassVar[int] = 1
    max_parallel_parts: ClassVar[int] = 64
    multiplexed: ClassVar[bool] = False

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()

    @property
    def network(self) -> Network:
        """Connections and timeouts of this store's client."""
        return self.config.network()

    @property
    def range_config(self) -> RangeEngineConfig:
        """The range-engine configuration of this store's client."""
        return self.config.range_config()

    @property
    def retry_config(self) -> RetryConfig:
        """The retry policy of this store's client."""
        return self.config.retry_config()

    def local_path(self, uri: ObjectURI) -> str | None:
        """The local file path holding ``uri``'s bytes, for stores whose objects are files
        (memory mapping, ``sendfile``, page-cache reads); ``None`` for network stores."""
        return None

    def list_names(self, prefix: ObjectURI, *, recursive: bool) -> Iterator[str] | None:
        """A lean listing: only the keys :meth:`list_pages` would list (no directories, no
        metadata, no op-log records), for stores that can list names much faster than
        objects (local directories: no ``stat`` per file); ``None`` where there is none."""
        return None

    def close(self) -> None:
        """Release this store's connections (it may still be used: they are reopened)."""

    def endpoint(self, uri: ObjectURI) -> str:
        """The endpoint string the op-log records for requests on ``uri``."""
        return f"{self.scheme}://"

    def allocate(self, size: int) -> BytesView:
        """A buffer for ``size`` bytes of this backend's data (``direct://`` aligns it)."""
        return BytesView.allocate(size)

    # -- data path ---------------------------------------------------------------------------
    @abstractmethod
    def open_read(
        self,
        uri: ObjectURI,
        offset: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
    ) -> ReadStream:
        """Start reading ``[offset, offset + length)`` (to the end when ``length`` is None).

        A range starting at or past the end yields an empty stream, never an error.

        Raises:
            NotFoundError: no such object.
            IntegrityError: ``if_match`` is given and the object has changed.
        """

    def read_parts(self, parts: Iterator[PartRead | None], width: int) -> Iterator[PartRead]:
        """Run the reads ``parts`` yields, ``width`` at a time, all from the calling thread, and
        yield each once it is done (in any order).

        ``parts`` is pulled whenever a slot is free; a ``None`` from it means "nothing more for
        now": it is asked again after the next read finishes. Only :attr:`multiplexed` backends
        implement this. Nothing is retried here: :func:`~s3dlio.io.range_engine.fetch_many`
        plans the reads and retries transient errors.
        """
        raise UnsupportedOperationError("no multiplexed reads", op="GET")

    @abstractmethod
    def put(
        self,
        uri: ObjectURI,
        data: memoryview,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        """Store ``data`` as the whole object, atomically; return its etag if known."""

    @abstractmethod
    def begin_upload(
        self,
        uri: ObjectURI,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Upload:
        """Start a multi-part upload whose result appears only on commit."""

    # -- metadata ----------------------------------------------------------------------------
    @abstractmethod
    def stat(self, uri: ObjectURI) -> ObjectMeta:
        """Metadata of one object. Raises ``NotFoundError`` if it does not exist."""

    @abstractmethod
    def list_pages(self, prefix: ObjectURI, *, recursive: bool) -> Iterator[list[ObjectMeta]]:
        """Objects whose key starts with ``prefix.key``, one service page at a time.

        Non-recursive listings group keys at the first ``/`` after the prefix and report each
        group once as an ``is_prefix`` entry whose key ends with ``/`` (S3 delimiter semantics).
        Order within the listing is by key.
        """

    @abstractmethod
    def delete(self, uri: ObjectURI) -> None:
        """Delete one object. Raises ``NotFoundError`` if it does not exist."""

    def delete_many(self, uris: Sequence[ObjectURI]) -> list[tuple[ObjectURI, Exception]]:
        """Delete many objects (one batch); return the ones that failed with their error.

        Backends with a batch API override this; the default deletes one by one.
        """
        failed: list[tuple[ObjectURI, Exception]] = []
        for uri in uris:
            try:
                self.delete(uri)
            except Exception as exc:  # noqa: BLE001 - reported per object
                failed.append((uri, exc))
        return failed

    # -- containers --------------------------------------------------------------------------
    def create_bucket(self, uri: ObjectURI) -> None:
        """Create the bucket/container (or directory) named by ``uri``."""
        raise UnsupportedOperationError("cannot create buckets", uri=str(uri), op="CREATE_BUCKET")

    def delete_bucket(self, uri: ObjectURI) -> None:
        """Delete the (empty) bucket/container named by ``uri``."""
        raise UnsupportedOperationError("cannot delete buckets", uri=str(uri), op="DELETE_BUCKET")

    def list_containers(self, uri: ObjectURI) -> list[ObjectURI]:
        """The buckets/containers visible through ``uri``'s account or endpoint."""
        raise UnsupportedOperationError("cannot list buckets", uri=str(uri), op="LIST_BUCKETS")

    def bucket_exists(self, uri: ObjectURI) -> bool:
        """Whether the bucket/container of ``uri`` exists."""
        return True

    def mkdir(self, uri: ObjectURI) -> None:
        """Make ``uri`` usable as a directory prefix (object stores need nothing)."""

    def remove_empty_dirs(self, uri: ObjectURI) -> None:
        """After a recursive delete: drop directories left empty (local backends only)."""

    def can_copy_within(self, src: ObjectURI, dst: ObjectURI) -> bool:
        """Whether :meth:`copy_within` can copy ``src`` to ``dst`` (two URIs of this backend)."""
        return False

    def copy_within(self, src: ObjectURI, dst: ObjectURI) -> int:
        """Copy inside the service, no bytes through this process; returns the bytes copied.

        Only called when :meth:`can_copy_within` said yes. The source version is pinned: a source
        replaced during the copy fails it. Nothing is visible at ``dst`` before it is complete.
        """
        raise UnsupportedOperationError("no server-side copy", uri=str(dst), op="COPY")

    def list_incomplete(self, prefix: ObjectURI) -> list[ObjectURI]:
        """Objects below ``prefix`` whose upload began and never finished, where the service
        keeps such uploads apart from objects (S3's open multipart uploads) and a listing
        does not show them. The default: none."""
        return []

    def discard_incomplete(self, prefix: ObjectURI) -> int:
        """Remove what interrupted uploads (a killed process) left below ``prefix``.

        Call it only when no upload below ``prefix`` can still be running. The default does
        nothing; ``file://`` removes its hidden temp files. Returns how many were removed.
        """
        return 0


# -- registry ----------------------------------------------------------------------------------

_REGISTRY: dict[str, str] = {
    "file": "s3dlio.io.backends.file:FileStore",
    "direct": "s3dlio.io.backends.direct:DirectStore",
    "s3": "s3dlio.io.backends.s3:S3Store",
    "az": "s3dlio.io.backends.azure:AzureStore",
    "gs": "s3dlio.io.backends.gcs:GCSStore",
}
_EXTRAS = {"s3": "s3", "az": "azure", "gs": "gcs"}
_lock = threading.Lock()
#: Bumped by :func:`register_backend`, so that store sets rebuild a replaced scheme's backend.
_generation = 0


def register_backend(
    scheme: str, target: str | type[ObjectStore], *, local: bool | None = None
) -> None:
    """Register (or replace) the backend for ``scheme``.

    Args:
        scheme: The URI scheme, e.g. ``"myfs"``.
        target: An :class:`ObjectStore` subclass, or ``"package.module:ClassName"`` to import
            lazily on first use. It is built as ``cls(config)`` with the
            :class:`~s3dlio.io.client_config.ClientConfig` of the client that uses it.
        local: Whether URIs of this scheme hold a local path (``myfs:///abs/path``) rather than
            ``bucket/key``; taken from the class's ``local`` attribute when a class is given.
    """
    global _generation
    from .uri import LOCAL_SCHEMES, SCHEMES

    if not isinstance(target, str):
        local = target.local if local is None else local
        target = f"{target.__module__}:{target.__qualname__}"
    with _lock:
        if local:
            LOCAL_SCHEMES.add(scheme)
        SCHEMES.setdefault(scheme, scheme)
        _REGISTRY[SCHEMES[scheme]] = target
        _generation += 1


class StoreSet:
    """The backends of one configuration: one :class:`ObjectStore` per scheme, each built on
    first use from :attr:`config`. A :class:`s3dlio.Client` holds one.

    Args:
        config: What the stores talk to and how (``None``: the environment).
    """

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._stores: dict[str, tuple[int, ObjectStore]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def backend(self, uri: str | ObjectURI) -> ObjectStore:
        """The backend serving ``uri``'s scheme.

        Raises:
            InvalidURIError: no backend is registered for the scheme.
            InvalidArgumentError: the client was closed.
            ImportError: the backend's SDK is missing, with the ``pip install`` line that adds it.
        """
        scheme = parse_uri(uri).scheme
        found = self._stores.get(scheme)
        if found is not None and found[0] == _generation and not self.closed:
            return found[1]
        with self._lock:
            if self.closed:
                raise InvalidArgumentError(
                    "this s3dlio.Client is closed; create a new one", uri=str(uri), op="CONNECT"
                )
            found = self._stores.get(scheme)
            if found is None or found[0] != _generation:
                found = (_generation, _load(scheme)(self.config))
                self._stores[scheme] = found
        return found[1]

    def close(self) -> None:
        """Close every backend's connections; later use raises ``InvalidArgumentError``."""
        with self._lock:
            self.closed = True
            stores, self._stores = list(self._stores.values()), {}
        for _, store in stores:
            store.close()

    def __repr__(self) -> str:
        return f"StoreSet({self.config!r})"


_default = StoreSet()


def default_stores() -> StoreSet:
    """The store set of the default client (what the flat functions use); a closed one is
    replaced by a new one with the same configuration."""
    global _default
    if _default.closed:
        with _lock:
            if _default.closed:
                _default = StoreSet(_default.config)
    return _default


def set_default_stores(stores: StoreSet) -> StoreSet:
    """Make ``stores`` the default; returns the previous default (not closed here)."""
    global _default
    previous, _default = _default, stores
    return previous


class HasStores(Protocol):
    """Anything that holds a :class:`StoreSet` (a :class:`s3dlio.Client`)."""

    @property
    def stores(self) -> StoreSet: ...


def backend_for(uri: str | ObjectURI, client: HasStores | StoreSet | None = None) -> ObjectStore:
    """The backend serving ``uri``'s scheme for ``client`` (default: the default client).

    Raises:
        InvalidURIError: no backend is registered for the scheme.
        ImportError: the backend's SDK is missing, with the ``pip install`` line that adds it.
    """
    if client is None:
        return default_stores().backend(uri)
    if isinstance(client, StoreSet):
        return client.backend(uri)
    return client.stores.backend(uri)


def _load(scheme: str) -> type[ObjectStore]:
    target = _REGISTRY.get(scheme)
    if target is None:
        raise InvalidURIError(f"no backend registered for scheme {scheme!r}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme)
        hint = f"; install it with: pip install 's3dlio[{extra}]'" if extra else ""
        raise ImportError(f"the {scheme}:// backend needs {exc.name or exc}{hint}") from exc
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, ObjectStore)):
        raise InvalidArgumentError(f"{target} is not an ObjectStore subclass", op="CONNECT")
    return cls


def reset_backends() -> None:
    """Replace the default client's backends with new ones (old connections closed)."""
    set_default_stores(StoreSet(_default.config)).close()
