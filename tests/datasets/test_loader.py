"""create_dataset / create_async_loader over every backend: order, batches, range mode,
bounded prefetch, errors, resume, options."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import pytest
from conftest import ident, payload, populate

import s3dlio
from s3dlio import LoaderOptions, PyLoaderOptions, create_async_loader, create_dataset
from s3dlio.errors import InvalidArgumentError, NotFoundError, OperationTimeoutError


def test_dataset_lists_in_key_order_and_fetches_by_index(objects):
    prefix, n = objects
    ds = create_dataset(prefix)
    assert len(ds) == n
    assert ds.keys() == [f"obj-{i:05d}.bin" for i in range(n)]
    assert ds.uris()[3] == f"{prefix}obj-00003.bin"
    assert ds[5] == payload(5)
    assert ds.get_item(-1) == payload(n - 1)
    assert ds.size_of(2) == len(payload(2))
    with pytest.raises(IndexError):
        ds[n]


def test_dataset_from_uris_keeps_the_given_order(objects):
    prefix, _ = objects
    uris = [f"{prefix}obj-{i:05d}.bin" for i in (4, 1, 3)]
    ds = s3dlio.datasets.ObjectDataset.from_uris(uris)
    assert [ident(ds[i]) for i in range(3)] == [4, 1, 3]


def test_empty_prefix_is_not_found(store_root):
    with pytest.raises(NotFoundError):
        create_dataset(store_root + "nothing-here/")


def test_sync_iteration_yields_every_object_in_order(objects):
    prefix, n = objects
    loader = create_async_loader(prefix, {"prefetch": 4})
    items = list(loader)
    assert [ident(v) for v in items] == list(range(n))
    assert all(v == payload(i) for i, v in enumerate(items))
    assert isinstance(items[0], s3dlio.BytesView)


@pytest.mark.parametrize("mode", ["sequential", "range"])
def test_shuffled_completion_order_covers_everything_once(local_objects, mode):
    prefix, n = local_objects
    opts = LoaderOptions(
        shuffle=True, seed=3, ordered=False, prefetch=6, reader_mode=mode, part_size=4096
    )
    loader = create_async_loader(prefix, opts)
    got = [ident(v) for v in loader]
    assert sorted(got) == list(range(n))


def test_async_for_yields_batches(objects):
    prefix, n = objects

    async def batches(drop_last: bool) -> list[list[int]]:
        opts = LoaderOptions(batch_size=5, drop_last=drop_last)
        async with create_async_loader(prefix, opts) as loader:
            return [[ident(v) for v in batch] async for batch in loader]

    kept = asyncio.run(batches(False))
    assert [len(b) for b in kept] == [5] * (n // 5) + ([n % 5] if n % 5 else [])
    assert sum(kept, []) == list(range(n))
    dropped = asyncio.run(batches(True))
    assert [len(b) for b in dropped] == [5] * (n // 5)


def test_range_mode_reads_exact_bytes_with_part_size_requests(store_root):
    sizes = [0, 1, 4096, 4097, 70_000, 200_003]
    root = store_root + "r/"
    blobs = {f"{root}o{i}": s3dlio.generate_data(size, seed=i) for i, size in enumerate(sizes)}
    s3dlio.put_many(blobs)
    opts = LoaderOptions(reader_mode="range", part_size=16384, max_inflight_parts=3, prefetch=3)
    passage = iter(create_async_loader(root, opts))
    got = list(passage)
    assert [bytes(v) for v in got] == [bytes(b) for b in blobs.values()]
    expected = sum(max(1, math.ceil(size / 16384)) for size in sizes)
    assert passage.stats["requests"] == expected
    assert passage.stats["max_ahead"] <= 3


def test_prefetch_window_and_concurrency_are_bounded(local_objects):
    prefix, n = local_objects
    passage = iter(create_async_loader(prefix, LoaderOptions(prefetch=5, num_workers=2)))
    assert len(list(passage)) == n
    assert 1 <= passage.stats["max_ahead"] <= 5
    assert passage.stats["max_active"] <= 2  # the consumer may have copied every file itself
    assert passage.stats["requests"] == n


def test_items_name_the_object(objects):
    prefix, n = objects
    loader = create_async_loader(prefix, {"ordered": False, "shuffle": True})
    items = list(loader.items())
    assert sorted(item.index for item in items) == list(range(n))
    for item in items:
        assert item.uri == f"{prefix}obj-{item.index:05d}.bin"
        assert ident(item.data) == item.index and len(item) == item.byte_count


def test_a_failed_object_raises_at_its_place_and_the_pass_goes_on(local_objects):
    prefix, n = local_objects
    loader = create_async_loader(prefix, LoaderOptions(prefetch=4))
    s3dlio.delete(f"{prefix}obj-00007.bin")
    passage = iter(loader)
    got = [ident(next(passage)) for _ in range(7)]
    with pytest.raises(NotFoundError) as info:
        next(passage)
    assert "obj-00007.bin" in str(info.value)
    got += [ident(v) for v in passage]
    assert got == [i for i in range(n) if i != 7]


@pytest.mark.parametrize("cut", [0, 1, 9, 20])
def test_loader_resume_gives_exactly_the_rest(local_objects, cut):
    prefix, n = local_objects
    opts = LoaderOptions(shuffle=True, seed=11, rank=1, world_size=2, prefetch=4)
    full = [ident(v) for v in create_async_loader(prefix, opts)]
    loader = create_async_loader(prefix, opts)
    passage = iter(loader)
    first = [ident(next(passage)) for _ in range(cut)]
    state = loader.state_dict()
    passage.close()
    again = create_async_loader(prefix, opts)
    again.load_state_dict(state)
    assert first + [ident(v) for v in again] == full
    assert len(full) == n // 2


def test_epochs_reshuffle_and_ranks_partition(local_objects):
    prefix, n = local_objects
    opts = LoaderOptions(shuffle=True, seed=1, rank=0, world_size=2)
    loader = create_async_loader(prefix, opts)
    epoch0 = [ident(v) for v in loader]
    loader.set_epoch(1)
    epoch1 = [ident(v) for v in loader]
    assert epoch0 != epoch1 and len(epoch0) == len(epoch1) == n // 2
    other = create_async_loader(prefix, opts.replace(rank=1))
    other.set_epoch(1)
    assert sorted(epoch1 + [ident(v) for v in other]) == list(range(n))
    assert len(loader) == n // 2


def test_timeout_raises_when_nothing_arrives(slow_store, disk_dir):
    root = populate(f"slowfile://{disk_dir}/", 3)
    slow_store.configure(latency=0.5, capacity=None)
    with create_async_loader(root, LoaderOptions(timeout=0.05)) as loader:
        with pytest.raises(OperationTimeoutError):
            next(iter(loader))


def test_options_from_dicts_builders_and_validation():
    opts = LoaderOptions.from_dict(
        {
            "shard_rank": 1,
            "shard_world_size": 4,
            "timeout_seconds": 3,
            "pin_memory": True,
            "batch_size": 8,
        }
    )
    assert (opts.rank, opts.world_size, opts.timeout, opts.batch_size) == (1, 4, 3, 8)
    built = PyLoaderOptions().with_batch_size(4).shuffle(True, 7).prefetch(16).pin_memory(True)
    assert built.to_options() == LoaderOptions(batch_size=4, shuffle=True, seed=7, prefetch=16)
    assert built.batch_size == 4 and built.shuffle_value and built.pin_memory_value
    assert built.to_dict()["pin_memory"] is True
    assert LoaderOptions(part_size="1MiB").part_size == 1 << 20
    for bad in (
        {"batch_sise": 2},
        {"reader_mode": "fast"},
        {"prefetch": 0},
        {"rank": 2, "world_size": 2},
    ):
        with pytest.raises(InvalidArgumentError):
            LoaderOptions.from_dict(bad)
    with pytest.raises(TypeError):
        create_async_loader("file:///tmp/", opts=42)  # type: ignore[arg-type]


def test_import_s3dlio_imports_neither_torch_nor_jax():
    code = "import sys, s3dlio; print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("mode", ["sequential", "range"])
def test_buffers_are_reused_only_when_nobody_holds_them(file_root, mode):
    size = 300_000
    root = file_root + "big/"
    s3dlio.put_many({f"{root}o{i:03d}": payload(i, size) for i in range(40)})
    kept: list[object] = []
    opts = LoaderOptions(prefetch=4, num_workers=2, reader_mode=mode, part_size=65536)
    passage = iter(create_async_loader(root, opts))
    for i, view in enumerate(passage):
        if i % 3 == 0:
            kept.append(view)  # the BytesView itself
        elif i % 3 == 1:
            kept.append(torch_or_numpy(view)[100:200])  # only a view of part of it
    assert passage.stats["buffers_reused"] > 0  # the dropped ones were read into again
    for i, held in zip([i for i in range(40) if i % 3 != 2], kept, strict=True):
        if i % 3 == 0:
            assert held == payload(i, size)
        else:
            assert bytes(held) == payload(i, size)[100:200]


def torch_or_numpy(view: object) -> object:
    import numpy as np

    return np.frombuffer(view, dtype=np.uint8)  # type: ignore[call-overload]
