"""StreamingDataset: order, sharding over ranks x DataLoader workers, resume, request counts."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streaming_helpers import (
    SHARD_SIZES,
    flat,
    keys_of,
    make,
    number,
    numbers,
    op_counts,
    record,
    sizes_of,
    write_shards,
)
from torch.utils.data import DataLoader, IterableDataset

import s3dlio
from s3dlio.datasets.streaming import StreamingDataset
from s3dlio.datasets.streamstate import assign_shards, round_robin
from s3dlio.errors import IntegrityError, InvalidArgumentError, NotFoundError
from s3dlio.torch import ResumableDataLoader

pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

TOTAL = sum(SHARD_SIZES)


@pytest.fixture(params=["file", "s3"])
def shards(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    """``(prefix, shard URIs)`` of the default dataset on file:// and s3:// (moto)."""
    root = request.getfixturevalue(f"{request.param}_root")
    return root, write_shards(root)


@pytest.fixture
def local_shards(file_root: str) -> tuple[str, list[str]]:
    return file_root, write_shards(file_root)


def loader(ds: Any, cls: type = DataLoader, workers: int = 2, batch: int = 4) -> Any:
    return cls(
        ds,
        batch_size=batch,
        num_workers=workers,
        collate_fn=list,
        multiprocessing_context="fork" if workers else None,
    )


def test_is_a_torch_iterable_dataset(local_shards):
    ds = make(local_shards[0])
    assert isinstance(ds, IterableDataset)
    assert "8 shards" in repr(ds)


@pytest.mark.parametrize("scheme", ["file", "s3", "az", "gs"])
def test_records_in_shard_order_on_every_backend(request, scheme):
    root = request.getfixturevalue(f"{scheme}_root")
    uris = write_shards(root, (7, 0, 12))
    assert numbers(make(root)) == list(range(19))
    # a list is read in its own order; a glob selects
    assert numbers(make(uris[::-1])) == list(range(7, 19)) + list(range(7))
    assert numbers(make(root + "shard-002*")) == list(range(7, 19))


def test_requests_per_epoch_within_the_bound(shards, tmp_path: Path):
    root, uris = shards
    part = 1000
    ds = make(root, part_size=part, shuffle=True, shuffle_buffer=30)
    log = tmp_path / "ops.zst"
    s3dlio.init_op_log(log)
    try:
        assert sorted(numbers(ds)) == list(range(TOTAL))
    finally:
        s3dlio.finalize_op_log()
    sizes = sizes_of(uris)
    counts = op_counts(log, keys_of(uris))
    parts = sum(math.ceil(s / part) for s in sizes)
    assert counts["GET_RANGE"] + counts.get("GET", 0) == parts  # one request per part
    assert sum(counts.values()) <= parts + len(uris) == ds.requests_bound()
    assert ds.stats.requests == parts


def test_two_ranks_times_two_workers_see_every_record_exactly_once(local_shards):
    root, _ = local_shards
    per_rank = []
    for rank in range(2):
        ds = make(root, shuffle=True, seed=5, shuffle_buffer=16, rank=rank, world_size=2)
        ds.set_epoch(3)
        per_rank.append(flat(loader(ds)))
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(TOTAL))
    # shards are dealt by bytes: ranks hold about the same number of records
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= max(SHARD_SIZES)


def test_shards_are_dealt_greedily_by_bytes():
    sizes = [100, 10, 10, 10, 90, 10, 5]
    mine = [
        assign_shards(sizes, range(7), rank=r, world_size=2, worker=0, num_workers=1)
        for r in (0, 1)
    ]
    assert mine == [[0, 5, 6], [1, 2, 3, 4]]  # bytes 115 and 120
    workers = [
        assign_shards(sizes, range(7), rank=1, world_size=2, worker=w, num_workers=2)
        for w in (0, 1)
    ]
    assert sorted(workers[0] + workers[1]) == mine[1]
    assert workers == [[1, 3], [2, 4]]


def test_order_is_a_pure_function_of_seed_and_epoch(local_shards):
    root, _ = local_shards

    def epoch(seed: int, e: int) -> list[int]:
        ds = make(root, shuffle=True, seed=seed, shuffle_buffer=25)
        ds.set_epoch(e)
        return numbers(ds)

    first = epoch(1, 0)
    assert first == epoch(1, 0)
    assert sorted(first) == list(range(TOTAL))
    assert first != epoch(1, 1) and first != epoch(2, 0)
    assert first != list(range(TOTAL))
    unshuffled = make(root)
    assert numbers(unshuffled) == list(range(TOTAL))


@pytest.mark.parametrize("cut", [0, 1, 24, 25, 100, TOTAL - 1, TOTAL])
def test_in_process_resume_yields_exactly_the_rest(local_shards, cut):
    root, _ = local_shards

    def dataset() -> StreamingDataset:
        ds = make(root, shuffle=True, seed=9, shuffle_buffer=25)
        ds.set_epoch(2)
        return ds

    full = numbers(dataset())
    ds = dataset()
    it = iter(ds)
    head = [number(next(it)) for _ in range(cut)]
    state = ds.state_dict()
    it.close()
    assert state["samples_seen"] == cut and state["epoch"] == 2
    again = make(root, shuffle=True, seed=0, shuffle_buffer=25)  # seed and epoch come from state
    again.load_state_dict(state)
    assert head + numbers(again) == full
    assert numbers(again) == full  # the next pass is a whole epoch again


