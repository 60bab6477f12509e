"""Datasets and loaders over any storage URI.

Importing this package imports neither PyTorch nor JAX; their datasets live in
:mod:`s3dlio.torch` and :mod:`s3dlio.jax`.
"""

from __future__ import annotations

from .cancel import CancellationToken
from .dataset import ObjectDataset, create_dataset
from .loader import AsyncLoader, LoaderItem, LoaderIterator, create_async_loader
from .options import LoaderOptions, PyLoaderOptions
from .sampling import EpochSampler, WorldLayout, detect_rank_world, detect_worker
from .tuning import AdaptiveTuner, Probe, TuningState

__all__ = [
    "AdaptiveTuner",
    "AsyncLoader",
    "CancellationToken",
    "EpochSampler",
    "LoaderItem",
    "LoaderIterator",
    "LoaderOptions",
    "ObjectDataset",
    "Probe",
    "PyLoaderOptions",
    "TuningState",
    "WorldLayout",
    "create_async_loader",
    "create_dataset",
    "detect_rank_world",
    "detect_worker",
]
