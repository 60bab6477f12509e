"""Distributed checkpoints: per-rank shards, rank-0 commit, any rank's shard loads back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import s3dlio
from s3dlio import IntegrityError, InvalidArgumentError
from s3dlio.checkpoint import (
    CheckpointStore,
    finalize_distributed_checkpoint,
    save_distributed_shard,
)
from tests.servers.common import free_port

WORKER = Path(__file__).with_name("dist_worker.py")


def test_ranks_write_rank_zero_commits(store_root: str) -> None:
    store = CheckpointStore(store_root, strategy="binary")
    metas = [
        store.writer(3, r).save_distributed_shard(4, 2, "torch", bytes([r]) * (1000 + r))
        for r in range(3)
    ]
    assert [m["rank"] for m in metas] == [0, 1, 2]
    assert all(m["checksum"].startswith("crc32c:") and m["step"] == 4 for m in metas)
    assert store.writer(3, 1).finalize_distributed_checkpoint(4, 2, "torch", metas) is None
    assert store.list_checkpoints() == []  # only rank 0 commits
    key = store.writer(3, 0).finalize_distributed_checkpoint(4, 2, "torch", metas, {"n": 3})
    assert key is not None and key.startswith("manifests/ckpt-4-")

    info = store.list_checkpoints()[0]
    assert (info.world_size, info.total_size, info.user_meta) == (3, 3003, {"n": 3})
    with pytest.raises(InvalidArgumentError, match="pass rank="):
        store.load_latest()
    for r in range(3):
        assert bytes(store.load_latest(rank=r)) == bytes([r]) * (1000 + r)
    reader = store.reader()
    manifest = reader.load_latest_manifest()
    assert manifest is not None and [s["rank"] for s in manifest["shards"]] == [0, 1, 2]
    assert bytes(reader.read_shard_by_rank(manifest, 2)) == bytes([2]) * 1002


def test_module_functions_and_trees(store_root: str) -> None:
    np = pytest.importorskip("numpy")
    metas = [
        save_distributed_shard(store_root, 1, 0, "jax", {"x": np.arange(3) + r}, 2, r)
        for r in range(2)
    ]
    assert finalize_distributed_checkpoint(store_root, 1, 0, "jax", metas, 2, 1) is None
    key = finalize_distributed_checkpoint(store_root, 1, 0, "jax", metas, 2, 0)
    assert key is not None
    store = CheckpointStore(store_root)
    assert store.load(1, rank=1)["x"].tolist() == [1, 2, 3]


def test_incomplete_shard_sets_commit_nothing(store_root: str) -> None:
    store = CheckpointStore(store_root)
    metas = [store.writer(3, r).save_distributed_shard(2, 0, "torch", b"s%d" % r) for r in range(3)]
    with pytest.raises(IntegrityError, match="ranks 0..2"):
        store.writer(3, 0).finalize_distributed_checkpoint(2, 0, "torch", metas[:2])
    s3dlio.delete(store_root + metas[1]["key"])
    with pytest.raises(IntegrityError, match="missing"):
        store.writer(3, 0).finalize_distributed_checkpoint(2, 0, "torch", metas)
    assert store.list_checkpoints() == []
    assert not s3dlio.exists(store_root + "latest.json")


def test_ranks_with_their_own_clocks(store_root: str) -> None:
    """A rank whose shard directory has another <ts> is still found, and never swept."""
    store = CheckpointStore(store_root)
    metas = []
    for rank, ts in ((0, None), (1, "20000101-000000")):
        stream = store.shard_stream(3, 0, rank, 2, timestamp=ts)
        with stream:
            stream.write(b"rank %d" % rank)
        metas.append(stream.finalize())
    store.writer(2, 0).finalize_distributed_checkpoint(3, 0, "torch", metas)
    store.save(4, 0, "torch", b"later")  # sweeps unreferenced shard dirs older than itself
    assert bytes(CheckpointStore(store_root).load(3, rank=1)) == b"rank 1"


def test_two_process_torch_distributed(file_root: str) -> None:
    pytest.importorskip("torch")
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "GLOO_SOCKET_IFNAME": "lo",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), file_root],
                env=env,
                cwd=Path(__file__).parents[2],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    r0, r1 = results
    assert r0["key"] == r1["key"] and r0["key"].startswith("manifests/ckpt-10-")
    assert r0["mine"] == [0, 0.0] and r1["mine"] == [1, 1.0]
    assert r0["other"] == 1 and r1["other"] == 0
    assert r1["failed"] == "ArgumentTypeError" and r0["failed"] == "S3DlioError"
    assert r0["steps"] == r1["steps"] == [10]
    store = CheckpointStore(file_root)
    info = store.list_checkpoints()[0]
    assert (info.world_size, info.user_meta) == (2, {"world": 2})
    keys = [u[len(file_root) :] for u in s3dlio.list(file_root + "shards/", recursive=True)]
    assert sorted(k.split("/")[2] for k in keys) == ["00", "01"]  # round_robin prefixes
