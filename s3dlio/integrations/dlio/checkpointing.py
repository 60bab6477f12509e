"""DLIO's checkpoint workload through s3dlio.

DLIO's checkpoint mechanism saves model, optimizer and layer states under
``checkpoint_folder`` (``<folder>/<name>.<ext>``, one per state). Here each state is written
to that name on any backend:

* PyTorch (``pt_save``, and newer DLIO's ``pt_s3_save``): with DCP through
  :mod:`s3dlio.torch.dcp` (the name is a DCP checkpoint "directory": one shard object plus
  ``.metadata``), or, with ``S3DLIO_DLIO_CHECKPOINT=store``, through
  :class:`~s3dlio.checkpoint.CheckpointStore` (manifest + shard, the original s3dlio's layout);
* TensorFlow (``tf_save``): the tensors as NumPy arrays through the checkpoint store.

Newer DLIO also restores checkpoints (``load_state``): the same paths read them back.

Importing this module imports DLIO (and torch or TensorFlow, as DLIO's mechanism does).
"""

from __future__ import annotations

import os
from typing import Any

from ...checkpoint import CheckpointStore
from ...client import Client, default_client
from ...errors import NotFoundError
from .storage import context, io_uri, resolve

__all__ = ["checkpointing_class", "mode"]


def mode() -> str:
    """``"dcp"`` or ``"store"`` (``S3DLIO_DLIO_CHECKPOINT``), for PyTorch workloads."""
    value = os.environ.get("S3DLIO_DLIO_CHECKPOINT", "dcp").strip().lower()
    return value if value in ("dcp", "store") else "dcp"


class _Through:
    args: Any

    def _client(self) -> Client:
        return context(self.args)[0] or default_client()

    def _target(self, suffix: str) -> str:
        return io_uri(resolve(self.args, self.get_name(suffix)))  # type: ignore[attr-defined]

    def _store_save(self, suffix: str, state: Any) -> None:
        CheckpointStore(self._target(suffix), client=self._client()).save(
            0, 0, self.framework_name, state
        )

    def _store_load(self, suffix: str) -> Any:
        target = self._target(suffix)
        loaded = CheckpointStore(target, client=self._client()).load_latest()
        if loaded is None:
            raise NotFoundError("no committed checkpoint", uri=target, op="GET")
        return loaded

    framework_name = "torch"


def _torch_class() -> type:
    from dlio_benchmark.checkpointing.pytorch_checkpointing import PyTorchCheckpointing

    from ...torch import dcp

    class S3dlioTorchCheckpointing(_Through, PyTorchCheckpointing):
        """DLIO's PyTorch checkpointing, each state saved with DCP (or the checkpoint store)."""

        _instance: Any = None

        @staticmethod
        def get_instance() -> Any:
            """DLIO's singleton access."""
            if S3dlioTorchCheckpointing._instance is None:
                S3dlioTorchCheckpointing._instance = S3dlioTorchCheckpointing()
            return S3dlioTorchCheckpointing._instance

        def save_state(self, suffix: str, state: Any, fsync: bool = False) -> None:
            """Write one state under ``checkpoint_folder``."""
            if mode() == "store":
                self._store_save(suffix, state)
            else:
                dcp.save(state, self._target(suffix), client=self._client())

        def load_state(self, suffix: str, state: Any) -> None:
            """Read one state back (newer DLIO's restart workload)."""
            if mode() == "store":
                self._store_load(suffix)
            else:
                dcp.load(state, self._target(suffix), client=self._client())

    return S3dlioTorchCheckpointing


def _numpy_tree(state: Any) -> Any:
    if isinstance(state, dict):
        return {str(k): _numpy_tree(v) for k, v in state.items()}
    return state.numpy() if hasattr(state, "numpy") else state


def _tf_class() -> type:
    from dlio_benchmark.checkpointing.tf_checkpointing import TFCheckpointing

    class S3dlioTFCheckpointing(_Through, TFCheckpointing):
        """DLIO's TensorFlow checkpointing, each state saved as NumPy through the store."""

        _instance: Any = None
        framework_name = "tensorflow"

        @staticmethod
        def get_instance() -> Any:
            """DLIO's singleton access."""
            if S3dlioTFCheckpointing._instance is None:
                S3dlioTFCheckpointing._instance = S3dlioTFCheckpointing()
            return S3dlioTFCheckpointing._instance

        def save_state(self, suffix: str, state: Any, fsync: bool = False) -> None:
            """Write one state under ``checkpoint_folder``."""
            self._store_save(suffix, _numpy_tree(state))

        def load_state(self, suffix: str, state: Any) -> None:
            """Read one state back (newer DLIO's restart workload)."""
            self._store_load(suffix)

    return S3dlioTFCheckpointing


def checkpointing_class(mechanism: Any) -> type | None:
    """The s3dlio checkpointing for DLIO's mechanism, or ``None`` (DLIO's own is kept)."""
    name = str(getattr(mechanism, "value", mechanism)).lower()
    if name in ("pt_save", "pt_s3_save"):
        return _torch_class()
    if name == "tf_save":
        return _tf_class()
    return None