@pytest.mark.parametrize("cuts", [(1,), (3,), (7,), (13,), (26,), (3, 9), (13, 1, 2)])
def test_resumable_data_loader_with_two_workers_resumes_exactly(local_shards, cuts):
    root, _ = local_shards

    def dataset() -> StreamingDataset:
        return make(root, shuffle=True, seed=5, shuffle_buffer=20, rank=1, world_size=2)

    full = flat(loader(dataset(), ResumableDataLoader))
    got: list[int] = []
    state = None
    for cut in cuts:
        dl = loader(dataset(), ResumableDataLoader)
        if state is not None:
            dl.load_state_dict(state)
        dl.set_epoch(0)
        batches = iter(dl)
        for _ in range(cut):
            batch = next(batches, None)
            if batch is not None:
                got += numbers(batch)
        state = dl.state_dict()
        del batches
        assert state["samples_seen"] == len(got) and state["num_workers"] == 2
    again = loader(dataset(), ResumableDataLoader)
    again.load_state_dict(state)
    again.set_epoch(0)
    assert got + flat(again) == full


def test_resume_in_another_layout_is_refused_unless_at_the_start(local_shards):
    root, _ = local_shards
    dl = loader(make(root, shuffle_buffer=4), ResumableDataLoader)
    batches = iter(dl)
    next(batches)
    state = dl.state_dict()
    del batches
    solo = make(root, shuffle_buffer=4)
    solo.load_state_dict(state)
    with pytest.raises(InvalidArgumentError, match="same layout"):
        next(iter(solo))
    fresh = make(root, shuffle_buffer=4)
    start = fresh.state_dict()
    other = loader(make(root, shuffle_buffer=4), ResumableDataLoader, workers=2)
    other.load_state_dict(start)
    assert sorted(flat(other)) == list(range(TOTAL))


def test_round_robin_skips_workers_that_ran_out():
    assert round_robin(0, [3, 3]) == ([0, 0], -1)
    assert round_robin(3, [3, 3]) == ([2, 1], 0)
    assert round_robin(5, [1, 4, 2]) == ([1, 2, 2], 2)
    assert round_robin(7, [1, 4, 2]) == ([1, 4, 2], 1)


def test_transform_and_decode(local_shards, file_root):
    from s3dlio.formats.shards import ShardWriter

    root = file_root + "ex/"
    with ShardWriter(root + "e-%d.tfrecord", format="tfrecord") as sink:
        for i in range(5):
            sink.write({"label": [i], "image": bytes([i]) * 8})
    ds = StreamingDataset(root, decode=True, transform=lambda ex: int(ex["label"][0]))
    assert list(ds) == [0, 1, 2, 3, 4]


def test_raw_npy_and_npz_formats(file_root):
    s3dlio.put_bytes(file_root + "raw/a.bin", b"".join(record(i, 4) for i in range(10)))
    s3dlio.put_bytes(file_root + "raw/b.bin", b"".join(record(i, 4) for i in range(10, 13)))
    ds = StreamingDataset(file_root + "raw/", format="raw", record_size=16, part_size=7)
    assert numbers(ds) == list(range(13))
    s3dlio.put_bytes(file_root + "raw/c.bin", b"x" * 20)
    with pytest.raises(IntegrityError, match="truncated record at offset 16"):
        list(StreamingDataset(file_root + "raw/", format="raw", record_size=16))
    skipping = StreamingDataset(file_root + "raw/", format="raw", record_size=16, on_error="skip")
    assert len(list(skipping)) == 14 and skipping.skipped == 1

    for i in range(3):
        out = io.BytesIO()
        np.save(out, np.full((2, 3), i, dtype=np.int16))
        s3dlio.put_bytes(file_root + f"npy/{i}.npy", out.getvalue())
        out = io.BytesIO()
        np.savez(out, x=np.arange(i + 1), y=np.ones(2) * i)
        s3dlio.put_bytes(file_root + f"npz/{i}.npz", out.getvalue())
    arrays = list(StreamingDataset(file_root + "npy/", format="npy", part_size=50))
    assert [int(a[0, 0]) for a in arrays] == [0, 1, 2] and arrays[0].dtype == np.int16
    members = list(StreamingDataset(file_root + "npz/", format="npz", part_size=64))
    assert [m.tolist() for m in members[:2]] == [[0], [0.0, 0.0]] and len(members) == 6
    s3dlio.put_bytes(file_root + "npz/3.npz", b"not a zip")
    with pytest.raises(IntegrityError, match="not a valid npz"):
        list(StreamingDataset(file_root + "npz/", format="npz"))


