"""The on-store layout and JSON documents, field by field, against SPEC section 5."""

from __future__ import annotations

import json
import re

import crc32c
import pytest

import s3dlio
from s3dlio.checkpoint import CheckpointStore
from s3dlio.checkpoint.manifest import (
    ManifestName,
    format_timestamp,
    format_wall_time,
    parse_strategy,
    parse_wall_time,
    shard_key,
)

TS = r"\d{8}-\d{6}"
WALL = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00"
MANIFEST_FIELDS = [
    "format_version",
    "framework",
    "global_step",
    "epoch",
    "wall_time",
    "world_size",
    "shards",
    "status",
    "user_meta",
]
SHARD_FIELDS = ["rank", "key", "size", "etag", "checksum"]
SHARD_DIRS = {
    "flat": r"shards/ckpt-7-(?P<ts>{ts})",
    "round_robin": r"shards/rr/00/ckpt-7-(?P<ts>{ts})",
    "binary": r"shards/bin/0000/ckpt-7-(?P<ts>{ts})",
}


def relative_keys(root: str) -> list[str]:
    return sorted(u[len(root) :] for u in s3dlio.list(root, recursive=True))


@pytest.mark.parametrize("strategy", ["flat", "round_robin", "binary"])
def test_every_key_and_field(store_root: str, strategy: str) -> None:
    data = b"model bytes " * 1000
    store = CheckpointStore(store_root, strategy=strategy)
    manifest_key = store.save(7, 3, "torch", data, user_meta={"lr": 0.1, "tags": ["a", "b"]})

    keys = relative_keys(store_root)
    assert len(keys) == 3, keys
    shard_re = SHARD_DIRS[strategy].format(ts=TS) + r"/rank-0\.bin"
    assert keys[0] == "latest.json"
    assert re.fullmatch(rf"manifests/ckpt-7-{TS}\.json", keys[1])
    assert re.fullmatch(shard_re, keys[2])
    assert manifest_key == keys[1]
    ts = ManifestName.parse(manifest_key).ts  # type: ignore[union-attr]
    assert keys[2].split("/")[-2] == f"ckpt-7-{ts}"

    text = bytes(s3dlio.get(store_root + manifest_key)).decode()
    assert text.startswith('{\n  "format_version": 1,\n  "framework": "torch",\n')
    doc = json.loads(text)
    assert list(doc) == MANIFEST_FIELDS
    assert doc["format_version"] == 1
    assert doc["framework"] == "torch"
    assert doc["global_step"] == 7
    assert doc["epoch"] == 3
    assert re.fullmatch(WALL, doc["wall_time"])
    assert doc["world_size"] == 1
    assert doc["status"] == "complete"
    assert doc["user_meta"] == {"lr": 0.1, "tags": ["a", "b"]}
    (shard,) = doc["shards"]
    assert list(shard) == SHARD_FIELDS
    assert shard["rank"] == 0
    assert shard["key"] == keys[2]
    assert shard["size"] == len(data)
    assert shard["etag"] == s3dlio.stat(store_root + keys[2])["etag"]
    assert shard["checksum"] == f"crc32c:{crc32c.crc32c(data):08x}"

    latest_text = bytes(s3dlio.get(store_root + "latest.json")).decode()
    latest = json.loads(latest_text)
    assert list(latest) == ["manifest_key", "global_step", "ts"]
    assert latest == {"manifest_key": manifest_key, "global_step": 7, "ts": ts}
    assert latest_text.startswith('{\n  "manifest_key": ')
    assert bytes(store.load_latest()) == data


def test_compressed_shard_key_size_and_checksum(store_root: str) -> None:
    data = b"abc" * 100_000
    store = CheckpointStore(store_root, compression_level=3)
    key = store.save(1, 0, "torch", data)
    doc = json.loads(bytes(s3dlio.get(store_root + key)))
    (shard,) = doc["shards"]
    assert re.fullmatch(rf"shards/ckpt-1-{TS}/rank-0\.bin\.zst", shard["key"])
    stored = s3dlio.stat(store_root + shard["key"])["size"]
    assert shard["size"] == stored < len(data) // 50
    assert shard["checksum"] == f"crc32c:{crc32c.crc32c(data):08x}"  # of the uncompressed bytes
    assert bytes(store.load_latest()) == data


def test_shard_keys_for_many_ranks() -> None:
    assert shard_key(50, "T", 0, "flat") == "shards/ckpt-50-T/rank-0.bin"
    assert shard_key(50, "T", 27, "round_robin") == "shards/rr/0b/ckpt-50-T/rank-27.bin"
    assert shard_key(50, "T", 16, "round_robin") == "shards/rr/00/ckpt-50-T/rank-16.bin"
    assert shard_key(50, "T", 8, "binary") == "shards/bin/0000/ckpt-50-T/rank-8.bin"
    assert shard_key(50, "T", 200, "binary") == "shards/bin/1100/ckpt-50-T/rank-200.bin"
    assert shard_key(50, "T", 300, "binary") == "shards/bin/1001/ckpt-50-T/rank-300.bin"
    assert parse_strategy("RoundRobin") == "round_robin"
    with pytest.raises(ValueError, match="flat, round_robin, binary"):
        parse_strategy("bogus")


def test_timestamps() -> None:
    ns = 1_767_323_045_123_456_789  # 2026-01-02T03:04:05.123456789Z
    assert format_timestamp(ns) == "20260102-030405"
    assert format_wall_time(ns) == "2026-01-02T03:04:05.123456789+00:00"
    assert format_wall_time(ns - 456_789) == "2026-01-02T03:04:05.123+00:00"
    assert format_wall_time(ns - 789) == "2026-01-02T03:04:05.123456+00:00"
    assert format_wall_time(ns - 123_456_789) == "2026-01-02T03:04:05+00:00"
    assert parse_wall_time(format_wall_time(ns)) == ns
    assert parse_wall_time("2026-01-02T03:04:05.5Z") == ns - 123_456_789 + 500_000_000
    assert parse_wall_time("garbage") == 0
    assert ManifestName.parse("x/manifests/ckpt-12-20260102-030405.json") == ManifestName(
        "20260102-030405", 12
    )
    assert ManifestName.parse("manifests/ckpt-x-y.json") is None
