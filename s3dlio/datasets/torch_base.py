"""The PyTorch building blocks the torch datasets share: the import (with the extra to install
when it is missing), zero-copy tensors over buffers, and the rank-sharded sampler.

Kept apart from :mod:`s3dlio.datasets.torch` so that the format datasets
(:mod:`~s3dlio.datasets.records`, :mod:`~s3dlio.datasets.parquet_torch`) and the object
datasets import them without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

try:
    import torch
    from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "s3dlio.torch needs PyTorch; install it with: pip install 's3dlio[torch]'", name="torch"
    ) from exc

from .sampling import EpochSampler, Resumable

__all__ = [
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "Sampler",
    "ShardedSampler",
    "as_tensor",
    "torch",
]


def as_tensor(data: Any) -> torch.Tensor:
    """A 1-D ``uint8`` tensor over a writable buffer, without copying (empty buffers too)."""
    if len(data) == 0:
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(data, dtype=torch.uint8)


class ShardedSampler(Resumable, Sampler[int]):
    """Indices for this rank (``torch.distributed`` / explicit), shuffled per epoch, resumable.

    The map-style counterpart of the iterable dataset's sharding: the same
    :class:`~s3dlio.datasets.sampling.EpochSampler`, so orders agree.

    Args:
        data_source: A sized dataset, or the number of items.
        shuffle: Shuffle each epoch (a pure function of ``seed`` and the epoch).
        seed: Shuffle seed.
        rank: This rank (``None``: detected).
        world_size: Number of ranks (``None``: detected).
    """

    def __init__(
        self,
        data_source: Any,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        n = data_source if isinstance(data_source, int) else len(data_source)
        self.epoch_sampler = EpochSampler(
            n, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_sampler)

    def __len__(self) -> int:
        return len(self.epoch_sampler)

    def _epoch_sampler(self) -> EpochSampler:
        return self.epoch_sampler
