"""Every name the original s3dlio 0.10.0 exposes at top level that is not one of ours, in one
place: its ``Py*`` class names, deprecated S3 helpers, multiprocess GET, data generation
extras, runtime knobs and GCS RAPID settings. ``s3dlio.<name>`` loads them from here on first
use. Unlike the original's, every function works on all five backends.

Aliases of optional-dependency classes (Parquet needs pyarrow) resolve on first access.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from ..client import Client, default_client
from ..datasets.dataset import ObjectDataset, create_dataset
from ..datasets.loader import AsyncBatchIterator, AsyncLoader, LoaderItem, LoaderIterator
from ..datasets.options import LoaderOptions, PyLoaderOptions, coerce_options  # noqa: F401
from ..errors import (
    IntegrityError,
    InvalidArgumentError,
    InvalidURIError,
    NotFoundError,
    S3DlioError,
)
from ..io.buffers import BytesView
from ..io.datagen import generate_data
from ..io.multi import (
    MultiEndpointStore,
    create_multi_endpoint_store,
    create_multi_endpoint_store_from_env,
    create_multi_endpoint_store_from_file,
    create_multi_endpoint_store_from_template,
    split_s3_endpoint,
)
from ..io.uri import SCHEMES, parse_uri
from ..io.writer import ObjectWriter, WriterOptions
from .original_writer import MultipartUploadWriter, ReservedBuffer

if TYPE_CHECKING:  # resolved on first access (module __getattr__ below)
    from ..checkpoint.distributed import CheckpointWriter as PyCheckpointWriter
    from ..checkpoint.manifest import CheckpointInfo as PyCheckpointInfo
    from ..checkpoint.shards import ShardStream as PyCheckpointStream
    from ..checkpoint.store import CheckpointReader as PyCheckpointReader
    from ..checkpoint.store import CheckpointStore as PyCheckpointStore
    from ..jax_tf import make_tf_dataset

__all__ = [
    "ExportStillReferencedError",
    "LengthMismatchError",
    "MultiEndpointStore",
    "MultipartUploadWriter",
    "ObjectMetadata",
    "ObjectNotFoundError",
    "PyAsyncDataLoader",
    "PyAsyncDataLoaderIter",
    "PyBytesAsyncDataLoader",
    "PyBytesAsyncDataLoaderIter",
    "PyBytesDataLoaderSyncIter",
    "PyCheckpointInfo",
    "PyCheckpointReader",
    "PyCheckpointStore",
    "PyCheckpointStream",
    "PyCheckpointWriter",
    "PyDataset",
    "PyLoaderOptions",
    "PyObjectDataLoaderSyncIter",
    "PyObjectItem",
    "PyObjectWriter",
    "PyS3AsyncDataLoader",
    "PyS3AsyncDataLoaderCompat",
    "PyS3Dataset",
    "PyS3DatasetCompat",
    "PyVecDataset",
    "PyWriterOptions",
    "ReservedBuffer",
    "configure_tokio_threads",
    "create_multi_endpoint_store",
    "create_multi_endpoint_store_from_env",
    "create_multi_endpoint_store_from_file",
    "create_multi_endpoint_store_from_template",
    "gcs_get_channel_count",
    "gcs_get_rapid_mode",
    "gcs_query_rapid_bucket",
    "gcs_set_channel_count",
    "gcs_set_rapid_mode",
    "generate_data_with_threads",
    "get_by_key",
    "get_many_stats",
    "get_many_stats_async",
    "get_object",
    "head_async",
    "init_logging",
    "list_full_uris",
    "list_keys",
    "make_tf_dataset",
    "mp_get",
    "object_capabilities",
    "parse_s3_uri_full",
    "put_async",
    "py_default_data_gen_threads",
    "py_total_cpus",
    "stat_key",
    "stat_object",
    "version",
]

# -- class names -------------------------------------------------------------------------------

PyWriterOptions = WriterOptions
PyObjectWriter = ObjectWriter
PyDataset = ObjectDataset
PyS3Dataset = ObjectDataset
PyS3DatasetCompat = ObjectDataset
PyBytesAsyncDataLoader = AsyncLoader
PyObjectItem = LoaderItem
PyObjectDataLoaderSyncIter = LoaderIterator
PyBytesDataLoaderSyncIter = LoaderIterator
PyBytesAsyncDataLoaderIter = AsyncBatchIterator

#: Error names of the original, as our classes.
ObjectNotFoundError = NotFoundError
LengthMismatchError = IntegrityError


class ExportStillReferencedError(S3DlioError, RuntimeError):
    """The original's error for a borrowed buffer a native backend still pinned after a put.

    Never raised here: puts finish with the caller's buffer before they return. Kept so
    ``except s3dlio.ExportStillReferencedError`` still compiles.
    """


#: Names whose module needs an optional dependency or is heavy: resolved on first access.
_DEFERRED: dict[str, tuple[str, str]] = {
    "PyCheckpointInfo": ("s3dlio.checkpoint.manifest", "CheckpointInfo"),
    "PyCheckpointReader": ("s3dlio.checkpoint.store", "CheckpointReader"),
    "PyCheckpointStore": ("s3dlio.checkpoint.store", "CheckpointStore"),
    "PyCheckpointStream": ("s3dlio.checkpoint.shards", "ShardStream"),
    "PyCheckpointWriter": ("s3dlio.checkpoint.distributed", "CheckpointWriter"),
    "PyParquetIndex": ("s3dlio.formats.parquet_index", "ParquetIndex"),
    "PyParquetItem": ("s3dlio.datasets.parquet_loader", "PyParquetItem"),
    "PyParquetStreamLoader": ("s3dlio.datasets.parquet_loader", "ParquetLoader"),
    "make_tf_dataset": ("s3dlio.jax_tf", "make_tf_dataset"),
}


def __getattr__(name: str) -> Any:
    target = _DEFERRED.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


class PyS3AsyncDataLoader(AsyncLoader):
    """The original's ``PyS3AsyncDataLoader(uri, opts)``: a loader over the objects ``uri``
    selects (any backend here, not only ``s3://``)."""

    def __init__(self, uri: str, opts: Any = None) -> None:
        options = coerce_options(opts)
        super().__init__(create_dataset(uri, options), options)


PyS3AsyncDataLoaderCompat = PyS3AsyncDataLoader


class PyVecDataset:
    """A map-style dataset over a Python sequence (the original's test helper class)."""

    def __init__(self, obj: Sequence[Any]) -> None:
        self._items = list(obj)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Any:
        return self._items[index]


class PyAsyncDataLoaderIter:
    """``async for`` over a :class:`PyAsyncDataLoader`: lists of ``batch_size`` items."""

    def __init__(self, items: list[Any], options: LoaderOptions) -> None:
        self._items, self._options, self._at = items, options, 0

    def __aiter__(self) -> PyAsyncDataLoaderIter:
        return self

    async def __anext__(self) -> list[Any]:
        size = self._options.batch_size
        batch = self._items[self._at : self._at + size]
        self._at += size
        if not batch or (len(batch) < size and self._options.drop_last):
            raise StopAsyncIteration
        await asyncio.sleep(0)
        return batch


class PyAsyncDataLoader:
    """Batches of a :class:`PyVecDataset` (or any sequence) for ``async for``."""

    def __init__(self, dataset: Sequence[Any], opts: Any = None) -> None:
        self.dataset = dataset
        self.options = coerce_options(opts)

    def __aiter__(self) -> PyAsyncDataLoaderIter:
        return PyAsyncDataLoaderIter(
            [self.dataset[i] for i in range(len(self.dataset))], self.options
        )


# -- objects -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectMetadata:
    """What :func:`head_async` tells about an object that exists.

    Attributes:
        size: Size in bytes.
        etag: The entity tag as the store reports it (opaque).
        version_id: The store's version id (S3 version, GCS generation), when it gives one.
    """

    size: int
    etag: str | None = None
    version_id: str | None = None


async def head_async(uri: str, *, client: Client | None = None) -> ObjectMetadata | None:
    """The object's :class:`ObjectMetadata`, or ``None`` when it does not exist (every backend).

    Raises:
        S3DlioError: any other failure (denied, network, ...).
    """
    use = client or default_client()
    try:
        meta = await use.stat_async(uri)
    except NotFoundError:
        return None
    version = meta.get("version_id") or meta.get("generation")
    return ObjectMetadata(
        int(meta["size"]), meta.get("etag"), None if version is None else str(version)
    )


def object_capabilities(uri: str) -> dict[str, Any]:
    """What is available for ``uri`` from its scheme alone: ``{"provider", "get_into",
    "head"}``; ``provider`` is ``"s3"``, ``"az"``, ``"gs"``, ``"file"``, ``"direct"`` or
    ``"unknown"``. Here ``get_into_async`` and ``head_async`` work on every known scheme.

    Raises:
        InvalidURIError: a URI malformed for a known scheme.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in SCHEMES:
        return {"provider": "unknown", "get_into": False, "head": False}
    parse_uri(uri)
    return {"provider": SCHEMES[scheme], "get_into": True, "head": True}


def get_many_stats(
    uris: Iterable[str], max_in_flight: int = 64, *, client: Client | None = None
) -> tuple[int, int]:
    """GET every object, dropping the data: ``(objects, bytes)``.

    Raises:
        BatchError: some objects failed (the others were read).
    """
    use = client or default_client()
    items = list(uris)
    count = total = 0
    step = max(1, max_in_flight) * 4
    for start in range(0, len(items), step):
        for _, data in use.get_many(items[start : start + step], max_in_flight):
            count += 1
            total += len(data)
    return count, total


async def get_many_stats_async(
    uris: Iterable[str], max_in_flight: int = 64, *, client: Client | None = None
) -> tuple[int, int]:
    """:func:`get_many_stats` as a coroutine."""
    return await asyncio.to_thread(get_many_stats, list(uris), max_in_flight, client=client)


def _mp_worker(uris: list[str], jobs: int, client: Client) -> tuple[int, int]:
    return get_many_stats(uris, jobs, client=client)


def mp_get(
    uri: str,
    procs: int = 4,
    jobs: int = 64,
    num: int = 1000,
    template: str = "object_{}.dat",
    *,
    client: Client | None = None,
) -> dict[str, Any]:
    """GET ``uri + template.format(i)`` for ``i < num`` from ``procs`` processes, ``jobs``
    requests in flight in all; the data is dropped (a read benchmark; every backend).

    Returns:
        ``{"total_objects", "total_bytes", "duration_seconds", "throughput_mb_s"}``.

    Raises:
        InvalidArgumentError: ``procs``, ``jobs`` or ``num`` below 1.
        BatchError: objects that failed.
    """
    for name, value in (("procs", procs), ("jobs", jobs), ("num", num)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(
                f"{name} must be an int >= 1, got {value!r}", uri=uri, op="GET"
            )
    uris = [uri + template.format(i) for i in range(num)]
    procs = min(procs, num)
    chunks = [uris[i::procs] for i in range(procs)]
    per_proc = max(1, jobs // procs)
    use = client or default_client()
    started = time.perf_counter()
    with ProcessPoolExecutor(procs, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_mp_worker, chunks, [per_proc] * procs, [use] * procs))
    duration = time.perf_counter() - started
    objects = sum(r[0] for r in results)
    total = sum(r[1] for r in results)
    return {
        "total_objects": objects,
        "total_bytes": total,
        "duration_seconds": duration,
        "throughput_mb_s": total / 1e6 / duration if duration > 0 else 0.0,
    }


def _after_scheme(uri: str) -> str:
    return uri.split("://", 1)[1] if "://" in uri else uri


def list_full_uris(uri: str) -> list[str]:
    """The URIs of the objects ``uri`` selects, one level (the original's selection: a URI
    ending in ``/`` lists the directory, ``dir`` selects ``dir`` and ``dir/``, ``dir*`` is a
    prefix glob)."""
    from ..api import list as list_uris

    return list_uris(uri)


def list_keys(uri: str) -> list[str]:
    """The keys (relative to ``uri``) of the objects :func:`list_full_uris` returns."""
    prefix = _after_scheme(uri)
    keys = []
    for full in list_full_uris(uri):
        path = _after_scheme(full)
        if path.startswith(prefix):
            key = path[len(prefix) :]
            if prefix and not prefix.endswith("/") and key.startswith("/"):
                key = key[1:]
        else:
            key = path.rsplit("/", 1)[-1]
        if key:
            keys.append(key)
    return keys


def get_object(uri: str) -> BytesView:
    """The object's bytes (a zero-copy :class:`~s3dlio.BytesView`), any backend."""
    return default_client().get(uri)


def stat_object(uri: str) -> dict[str, Any]:
    """The object's metadata dict (as :func:`s3dlio.stat`), any backend."""
    return default_client().stat(uri)


def get_by_key(bucket: str, key: str) -> BytesView:
    """Deprecated: ``get_object(f"s3://{bucket}/{key}")``."""
    warnings.warn(
        "get_by_key() is deprecated and S3-only. Use get_object(uri) instead - it supports all "
        "URI schemes.",
        DeprecationWarning,
        stacklevel=2,
    )
    return get_object(f"s3://{bucket}/{key}")


def stat_key(bucket: str, key: str) -> dict[str, Any]:
    """Deprecated: ``stat_object(f"s3://{bucket}/{key}")``."""
    warnings.warn(
        "stat_key() is deprecated and S3-only. Use stat_object(uri) instead - it supports all "
        "URI schemes.",
        DeprecationWarning,
        stacklevel=2,
    )
    return stat_object(f"s3://{bucket}/{key}")


def parse_s3_uri_full(uri: str) -> dict[str, str | None]:
    """``{"endpoint", "bucket", "key"}`` of ``s3://[host:port/]bucket/key``.

    Raises:
        InvalidURIError: not ``s3://``, no ``/`` after the bucket, or an IP without a port.
    """
    endpoint, bucket, key = split_s3_endpoint(uri)
    return {"endpoint": endpoint, "bucket": bucket, "key": key}


async def put_async(
    prefix: str,
    num: int,
    template: str | None = None,
    max_in_flight: int = 64,
    size: int | str | None = None,
    should_create_bucket: bool = False,
    object_type: str = "zeros",
    dedup_factor: int = 1,
    compress_factor: int = 1,
    data_gen_algorithm: str = "random",
    data_gen_mode: str = "streaming",
    chunk_size: int | str = 262144,
) -> int:
    """:func:`s3dlio.put` (generate and store ``num`` objects) as a coroutine."""
    from ..formats.generate import put

    kind = "raw" if object_type == "zeros" else object_type
    return await asyncio.to_thread(
        put,
        prefix,
        num,
        template or "object_{}_of_{}.dat",
        max_in_flight,
        size,
        should_create_bucket,
        kind,
        dedup_factor,
        compress_factor,
        data_gen_algorithm,
        data_gen_mode,
        chunk_size,
    )


# -- data generation ---------------------------------------------------------------------------


def py_total_cpus() -> int:
    """Logical CPUs of this machine."""
    return os.cpu_count() or 1


def py_default_data_gen_threads() -> int:
    """Threads data generation uses by default (half the CPUs, at least 1)."""
    return max(1, py_total_cpus() // 2)


def generate_data_with_threads(
    size: int | str, dedup: int = 1, compress: int = 1, threads: int | None = None
) -> BytesView:
    """:func:`s3dlio.generate_data` (``threads`` is accepted; NumPy's generator decides)."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidArgumentError(f"threads must be an int >= 1, got {threads!r}", op="GENERATE")
    return generate_data(size, dedup, compress)


# -- runtime knobs -----------------------------------------------------------------------------

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}


def init_logging(level: str) -> None:
    """Send the ``s3dlio`` logger's records at ``level`` and above to stderr.

    Raises:
        InvalidArgumentError: an unknown level (``trace``, ``debug``, ``info``, ``warn``,
            ``error``, ``off``).
    """
    value = _LEVELS.get(str(level).lower())
    if value is None:
        raise InvalidArgumentError(
            f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}", op="CONFIGURE"
        )
    logger = logging.getLogger("s3dlio")
    logger.setLevel(value)
    if not any(getattr(h, "_s3dlio", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._s3dlio = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def version(distribution_name: str) -> str:
    """The installed version of a distribution (``importlib.metadata.version``, which the
    original exported under this name)."""
    return importlib.metadata.version(distribution_name)


def configure_tokio_threads(n: int = 0) -> None:
    """Size the shared I/O thread pool (the original sized its Tokio runtime).

    ``0``: the CPUs divided by the world size from ``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE`` or
    ``WORLD_SIZE`` (at least 1). The size applies to pools created afterwards.
    """
    from ..io.config import configure

    if not isinstance(n, int) or n < 0:
        raise InvalidArgumentError(f"n must be an int >= 0, got {n!r}", op="CONFIGURE")
    if n == 0:
        world = 1
        for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "WORLD_SIZE"):
            if os.environ.get(name, "").isdigit():
                world = max(1, int(os.environ[name]))
                break
        n = max(1, py_total_cpus() // world)
    configure(threads=n)


# -- GCS RAPID settings ------------------------------------------------------------------------

_gcs: dict[str, Any] = {"rapid": None, "channels": 0}


def gcs_set_rapid_mode(force: bool | None = None) -> None:
    """Record the RAPID-storage preference: ``True``, ``False`` or ``None`` (automatic).

    Kept and reported by :func:`gcs_get_rapid_mode` only: s3dlio talks to GCS through the
    JSON API, which has no RAPID (zonal, gRPC bidi-streaming) mode, so reads and writes are
    the same whatever is set.
    """
    if force is not None and not isinstance(force, bool):
        raise InvalidArgumentError(
            f"force must be True, False or None, got {force!r}", op="CONFIGURE"
        )
    _gcs["rapid"] = force


def gcs_get_rapid_mode() -> bool | None:
    """The preference :func:`gcs_set_rapid_mode` recorded (``None``: automatic). The JSON API
    has no RAPID mode: this changes nothing on the wire."""
    rapid: bool | None = _gcs["rapid"]
    return rapid


def gcs_set_channel_count(n: int) -> None:
    """Record a gRPC channel count (``0``: automatic). Kept and reported only: the JSON API
    uses HTTP connections (sized by ``max_connections``), not gRPC channels."""
    if not isinstance(n, int) or n < 0:
        raise InvalidArgumentError(f"channel count must be an int >= 0, got {n!r}", op="CONFIGURE")
    _gcs["channels"] = n


def gcs_get_channel_count() -> int:
    """The count :func:`gcs_set_channel_count` recorded (``0``: automatic)."""
    return int(_gcs["channels"])


def gcs_query_rapid_bucket(bucket_or_uri: str) -> bool:
    """Whether the bucket would be read in RAPID mode: always ``False`` here, since the JSON
    API has no RAPID mode.

    Raises:
        InvalidURIError: a URI that is not ``gs://``/``gcs://``.
    """
    if "://" in bucket_or_uri and parse_uri(bucket_or_uri).scheme != "gs":
        raise InvalidURIError("expected a gs:// bucket or URI", uri=bucket_or_uri, op="HEAD")
    return False
