"""The order of a streaming epoch, and how to stand anywhere in it again.

Everything here is a pure function of ``(seed, epoch, world layout, shard sizes)``, so every
rank and DataLoader worker computes its part alone, and a resume recomputes it exactly:

- :func:`assign_shards`: the epoch's shard order (``range(n)`` or a seeded permutation) dealt
  to ranks, then to each rank's workers, greedily by bytes: each shard goes, in order, to the
  slot holding the fewest bytes so far (ties to the lowest slot). Shard counts per slot differ
  by at most one when shards are of equal size; otherwise bytes (hence records, roughly) are
  balanced to within one shard.
- :class:`Draws` and :class:`ShuffleBuffer`: the seeded shuffle buffer. Records enter in file
  order; once ``size`` records are held, each new one replaces a held one chosen at random,
  which is emitted; at the end the rest are emitted in random order.
- :func:`replay`: where a worker's pipeline stands after it emitted ``n`` records (which
  records are held, in which slots, and which record enters next), computed from the shards'
  record counts alone, without reading any data.
- :func:`round_robin`: how many batches each DataLoader worker had delivered when the
  training loop had consumed ``k`` batches (the DataLoader takes batches from its workers in
  turn, skipping workers that ran out).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "Draws",
    "Replay",
    "ShuffleBuffer",
    "assign_shards",
    "epoch_order",
    "replay",
    "round_robin",
    "worker_seed",
]

#: A record's place in a worker's input: (position in the worker's shard list, record number).
Ordinal = tuple[int, int]
INFINITE = 1 << 62


def epoch_order(num_shards: int, *, shuffle: bool, seed: int, epoch: int) -> list[int]:
    """The shards' order for an epoch: ``range(n)``, or a permutation drawn from
    ``SeedSequence([seed, epoch])`` (the same as :func:`~s3dlio.datasets.sampling.global_order`)."""
    if not shuffle:
        return list(range(num_shards))
    entropy = [seed % (1 << 64), epoch % (1 << 64)]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
    return [int(i) for i in rng.permutation(num_shards)]


def _deal(items: Sequence[int], sizes: Sequence[int], slots: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(slots)]
    heap = [(0, slot) for slot in range(slots)]
    for item in items:
        load, slot = heapq.heappop(heap)
        out[slot].append(item)
        heapq.heappush(heap, (load + max(1, int(sizes[item])), slot))
    return out


def assign_shards(
    sizes: Sequence[int],
    order: Sequence[int],
    *,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
) -> list[int]:
    """The shards (indices into ``sizes``) one worker of one rank reads, in reading order."""
    mine = _deal(order, sizes, world_size)[rank]
    return _deal(mine, sizes, num_workers)[worker]


def worker_seed(
    seed: int, epoch: int, rank: int, world_size: int, worker: int, workers: int
) -> Any:
    """The entropy of one worker's shuffle buffer in one epoch."""
    return [seed % (1 << 64), epoch % (1 << 64), rank, world_size, worker, workers, 0x5EED]


class Draws:
    """A stream of uniform random indices, identical for a run and its replay.

    Args:
        entropy: Seed material (:func:`worker_seed`).
    """

    BLOCK = 4096

    def __init__(self, entropy: Any) -> None:
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
        self._block: list[float] = []
        self._at = 0

    def index(self, n: int) -> int:
        """A uniform index in ``range(n)``."""
        if self._at == len(self._block):
            self._block = self._rng.random(self.BLOCK).tolist()
            self._at = 0
        value = self._block[self._at]
        self._at += 1
        return int(value * n)


