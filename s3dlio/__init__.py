"""s3dlio: fast, URI-driven storage I/O and data pipelines for AI/ML training.

One API over ``s3://``, ``az://``, ``gs://``/``gcs://``, ``file://`` and ``direct://``::

    import s3dlio
    s3dlio.put_bytes("file:///tmp/demo/a.bin", b"hello")
    data = s3dlio.get("file:///tmp/demo/a.bin")        # zero-copy BytesView
    s3dlio.list("file:///tmp/demo/", recursive=True)

Submodules: :mod:`s3dlio.formats` (TFRecord, HDF5, NPZ, raw), :mod:`s3dlio.torch`,
:mod:`s3dlio.jax`, :mod:`s3dlio.checkpoint`.
"""

from __future__ import annotations

import builtins
import importlib
from typing import Any

from .api import (
    copy,
    copy_async,
    create_bucket,
    create_bucket_async,
    delete,
    delete_async,
    delete_bucket,
    delete_bucket_async,
    download,
    download_async,
    exists,
    exists_async,
    get,
    get_async,
    get_into,
    get_into_async,
    get_many,
    get_many_async,
    get_range,
    get_range_async,
    list,
    list_async,
    list_buckets,
    list_containers,
    list_containers_async,
    list_iter,
    mkdir,
    mkdir_async,
    put_bytes,
    put_bytes_async,
    put_many,
    put_many_async,
    stat,
    stat_async,
    stat_many,
    stat_many_async,
    upload,
    upload_async,
)
from .client import Client, configure, configure_s3, default_client
from .errors import (
    BatchError,
    CancelledError,
    IntegrityError,
    InvalidArgumentError,
    InvalidURIError,
    IsDirectoryError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    S3DlioError,
    ThrottledError,
    TransientError,
    UnsupportedOperationError,
)
from .io.buffers import BytesView
from .io.client_config import ClientConfig
from .io.config import RangeEngineConfig, RetryConfig, Settings, parse_size
from .io.datagen import Generator, generate_data, generate_into_buffer
from .io.oplog import finalize_op_log, init_op_log, is_op_log_active, op_log_stats
from .io.store import ObjectMeta, ObjectStore, register_backend
from .io.uri import ObjectURI, parse_uri
from .io.writer import (
    ObjectWriter,
    PyWriterOptions,
    WriterOptions,
    create_azure_writer,
    create_direct_filesystem_writer,
    create_filesystem_writer,
    create_gcs_writer,
    create_s3_writer,
    open_writer,
)

