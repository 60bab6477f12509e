"""The range reads under Parquet row groups: :func:`s3dlio.io.range_engine.fetch_ranges`
(several ranges of one object; on ``s3://`` all from one thread through the multiplexed read
loop, elsewhere on the pool), through a real fault-injecting proxy in front of moto, and
on every backend; pyarrow decoding without its threads for a small row group."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import s3dlio
from s3dlio import IntegrityError, NotFoundError, RangeEngineConfig
from s3dlio.formats import parquet as P
from s3dlio.io.config import Settings, reset_settings, settings
from s3dlio.io.oplog import read_op_log
from s3dlio.io.range_engine import fetch_ranges
from s3dlio.io.store import backend_for
from s3dlio.io.uri import parse_uri
from tests.helpers import random_payload
from tests.servers.proxy import FaultProxy

pytestmark = pytest.mark.usefixtures("fast_retries")

MiB = 1 << 20
RANGES = [(100, 5000), (300_000, 200_000), (900_000, 99_000)]


def _read(uri: str, ranges: list[tuple[int, int]], etag: str | None = None) -> list[bytes]:
    parsed = parse_uri(uri, allow_bare=True)
    backend = backend_for(parsed)
    views = [memoryview(bytearray(n)) for _, n in ranges]
    results = fetch_ranges(backend, parsed, ranges, views, if_match=etag)
    assert [r.nbytes for r in results] == [n for _, n in ranges]
    return [bytes(v) for v in views]


def _get_ranges(moto_proxy: FaultProxy, uri: str) -> list[object]:
    parsed = parse_uri(uri)
    return moto_proxy.requests_matching(f"GET /{parsed.bucket}/{parsed.key}")


def test_ranges_on_every_backend(store_root: str) -> None:
    payload = random_payload(MiB, 7)
    uri = store_root + "ranges.bin"
    s3dlio.put_bytes(uri, payload)
    assert _read(uri, RANGES) == [payload[o : o + n] for o, n in RANGES]
    assert _read(uri, RANGES[1:2]) == [payload[300_000:500_000]]
    # a range past the end comes back short (the caller says what that means)
    parsed = parse_uri(uri, allow_bare=True)
    views = [memoryview(bytearray(10)), memoryview(bytearray(100))]
    results = fetch_ranges(backend_for(parsed), parsed, [(0, 10), (MiB - 40, 100)], views)
    assert [r.nbytes for r in results] == [10, 40] and [r.size for r in results] == [MiB] * 2


def test_s3_ranges_run_from_one_thread(
    moto_proxy_root: str, moto_proxy: FaultProxy, tmp_path: object
) -> None:
    payload = random_payload(MiB, 8)
    uri = moto_proxy_root + "one-thread.bin"
    s3dlio.put_bytes(uri, payload)
    backend = backend_for(parse_uri(uri))
    assert backend.multiplexed
    log = f"{tmp_path}/ops.tsv.zst"
    s3dlio.init_op_log(log)
    try:
        assert _read(uri, RANGES) == [payload[o : o + n] for o, n in RANGES]
    finally:
        s3dlio.finalize_op_log()
    key = parse_uri(uri).key
    got = [r for r in read_op_log(log) if r["file"] == key]
    assert sorted(int(r["bytes"]) for r in got) == sorted(n for _, n in RANGES)
    assert len(_get_ranges(moto_proxy, uri)) == len(RANGES)


def test_a_truncated_range_is_retried(moto_proxy_root: str, moto_proxy: FaultProxy) -> None:
    payload = random_payload(MiB, 9)
    uri = moto_proxy_root + "cut.bin"
    s3dlio.put_bytes(uri, payload)
    moto_proxy.add_fault(
        "truncate", match=lambda m, p, h: "bytes=300000-" in h.get("range", ""), after=99
    )
    assert _read(uri, RANGES) == [payload[o : o + n] for o, n in RANGES]
    assert len(_get_ranges(moto_proxy, uri)) == len(RANGES) + 1


def test_a_range_over_the_split_threshold_is_split(
    moto_proxy_root: str, moto_proxy: FaultProxy
) -> None:
    payload = random_payload(4 * MiB, 10)
    uri = moto_proxy_root + "split.bin"
    s3dlio.put_bytes(uri, payload)
    old = settings()
    reset_settings(Settings(range=RangeEngineConfig(threshold="1MiB", chunk_size="1MiB")))
    try:
        got = _read(uri, [(0, 100), (MiB // 2, 3 * MiB)])
    finally:
        reset_settings(old)
    assert got == [payload[:100], payload[MiB // 2 : MiB // 2 + 3 * MiB]]
    assert len(_get_ranges(moto_proxy, uri)) == 1 + 3


def test_another_version_fails_and_a_missing_object_is_not_found(
    moto_proxy_root: str, moto_proxy: FaultProxy
) -> None:
    uri = moto_proxy_root + "versioned.bin"
    s3dlio.put_bytes(uri, random_payload(MiB, 11))
    etag = backend_for(parse_uri(uri)).stat(parse_uri(uri)).etag
    assert etag
    s3dlio.put_bytes(uri, random_payload(MiB, 12))
    with pytest.raises(IntegrityError, match="versioned.bin"):
        _read(uri, RANGES, etag=etag)
    with pytest.raises(NotFoundError, match="missing.bin"):
        _read(moto_proxy_root + "missing.bin", RANGES)


def test_small_row_group_decodes_without_threads(
    moto_proxy_root: str, moto_proxy: FaultProxy
) -> None:
    table = pa.table({f"c{i}": pa.array(np.arange(50_000, dtype=np.float32) + i) for i in range(4)})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=25_000, compression="none")
    uri = moto_proxy_root + "small.parquet"
    s3dlio.put_bytes(uri, sink.getvalue())
    obj = P.ParquetObject(uri)
    footer = obj.footer
    roots = footer.resolve_columns(["c1", "c3"])
    assert footer.decoded_size(1, roots) == sum(
        footer.metadata.row_group(1).column(j).total_uncompressed_size for j in (1, 3)
    )
    for threads in (None, True, False):
        got = obj.read_row_group(1, ["c1", "c3"], use_threads=threads)
        assert got.equals(table.slice(25_000).select(["c1", "c3"]))
    before = len(_get_ranges(moto_proxy, uri))
    obj.read_row_group(0, ["c1", "c3"])
    assert len(_get_ranges(moto_proxy, uri)) == before + 2  # the two chunks, nothing else
