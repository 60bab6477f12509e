"""Parquet read through range requests on every backend, checked against pyarrow's own reader
of the same bytes; op-log byte accounting; stale footers; bad input; the original's names."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import s3dlio
from s3dlio.errors import InvalidArgumentError, NotFoundError
from s3dlio.formats import parquet as P
from s3dlio.formats.parquet import (
    FooterTooLargeError,
    ParquetFormatError,
    ParquetObject,
    RowGroupIndexError,
)
from s3dlio.io.oplog import read_op_log
from s3dlio.io.uri import parse_uri


def mixed_table(rows: int, seed: int = 0) -> pa.Table:
    """Columns of many kinds: ints, floats, dictionary strings, nested list and struct."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "x": pa.array(rng.random(rows, dtype=np.float32)),
            "label": pa.array([f"class-{i % 7}" for i in range(rows)]),
            "tokens": pa.array([list(range(i % 5)) for i in range(rows)], pa.list_(pa.int32())),
            "pt": pa.array(
                [{"a": i, "b": float(i) / 2} for i in range(rows)],
                pa.struct([("a", pa.int64()), ("b", pa.float64())]),
            ),
            "emb": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.random(rows * 4, dtype=np.float32)), 4
            ),
        }
    )


def parquet_bytes(table: pa.Table, **kwargs: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)  # type: ignore[arg-type]
    return sink.getvalue()


def same(a: pa.Table, b: pa.Table) -> bool:
    """Tables equal value for value (NaN bit patterns included: compared as bytes)."""
    return a.schema.remove_metadata() == b.schema.remove_metadata() and a.combine_chunks().equals(
        b.combine_chunks()
    )


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    s3dlio.parquet_cache_clear()


# -- reading what pyarrow wrote, on every backend ----------------------------------------------


@pytest.mark.parametrize("compression", ["none", "snappy", "zstd"])
def test_read_matches_pyarrow(store_root: str, compression: str) -> None:
    table = mixed_table(1000)
    data = parquet_bytes(table, row_group_size=300, compression=compression)
    uri = store_root + "mixed.parquet"
    s3dlio.put_bytes(uri, data)
    local = pq.ParquetFile(io.BytesIO(data))
    assert s3dlio.parquet_rg_row_offsets(uri) == [0, 300, 600, 900, 1000]
    for rg in range(local.num_row_groups):
        assert same(P.read_row_group(uri, rg), local.read_row_group(rg))
    cols = ["label", "pt", "emb"]
    assert same(P.read_row_group(uri, 2, cols), local.read_row_group(2, columns=cols))
    assert same(P.read_row_group(uri, 1, [4, 1]), local.read_row_group(1, columns=["x", "pt"]))
    assert same(P.read_parquet(uri), local.read())
    assert same(P.read_parquet(uri, ["tokens"]), local.read(columns=["tokens"]))
    opened = P.open_parquet(uri)
    assert opened.metadata.num_row_groups == 4
    assert same(opened.read_row_group(3, columns=["id"]), local.read_row_group(3, columns=["id"]))
    # the original's names
    ipc = s3dlio.parquet_get_rg(uri, 1, [0, 2])
    assert same(
        pa.ipc.open_stream(ipc).read_all(), local.read_row_group(1, columns=["id", "label"])
    )
    raw = s3dlio.parquet_get_rg(uri, 1, [1], decode="raw")
    chunk = local.metadata.row_group(1).column(1)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    assert bytes(raw) == data[start : start + chunk.total_compressed_size]


def test_read_parquet_of_a_prefix(store_root: str) -> None:
    tables = [mixed_table(200 + 50 * i, seed=i) for i in range(3)]
    for i, t in enumerate(tables):
        s3dlio.put_bytes(f"{store_root}ds/part-{i}.parquet", parquet_bytes(t, row_group_size=64))
    s3dlio.put_bytes(f"{store_root}ds/_SUCCESS", b"")
    got = P.read_parquet(store_root + "ds/", columns=["id", "emb"])
    want = pa.concat_tables(t.select(["id", "emb"]) for t in tables)
    assert same(got, want)
    with pytest.raises(NotFoundError):
        P.read_parquet(store_root + "nothing-here/")


