"""PyTorch datasets over any storage URI (:mod:`s3dlio.datasets.torch`); submodules add more.

Importing this module imports PyTorch; ``import s3dlio`` alone does not.
"""

from __future__ import annotations

from ..datasets.torch import *  # noqa: F403 - this module is the public name of that one
from ..datasets.torch import __all__ as __all__

#: Names loaded on first use (they need pyarrow, the 'parquet' extra).
_PARQUET = ("ParquetDataset", "ParquetRowDataset", "ParquetRowGroupDataset")


def __getattr__(name: str) -> object:
    if name in _PARQUET:
        from ..datasets import parquet_torch

        return getattr(parquet_torch, name)
    if name == "StreamingDataset":  # s3dlio.datasets.streaming's, an IterableDataset here
        from ..datasets.streaming import StreamingDataset

        return StreamingDataset
    raise AttributeError(f"module 's3dlio.torch' has no attribute {name!r}")
