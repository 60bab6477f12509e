"""One sharding, shuffling and resume mechanism for every dataset and loader.

The order of an epoch is a pure function of ``(seed, epoch, world layout)``:

1. The **global order** is ``range(n)``, or with ``shuffle`` a permutation drawn from
   ``SeedSequence([seed, epoch])``. Every rank computes the same one; nothing is exchanged.
2. Rank ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...`` of it: its **rank sequence**.
   The ranks together cover every item exactly once (counts differ by at most one).
3. Inside a rank, PyTorch ``DataLoader`` workers take the rank sequence in **blocks** of
   ``block_size`` items, round-robin (worker ``w`` takes blocks ``w, w + k, ...`` of ``k``
   workers). With ``block_size`` equal to the ``DataLoader``'s ``batch_size``, the
   ``DataLoader`` (which collects batches from workers round-robin) hands the training loop
   exactly the rank sequence, in order.

So what a rank has consumed is always a *prefix* of its rank sequence, and the resume state
is tiny: the epoch and how many items of the rank sequence were consumed. Restoring it yields
exactly the remaining items. If the world size changes between save and restore, the restore
continues from the global position ``samples_seen * old_world_size`` (exact when the ranks ran
in lockstep, as data-parallel training does).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError

__all__ = [
    "STATE_VERSION",
    "EpochSampler",
    "Resumable",
    "WorldLayout",
    "detect_rank_world",
    "detect_worker",
    "global_order",
]

#: Version of the dict :meth:`EpochSampler.state_dict` returns.
STATE_VERSION = 1


@dataclass(frozen=True)
class WorldLayout:
    """Where this iterator sits: rank of world, and DataLoader worker of workers.

    Attributes:
        rank: This process's rank.
        world_size: Number of ranks.
        worker_id: This DataLoader worker (0 when iterating in the main process).
        num_workers: DataLoader workers of this rank (1 in the main process).
    """

    rank: int = 0
    world_size: int = 1
    worker_id: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise InvalidArgumentError(
                f"rank {self.rank} of world_size {self.world_size} is invalid"
            )
        if self.num_workers < 1 or not 0 <= self.worker_id < self.num_workers:
            raise InvalidArgumentError(f"worker {self.worker_id} of {self.num_workers} is invalid")


def detect_rank_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """This process's ``(rank, world_size)``.

    Explicit values win; otherwise an initialised ``torch.distributed`` group, then JAX's
    ``process_index()``/``process_count()`` (when JAX is imported and runs more than one
    process), then the ``RANK``/``WORLD_SIZE`` variables ``torchrun`` sets, else ``(0, 1)``.
    Neither torch nor JAX is imported by this function.

    Raises:
        InvalidArgumentError: only one of ``rank``/``world_size`` given, or rank out of range.
    """
    if (rank is None) != (world_size is None):
        raise InvalidArgumentError("give both rank and world_size, or neither")
    if rank is None or world_size is None:
        rank, world_size = _torch_world() or _jax_world() or _env_world() or (0, 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise InvalidArgumentError(f"rank {rank} of world_size {world_size} is invalid")
    return rank, world_size


def _torch_world() -> tuple[int, int] | None:
    if "torch.distributed" not in sys.modules:
        return None
    dist = sys.modules["torch.distributed"]
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return None


def _jax_world() -> tuple[int, int] | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", lambda: True)()
    distributed = getattr(jax.distributed, "is_initialized", lambda: True)()
    if not (started or distributed):
        return None  # one process that has not used JAX yet: asking would start its runtime
    count = int(jax.process_count())
    return (int(jax.process_index()), count) if count > 1 else None


def _env_world() -> tuple[int, int] | None:
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None:
        return None
    try:
        return int(rank), int(world)
    except ValueError:
        raise InvalidArgumentError(
            f"RANK={rank!r} / WORLD_SIZE={world!r} are not integers"
        ) from None


def detect_worker() -> tuple[int, int]:
    """``(worker_id, num_workers)`` of the PyTorch DataLoader worker running us, else ``(0, 1)``."""
    data = sys.modules.get("torch.utils.data")
    if data is None:
        return 0, 1
    info = data.get_worker_info()
    if info is None:
        return 0, 1
    return int(info.id), int(info.num_workers)


def global_order(num_items: int, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The global visiting order of an epoch: ``range(n)`` or a seeded permutation.

    A pure function of its arguments, identical on every machine and NumPy version that keeps
    the PCG64 stream stable.
    """
    if not shuffle:
        return np.arange(num_items, dtype=np.int64)
    entropy = [seed % (1 << 64), epoch % (1 << 64)]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
    return rng.permutation(num_items).astype(np.int64, copy=False)