def test_footer_larger_than_the_first_read(file_root: str) -> None:
    # 700 columns make a footer of ~100 KB: a second read fetches the rest of it, once.
    table = pa.table({f"c{i:03d}": pa.array(np.arange(10, dtype=np.int32) + i) for i in range(700)})
    data = parquet_bytes(table)
    (footer_len,) = struct.unpack("<I", data[-8:-4])
    assert footer_len > P.SUFFIX
    uri = file_root + "wide.parquet"
    s3dlio.put_bytes(uri, data)
    obj = ParquetObject(uri)
    assert same(obj.read_row_group(0, ["c650"]), table.select(["c650"]))
    assert obj.stats.requests == 3  # suffix, the rest of the footer, one chunk
    assert obj.stats.bytes_fetched < footer_len + 8 + 200
    with pytest.raises(FooterTooLargeError, match="wide.parquet"):
        ParquetObject(uri, footer_cap=64 * 1024).footer  # noqa: B018 - cached, still refused


# -- what one row group costs -------------------------------------------------------------------


def test_one_column_of_eight_costs_its_chunk_and_footer(store_root: str, tmp_path: Path) -> None:
    rows = 400_000  # two row groups, 800 KB per column chunk
    table = pa.table({f"f{i}": pa.array(np.full(rows, i, np.float32)) for i in range(8)})
    data = parquet_bytes(table, row_group_size=rows // 2, compression="none", use_dictionary=False)
    uri = store_root + "eight.parquet"
    s3dlio.put_bytes(uri, data)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    chunk = meta.row_group(1).column(5).total_compressed_size
    footer = struct.unpack("<I", data[-8:-4])[0] + 8
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log)
    try:
        got = P.read_row_group(uri, 1, ["f5"])
    finally:
        s3dlio.finalize_op_log()
    assert np.array_equal(got.column("f5").to_numpy(), np.full(rows // 2, 5, np.float32))
    key = parse_uri(uri).key
    ops = [r for r in read_op_log(log) if r["file"] == key]
    data_ops = [r for r in ops if r["op"].startswith("GET")]
    fetched = sum(int(r["bytes"]) for r in data_ops)
    assert len(ops) <= 4, ops  # HEAD, the suffix, the chunk
    assert fetched <= 1.1 * (chunk + footer), (fetched, chunk, footer)
    assert fetched >= chunk
    # with the footer cached, the next row group is one request of exactly its chunk
    obj = ParquetObject(uri)
    obj.read_row_group(0, ["f5"])
    assert (obj.stats.requests, obj.stats.bytes_fetched) == (
        1,
        meta.row_group(0).column(5).total_compressed_size,
    )


def test_adjacent_chunks_are_coalesced(file_root: str) -> None:
    table = pa.table({f"f{i}": pa.array(np.arange(1000, dtype=np.float64) * i) for i in range(6)})
    data = parquet_bytes(table, compression="none")
    uri = file_root + "six.parquet"
    s3dlio.put_bytes(uri, data)
    obj = ParquetObject(uri)
    obj.footer  # noqa: B018
    before = obj.stats.requests
    obj.read_row_group(0, ["f1", "f2", "f3"])  # three adjacent chunks: one range
    assert obj.stats.requests - before == 1
    before = obj.stats.requests
    obj.read_row_group(0, ["f0", "f5"])  # far apart: two ranges
    assert obj.stats.requests - before == 2


def test_coalesce() -> None:
    assert P.coalesce([]) == []
    assert P.coalesce([(100, 10), (0, 100), (110, 5)]) == [(0, 115)]
    # a small gap is read through only while gaps stay under 5 % of the bytes wanted
    assert P.coalesce([(0, 100_000), (100_100, 100_000)]) == [(0, 200_100)]
    assert P.coalesce([(0, 1000), (1101, 1000)]) == [(0, 1000), (1101, 1000)]
    assert P.coalesce([(0, 1_000_000), (1_000_000 + 9000, 10)]) == [(0, 1_000_000), (1_009_000, 10)]


# -- a rewritten object is never read with its old footer ---------------------------------------


def test_rewritten_file_is_read_with_its_new_footer(store_root: str) -> None:
    uri = store_root + "changing.parquet"
    old = mixed_table(500, seed=1)
    s3dlio.put_bytes(uri, parquet_bytes(old, row_group_size=100))
    assert same(P.read_row_group(uri, 4), old.slice(400, 100))
    assert s3dlio.parquet_cache_len() == 1
    new = mixed_table(900, seed=2)
    s3dlio.put_bytes(uri, parquet_bytes(new, row_group_size=300))
    # a data read finds another version (If-Match), reads the new footer, reads again
    assert same(P.read_row_group(uri, 2), new.slice(600, 300))
    assert s3dlio.parquet_rg_row_offsets(uri) == [0, 300, 600, 900]
    s3dlio.put_bytes(uri, parquet_bytes(old, row_group_size=250))
    # a metadata-only call checks the version with a stat
    assert s3dlio.parquet_rg_row_offsets(uri) == [0, 250, 500]
    with pytest.raises(RowGroupIndexError):
        P.read_row_group(uri, 2)
    assert s3dlio.parquet_cache_len() == 1


def test_cache_len_clear_invalidate_and_bound(file_root: str) -> None:
    data = parquet_bytes(mixed_table(10))
    uris = [f"{file_root}c{i}.parquet" for i in range(5)]
    for uri in uris:
        s3dlio.put_bytes(uri, data)
        s3dlio.parquet_rg_row_offsets(uri)
    assert s3dlio.parquet_cache_len() == 5
    s3dlio.parquet_cache_invalidate(uris[0])
    s3dlio.parquet_cache_invalidate(file_root + "never-read.parquet")
    assert s3dlio.parquet_cache_len() == 4
    P.set_parquet_cache_capacity(2)
    try:
        assert s3dlio.parquet_cache_len() == 2
        s3dlio.parquet_rg_row_offsets(uris[0])
        assert s3dlio.parquet_cache_len() == 2
    finally:
        P.set_parquet_cache_capacity(1024)
    s3dlio.parquet_cache_clear()
    assert s3dlio.parquet_cache_len() == 0


# -- bad input ----------------------------------------------------------------------------------


def test_not_a_parquet_file(store_root: str, tmp_path: Path) -> None:
    uri = store_root + "not.parquet"
    s3dlio.put_bytes(uri, b"hello world " * 10_000)
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log)
    try:
        with pytest.raises(ParquetFormatError, match=r"not\.parquet.*no Parquet magic"):
            P.read_row_group(uri, 0)
    finally:
        s3dlio.finalize_op_log()
    got = sum(int(r["bytes"]) for r in read_op_log(log) if r["op"].startswith("GET"))
    assert got <= P.SUFFIX  # nothing read past what it takes to say so
    s3dlio.put_bytes(uri, b"PAR1")
    with pytest.raises(ParquetFormatError, match="too short"):
        s3dlio.parquet_get_rg(uri, 0)


def test_truncated_and_corrupt_footers(file_root: str) -> None:
    data = parquet_bytes(mixed_table(100))
    uri = file_root + "cut.parquet"
    s3dlio.put_bytes(uri, data[-200:])  # the footer says more bytes than the file has
    with pytest.raises(ParquetFormatError, match="does not fit"):
        P.read_row_group(uri, 0)
    (length,) = struct.unpack("<I", data[-8:-4])
    garbage = data[: -8 - length] + b"\x19" * length + data[-8:]
    s3dlio.put_bytes(uri, garbage)
    with pytest.raises(ParquetFormatError, match="corrupt footer"):
        s3dlio.parquet_rg_row_offsets(uri)


def test_footer_over_the_cap(file_root: str, tmp_path: Path) -> None:
    uri = file_root + "capped.parquet"
    data = parquet_bytes(mixed_table(100))
    s3dlio.put_bytes(uri, data)
    with pytest.raises(FooterTooLargeError, match=r"capped\.parquet.*footer_cap \(1000 bytes\)"):
        s3dlio.parquet_get_rg(uri, 0, footer_cap=1000)
    assert isinstance(FooterTooLargeError("x"), ParquetFormatError)


def test_bad_arguments(file_root: str) -> None:
    uri = file_root + "ok.parquet"
    s3dlio.put_bytes(uri, parquet_bytes(mixed_table(100), row_group_size=50))
    with pytest.raises(RowGroupIndexError, match=r"ok\.parquet.*row group 2 out of range"):
        P.read_row_group(uri, 2)
    with pytest.raises(IndexError):
        s3dlio.parquet_get_rg(uri, -1)
    with pytest.raises(InvalidArgumentError, match=r"no column 'nope'"):
        P.read_row_group(uri, 0, ["nope"])
    with pytest.raises(InvalidArgumentError, match="column index 9"):
        s3dlio.parquet_get_rg(uri, 0, [9])
    with pytest.raises(InvalidArgumentError, match="decode"):
        s3dlio.parquet_get_rg(uri, 0, decode="json")
    with pytest.raises(NotFoundError):
        P.read_row_group(file_root + "missing.parquet", 0)
