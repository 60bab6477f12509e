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
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidArgumentError, S3DlioError
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
    "client_for",
    "object_uri",
]

#: What s3torchconnector raises; every s3dlio error is one (``except S3Exception`` works).
S3Exception = S3DlioError


@dataclass(frozen=True)
class S3ClientConfig:
    """s3torchconnector's client settings, mapped onto an :class:`s3dlio.Client`.

    Attributes:
        throughput_target_gbps: Accepted; s3dlio sizes its pools from ``S3DLIO_RT_THREADS``.
        part_size: Upload part size of writers (5 MiB to 5 GiB).
        unsigned: Accepted only as ``False`` (s3dlio always signs).
        force_path_style: Path-style addressing (``addressing_style="path"``).
        max_attempts: Attempts per request (the client's ``RetryConfig``).
        profile: Shared-config profile for credentials.
        requester_pays: Accepted only as ``False``.
    """

    throughput_target_gbps: float = 10.0
    part_size: int = 8 * MiB
    unsigned: bool = False
    force_path_style: bool = False
    max_attempts: int = 10
    profile: str | None = None
    requester_pays: bool = False

    def __post_init__(self) -> None:
        if not 5 * MiB <= int(self.part_size) <= 5 << 30:
            raise InvalidArgumentError(f"part_size must be 5 MiB-5 GiB, got {self.part_size}")
        if int(self.max_attempts) < 1:
            raise InvalidArgumentError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.unsigned or self.requester_pays:
            raise InvalidArgumentError("unsigned and requester_pays requests are not supported")


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def client_for(
    region: str | None, endpoint: str | None, config: S3ClientConfig | None
) -> HasStores | None:
    """The :class:`s3dlio.Client` for these settings (``None``: the default client), shared."""
    options: dict[str, Any] = {}
    if endpoint:
        options["endpoint_url"] = endpoint
    if region:
        options["region"] = region
    if config is not None:
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


def object_uri(bucket: str, key: str) -> ObjectURI:
    """``s3://bucket/key``; a ``bucket`` holding ``://`` is a root URI of any scheme."""
    if "://" in bucket:
        return parse_uri(bucket.rstrip("/") + "/" + key.lstrip("/"))
    return parse_uri(f"s3://{bucket}/{key}")


# -- readers -----------------------------------------------------------------------------------


class S3Reader(io.BufferedIOBase):
    """A read-only, seekable file over one object, with ``bucket`` and ``key``."""

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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"