class ShuffleBuffer:
    """The seeded shuffle buffer (see the module docs).

    Args:
        size: Records held (0: no shuffling, records pass straight through).
        draws: The random indices.
        items: Records already held (a resumed buffer), in their slots.
    """

    def __init__(self, size: int, draws: Draws, items: list[Any] | None = None) -> None:
        self.size = size
        self.draws = draws
        self.items: list[Any] = items if items is not None else []

    def push(self, item: Any) -> tuple[bool, Any]:
        """Add ``item``; returns ``(True, record)`` when a record comes out, else ``(False, None)``."""
        if self.size == 0:
            return True, item
        items = self.items
        if len(items) < self.size:
            items.append(item)
            return False, None
        j = self.draws.index(self.size)
        out = items[j]
        items[j] = item
        return True, out

    def pop(self) -> tuple[bool, Any]:
        """At the end of the input: ``(True, record)`` while records are held."""
        items = self.items
        if not items:
            return False, None
        j = self.draws.index(len(items))
        out = items[j]
        items[j] = items[-1]
        items.pop()
        return True, out


class Replay:
    """Where a worker's pipeline stands after emitting some records.

    Attributes:
        held: The buffer's slots: the ordinal of the record each holds.
        next: The ordinal of the next record to enter the buffer (``None``: input exhausted).
        draws: The random stream, positioned where the run had it.
        emitted: Records emitted (fewer than asked when the input ran out first).
    """

    def __init__(
        self, held: list[Ordinal], nxt: Ordinal | None, draws: Draws, emitted: int
    ) -> None:
        self.held = held
        self.next = nxt
        self.draws = draws
        self.emitted = emitted


def _advance(at: Ordinal, counts: Sequence[int]) -> Ordinal | None:
    """The ordinal after ``at`` (shards of unknown count, ``-1``, are assumed to go on)."""
    shard, record = at[0], at[1] + 1
    while shard < len(counts) and 0 <= counts[shard] <= record:
        shard, record = shard + 1, 0
    return (shard, record) if shard < len(counts) else None


def _first(counts: Sequence[int]) -> Ordinal | None:
    return _advance((0, -1), counts)


def replay(counts: Sequence[int], emitted: int, size: int, draws: Draws) -> Replay:
    """The state of a worker's pipeline after it emitted ``emitted`` records.

    Args:
        counts: Records in each of the worker's shards, in reading order (``-1``: unknown,
            allowed for shards the run had not finished: the records it emitted came from
            records it had read, which exist).
        emitted: Records the worker had emitted.
        size: Shuffle buffer size.
        draws: A fresh random stream of the worker (advanced as the run advanced it).
    """
    held: list[Ordinal] = []
    nxt = _first(counts)
    out = 0
    if size == 0:
        while out < emitted and nxt is not None:
            nxt = _advance(nxt, counts)
            out += 1
        return Replay(held, nxt, draws, out)
    while out < emitted:
        if nxt is not None:
            if len(held) < size:
                held.append(nxt)
            else:
                held[draws.index(size)] = nxt
                out += 1
            nxt = _advance(nxt, counts)
        elif held:
            j = draws.index(len(held))
            held[j] = held[-1]
            held.pop()
            out += 1
        else:
            break
    return Replay(held, nxt, draws, out)


def round_robin(batches: int, lengths: Sequence[int]) -> tuple[list[int], int]:
    """Batches each worker had delivered when ``batches`` were consumed in turn.

    The DataLoader asks its workers for batches in turn (0, 1, ..., W-1, 0, ...) and skips a
    worker once it ran out, so the consumed batches are the first ``batches`` of the order
    ``(j, w)``: worker ``w``'s ``j``-th batch, for ``j < lengths[w]``.

    Args:
        batches: Batches consumed.
        lengths: Batches each worker yields in the pass (:data:`INFINITE` when unknown).

    Returns:
        ``(taken, last)``: batches taken from each worker, and the worker that delivered the
        last one (``-1`` when none was taken).
    """
    taken = [0] * len(lengths)
    left = batches
    last = -1
    active = [w for w in range(len(lengths)) if lengths[w] > 0]
    while left > 0 and active:
        least = min(lengths[w] - taken[w] for w in active)
        rounds = min(least, left // len(active))
        if rounds:
            for w in active:
                taken[w] += rounds
            left -= rounds * len(active)
            last = active[-1]
        if left and rounds < least:  # fewer than a round left
            for w in active[:left]:
                taken[w] += 1
            last = active[left - 1]
            left = 0
        active = [w for w in active if taken[w] < lengths[w]]
    return taken, last
