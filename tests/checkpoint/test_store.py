"""CheckpointStore behaviour on every backend: commits, fallbacks, integrity, retention."""

from __future__ import annotations

import json

import pytest

import s3dlio
from s3dlio import IntegrityError, InvalidArgumentError, NotFoundError
from s3dlio.checkpoint import (
    CheckpointStore,
    Manifest,
    ShardMeta,
    load_checkpoint,
    load_checkpoint_with_validation,
    load_checkpoint_with_validation_view,
    save_checkpoint,
)
from s3dlio.checkpoint.manifest import Latest, ManifestName


def keys(root: str, under: str = "") -> list[str]:
    return sorted(u[len(root) :] for u in s3dlio.list(root + under, recursive=True))


def shard_uri(root: str, manifest_key: str, rank: int = 0) -> str:
    doc = json.loads(bytes(s3dlio.get(root + manifest_key)))
    return root + doc["shards"][rank]["key"]


def test_roundtrip_list_and_user_meta(store_root: str) -> None:
    store = CheckpointStore(store_root)
    assert store.load_latest() is None
    assert store.list_checkpoints() == []
    meta = {"loss": 0.125, "lr": [1e-3, 1e-4], "note": "ünïcode", "nested": {"a": None}}
    store.save(10, 1, "torch", b"ten" * 100, user_meta=meta)
    store.save(20, 2, "jax", memoryview(b"twenty" * 100))
    assert bytes(store.load_latest()) == b"twenty" * 100
    assert bytes(store.load(10)) == b"ten" * 100
    infos = store.list_checkpoints()
    assert [(i.step, i.epoch, i.framework, i.world_size) for i in infos] == [
        (10, 1, "torch", 1),
        (20, 2, "jax", 1),
    ]
    assert infos[0].user_meta == meta and infos[1].user_meta is None
    assert infos[0].total_size == 300 and infos[0].is_complete and infos[0].is_single_rank
    assert infos[0].size_mb == pytest.approx(300 / 2**20)
    # A fresh store object (no cache) sees the same.
    assert CheckpointStore(store_root).list_checkpoints()[0].user_meta == meta
    with pytest.raises(NotFoundError):
        store.load(15)


def test_module_functions(store_root: str) -> None:
    key = save_checkpoint(store_root, 3, 0, "torch", b"abc" * 10, user_meta={"k": 1})
    assert bytes(load_checkpoint(store_root)) == b"abc" * 10
    shard = shard_uri(store_root, key)
    assert load_checkpoint_with_validation(shard) == b"abc" * 10
    view = load_checkpoint_with_validation_view(shard)
    assert isinstance(view, s3dlio.BytesView) and view == b"abc" * 10
    with pytest.raises(InvalidArgumentError, match="not a checkpoint shard"):
        load_checkpoint_with_validation(store_root + key)
    assert load_checkpoint_with_validation(store_root + key, validate_integrity=False).startswith(
        b"{"
    )


def test_corrupted_shard_byte_raises_integrity_error(store_root: str) -> None:
    store = CheckpointStore(store_root)
    store.save(1, 0, "torch", b"good" * 1000)
    key = store.save(2, 0, "torch", bytes(range(256)) * 64)
    uri = shard_uri(store_root, key)
    data = bytearray(s3dlio.get(uri))
    data[1234] ^= 0x01
    s3dlio.put_bytes(uri, data)  # same size, one bit flipped
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        store.load_latest()
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        load_checkpoint_with_validation(uri)
    assert load_checkpoint_with_validation(uri, validate_integrity=False) == bytes(data)
    assert bytes(store.load(1)) == b"good" * 1000


def test_truncated_shard_is_skipped_for_the_previous_checkpoint(store_root: str) -> None:
    store = CheckpointStore(store_root)
    store.save(1, 0, "torch", b"one" * 100)
    key = store.save(2, 0, "torch", b"two" * 100)
    s3dlio.put_bytes(shard_uri(store_root, key), b"two" * 50)  # size no longer matches
    assert bytes(CheckpointStore(store_root).load_latest()) == b"one" * 100
    s3dlio.delete(shard_uri(store_root, key))  # missing altogether
    assert bytes(CheckpointStore(store_root).load_latest()) == b"one" * 100
    with pytest.raises(IntegrityError, match="missing"):
        CheckpointStore(store_root).load(2)


def test_stale_or_missing_latest_json(store_root: str) -> None:
    store = CheckpointStore(store_root)
    first = store.save(1, 0, "torch", b"one")
    store.save(2, 0, "torch", b"two")
    # A crash between the manifest and latest.json leaves latest.json one commit behind.
    s3dlio.put_bytes(store_root + "latest.json", Latest(first, 1, first[-20:-5]).encode())
    assert bytes(CheckpointStore(store_root).load_latest()) == b"two"
    s3dlio.delete(store_root + "latest.json")
    assert bytes(CheckpointStore(store_root).load_latest()) == b"two"
    s3dlio.put_bytes(store_root + "latest.json", b"{not json")
    assert bytes(CheckpointStore(store_root).load_latest()) == b"two"


def test_incomplete_manifest_is_not_a_checkpoint(store_root: str) -> None:
    store = CheckpointStore(store_root)
    store.save(1, 0, "torch", b"one")
    bogus = Manifest(
        "torch",
        99,
        0,
        "2099-01-01T00:00:00+00:00",
        1,
        (ShardMeta(0, "shards/x/rank-0.bin", 3),),
        status="incomplete",
    )
    s3dlio.put_bytes(store_root + "manifests/ckpt-99-20990101-000000.json", bogus.encode())
    s3dlio.put_bytes(store_root + "manifests/ckpt-98-20990101-000000.json", b"garbage")
    assert bytes(store.load_latest()) == b"one"
    statuses = {i.step: i.status for i in store.list_checkpoints()}
    assert statuses == {1: "complete", 99: "incomplete"}