#: Names that load their module on first use, so ``import s3dlio`` stays light: no torch,
#: jax, h5py, boto3 or cloud SDK imports, and no format, dataset or checkpoint code.
_LAZY: dict[str, str] = {
    "CancellationToken": "s3dlio.datasets",
    "CheckpointConfig": "s3dlio.checkpoint",
    "CheckpointStore": "s3dlio.checkpoint",
    "LoaderOptions": "s3dlio.datasets",
    "PyCheckpointInfo": "s3dlio.checkpoint",
    "PyCheckpointReader": "s3dlio.checkpoint",
    "PyCheckpointStore": "s3dlio.checkpoint",
    "PyCheckpointWriter": "s3dlio.checkpoint",
    "PyLoaderOptions": "s3dlio.datasets",
    "create_async_loader": "s3dlio.datasets",
    "create_dataset": "s3dlio.datasets",
    "create_tfrecord_index": "s3dlio.formats.tfrecord_index",
    "finalize_distributed_checkpoint": "s3dlio.checkpoint",
    "generate_npz_bytes": "s3dlio.formats.npz",
    "get_tfrecord_index_entries": "s3dlio.formats.tfrecord_index",
    "index_tfrecord_bytes": "s3dlio.formats.tfrecord_index",
    "load_checkpoint": "s3dlio.checkpoint",
    "load_checkpoint_with_validation": "s3dlio.checkpoint",
    "load_checkpoint_with_validation_view": "s3dlio.checkpoint",
    "put": "s3dlio.formats.generate",
    "read_npz": "s3dlio.formats.npz",
    "read_tfrecord_index": "s3dlio.formats.tfrecord_index",
    "save_checkpoint": "s3dlio.checkpoint",
    "save_distributed_shard": "s3dlio.checkpoint",
    # Parquet (needs pyarrow: the 'parquet' extra)
    "ParquetStreamIter": "s3dlio.datasets.parquet_loader",
    "PyParquetIndex": "s3dlio.formats.parquet_index",
    "PyParquetItem": "s3dlio.datasets.parquet_loader",
    "PyParquetStreamLoader": "s3dlio.datasets.parquet_loader",
    "generate_and_write_parquet": "s3dlio.formats.parquet_gen",
    "generate_and_write_parquet_schema": "s3dlio.formats.parquet_gen",
    "generate_and_write_parquet_schema_streaming": "s3dlio.formats.parquet_gen",
    "generate_and_write_parquet_streaming": "s3dlio.formats.parquet_gen",
    "generate_parquet_bytes": "s3dlio.formats.parquet_gen",
    "generate_parquet_bytes_schema": "s3dlio.formats.parquet_gen",
    "open_parquet": "s3dlio.formats.parquet",
    "parquet_cache_clear": "s3dlio.formats.parquet",
    "parquet_cache_invalidate": "s3dlio.formats.parquet",
    "parquet_cache_len": "s3dlio.formats.parquet",
    "parquet_get_rg": "s3dlio.formats.parquet",
    "parquet_rg_row_offsets": "s3dlio.formats.parquet",
    "read_parquet": "s3dlio.formats.parquet",
    # the original's top-level names for its PyTorch and JAX classes
    "ObjectStoreIterableDataset": "s3dlio.torch",
    "ObjectStoreMapDataset": "s3dlio.torch",
    "S3IterableDataset": "s3dlio.torch",
    "S3MapDataset": "s3dlio.torch",
    "JaxIterable": "s3dlio.jax",
    "S3JaxIterable": "s3dlio.jax",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 's3dlio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> builtins.list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _installed_version() -> str:
    # pyproject.toml is the one place the version is written; this reads the installed
    # distribution's metadata (an editable install has it too).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("s3dlio")
    except PackageNotFoundError:  # a source tree put on sys.path without installing it
        return "0+unknown"


__version__ = _installed_version()

__all__ = [
    "BatchError",
    "BytesView",
    "CancellationToken",
    "CancelledError",
    "CheckpointConfig",
    "CheckpointStore",
    "Client",
    "ClientConfig",
    "Generator",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidURIError",
    "IsDirectoryError",
    "JaxIterable",
    "LoaderOptions",
    "NotFoundError",
    "ObjectMeta",
    "ObjectStore",
    "ObjectStoreIterableDataset",
    "ObjectStoreMapDataset",
    "ObjectURI",
    "ObjectWriter",
    "OperationTimeoutError",
    "ParquetStreamIter",
    "PermissionDeniedError",
    "PyCheckpointInfo",
    "PyCheckpointReader",
    "PyCheckpointStore",
    "PyCheckpointWriter",
    "PyLoaderOptions",
    "PyParquetIndex",
    "PyParquetItem",
    "PyParquetStreamLoader",
    "PyWriterOptions",
    "RangeEngineConfig",
    "RetryConfig",
    "S3DlioError",
    "S3IterableDataset",
    "S3JaxIterable",
    "S3MapDataset",
    "Settings",
    "ThrottledError",
    "TransientError",
    "UnsupportedOperationError",
    "WriterOptions",
    "configure",
    "configure_s3",
    "copy",
    "copy_async",
    "create_async_loader",
    "create_azure_writer",
    "create_bucket",
    "create_bucket_async",
    "create_dataset",
    "create_direct_filesystem_writer",
    "create_filesystem_writer",
    "create_gcs_writer",
    "create_s3_writer",
    "create_tfrecord_index",
    "default_client",
    "delete",
    "delete_async",
    "delete_bucket",
    "delete_bucket_async",
    "download",
    "download_async",
    "exists",
    "exists_async",
    "finalize_distributed_checkpoint",
    "finalize_op_log",
    "generate_and_write_parquet",
    "generate_and_write_parquet_schema",
    "generate_and_write_parquet_schema_streaming",
    "generate_and_write_parquet_streaming",
    "generate_data",
    "generate_into_buffer",
    "generate_npz_bytes",
    "generate_parquet_bytes",
    "generate_parquet_bytes_schema",
    "get",
    "get_async",
    "get_into",
    "get_into_async",
    "get_many",
    "get_many_async",
    "get_range",
    "get_range_async",
    "get_tfrecord_index_entries",
    "index_tfrecord_bytes",
    "init_op_log",
    "is_op_log_active",
    "list",
    "list_async",
    "list_buckets",
    "list_containers",
    "list_containers_async",
    "list_iter",
    "load_checkpoint",
    "load_checkpoint_with_validation",
    "load_checkpoint_with_validation_view",
    "mkdir",
    "mkdir_async",
    "op_log_stats",
    "open_parquet",
    "open_writer",
    "parquet_cache_clear",
    "parquet_cache_invalidate",
    "parquet_cache_len",
    "parquet_get_rg",
    "parquet_rg_row_offsets",
    "parse_size",
    "parse_uri",
    "put",
    "put_bytes",
    "put_bytes_async",
    "put_many",
    "put_many_async",
    "read_npz",
    "read_parquet",
    "read_tfrecord_index",
    "register_backend",
    "save_checkpoint",
    "save_distributed_shard",
    "stat",
    "stat_async",
    "stat_many",
    "stat_many_async",
    "upload",
    "upload_async",
]
