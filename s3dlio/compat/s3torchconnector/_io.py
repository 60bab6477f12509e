"""Readers, writers and the client of the s3torchconnector names, over s3dlio's storage layer.

Readers are real file objects (``torch.load``, ``PIL.Image.open``, ``zipfile``):
:class:`SequentialS3Reader` holds the whole object (one GET, split into concurrent ranges by
the RangeEngine when large), :class:`RangedS3Reader` is a :class:`~s3dlio.io.rangefile.RangeFile`
(range requests for what is read). :class:`S3Writer` is a streaming, atomic
:class:`~s3dlio.io.writer.ObjectWriter`.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import ArgumentTypeError, InvalidArgumentError, S3DlioError
from ...io.config import MiB, RetryConfig
from ...io.range_engine import fetch
from ...io.rangefile import RangeFile
from ...io.store import HasStores, backend_for
from ...io.uri import ObjectURI, parse_uri
from ...io.writer import ObjectWriter, WriterOptions

__all__ = [
    "ListObjectResult",
    "ObjectInfo",
    "RangedS3Reader",
    "S3Client",
    "S3ClientConfig",
    "S3Exception",
    "S3Reader",
    "S3ReaderConstructor",
    "S3Writer",
    "SequentialS3Reader",
    "LazyClient",
    "client_for",
    "object_uri",
]

#: What s3torchconnector raises; every s3dlio error is one (``except S3Exception`` works).
S3Exception = S3DlioError


@dataclass(frozen=True)
class S3ClientConfig:
    """s3torchconnector's client settings, mapped onto an :class:`s3dlio.Client`.

    As s3torchconnector's, building one checks only that ``requester_pays`` is not combined
    with ``unsigned``; the values are checked when a client is first used (a ``part_size``
    outside 5 MiB-5 GiB is then an :data:`S3Exception`).

    Attributes:
        throughput_target_gbps: Accepted; s3dlio sizes its pools from ``S3DLIO_RT_THREADS``.
        part_size: Upload part size of writers (5 MiB to 5 GiB).
        unsigned: Refused when used (s3dlio signs with the credentials it finds).
        force_path_style: Path-style addressing (``addressing_style="path"``).
        max_attempts: Attempts per request (the client's ``RetryConfig``).
        profile: Shared-config profile for credentials.
        requester_pays: Refused when used.
    """

    throughput_target_gbps: float = 10.0
    part_size: int = 8 * MiB
    unsigned: bool = False
    force_path_style: bool = False
    max_attempts: int = 10
    profile: str | None = None
    requester_pays: bool = False

    def __post_init__(self) -> None:
        if self.requester_pays and self.unsigned:
            raise InvalidArgumentError(
                "requester_pays=True needs signed requests and cannot be combined with "
                "unsigned=True"
            )

    def check(self) -> S3ClientConfig:
        """``self`` if s3dlio can serve these settings, else :class:`InvalidArgumentError`."""
        if not 5 * MiB <= int(self.part_size) <= 5 << 30:
            raise InvalidArgumentError(
                f"invalid configuration: part size must be between 5MiB and 5GiB, "
                f"got {self.part_size}"
            )
        if int(self.max_attempts) < 1:
            raise InvalidArgumentError(
                f"invalid configuration: max_attempts must be >= 1, got {self.max_attempts}"
            )
        if self.unsigned or self.requester_pays:
            raise InvalidArgumentError(
                "invalid configuration: unsigned and requester_pays requests are not supported"
            )
        return self


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def client_for(
    region: str | None, endpoint: str | None, config: S3ClientConfig | None
) -> HasStores | None:
    """The :class:`s3dlio.Client` for these settings (``None``: the default client), shared.

    Raises:
        InvalidArgumentError: ``config`` holds settings s3dlio cannot serve.
    """
    options: dict[str, Any] = {}
    if endpoint:
        options["endpoint_url"] = endpoint
    if region:
        options["region"] = region
    if config is not None:
        config.check()
        if config.profile:
            options["profile"] = config.profile
        if config.force_path_style:
            options["addressing_style"] = "path"
        if config.max_attempts != S3ClientConfig.max_attempts:
            options["retry"] = RetryConfig(max_attempts=config.max_attempts)
    if not options:
        return None
    key = tuple(sorted(options.items(), key=lambda kv: kv[0]))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            from ...client import Client

            client = _clients[key] = Client(**options)
    return client


class LazyClient:
    """The :func:`client_for` of some settings, resolved on first use (so that, as in
    s3torchconnector, a bad :class:`S3ClientConfig` fails the first request, not the
    constructor), and again after pickling."""

    def __init__(
        self, region: str | None, endpoint: str | None, config: S3ClientConfig | None
    ) -> None:
        self._settings = (region, endpoint, config)
        self._resolved: tuple[HasStores | None] | None = None

    def get(self) -> HasStores | None:
        """The client (``None``: s3dlio's default client)."""
        if self._resolved is None:
            self._resolved = (client_for(*self._settings),)
        return self._resolved[0]

    def __getstate__(self) -> dict[str, Any]:
        return {"_settings": self._settings, "_resolved": None}


def object_uri(bucket: str, key: str) -> ObjectURI:
    """``s3://bucket/key``; a ``bucket`` holding ``://`` is a root URI of any scheme."""
    if "://" in bucket:
        return parse_uri(bucket.rstrip("/") + "/" + key.lstrip("/"))
    return parse_uri(f"s3://{bucket}/{key}")


# -- readers -----------------------------------------------------------------------------------

#: ``RangedS3Reader``'s default buffer size (s3torchconnector's): reads of at least this many
#: bytes go straight to the caller, smaller ones through a block cache.
DEFAULT_BUFFER_SIZE = 8 * MiB
#: ``S3ReaderConstructor.dcp_optimized()``'s default (accepted; see the constructor).
DEFAULT_MAX_GAP_SIZE = 32 * MiB


def _check_int(value: Any, what: str) -> None:
    """s3torchconnector's argument check: a float or a str is a ``TypeError``, not a size."""
    if not isinstance(value, int):
        raise ArgumentTypeError(f"{what} must be an integer, got {type(value).__name__}")


def _writable_view(buffer: Any) -> memoryview:
    """``buffer`` as a writable byte view (``TypeError`` for ``bytes``, ``str``, ``None``...)."""
    try:
        view = memoryview(buffer)
    except TypeError:
        view = None
    if view is None or view.readonly:
        raise ArgumentTypeError(
            f"argument must be a writable bytes-like object, not {type(buffer).__name__}"
        )
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class S3Reader(io.BufferedIOBase):
    """A read-only, seekable file over one object, with ``bucket`` and ``key``.

    Seek and read follow s3torchconnector's readers: seeking past the end stays at the end
    (``tell()`` is never beyond the object's size), a negative position is a ``ValueError``,
    a ``whence`` other than 0, 1, 2 a ``ValueError`` (a non-integer one a ``TypeError``), a
    non-integer offset or size a ``TypeError``; ``read(n)`` past the end returns what there
    is, ``read()`` / ``read(-1)`` / ``read(None)`` the rest.
    """

    def __init__(self, uri: str | ObjectURI, client: HasStores | None = None) -> None:
        super().__init__()
        self.uri = parse_uri(uri, allow_bare=True)
        self._client = client

    @property
    def bucket(self) -> str:
        """The bucket (container) of the object; empty for local files."""
        return self.uri.bucket

    @property
    def key(self) -> str:
        """The object's key (its path for local files)."""
        return self.uri.key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def _size(self) -> int:
        """The object's size (a request when not known yet)."""
        raise NotImplementedError

    def _target(self, offset: Any, whence: Any, position: int) -> int:
        """The position ``seek(offset, whence)`` moves to, clamped to the object's size."""
        _check_int(offset, "seek offset")
        _check_int(whence, "whence")
        if whence == io.SEEK_END:
            offset = self._size() + min(offset, 0)
        elif whence == io.SEEK_CUR:
            offset += position
        elif whence != io.SEEK_SET:
            raise InvalidArgumentError(
                f"whence must be SEEK_SET, SEEK_CUR or SEEK_END, got {whence}", uri=str(self.uri)
            )
        if offset < 0:
            raise InvalidArgumentError(f"negative seek value {offset}", uri=str(self.uri))
        return offset if offset == 0 else min(offset, self._size())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"


class SequentialS3Reader(S3Reader):
    """The whole object, fetched on the first read (or handed in already fetched).

    ``seek(0, SEEK_END)`` before any read asks only for the size (a HEAD), none at all when
    the size is known (dataset items carry the listed size).
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        client: HasStores | None = None,
        *,
        data: Any = None,
        size: int | None = None,
    ) -> None:
        super().__init__(uri, client)
        self._data: memoryview | None = None if data is None else memoryview(data).cast("B")
        self._known_size = size
        self._pos = 0

    def _view(self) -> memoryview:
        if self._data is None:
            result = fetch(backend_for(self.uri, self._client), self.uri)
            self._data = memoryview(result.data).cast("B")
        return self._data

    def _size(self) -> int:
        if self._data is not None:
            return len(self._data)
        if self._known_size is None:
            from ...io import ops

            self._known_size = ops.stat(self.uri, self._client).size
        return self._known_size

    def read(self, size: int | None = None) -> bytes:
        self._check()
        if size is not None:
            _check_int(size, "read size")
        view = self._view()
        end = len(view) if size is None or size < 0 else min(len(view), self._pos + size)
        out = bytes(view[self._pos : end])
        self._pos = max(self._pos, end)
        return out

    def readinto(self, buffer: Any) -> int:
        self._check()
        dst = _writable_view(buffer)
        if not len(dst):
            return 0
        view = self._view()
        chunk = view[self._pos : self._pos + len(dst)]
        dst[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        self._check()
        self._pos = self._target(offset, whence, self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _check(self) -> None:
        if self.closed:
            raise InvalidArgumentError("I/O operation on closed file", uri=str(self.uri))


class RangedS3Reader(S3Reader):
    """Range requests for what is read (a :class:`~s3dlio.io.rangefile.RangeFile`).

    Reads of at least ``buffer_size`` bytes go straight to the caller's buffer; smaller ones
    through a block cache (``buffer_size=0``: straight always; ``None``: 8 MiB).
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        client: HasStores | None = None,
        *,
        buffer_size: int | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(uri, client)
        if buffer_size is not None:
            _check_int(buffer_size, "buffer_size")
            if buffer_size < 0:
                raise InvalidArgumentError(f"buffer_size must be >= 0, got {buffer_size}")
        self._buffer_size = DEFAULT_BUFFER_SIZE if buffer_size is None else buffer_size
        self._enable_buffering = self._buffer_size > 0
        self._known_size = size
        self._file: RangeFile | None = None

    def _f(self) -> RangeFile:
        if self.closed:
            raise InvalidArgumentError("I/O operation on closed file", uri=str(self.uri))
        if self._file is None:
            self._file = RangeFile(
                self.uri,
                client=self._client,
                size=self._known_size,
                direct_threshold=max(1, self._buffer_size),
            )
        return self._file

    def _size(self) -> int:
        return self._f().size

    def read(self, size: int | None = None) -> bytes:
        if size is not None:
            _check_int(size, "read size")
        return self._f().read(size)

    def readinto(self, buffer: Any) -> int:
        view = _writable_view(buffer)
        return self._f().readinto(view) if len(view) else 0

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        f = self._f()
        return f.seek(self._target(offset, whence, f.tell()))

    def tell(self) -> int:
        return 0 if self._file is None else self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


@dataclass(frozen=True)
class _Constructor:
    """What ``S3ReaderConstructor.sequential()`` / ``.range_based()`` return: called with an
    object URI (and the client, the listed size), it makes that object's reader."""

    kind: str
    buffer_size: int | None = None

    def __call__(
        self,
        uri: str | ObjectURI,
        client: HasStores | None = None,
        *,
        data: Any = None,
        size: int | None = None,
    ) -> S3Reader:
        if self.kind == "sequential" or data is not None:
            return SequentialS3Reader(uri, client, data=data, size=size)
        return RangedS3Reader(uri, client, buffer_size=self.buffer_size, size=size)


class DCPOptimizedConstructor:
    """What ``S3ReaderConstructor.dcp_optimized()`` returns (s3torchconnector's class).

    For :class:`~s3dlio.compat.s3torchconnector.dcp.S3StorageReader` it is accepted and not
    needed: s3dlio's DCP reader always fetches only the byte ranges a rank needs, merging near
    ones. Called outside a DCP load it reads ``.metadata`` objects whole and refuses anything
    else, as s3torchconnector's does (``ValueError``: no ranges known).
    """

    def __init__(self, max_gap_size: int | float = DEFAULT_MAX_GAP_SIZE) -> None:
        if isinstance(max_gap_size, bool) or not isinstance(max_gap_size, int | float):
            raise ArgumentTypeError(
                f"max_gap_size must be a number, got {type(max_gap_size).__name__}"
            )
        if max_gap_size < 0:
            raise InvalidArgumentError("max_gap_size must be non-negative")
        self._max_gap_size = max_gap_size

    @property
    def max_gap_size(self) -> int | float:
        """The gap below which s3torchconnector merges ranges into one request."""
        return self._max_gap_size

    def __call__(
        self,
        uri: str | ObjectURI,
        client: HasStores | None = None,
        *,
        data: Any = None,
        size: int | None = None,
    ) -> S3Reader:
        parsed = parse_uri(uri, allow_bare=True)
        if data is not None or parsed.key.endswith(".metadata"):
            return SequentialS3Reader(parsed, client, data=data, size=size)
        raise InvalidArgumentError(
            "No ranges found: the dcp_optimized reader serves S3StorageReader's loads only; "
            "use S3ReaderConstructor.sequential() or .range_based() here",
            uri=str(parsed),
        )


class S3ReaderConstructor:
    """Chooses how dataset items and checkpoints are read (s3torchconnector's factory)."""

    @staticmethod
    def sequential() -> _Constructor:
        """Whole objects (one GET each; the iterable dataset prefetches them)."""
        return _Constructor("sequential")

    @staticmethod
    def range_based(buffer_size: int | None = None) -> _Constructor:
        """Range requests for what is read (``buffer_size``: the direct-read threshold;
        ``None``: 8 MiB, ``0``: no buffering)."""
        if buffer_size is not None:
            _check_int(buffer_size, "buffer_size")
            if buffer_size < 0:
                raise InvalidArgumentError(f"buffer_size must be >= 0, got {buffer_size}")
        return _Constructor("range_based", buffer_size)

    @staticmethod
    def dcp_optimized(
        max_gap_size: int | float = DEFAULT_MAX_GAP_SIZE,
    ) -> DCPOptimizedConstructor:
        """For DCP loads (accepted: s3dlio's reader always reads only the ranges needed).

        Raises:
            ValueError: ``max_gap_size`` is negative.
            TypeError: ``max_gap_size`` is not a number.
        """
        return DCPOptimizedConstructor(max_gap_size)

    @staticmethod
    def default() -> _Constructor:
        """:meth:`sequential`."""
        return S3ReaderConstructor.sequential()

    @staticmethod
    def get_reader_type_string(constructor: Any) -> str:
        """``"sequential"`` (also for ``None``), ``"range_based"``, ``"dcp_optimized"`` or
        ``"unknown"``."""
        if constructor is None:
            return "sequential"
        if isinstance(constructor, DCPOptimizedConstructor):
            return "dcp_optimized"
        if isinstance(constructor, _Constructor):
            return constructor.kind
        return "unknown"


# -- writer ------------------------------------------------------------------------------------


class S3Writer(io.BufferedIOBase):
    """A write-only stream; the object appears, whole, on :meth:`close`.

    As s3torchconnector's: ``write`` returns the bytes taken, ``tell`` counts them, ``close``
    commits once (however often, from however many threads, it is called), ``write`` after
    ``close`` is a ``ValueError``, ``writable()`` is false once closed. Unlike it, an
    exception inside ``with`` aborts the upload (s3torchconnector leaves the stream open).
    """

    def __init__(self, writer: ObjectWriter) -> None:
        super().__init__()
        self._writer = writer
        self.uri = writer.uri
        self._lock = threading.Lock()
        self._done = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or an aborting ``with``) has ended this writer."""
        return self._done

    def write(self, data: Any) -> int:
        if self._done:
            raise InvalidArgumentError("write to a closed S3Writer", uri=str(self.uri), op="PUT")
        return self._writer.write(data)

    def tell(self) -> int:
        return self._writer.tell()

    def flush(self) -> None:
        """Nothing to do: parts leave as they fill; :meth:`close` commits."""

    def writable(self) -> bool:
        return not self._done

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """Commit the object (once; later calls do nothing)."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self._writer.finalize()

    def __enter__(self) -> S3Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        with self._lock:
            if not self._done:
                self._done = True
                self._writer.abort()


# -- client ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object, or a ``head_object`` answer (s3torchconnector's fields)."""

    key: str
    etag: str | None
    size: int
    last_modified: Any
    storage_class: str | None = None
    restore_status: Any = None


@dataclass(frozen=True)
class ListObjectResult:
    """One page of :meth:`S3Client.list_objects`."""

    object_info: list[ObjectInfo]
    common_prefixes: list[str]


class S3Client:
    """s3torchconnector's client: objects by ``(bucket, key)``.

    Args:
        region: Signing region (default: the environment's).
        endpoint: ``http(s)://host:port`` of an S3-compatible service (default: the
            environment's ``AWS_ENDPOINT_URL``, else AWS).
        user_agent: Accepted (s3dlio sends its own).
        s3client_config: :class:`S3ClientConfig` (checked on first use).

    A ``bucket`` written as a root URI (``"az://account/container"``, ``"file:///data"``)
    reaches any other backend.
    """

    def __init__(
        self,
        region: str | None = None,
        endpoint: str | None = None,
        s3client_config: S3ClientConfig | None = None,
        *,
        user_agent: Any = None,
    ) -> None:
        self._region = region
        self._endpoint = endpoint
        self._s3client_config = s3client_config or S3ClientConfig()
        self._lazy = LazyClient(region, endpoint, s3client_config)

    @property
    def client(self) -> HasStores | None:
        """The :class:`s3dlio.Client` requests go through (``None``: the default client)."""
        return self._lazy.get()

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def s3client_config(self) -> S3ClientConfig:
        return self._s3client_config

    def get_object(
        self,
        bucket: str,
        key: str,
        start: int | None = None,
        end: int | None = None,
        *,
        object_info: Any = None,
        reader_constructor: Any = None,
    ) -> S3Reader:
        """A reader of the object, or of bytes ``[start, end)`` of it when either is given.

        ``object_info`` (a listed :class:`ObjectInfo`) saves the request for the size.
        """
        uri = object_uri(bucket, key)
        client = self.client
        if start is not None or end is not None:
            lo = start or 0
            length = None if end is None else max(0, end - lo)
            data = fetch(backend_for(uri, client), uri, lo, length, op="GET_RANGE").data
            return SequentialS3Reader(uri, client, data=data)
        constructor = reader_constructor or S3ReaderConstructor.default()
        size = getattr(object_info, "size", None)
        return constructor(uri, client, size=size if isinstance(size, int) else None)

    def put_object(self, bucket: str, key: str, storage_class: str | None = None) -> S3Writer:
        """A writer whose bytes become the object on ``close()``."""
        client = self.client
        options = WriterOptions(part_size=self._s3client_config.part_size)
        return S3Writer(ObjectWriter(object_uri(bucket, key), options, client=client))

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> Iterator[ListObjectResult]:
        """Pages of the keys starting with ``prefix`` (``delimiter="/"``: one level)."""
        from ...io.listing import select

        client = self.client
        root = object_uri(bucket, "")
        cut = prefix.rfind("/") + 1
        base = root.with_key(root.key + prefix[:cut])
        page: list[ObjectInfo] = []
        prefixes: list[str] = []
        for meta in select(base, recursive=delimiter != "/", client=client):
            rel = meta.key[len(root.key) :]
            if not rel.startswith(prefix):
                continue
            if meta.is_prefix:
                prefixes.append(rel if rel.endswith("/") else rel + "/")
            else:
                page.append(ObjectInfo(rel, meta.etag, meta.size, meta.last_modified))
            if len(page) + len(prefixes) >= max_keys:
                yield ListObjectResult(page, prefixes)
                page, prefixes = [], []
        if page or prefixes:
            yield ListObjectResult(page, prefixes)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """Size, etag and modification time of one object."""
        from ...io import ops

        meta = ops.stat(object_uri(bucket, key), self.client)
        return ObjectInfo(key, meta.etag, meta.size, meta.last_modified)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object (a missing one is no error, as S3's DeleteObject)."""
        from ...io import ops

        ops.delete(object_uri(bucket, key), missing_ok=True, client=self.client)

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        """Copy one object (server-side where the backend can)."""
        from ...io import transfer

        transfer.copy_object(
            object_uri(src_bucket, src_key), object_uri(dst_bucket, dst_key), client=self.client
        )
