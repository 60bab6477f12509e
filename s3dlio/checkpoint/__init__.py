"""Checkpoints on any backend: atomic commits, CRC32C-verified loads, distributed shards.

The on-store layout is the original s3dlio's (see :mod:`s3dlio.checkpoint.manifest`), so
checkpoints move between the two in both directions. Quick tour::

    from s3dlio.checkpoint import CheckpointStore
    store = CheckpointStore("s3://bucket/run1/", keep_last=3)
    store.save(step, epoch, "torch", model.state_dict(), user_meta={"loss": 0.1})
    state = store.load_latest()                      # the state_dict, CRC32C-verified

Importing this package imports neither torch nor jax.
"""

from __future__ import annotations

from .config import CheckpointConfig
from .distributed import (
    CheckpointWriter,
    finalize_distributed_checkpoint,
    save_distributed_shard,
)
from .functions import (
    load_checkpoint,
    load_checkpoint_with_validation,
    load_checkpoint_with_validation_view,
    save_checkpoint,
)
from .manifest import CheckpointInfo, Latest, Manifest, ShardMeta
from .shards import ShardStream
from .store import CheckpointReader, CheckpointStore

__all__ = [
    "CheckpointConfig",
    "CheckpointInfo",
    "CheckpointReader",
    "CheckpointStore",
    "CheckpointWriter",
    "Latest",
    "Manifest",
    "ShardMeta",
    "ShardStream",
    "finalize_distributed_checkpoint",
    "load_checkpoint",
    "load_checkpoint_with_validation",
    "load_checkpoint_with_validation_view",
    "save_checkpoint",
    "save_distributed_shard",
]
