"""The one sharding / shuffling / resume mechanism: exact coverage, pure orders, exact resume."""

from __future__ import annotations

import pickle
from itertools import islice

import numpy as np
import pytest

from s3dlio.datasets.sampling import (
    STATE_VERSION,
    EpochSampler,
    WorldLayout,
    detect_rank_world,
    global_order,
)
from s3dlio.errors import InvalidArgumentError


def all_layout_indices(sampler: EpochSampler, world: int, workers: int) -> list[list[int]]:
    return [
        sampler.indices_for(WorldLayout(rank, world, worker, workers)).tolist()
        for rank in range(world)
        for worker in range(workers)
    ]


@pytest.mark.parametrize("n", [0, 1, 7, 23, 100])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("block", [1, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_item_exactly_once_across_ranks_and_workers(n, world, workers, block, shuffle):
    sampler = EpochSampler(n, shuffle=shuffle, seed=5, block_size=block)
    parts = all_layout_indices(sampler, world, workers)
    flat = [i for part in parts for i in part]
    assert sorted(flat) == list(range(n))
    # Ranks differ by at most one item.
    per_rank = [sum(len(parts[r * workers + w]) for w in range(workers)) for r in range(world)]
    assert max(per_rank, default=0) - min(per_rank, default=0) <= 1


@pytest.mark.parametrize("workers", [2, 3])
def test_round_robin_blocks_of_workers_rebuild_the_rank_sequence(workers):
    """What a DataLoader delivers (batches of B from workers in turn) is the rank sequence."""
    block = 4
    sampler = EpochSampler(50, shuffle=True, seed=1, block_size=block)
    layout = WorldLayout(1, 2)
    per_worker = [
        sampler.indices_for(WorldLayout(1, 2, w, workers)).tolist() for w in range(workers)
    ]
    batches = [[part[i : i + block] for i in range(0, len(part), block)] for part in per_worker]
    merged = []
    for round_ in range(max(len(b) for b in batches)):
        for worker_batches in batches:
            if round_ < len(worker_batches):
                merged += worker_batches[round_]
    assert merged == sampler.rank_sequence(layout).tolist()


def test_order_is_a_pure_function_of_seed_and_epoch():
    a = global_order(1000, shuffle=True, seed=7, epoch=3)
    b = EpochSampler(1000, shuffle=True, seed=7)
    b.set_epoch(3)
    assert a.tolist() == b.rank_sequence(WorldLayout()).tolist()
    assert sorted(a.tolist()) == list(range(1000))
    assert a.tolist() != global_order(1000, shuffle=True, seed=7, epoch=4).tolist()
    assert a.tolist() != global_order(1000, shuffle=True, seed=8, epoch=3).tolist()
    assert global_order(5, shuffle=False, seed=7, epoch=3).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("cut", [0, 1, 17, 29, 30])
def test_resume_in_process_yields_exactly_the_remaining_items(cut):
    full = list(EpochSampler(60, shuffle=True, seed=9, rank=1, world_size=2))
    sampler = EpochSampler(60, shuffle=True, seed=9, rank=1, world_size=2)
    first = list(islice(iter(sampler), cut))
    state = pickle.loads(pickle.dumps(sampler.state_dict()))
    assert state["version"] == STATE_VERSION and state["samples_seen"] == cut
    restored = EpochSampler(60, rank=1, world_size=2)  # seed and shuffle come from the state
    restored.load_state_dict(state)
    restored.set_epoch(0)  # the usual top-of-epoch call keeps the resume point
    assert first + list(restored) == full
    assert list(restored) == full  # the resume point applies to one pass only


def test_resume_across_epochs_and_set_epoch():
    sampler = EpochSampler(30, shuffle=True, seed=2)
    sampler.set_epoch(4)
    first = list(islice(iter(sampler), 10))
    state = sampler.state_dict()
    assert state["epoch"] == 4
    other = EpochSampler(30, shuffle=True, seed=2)
    other.load_state_dict(state)
    rest = list(other)
    assert first + rest == global_order(30, shuffle=True, seed=2, epoch=4).tolist()
    other.load_state_dict(state)
    other.set_epoch(5)  # a new epoch drops the resume point
    assert list(other) == global_order(30, shuffle=True, seed=2, epoch=5).tolist()


def test_resume_with_a_different_world_size_continues_from_the_global_position():
    n, seen = 47, 9
    olds = [EpochSampler(n, shuffle=True, seed=4, rank=r, world_size=2) for r in range(2)]
    consumed = []
    for sampler in olds:
        consumed += list(islice(iter(sampler), seen))
    state = olds[0].state_dict()
    rest = []
    for rank in range(3):
        new = EpochSampler(n, rank=rank, world_size=3)
        new.load_state_dict(state)
        rest += list(new)
    assert sorted(consumed + rest) == list(range(n))


def test_samples_seen_from_the_training_loop_overrides_the_local_count():
    sampler = EpochSampler(20)
    state = sampler.state_dict(samples_seen=12)
    other = EpochSampler(20)
    other.load_state_dict(state)
    assert list(other) == list(range(12, 20))
    assert other.remaining() == 0
    assert list(other) == list(range(20))


def test_bad_states_are_refused():
    sampler = EpochSampler(10)
    state = sampler.state_dict()
    with pytest.raises(InvalidArgumentError, match="version"):
        sampler.load_state_dict({**state, "version": 99})
    with pytest.raises(InvalidArgumentError, match="10 items"):
        EpochSampler(11).load_state_dict(state)


def test_rank_detection(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert detect_rank_world(2, 4) == (2, 4)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert detect_rank_world() == (1, 3)
    assert EpochSampler(9).layout().world_size == 3
    with pytest.raises(InvalidArgumentError):
        detect_rank_world(rank=1)
    with pytest.raises(InvalidArgumentError):
        detect_rank_world(3, 3)


def test_no_sharding_gives_everything_to_everyone(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert list(EpochSampler(5, shard=False)) == [0, 1, 2, 3, 4]
    assert len(EpochSampler(5)) == 2


def test_global_order_dtype():
    assert global_order(3, shuffle=True, seed=0, epoch=0).dtype == np.int64
