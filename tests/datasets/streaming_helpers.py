"""Shared helpers of the StreamingDataset tests: shards of numbered records, op-log counts."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import s3dlio
from s3dlio.datasets.streaming import StreamingDataset
from s3dlio.formats.shards import ShardWriter
from s3dlio.io.oplog import read_op_log, worker_log_paths
from s3dlio.io.uri import parse_uri

#: Records per shard of :func:`write_shards`' default dataset: uneven on purpose.
SHARD_SIZES = (37, 50, 13, 61, 5, 44, 29, 20)


def record(number: int, width: int = 30) -> bytes:
    """Record ``number``: its number in 4 bytes, repeated (``4 * width`` bytes)."""
    return struct.pack("<I", number) * width


def number(item: Any) -> int:
    """The number of a record made by :func:`record` (bytes, or a uint8 array)."""
    return struct.unpack_from("<I", bytes(memoryview(item).cast("B")[:4]))[0]


def numbers(items: Iterable[Any]) -> list[int]:
    return [number(item) for item in items]


def flat(batches: Iterable[Sequence[Any]]) -> list[int]:
    return [number(item) for batch in batches for item in batch]


def write_shards(root: str, sizes: Sequence[int] = SHARD_SIZES, width: int = 30) -> list[str]:
    """TFRecord shards ``root + "shard-NNN.tfrecord"`` holding records 0, 1, ... in order."""
    uris = []
    at = 0
    for index, count in enumerate(sizes):
        with ShardWriter(root + f"shard-{index:03d}-%d.tfrecord", format="tfrecord") as sink:
            for _ in range(count):
                sink.write(record(at, width))
                at += 1
        uris.extend(sink.shards)
    return uris


def make(root: str, **kw: Any) -> StreamingDataset:
    """A TFRecord StreamingDataset over ``root`` with small parts (many requests per shard)."""
    kw.setdefault("part_size", 1000)
    return StreamingDataset(root, format="tfrecord", **kw)


def op_counts(log: Path, keys: Iterable[str] | None = None) -> Counter[str]:
    """Operations in an op-log and its workers' logs (only on ``keys``, when given)."""
    wanted = None if keys is None else set(keys)
    counts: Counter[str] = Counter()
    for path in [str(log), *worker_log_paths(log)]:
        for row in read_op_log(path):
            if wanted is None or row["file"] in wanted:
                counts[row["op"]] += 1
    return counts


def keys_of(uris: Iterable[str]) -> list[str]:
    return [parse_uri(u).key for u in uris]


def sizes_of(uris: Iterable[str]) -> list[int]:
    return [int(s3dlio.stat(u)["size"]) for u in uris]