class EpochSampler:
    """Which items this process (and DataLoader worker) visits, in which order, from where.

    Args:
        num_items: Items in the dataset.
        shuffle: Shuffle each epoch.
        seed: Shuffle seed.
        rank: This rank (``None``: detected when iterating, see :func:`detect_rank_world`).
        world_size: Number of ranks (``None``: detected).
        block_size: Items per block when splitting across DataLoader workers; set it to the
            DataLoader's ``batch_size``.
        shard: ``False`` makes every rank and worker visit every item (no sharding).
    """

    def __init__(
        self,
        num_items: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        block_size: int = 1,
        shard: bool = True,
    ) -> None:
        if num_items < 0:
            raise InvalidArgumentError(f"num_items must be >= 0, got {num_items}")
        if block_size < 1:
            raise InvalidArgumentError(f"block_size must be >= 1, got {block_size}")
        if (rank is None) != (world_size is None):
            raise InvalidArgumentError("give both rank and world_size, or neither")
        if rank is not None and world_size is not None:
            detect_rank_world(rank, world_size)  # validates
        self.num_items = num_items
        self.shuffle = shuffle
        self.seed = int(seed)
        self.block_size = block_size
        self.shard = shard
        self._rank = rank
        self._world = world_size
        self._epoch = 0
        self._pending: dict[str, Any] | None = None  # a loaded state, applied at next iteration
        self._offset = 0  # global offset of the current pass
        self._seen = 0  # items of the rank sequence consumed in this pass (incl. skipped)

    # -- layout ------------------------------------------------------------------------------
    def layout(self) -> WorldLayout:
        """The layout iteration would use now (ranks and workers detected at call time)."""
        if not self.shard:
            return WorldLayout()
        rank, world = detect_rank_world(self._rank, self._world)
        worker, workers = detect_worker()
        return WorldLayout(rank, world, worker, workers)

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (a new order). Setting the current epoch again keeps a resume
        point loaded by :meth:`load_state_dict`, so ``load_state_dict`` then the usual
        ``set_epoch(e)`` at the top of the epoch loop resumes where the state says."""
        if epoch < 0:
            raise InvalidArgumentError(f"epoch must be >= 0, got {epoch}")
        if epoch != self._epoch:
            self._epoch = epoch
            self._pending = None
            self._offset = self._seen = 0

    # -- orders ------------------------------------------------------------------------------
    def rank_sequence(self, layout: WorldLayout | None = None, *, offset: int = 0) -> np.ndarray:
        """This rank's items for the epoch (from global position ``offset``), in order."""
        lay = layout or self.layout()
        order = global_order(
            self.num_items, shuffle=self.shuffle, seed=self.seed, epoch=self._epoch
        )
        return order[offset:][lay.rank :: lay.world_size]

    def __len__(self) -> int:
        """Items this rank visits in a whole epoch."""
        lay = self.layout()
        return len(range(lay.rank, self.num_items, lay.world_size))

    def begin(self) -> np.ndarray:
        """Start a pass: the dataset indices this worker delivers, in order.

        A resume point loaded by :meth:`load_state_dict` applies to this pass (and is then
        used up); otherwise the pass is the whole epoch. Call :meth:`advance` as items are
        delivered so that :meth:`state_dict` knows the position.
        """
        lay = self.layout()
        indices = self.indices_for(lay)
        self.set_position(*self.next_start(lay))
        return indices

    def indices_for(self, layout: WorldLayout) -> np.ndarray:
        """The indices the rank and worker of ``layout`` deliver in the next pass.

        A pure function of ``(seed, epoch, layout, resume point)``; changes nothing.
        """
        offset, skip = self.next_start(layout)
        rest = self.rank_sequence(layout, offset=offset)[skip:]
        if layout.num_workers == 1:
            return rest
        blocks = np.arange(len(rest)) // self.block_size
        return rest[blocks % layout.num_workers == layout.worker_id]

    def advance(self, count: int = 1) -> None:
        """Record that ``count`` more items were delivered to the consumer."""
        self._seen += count

    def __iter__(self) -> Iterator[int]:
        """Iterate :meth:`begin`'s indices, counting each as delivered when it is yielded."""
        for index in self.begin().tolist():
            self._seen += 1
            yield index

    # -- resume ------------------------------------------------------------------------------
    def position(self, layout: WorldLayout | None = None) -> tuple[int, int]:
        """``(global_offset, samples_seen)`` where the current pass stands.

        ``samples_seen`` counts items of this rank's sequence (from ``global_offset``) that
        were consumed, including those a resume skipped. Before a pass that will resume, it is
        the resume point.
        """
        if self._pending is None:
            return self._offset, self._seen
        return self.next_start(layout)

    def next_start(self, layout: WorldLayout | None = None) -> tuple[int, int]:
        """``(global_offset, samples_seen)`` where the next pass starts: the loaded resume
        point (resolved for ``layout``), else the start of the epoch."""
        state = self._pending
        if state is None:
            return 0, 0
        lay = layout or self.layout()
        offset, seen = int(state["global_offset"]), int(state["samples_seen"])
        if int(state["world_size"]) == lay.world_size and int(state["rank"]) == lay.rank:
            return offset, seen
        # Another layout: continue from the global position all ranks reached together.
        return min(self.num_items, offset + seen * int(state["world_size"])), 0

    def set_position(self, global_offset: int, samples_seen: int) -> None:
        """Make the current pass stand at this position (a loaded resume point is used up)."""
        self._pending = None
        self._offset, self._seen = int(global_offset), int(samples_seen)

    def sequence_length(self, global_offset: int = 0, layout: WorldLayout | None = None) -> int:
        """Length of this rank's sequence from ``global_offset``."""
        lay = layout or self.layout()
        return len(range(lay.rank, max(0, self.num_items - global_offset), lay.world_size))

    def remaining(self) -> int:
        """Items of this rank's sequence not yet consumed in the current pass."""
        offset, seen = self.position()
        return max(0, self.sequence_length(offset) - seen)

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """A small, picklable, versioned dict describing the position in the epoch.

        Args:
            samples_seen: Items of this rank consumed in this epoch, counted by the training
                loop (needed when iteration ran in DataLoader worker processes, whose progress
                this object cannot see; :class:`s3dlio.torch.ResumableDataLoader` does this
                for you). ``None`` uses the count of items delivered in this process.
        """
        lay = self.layout()
        offset, seen = self.position(lay)
        return {
            "version": STATE_VERSION,
            "num_items": self.num_items,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "epoch": self._epoch,
            "rank": lay.rank,
            "world_size": lay.world_size,
            "global_offset": offset,
            "samples_seen": seen if samples_seen is None else int(samples_seen),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s output: the next pass yields exactly what remains.

        Raises:
            InvalidArgumentError: the state is of an unknown version or of a dataset of another size.
        """
        version = state.get("version")
        if version != STATE_VERSION:
            raise InvalidArgumentError(f"unsupported sampler state version {version!r}")
        if int(state["num_items"]) != self.num_items:
            raise InvalidArgumentError(
                f"the state is of a dataset of {state['num_items']} items, this one has "
                f"{self.num_items}"
            )
        if int(state["samples_seen"]) < 0 or int(state["global_offset"]) < 0:
            raise InvalidArgumentError("negative position in sampler state")
        self.shuffle = bool(state["shuffle"])
        self.seed = int(state["seed"])
        self._epoch = int(state["epoch"])
        self._pending = dict(state)

    def __repr__(self) -> str:
        return (
            f"EpochSampler(num_items={self.num_items}, shuffle={self.shuffle}, seed={self.seed}, "
            f"epoch={self._epoch})"
        )


class Resumable:
    """``set_epoch``, ``state_dict`` and ``load_state_dict`` for a reader whose order is an
    :class:`EpochSampler`'s (the one :meth:`_epoch_sampler` returns).

    Mixed into the loader, the datasets, the JAX iterable and the samplers, so that every one
    of them resumes the same way.
    """

    def _epoch_sampler(self) -> EpochSampler:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Use the order (shuffle) of ``epoch`` from the next pass on; call it before each
        epoch."""
        self._epoch_sampler().set_epoch(epoch)

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """The resume state: a small, picklable dict (see :meth:`EpochSampler.state_dict`).

        Args:
            samples_seen: Items of this rank the training loop consumed this epoch. Needed
                when items were drawn ahead of the loop (DataLoader workers or prefetch);
                :class:`s3dlio.torch.ResumableDataLoader` counts them for you. ``None``: the
                items delivered so far.
        """
        return self._epoch_sampler().state_dict(samples_seen)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass yield exactly the items the state had not delivered."""
        self._epoch_sampler().load_state_dict(state)
