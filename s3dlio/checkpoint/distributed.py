"""Distributed checkpoints: every rank writes its own shard, rank 0 commits the manifest.

Two ways to use it:

* Inside a ``torch.distributed`` job, :meth:`CheckpointWriter.save` does everything: rank 0
  picks the timestamp and broadcasts it, every rank streams its shard concurrently, the shard
  metadata is gathered, rank 0 commits, and every rank returns the manifest key (or raises if
  any rank failed, in which case nothing is committed).
* Without it (other launchers, or the original's API), each rank calls
  :meth:`CheckpointWriter.save_distributed_shard` (or streams with
  :meth:`~CheckpointWriter.get_distributed_shard_stream`), the caller moves the returned dicts
  to rank 0 by any means, and rank 0 calls :meth:`~CheckpointWriter.finalize_distributed_checkpoint`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidArgumentError, S3DlioError
from ..io import ops
from ..io.store import backend_for
from ..io.uri import ObjectURI
from .shards import ShardStream, write_shard
from .store import CheckpointStore

__all__ = [
    "CheckpointWriter",
    "dist_rank_world",
    "finalize_distributed_checkpoint",
    "save_distributed_shard",
]

log = logging.getLogger("s3dlio.checkpoint")


def dist_rank_world() -> tuple[int, int] | None:
    """``(rank, world_size)`` of an initialised ``torch.distributed`` group, else ``None``.

    Never imports torch: if the program has not imported it, there is no group.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist.get_rank(), dist.get_world_size()


