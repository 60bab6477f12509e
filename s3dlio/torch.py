"""PyTorch datasets over any storage URI: see :mod:`s3dlio.datasets.torch`.

Importing this module imports PyTorch; ``import s3dlio`` alone does not.
"""

from __future__ import annotations

from .datasets.torch import (
    BufferReader,
    HDF5Dataset,
    NPZDataset,
    ObjectStoreIterableDataset,
    ObjectStoreMapDataset,
    ResumableDataLoader,
    S3IterableDataset,
    S3MapDataset,
    ShardedSampler,
    TFRecordDataset,
    as_tensor,
)

__all__ = [
    "BufferReader",
    "HDF5Dataset",
    "NPZDataset",
    "ObjectStoreIterableDataset",
    "ObjectStoreMapDataset",
    "ResumableDataLoader",
    "S3IterableDataset",
    "S3MapDataset",
    "ShardedSampler",
    "TFRecordDataset",
    "as_tensor",
]