def test_corrupt_record_names_the_shard_and_offset(file_root):
    uris = write_shards(file_root, (10, 10))
    path = Path(uris[1][7:])
    data = bytearray(path.read_bytes())
    stride = len(record(0)) + 16
    data[3 * stride + 12 + 5] ^= 0xFF  # payload byte of record 3: its data CRC fails
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as caught:
        list(make(file_root))
    assert caught.value.uri == uris[1] and caught.value.byte_range == (3 * stride, stride)
    assert f"offset {3 * stride}" in str(caught.value)
    ds = make(file_root, on_error="skip")
    got = numbers(ds)
    assert got == [i for i in range(20) if i != 13] and ds.skipped == 1
    data[3 * stride] ^= 0xFF  # and now its length field: the rest of the shard is lost
    path.write_bytes(bytes(data))
    ds = make(file_root, on_error="skip")
    assert numbers(ds) == list(range(13)) and ds.skipped == 1
    with pytest.raises(IntegrityError, match="corrupt record header"):
        list(make(file_root))


def test_truncated_shard(file_root):
    uris = write_shards(file_root, (4,))
    path = Path(uris[0][7:])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="truncated record"):
        list(make(file_root))


def test_a_shard_deleted_mid_epoch_raises_not_found_naming_it(s3_root):
    uris = write_shards(s3_root, (20, 20))
    ds = make(s3_root, part_size=500)
    it = iter(ds)
    assert number(next(it)) == 0
    s3dlio.delete(uris[1])
    with pytest.raises(NotFoundError) as caught:
        list(it)
    assert caught.value.uri == uris[1]


def test_a_shard_replaced_mid_epoch_raises_integrity_error(s3_root):
    uris = write_shards(s3_root, (20,))
    ds = make(s3_root, part_size=500)
    it = iter(ds)
    next(it)
    s3dlio.put_bytes(uris[0], b"".join(record(i) for i in range(3)))
    with pytest.raises(IntegrityError) as caught:
        list(it)
    assert caught.value.uri == uris[0]


def test_bad_arguments(file_root):
    write_shards(file_root, (1,))
    with pytest.raises(InvalidArgumentError, match="format"):
        StreamingDataset(file_root, format="csv")
    with pytest.raises(InvalidArgumentError, match="record_size"):
        StreamingDataset(file_root, format="raw")
    with pytest.raises(InvalidArgumentError, match="on_error"):
        StreamingDataset(file_root, on_error="ignore")
    with pytest.raises(InvalidArgumentError, match="shuffle_buffer"):
        StreamingDataset(file_root, shuffle_buffer=-1)
    with pytest.raises(NotFoundError):
        StreamingDataset(file_root + "nothing-here/")
    with pytest.raises(InvalidArgumentError):
        StreamingDataset([])
    with pytest.raises(InvalidArgumentError, match="StreamingDataset state"):
        make(file_root).load_state_dict({"version": 1, "num_items": 1})


def test_jax_iterable_over_a_streaming_dataset(local_shards):
    pytest.importorskip("jax")
    from s3dlio.jax import JaxIterable

    root, _ = local_shards
    ds = make(root, shuffle=True, shuffle_buffer=10, seed=2)
    full = numbers(ds)
    it = JaxIterable(
        make(root, shuffle=True, shuffle_buffer=10, seed=2), loader_opts={"batch_size": 8}
    )
    batches = iter(it)
    first = next(batches)
    assert first.shape == (8, len(record(0))) and first.dtype == np.uint8
    state = it.state_dict()
    del batches
    assert state["samples_seen"] == 8
    again = JaxIterable(make(root, shuffle=True, shuffle_buffer=10), loader_opts={"batch_size": 8})
    again.load_state_dict(state)
    rest = [number(row) for batch in again for row in batch]
    assert [number(row) for row in first] + rest == full
    with pytest.raises(TypeError):
        len(again)


def test_forkserver_workers_report_through_shared_memory(local_shards):
    """Workers started by pickling the dataset (forkserver, as spawn) report to the parent."""
    root, _ = local_shards

    def dataset() -> StreamingDataset:
        return make(root, shuffle=True, seed=1, shuffle_buffer=8)

    full = flat(loader(dataset(), ResumableDataLoader, batch=8))
    dl = ResumableDataLoader(
        dataset(),
        batch_size=8,
        num_workers=2,
        collate_fn=list,
        multiprocessing_context="forkserver",
    )
    batches = iter(dl)
    head = flat(next(batches) for _ in range(5))
    state = dl.state_dict()
    del batches
    assert state["num_workers"] == 2 and state["consumed"] == [24, 16]
    again = loader(dataset(), ResumableDataLoader, batch=8)
    again.load_state_dict(state)
    assert head + flat(again) == full


def test_parquet_row_groups(file_root):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for i in range(2):
        table = pa.table({"x": list(range(i * 10, i * 10 + 10)), "y": [float(i)] * 10})
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=4)
        s3dlio.put_bytes(file_root + f"pq/{i}.parquet", sink.getvalue())
    groups = list(StreamingDataset(file_root + "pq/", format="parquet", part_size=300))
    assert [g.num_rows for g in groups] == [4, 4, 2, 4, 4, 2]
    assert sum((g.column("x").to_pylist() for g in groups), []) == list(range(20))
