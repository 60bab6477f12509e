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
from .checkpoint import (
    CheckpointConfig,
    CheckpointStore,
    PyCheckpointInfo,
    PyCheckpointReader,
    PyCheckpointStore,
    PyCheckpointWriter,
    finalize_distributed_checkpoint,
    load_checkpoint,
    load_checkpoint_with_validation,
    load_checkpoint_with_validation_view,
    save_checkpoint,
    save_distributed_shard,
)
from .datasets import (
    CancellationToken,
    LoaderOptions,
    PyLoaderOptions,
    create_async_loader,
    create_dataset,
)
from .errors import (
    BatchError,
    CancelledError,
    IntegrityError,
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
from .formats.generate import put
from .formats.npz import generate_npz_bytes, read_npz
from .formats.tfrecord_index import (
    create_tfrecord_index,
    get_tfrecord_index_entries,
    index_tfrecord_bytes,
    read_tfrecord_index,
)
from .io.backends.s3 import configure_s3
from .io.buffers import BytesView
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

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "BytesView",
    "CancellationToken",
    "CancelledError",
    "CheckpointConfig",
    "CheckpointStore",
    "Generator",
    "IntegrityError",
    "InvalidURIError",
    "IsDirectoryError",
    "LoaderOptions",
    "NotFoundError",
    "ObjectMeta",
    "ObjectStore",
    "ObjectURI",
    "ObjectWriter",
    "OperationTimeoutError",
    "PermissionDeniedError",
    "PyCheckpointInfo",
    "PyCheckpointReader",
    "PyCheckpointStore",
    "PyCheckpointWriter",
    "PyLoaderOptions",
    "PyWriterOptions",
    "RangeEngineConfig",
    "RetryConfig",
    "S3DlioError",
    "Settings",
    "ThrottledError",
    "TransientError",
    "UnsupportedOperationError",
    "WriterOptions",
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
    "generate_data",
    "generate_into_buffer",
    "generate_npz_bytes",
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
    "open_writer",
    "parse_size",
    "parse_uri",
    "put",
    "put_bytes",
    "put_bytes_async",
    "put_many",
    "put_many_async",
    "read_npz",
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


#: Names of the original's top level that live in modules importing PyTorch or JAX: resolved on
#: first access, so ``import s3dlio`` imports neither.
_LAZY = {
    "ObjectStoreIterableDataset": "torch",
    "ObjectStoreMapDataset": "torch",
    "S3IterableDataset": "torch",
    "S3MapDataset": "torch",
    "JaxIterable": "jax",
    "S3JaxIterable": "jax",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
