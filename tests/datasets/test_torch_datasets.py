"""PyTorch datasets with DataLoader workers (fork, spawn, forkserver), ranks and resume."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest
import torch
from conftest import ident, payload
from torch.utils.data import DataLoader

import s3dlio
from s3dlio.torch import (
    BufferReader,
    ObjectStoreIterableDataset,
    ObjectStoreMapDataset,
    ResumableDataLoader,
    S3IterableDataset,
    S3MapDataset,
    ShardedSampler,
    as_tensor,
)
from tests.servers.common import free_port

# JAX, once another test has started its runtime in this process, warns at every fork; the
# DataLoader workers forked here never use JAX.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


def ids(batches: Any) -> list[int]:
    return [ident(item) for batch in batches for item in batch]


def loader(
    dataset: Any,
    context: str = "fork",
    workers: int = 2,
    batch: int = 4,
    cls: type = DataLoader,
    **kw: Any,
) -> Any:
    return cls(
        dataset,
        batch_size=batch,
        num_workers=workers,
        collate_fn=list,
        multiprocessing_context=context if workers else None,
        **kw,
    )


def test_items_are_zero_copy_uint8_tensors_and_transforms_apply(objects):
    prefix, n = objects
    ds = S3MapDataset.from_prefix(prefix)
    item = ds[3]
    assert item.dtype == torch.uint8 and item.shape == (len(payload(3)),)
    assert bytes(item.numpy()) == payload(3)
    view = s3dlio.get(f"{prefix}obj-00002.bin")
    tensor = as_tensor(view)
    tensor[8] = 255
    assert view[8] == 255  # the tensor is the fetched buffer
    assert S3MapDataset(prefix, return_type="bytes")[1] == payload(1)
    assert S3MapDataset(prefix, return_type="view")[1] == payload(1)
    with S3MapDataset(prefix, return_type="reader")[1] as reader:
        assert isinstance(reader, BufferReader) and reader.read(8) + reader.read() == payload(1)
    doubled = S3MapDataset(prefix, transform=lambda t: t.to(torch.int32) * 2)[4]
    assert doubled.dtype == torch.int32 and int(doubled[8]) == 8
    assert len(ds) == n and ds.keys()[0] == "obj-00000.bin"
    assert ObjectStoreMapDataset is S3MapDataset and ObjectStoreIterableDataset is S3IterableDataset
    with pytest.raises(ValueError):
        S3MapDataset(prefix, return_type="nope")


def test_fork_workers_see_every_object_once_in_rank_order(objects):
    prefix, n = objects
    ds = S3IterableDataset.from_prefix(
        prefix, shuffle=True, seed=1, batch_size=4, reader_mode="range", part_size=4096
    )
    got = ids(loader(ds))
    assert sorted(got) == list(range(n))
    assert got == ds.sampler.rank_sequence().tolist()  # blocks of batch_size keep the order


def test_spawn_workers_see_every_object_once(local_objects):
    prefix, n = local_objects
    ds = S3IterableDataset.from_prefix(prefix, shuffle=True, seed=2, batch_size=4)
    got = ids(loader(ds, "spawn"))
    assert sorted(got) == list(range(n))


def test_forkserver_map_dataset_with_sharded_samplers(local_objects):
    prefix, n = local_objects
    # Workers fork from a server that imported torch once (instead of importing it each).
    mp.get_context("forkserver").set_forkserver_preload(["torch", "s3dlio.datasets.torch"])
    ds = S3MapDataset(prefix)
    seen = []
    for rank in range(2):
        sampler = ds.sampler(shuffle=True, seed=3, rank=rank, world_size=2)
        seen.append(ids(loader(ds, "forkserver", sampler=sampler)))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(n))


def test_two_ranks_times_two_workers_cover_everything_without_overlap(local_objects):
    prefix, n = local_objects
    per_rank = []
    for rank in range(2):
        ds = S3IterableDataset.from_prefix(
            prefix, shuffle=True, seed=4, rank=rank, world_size=2, batch_size=3
        )
        ds.set_epoch(1)
        per_rank.append(ids(loader(ds, batch=3)))
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(n))
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1


def _distributed_rank(rank: int, port: int, prefix: str, out: Any) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ds = S3IterableDataset.from_prefix(prefix, shuffle=True, seed=6, batch_size=2)
        layout = ds.sampler.layout()
        got = ids(loader(ds, batch=2))
        gathered: list[Any] = [None, None]
        dist.all_gather_object(gathered, got)
        out.put((rank, layout.rank, layout.world_size, got, gathered))
    finally:
        dist.destroy_process_group()


def test_torch_distributed_gloo_group_shards_by_rank(local_objects):
    prefix, n = local_objects
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_distributed_rank, args=(r, port, prefix, out)) for r in range(2)]
    for proc in procs:
        proc.start()
    results = sorted(out.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    (r0, lr0, w0, got0, gathered), (r1, lr1, w1, got1, _) = results
    assert (lr0, w0, lr1, w1) == (0, 2, 1, 2)
    assert not set(got0) & set(got1)
    assert sorted(got0 + got1) == list(range(n))
    assert gathered == [got0, got1]


@pytest.mark.parametrize("cut", [0, 1, 3, 5])
def test_resumable_data_loader_resumes_exactly(local_objects, cut):
    prefix, _ = local_objects

    def dataset() -> S3IterableDataset:
        return S3IterableDataset.from_prefix(prefix, shuffle=True, seed=8, rank=1, world_size=2)

    full = ids(loader(dataset(), cls=ResumableDataLoader))
    assert len(full) == 20
    dl = loader(dataset(), cls=ResumableDataLoader)
    batches = iter(dl)
    first = ids(next(batches) for _ in range(cut))
    state = dl.state_dict()
    assert state["samples_seen"] == len(first) and state["epoch"] == 0
    del batches
    again = loader(dataset(), cls=ResumableDataLoader)
    again.load_state_dict(state)
    again.set_epoch(0)
    assert first + ids(again) == full


def test_resumable_data_loader_with_a_map_dataset(local_objects):
    prefix, n = local_objects
    ds = S3MapDataset(prefix)
    sampler = ShardedSampler(ds, shuffle=True, seed=9)
    dl = loader(ds, sampler=sampler, cls=ResumableDataLoader)
    batches = iter(dl)
    first = ids(next(batches) for _ in range(3))
    state = dl.state_dict()
    del batches
    sampler2 = ShardedSampler(ds)
    again = loader(ds, sampler=sampler2, cls=ResumableDataLoader)
    again.load_state_dict(state)
    rest = ids(again)
    assert (
        first + rest
        == ShardedSampler(ds, shuffle=True, seed=9).epoch_sampler.rank_sequence().tolist()
    )
    assert len(first + rest) == n


def test_in_process_iteration_state_dict(local_objects):
    prefix, n = local_objects
    ds = S3IterableDataset.from_prefix(prefix, shuffle=True, seed=10)
    stream = iter(ds)
    first = [ident(next(stream)) for _ in range(7)]
    state = ds.state_dict()
    stream.close()
    other = S3IterableDataset.from_prefix(prefix)
    other.load_state_dict(state)
    assert first + [ident(t) for t in other] == ds.sampler.rank_sequence().tolist()
    assert len(ds) == n
    assert ds.tuning.inflight >= 1


def test_map_dataset_keeps_loader_opts_unless_a_keyword_overrides(objects):
    prefix, _ = objects
    ds = S3MapDataset(prefix, loader_opts={"reader_mode": "range", "part_size": "1MiB"})
    assert (ds.options.reader_mode, ds.options.part_size) == ("range", 1 << 20)
    assert bytes(ds[2].numpy()) == payload(2)
    ds = S3MapDataset(prefix, loader_opts={"reader_mode": "range"}, reader_mode="sequential")
    assert ds.options.reader_mode == "sequential"
    assert S3MapDataset(prefix).options.part_size == 8 << 20