class SequentialS3Reader(S3Reader):
    """The whole object, fetched on the first read (or handed in already fetched)."""

    def __init__(
        self,
        uri: str | ObjectURI,
        client: HasStores | None = None,
        *,
        data: Any = None,
    ) -> None:
        super().__init__(uri, client)
        self._data: memoryview | None = None if data is None else memoryview(data).cast("B")
        self._pos = 0

    def _view(self) -> memoryview:
        if self._data is None:
            result = fetch(backend_for(self.uri, self._client), self.uri)
            self._data = memoryview(result.data).cast("B")
        return self._data

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        view = self._view()
        end = len(view) if size is None or size < 0 else min(len(view), self._pos + size)
        out = bytes(view[self._pos : end])
        self._pos = max(self._pos, end)
        return out

    def readinto(self, buffer: Any) -> int:
        self._check()
        view = self._view()
        dst = memoryview(buffer).cast("B")
        chunk = view[self._pos : self._pos + len(dst)]
        dst[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        self._check()
        if whence == io.SEEK_END:
            offset += len(self._view())
        elif whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise InvalidArgumentError(f"whence must be 0, 1 or 2, got {whence}")
        if offset < 0:
            raise InvalidArgumentError(f"negative seek position {offset}", uri=str(self.uri))
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")


class RangedS3Reader(S3Reader):
    """Range requests for what is read (a :class:`~s3dlio.io.rangefile.RangeFile`).

    Reads of at least ``buffer_size`` bytes go straight to the caller's buffer; smaller ones
    through a block cache (``buffer_size=0``: straight always).
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
        self._buffer_size = 8 * MiB if buffer_size is None else int(buffer_size)
        self._size = size
        self._file: RangeFile | None = None

    def _f(self) -> RangeFile:
        if self._file is None:
            self._file = RangeFile(
                self.uri,
                client=self._client,
                size=self._size,
                direct_threshold=max(1, self._buffer_size),
            )
        return self._file

    def read(self, size: int | None = -1) -> bytes:
        return self._f().read(size)

    def readinto(self, buffer: Any) -> int:
        return self._f().readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return self._f().seek(offset, whence)

    def tell(self) -> int:
        return 0 if self._file is None else self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


@dataclass(frozen=True)
class _Constructor:
    kind: str
    buffer_size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self, uri: str | ObjectURI, client: HasStores | None = None, *, data: Any = None
    ) -> S3Reader:
        if self.kind == "sequential" or data is not None:
            return SequentialS3Reader(uri, client, data=data)
        return RangedS3Reader(uri, client, buffer_size=self.buffer_size)


class S3ReaderConstructor:
    """Chooses how dataset items and checkpoints are read (s3torchconnector's factory)."""

    @staticmethod
    def sequential() -> _Constructor:
        """Whole objects (one GET each; the iterable dataset prefetches them)."""
        return _Constructor("sequential")

    @staticmethod
    def range_based(buffer_size: int | None = None) -> _Constructor:
        """Range requests for what is read (``buffer_size``: the direct-read threshold)."""
        return _Constructor("range_based", buffer_size)

    @staticmethod
    def dcp_optimized(max_gap_size: int | float | None = None) -> _Constructor:
        """Accepted for DCP readers (s3dlio's reader always reads only the ranges needed)."""
        return _Constructor("range_based", options={"max_gap_size": max_gap_size})

    @staticmethod
    def default() -> _Constructor:
        """:meth:`sequential`."""
        return _Constructor("sequential")

    @staticmethod
    def get_reader_type_string(constructor: Any) -> str:
        """``"sequential"`` or ``"range_based"``."""
        return str(getattr(constructor, "kind", "sequential"))


# -- writer ------------------------------------------------------------------------------------


class S3Writer(io.BufferedIOBase):
    """A write-only stream stored atomically on :meth:`close` (an exception in ``with`` aborts)."""

    def __init__(self, writer: ObjectWriter) -> None:
        super().__init__()
        self._writer = writer
        self.uri = writer.uri

    def write(self, data: Any) -> int:
        return self._writer.write(data)

    def tell(self) -> int:
        return self._writer.tell()

    def flush(self) -> None:
        """Nothing to do: parts leave as they fill; :meth:`close` commits."""

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._writer.finalize()
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._writer.abort()
            super().close()
        else:
            self.close()


# -- client ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object (s3torchconnector's ``ObjectInfo``)."""

    key: str
    etag: str | None
    size: int
    last_modified: Any
    storage_class: str | None = None


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
        s3client_config: :class:`S3ClientConfig`.

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
        self._config = s3client_config or S3ClientConfig()
        self.client = client_for(region, endpoint, s3client_config)

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def s3client_config(self) -> S3ClientConfig:
        return self._config

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
        """A reader of the object, or of bytes ``[start, end)`` of it when either is given."""
        uri = object_uri(bucket, key)
        if start is not None or end is not None:
            lo = start or 0
            length = None if end is None else max(0, end - lo)
            data = fetch(backend_for(uri, self.client), uri, lo, length, op="GET_RANGE").data
            return SequentialS3Reader(uri, self.client, data=data)
        constructor = reader_constructor or S3ReaderConstructor.default()
        return constructor(uri, self.client)

    def put_object(self, bucket: str, key: str, storage_class: str | None = None) -> S3Writer:
        """A writer whose bytes become the object on ``close()``."""
        options = WriterOptions(part_size=self._config.part_size)
        return S3Writer(ObjectWriter(object_uri(bucket, key), options, client=self.client))

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> Iterator[ListObjectResult]:
        """Pages of the keys starting with ``prefix`` (``delimiter="/"``: one level)."""
        from ...io.listing import select

        root = object_uri(bucket, "")
        cut = prefix.rfind("/") + 1
        base = root.with_key(root.key + prefix[:cut])
        page: list[ObjectInfo] = []
        prefixes: list[str] = []
        for meta in select(base, recursive=delimiter != "/", client=self.client):
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

        uri = object_uri(bucket, key)
        meta = ops.stat(uri, self.client)
        return ObjectInfo(key, meta.etag, meta.size, meta.last_modified)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object."""
        from ...io import ops

        ops.delete(object_uri(bucket, key), client=self.client)

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        """Copy one object (server-side where the backend can)."""
        from ...io import transfer

        transfer.copy_object(
            object_uri(src_bucket, src_key), object_uri(dst_bucket, dst_key), client=self.client
        )
