"""StreamingDataset's local shard cache: no data GETs once cached, the bound, sharing, versions."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

import pytest
from streaming_helpers import (
    SHARD_SIZES,
    flat,
    keys_of,
    make,
    numbers,
    op_counts,
    record,
    write_shards,
)
from torch.utils.data import DataLoader

import s3dlio
from s3dlio.datasets.cache import ShardCache
from s3dlio.errors import IntegrityError, InvalidArgumentError
from s3dlio.formats.shards import TFRecordShardWriter
from s3dlio.io.backends.file import TEMP_MARK

pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

TOTAL = sum(SHARD_SIZES)


def cached_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".shard"))


def test_second_epoch_makes_no_data_requests(s3_root, tmp_path: Path):
    uris = write_shards(s3_root)
    cache = tmp_path / "cache"
    ds = make(s3_root, cache_dir=cache, shuffle=True, shuffle_buffer=20)
    logs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        log = tmp_path / f"ops-{epoch}.zst"
        s3dlio.init_op_log(log)
        try:
            assert sorted(numbers(ds)) == list(range(TOTAL))
        finally:
            s3dlio.finalize_op_log()
        logs.append(op_counts(log, keys_of(uris)))
    assert logs[0]["GET_RANGE"] > len(uris)
    assert logs[1]["GET_RANGE"] == 0 and logs[1]["GET"] == 0  # data came from the cache
    assert logs[1]["HEAD"] == len(uris)  # one check per shard that it is still that version
    files = cached_files(cache)
    assert len(files) == len(uris)
    assert sorted(f.read_bytes() for f in files) == sorted(bytes(s3dlio.get(u)) for u in uris)


def test_cache_shared_by_dataloader_workers(s3_root, tmp_path: Path):
    uris = write_shards(s3_root)
    ds = make(s3_root, cache_dir=tmp_path / "c", shuffle=True, shuffle_buffer=8)
    dl = DataLoader(
        ds, batch_size=4, num_workers=2, collate_fn=list, multiprocessing_context="fork"
    )
    assert sorted(flat(dl)) == list(range(TOTAL))
    log = tmp_path / "ops.zst"
    s3dlio.init_op_log(log)
    try:
        ds.set_epoch(1)
        assert sorted(flat(dl)) == list(range(TOTAL))
    finally:
        s3dlio.finalize_op_log()
    counts = op_counts(log, keys_of(uris))
    assert counts["GET_RANGE"] == 0 and counts["HEAD"] == len(uris)


def test_the_bound_is_respected_and_least_recently_used_go_first(file_root, tmp_path: Path):
    uris = write_shards(file_root)
    sizes = {u: os.path.getsize(u[7:]) for u in uris}
    bound = sum(sorted(sizes.values())[-3:])  # room for about three shards
    cache = tmp_path / "bounded"
    ds = make(file_root, cache_dir=cache, max_cache_bytes=bound)
    assert numbers(ds) == list(range(TOTAL))
    store = ShardCache(cache, bound)
    assert 0 < store.total_bytes() <= bound
    kept = {e.path for e in store.entries()}
    last = store.path_for(uris[-1], sizes[uris[-1]], s3dlio.stat(uris[-1])["etag"])
    assert last in kept  # the newest copies stay
    first = store.path_for(uris[0], sizes[uris[0]], s3dlio.stat(uris[0])["etag"])
    assert first not in kept
    tiny = make(file_root, cache_dir=tmp_path / "tiny", max_cache_bytes=100)
    assert numbers(tiny) == list(range(TOTAL))  # no shard fits: streamed, nothing kept
    assert cached_files(tmp_path / "tiny") == []


def _read_all(root: str, cache: str, seed: int, out: Any) -> None:
    ds = make(root, cache_dir=cache, shuffle=True, seed=seed, shuffle_buffer=10)
    got = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        got.append(sorted(numbers(ds)))
    out.put(got)


def test_two_processes_share_one_cache_directory(s3_root, tmp_path: Path):
    uris = write_shards(s3_root)
    cache = str(tmp_path / "shared")
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_read_all, args=(s3_root, cache, seed, out)) for seed in (1, 2)]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    assert results == [[list(range(TOTAL))] * 3] * 2
    files = cached_files(Path(cache))
    assert len(files) == len(uris)
    assert sorted(f.read_bytes() for f in files) == sorted(bytes(s3dlio.get(u)) for u in uris)
    assert not [p for p in Path(cache).iterdir() if p.name.startswith(TEMP_MARK)]


def test_a_changed_object_is_fetched_again_and_its_old_copy_dropped(s3_root, tmp_path: Path):
    uris = write_shards(s3_root, (10, 10))
    cache = tmp_path / "versions"
    ds = make(s3_root, cache_dir=cache)
    assert numbers(ds) == list(range(20))
    replacement = TFRecordShardWriter(uris[1])
    for i in range(100, 103):
        replacement.write(record(i))
    replacement.close()
    with pytest.raises(IntegrityError, match="changed since it was listed") as caught:
        list(ds)  # this dataset listed the old version: reading the new one would mix them
    assert caught.value.uri == uris[1]
    fresh = make(s3_root, cache_dir=cache)
    assert numbers(fresh) == list(range(10)) + [100, 101, 102]
    files = cached_files(cache)
    assert len(files) == 2
    assert bytes(s3dlio.get(uris[1])) in [f.read_bytes() for f in files]


def test_an_evicted_copy_is_read_from_the_store(file_root, tmp_path: Path):
    write_shards(file_root, (10, 10))
    cache = tmp_path / "evicted"
    ds = make(file_root, cache_dir=cache)
    assert numbers(ds) == list(range(20))
    it = iter(ds)
    assert next(it) is not None  # copies looked up for the first shard(s) ...
    for path in cached_files(cache):
        path.unlink()  # ... then deleted by "another process"
    rest = numbers(it)
    assert len(rest) == 19


def test_a_cache_directory_that_cannot_be_written_fails_at_construction(file_root, tmp_path):
    write_shards(file_root, (1,))
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="not a writable directory") as caught:
        make(file_root, cache_dir=blocker / "cache")
    assert str(blocker) in str(caught.value)
    with pytest.raises(InvalidArgumentError, match="max_cache_bytes"):
        ShardCache(tmp_path / "c", -1)


def test_a_copy_evicted_between_lookup_and_open_is_read_from_the_store(s3_root, tmp_path):
    from s3dlio.datasets.shardformats import shard_records
    from s3dlio.datasets.shardio import PartStream

    write_shards(s3_root, (10, 10))
    cache = tmp_path / "race"
    ds = make(s3_root, cache_dir=cache)
    assert numbers(ds) == list(range(20))
    stream = PartStream(ds.shards, 1000, cache=ShardCache(cache))
    stream._sources[0] = stream._resolve(0)  # looked up (a hit) ...
    assert stream._sources[0].cached
    for path in cached_files(cache):
        path.unlink()  # ... and evicted by another process before the first read
    log = tmp_path / "ops.zst"
    s3dlio.init_op_log(log)
    try:
        got = []
        for shard_pass in stream:
            shard = shard_pass.shard
            got += numbers(
                shard_records(
                    "tfrecord", shard_pass.windows(), uri=shard.uri, size=shard.size, fail=print
                )
            )
    finally:
        s3dlio.finalize_op_log()
    assert got == list(range(20))
    counts = op_counts(log, keys_of(s.uri for s in ds.shards))
    # 2 parts per shard, plus at most the next shard's part prefetched before the re-plan
    assert 4 <= counts["GET_RANGE"] <= 5 and sum(counts.values()) <= ds.requests_bound()