def test_newest_by_time_not_by_step(store_root: str) -> None:
    store = CheckpointStore(store_root)
    store.save(50, 0, "torch", b"fifty")
    store.save(30, 0, "torch", b"thirty")  # training restarted from an earlier step
    assert bytes(store.load_latest()) == b"thirty"
    assert bytes(CheckpointStore(store_root).load_latest()) == b"thirty"


def test_same_step_twice_keeps_both_intact(store_root: str) -> None:
    store = CheckpointStore(store_root)
    a = store.save(5, 0, "torch", b"first")
    b = store.save(5, 0, "torch", b"second")
    assert a != b  # a save within the same second moves to the next free timestamp
    assert bytes(store.load(5)) == b"second"
    assert load_checkpoint_with_validation(shard_uri(store_root, a)) == b"first"


def check_retention(root: str, strategy: str) -> None:
    store = CheckpointStore(root, strategy=strategy, keep_last=2)
    for step in range(1, 5):
        store.save(step, 0, "torch", f"step {step}".encode())
    assert [i.step for i in store.list_checkpoints()] == [3, 4]
    shards = [k for k in keys(root) if k.startswith("shards/")]
    assert len(shards) == 2 and all("ckpt-3-" in k or "ckpt-4-" in k for k in shards)
    assert bytes(store.load(3)) == b"step 3"


def test_retention_keeps_the_newest(store_root: str) -> None:
    check_retention(store_root, "round_robin")


@pytest.mark.parametrize("strategy", ["flat", "binary"])
def test_retention_with_other_layouts(file_root: str, strategy: str) -> None:
    check_retention(file_root, strategy)


def test_delete_checkpoint_repoints_latest(store_root: str) -> None:
    store = CheckpointStore(store_root)
    first = store.save(1, 0, "torch", b"one")
    store.save(2, 0, "torch", b"two")
    assert store.delete_checkpoint(2) is True
    assert store.delete_checkpoint(2) is False
    latest = Latest.decode(s3dlio.get(store_root + "latest.json"))
    assert latest.manifest_key == first and latest.global_step == 1
    assert bytes(store.load_latest()) == b"one"
    assert store.delete_checkpoint(1) is True
    assert keys(store_root) == []
    assert store.load_latest() is None


def test_zstd_compression_roundtrip(store_root: str) -> None:
    store = CheckpointStore(store_root, compression_level=3)
    payload = b"compressible " * 200_000  # 2.6 MB, several zstd blocks
    key = store.save(1, 0, "torch", payload)
    uri = shard_uri(store_root, key)
    assert uri.endswith(".bin.zst")
    assert s3dlio.stat(uri)["size"] < len(payload) // 20
    assert bytes(store.load_latest()) == payload
    assert load_checkpoint_with_validation(uri) == payload
    stored = bytearray(s3dlio.get(uri))
    stored[len(stored) // 2] ^= 0xFF
    s3dlio.put_bytes(uri, stored)  # same size, damaged zstd data
    with pytest.raises(IntegrityError):
        CheckpointStore(store_root, compression_level=3).load(1)
    s3dlio.put_bytes(uri, stored[:-8])  # truncated frame: caught by the size check
    with pytest.raises(IntegrityError, match="bytes, the manifest says"):
        CheckpointStore(store_root, compression_level=3).load(1)


def test_streamed_save_across_parts(store_root: str) -> None:
    store = CheckpointStore(store_root, multipart_threshold="5MiB")
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with store.save_stream(7, 1, "torch", user_meta={"streamed": True}) as f:
        for i in range(13):
            f.write_chunk(chunk[i:] + chunk[:i])
        f.write(b"tail")
    assert f.manifest_key is not None and "ckpt-7-" in f.manifest_key
    data = store.load_latest()
    assert len(data) == 13 * len(chunk) + 4
    assert bytes(data[3 * len(chunk) : 3 * len(chunk) + 5]) == (chunk[3:] + chunk[:3])[:5]
    assert store.list_checkpoints()[0].user_meta == {"streamed": True}


def test_failed_stream_commits_nothing(store_root: str) -> None:
    store = CheckpointStore(store_root)
    store.save(1, 0, "torch", b"kept")
    with pytest.raises(RuntimeError, match="boom"):
        with store.save_stream(2, 0, "torch") as f:
            f.write(b"x" * 1000)
            raise RuntimeError("boom")
    assert [i.step for i in store.list_checkpoints()] == [1]
    assert bytes(store.load_latest()) == b"kept"
    assert not [k for k in keys(store_root) if "ckpt-2-" in k]


def test_argument_checks(store_root: str) -> None:
    with pytest.raises(InvalidArgumentError, match="strategy"):
        CheckpointStore(store_root, strategy="zigzag")
    with pytest.raises(InvalidArgumentError, match="keep_last"):
        CheckpointStore(store_root, keep_last=0)
    with pytest.raises(InvalidArgumentError, match="compression_level"):
        CheckpointStore(store_root, compression_level=99)
    store = CheckpointStore(store_root)
    with pytest.raises(InvalidArgumentError, match="step"):
        store.save(-1, 0, "torch", b"x")
    with pytest.raises(InvalidArgumentError, match="rank"):
        store.writer(2, 2)
    with pytest.raises(TypeError):
        store.save(1, 0, "torch", "a str is not data")
    assert keys(store_root) == []


def test_manifest_names_sort_by_time() -> None:
    names = [ManifestName("20260101-000002", 1), ManifestName("20260101-000001", 9)]
    assert sorted(names)[0].step == 9