class CheckpointWriter:
    """Rank ``rank``'s side of a checkpoint written by ``world_size`` ranks.

    Get one with :meth:`CheckpointStore.writer` (alias ``PyCheckpointWriter``).
    """

    def __init__(self, store: CheckpointStore, world_size: int, rank: int) -> None:
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise InvalidArgumentError(f"world_size must be an integer >= 1, got {world_size!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise InvalidArgumentError(f"rank must be in 0..{world_size - 1}, got {rank!r}")
        self.store = store
        self.world_size = world_size
        self.rank = rank
        self._timestamps: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<CheckpointWriter {self.store.uri} rank {self.rank}/{self.world_size}>"

    def _timestamp(self, step: int) -> str:
        ts = self._timestamps.get(step)
        if ts is None:
            ts = self._timestamps[step] = self.store.fresh_timestamp(step)
        return ts

    # -- explicit API (the original's) -------------------------------------------------------
    def get_distributed_shard_stream(self, step: int, epoch: int, framework: str) -> ShardStream:
        """A writable stream for this rank's shard; ``finalize()`` returns its metadata dict.

        Use it for shards larger than memory, or with ``torch.save(obj, stream)``.
        """
        return self.store.shard_stream(
            step, epoch, self.rank, self.world_size, self._timestamp(step)
        )

    def save_distributed_shard(
        self, step: int, epoch: int, framework: str, data: Any
    ) -> dict[str, Any]:
        """Store this rank's shard (bytes, or a tensor tree, streamed); return its metadata.

        The dict (``rank, key, size, etag, checksum, step, epoch, timestamp``) is what rank 0
        needs in :meth:`finalize_distributed_checkpoint`. Nothing is committed yet.
        """
        stream = self.get_distributed_shard_stream(step, epoch, framework)
        write_shard(stream, data)
        return stream.meta_dict()

    def finalize_distributed_checkpoint(
        self,
        step: int,
        epoch: int,
        framework: str,
        shard_metas: Iterable[Mapping[str, Any]],
        user_meta: Any = None,
    ) -> str | None:
        """Rank 0: commit the checkpoint from every rank's shard metadata.

        Returns:
            The manifest key on rank 0; ``None`` on other ranks, which commit nothing.

        Raises:
            IntegrityError: a rank is missing, or a shard is not stored as described.
        """
        if self.rank != 0:
            return None
        metas = list(shard_metas)
        ts = self._timestamps.get(step)
        return self.store.commit(step, epoch, framework, metas, self.world_size, user_meta, ts)

    # -- torch.distributed -------------------------------------------------------------------
    def save(self, step: int, epoch: int, framework: str, data: Any, user_meta: Any = None) -> str:
        """Collective save in a ``torch.distributed`` job: call it on every rank.

        Returns:
            The committed manifest key, on every rank.

        Raises:
            InvalidArgumentError: no initialised ``torch.distributed`` group of this world size.
            S3DlioError: some rank failed; nothing was committed.
        """
        current = dist_rank_world()
        if current != (self.rank, self.world_size):
            raise InvalidArgumentError(
                f"CheckpointWriter.save needs an initialised torch.distributed group with rank "
                f"{self.rank} of {self.world_size} (found {current}); use "
                "save_distributed_shard + finalize_distributed_checkpoint otherwise"
            )
        import torch.distributed as dist

        box = [self.store.fresh_timestamp(step) if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        self._timestamps[step] = str(box[0])
        try:
            payload: tuple[str, Any] = (
                "ok",
                self.save_distributed_shard(step, epoch, framework, data),
            )
            failure: BaseException | None = None
        except Exception as exc:  # noqa: BLE001 - reported to every rank below
            payload, failure = ("error", f"rank {self.rank}: {exc}"), exc
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, payload)
        errors = [msg for status, msg in gathered if status == "error"]
        if failure is not None:
            raise failure
        if errors:
            self._discard(payload[1])
            raise S3DlioError(
                "checkpoint not committed: " + "; ".join(errors),
                uri=self.store.uri,
                op="CHECKPOINT_SAVE",
            )
        result: list[Any] = [None]
        if self.rank == 0:
            try:
                key = self.finalize_distributed_checkpoint(
                    step, epoch, framework, [m for _, m in gathered], user_meta
                )
                result = [("ok", key)]
            except Exception as exc:  # noqa: BLE001 - every rank learns the outcome
                result = [("error", str(exc))]
                dist.broadcast_object_list(result, src=0)
                raise
        dist.broadcast_object_list(result, src=0)
        status, value = result[0]
        if status != "ok":
            raise S3DlioError(
                f"rank 0 failed to commit: {value}", uri=self.store.uri, op="CHECKPOINT_SAVE"
            )
        return str(value)

    def _discard(self, meta: Mapping[str, Any]) -> None:
        """Delete this rank's shard of a checkpoint that will never be committed."""
        uri = self.store.base.join(meta["key"])
        try:
            ops.delete(uri, missing_ok=True, client=self.store.client)
            backend_for(uri, self.store.client).remove_empty_dirs(
                uri.with_key(uri.key.rsplit("/", 1)[0] + "/")
            )
        except S3DlioError as exc:  # the next commit's sweep removes it anyway
            log.warning("could not delete uncommitted shard %s: %s", meta["key"], exc)


def save_distributed_shard(
    uri: str | ObjectURI,
    step: int,
    epoch: int,
    framework: str,
    data: Any,
    world_size: int,
    rank: int,
) -> dict[str, Any]:
    """Store rank ``rank``'s shard under ``uri``; return the metadata rank 0 needs."""
    return (
        CheckpointStore(uri)
        .writer(world_size, rank)
        .save_distributed_shard(step, epoch, framework, data)
    )


def finalize_distributed_checkpoint(
    uri: str | ObjectURI,
    step: int,
    epoch: int,
    framework: str,
    shard_metas: Iterable[Mapping[str, Any]],
    world_size: int,
    rank: int,
    user_meta: Any = None,
) -> str | None:
    """Rank 0 commits the checkpoint from every rank's metadata; other ranks do nothing."""
    return (
        CheckpointStore(uri)
        .writer(world_size, rank)
        .finalize_distributed_checkpoint(step, epoch, framework, shard_metas, user_meta)
    )
