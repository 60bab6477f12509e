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
    """Tables equal value for value (floats compared by their bits: NaNs are equal to
    themselves, as they are in the bytes)."""
    if a.schema.remove_metadata() != b.schema.remove_metadata() or a.num_rows != b.num_rows:
        return False
    return all(
        _same_array(x.combine_chunks(), y.combine_chunks())
        for x, y in zip(a.columns, b.columns, strict=True)
    )


def _same_array(x: pa.Array, y: pa.Array) -> bool:
    kind = x.type
    if pa.types.is_struct(kind):
        return x.is_valid().equals(y.is_valid()) and all(
            _same_array(x.field(i), y.field(i)) for i in range(kind.num_fields)
        )
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind):
        return x.is_valid().equals(y.is_valid()) and _same_array(x.flatten(), y.flatten())
    if pa.types.is_floating(kind):
        bits = np.dtype(f"u{kind.bit_width // 8}")
        xs = x.to_numpy(zero_copy_only=False).view(bits)
        return bool(np.array_equal(xs, y.to_numpy(zero_copy_only=False).view(bits)))
    return bool(x.equals(y))


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


# -- generators ---------------------------------------------------------------------------------


def test_generators_write_what_pyarrow_reads(store_root: str) -> None:
    from s3dlio.formats import parquet_gen as G

    data = s3dlio.generate_parquet_bytes(3, 100, 4, seed=1)
    pf = pq.ParquetFile(io.BytesIO(bytes(data)))
    assert pf.schema_arrow == pa.schema(
        [pa.field(f"col{i}", pa.float32(), False) for i in range(3)]
    )
    assert [pf.metadata.row_group(i).num_rows for i in range(4)] == [100] * 4
    values = pf.read().column("col2").to_numpy()
    assert values.min() >= 0 and values.max() < 1 and len(np.unique(values)) > 300
    schema = [("emb", 16), ("y", 1)]
    data = s3dlio.generate_parquet_bytes_schema(schema, 50, 3, seed=2)
    assert bytes(data) == bytes(G.generate_parquet_bytes_schema(schema, 50, 3, seed=2))
    read = pq.read_table(io.BytesIO(bytes(data)))
    assert read.schema.field("emb").type == pa.list_(pa.field("element", pa.float32(), False), 16)
    assert read.num_rows == 150
    s3dlio.generate_and_write_parquet(store_root + "a.parquet", 2, 10, 3, seed=3)
    s3dlio.generate_and_write_parquet_schema(store_root + "b.parquet", schema, 7, 2, seed=4)
    size = s3dlio.generate_and_write_parquet_schema_streaming(
        store_root + "c.parquet", schema, 30, 5, seed=5
    )
    assert size == s3dlio.stat(store_root + "c.parquet")["size"]
    assert s3dlio.parquet_rg_row_offsets(store_root + "a.parquet") == [0, 10, 20, 30]
    assert s3dlio.parquet_rg_row_offsets(store_root + "b.parquet") == [0, 7, 14]
    streamed = P.read_parquet(store_root + "c.parquet")
    whole = pq.read_table(
        io.BytesIO(bytes(s3dlio.generate_parquet_bytes_schema(schema, 30, 5, seed=5)))
    )
    assert same(streamed, whole)
    with pytest.raises(InvalidArgumentError):
        s3dlio.generate_parquet_bytes_schema([("a", 0)], 1, 1)
    with pytest.raises(InvalidArgumentError):
        s3dlio.generate_parquet_bytes(0, 1, 1)


def test_streamed_generation_uses_a_few_row_groups_of_memory(tmp_path: Path) -> None:
    # In a fresh process, so that pyarrow's pool peak and tracemalloc's count only this.
    import subprocess
    import sys

    code = f"""
import tracemalloc, pyarrow as pa, s3dlio
from s3dlio.io.writer import WriterOptions
generate = s3dlio.generate_and_write_parquet_streaming
generate("file://{tmp_path}/warm.parquet", 4, 16, 2, seed=1)  # lazy imports before tracing
tracemalloc.start()
size = generate(
    "file://{tmp_path}/big.parquet", 4, 65536, 48, seed=1,
    options=WriterOptions(part_size="5MiB", max_in_flight=2))
print(size, pa.default_memory_pool().max_memory(), tracemalloc.get_traced_memory()[1])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path.cwd()
    )
    assert done.returncode == 0, done.stderr
    size, arrow_peak, python_peak = map(int, done.stdout.split())
    rg = 65536 * 4 * 4  # 1 MiB
    assert size > 48 * rg
    assert arrow_peak < 6 * rg, arrow_peak  # a few row groups, not the 48 MiB file
    # the writer's parts (one filling, two in flight, one kept for reuse) + generation
    assert python_peak < 4 * 5 * 2**20 + 4 * rg < size / 2, python_peak


def test_put_object_type_parquet_and_cli(store_root: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    assert (
        s3dlio.put(store_root + "gen/", 2, "f{}.parquet", size="1MiB", object_type="parquet") == 2
    )
    for i in range(2):
        table = P.read_parquet(f"{store_root}gen/f{i}.parquet")
        assert table.num_columns == 8 and table.num_rows == 2**20 // 32
    if not store_root.startswith("file://"):
        return
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "s3dlio.cli",
            "put",
            "-o",
            "parquet",
            "-n",
            "1",
            "-s",
            "200KiB",
            store_root + "cli/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [uri] = s3dlio.list(store_root + "cli/")
    assert pq.ParquetFile(parse_uri(uri).key).metadata.num_rows == 200 * 1024 // 32


# -- the original's index -----------------------------------------------------------------------


def test_parquet_index(file_root: str) -> None:
    uri = file_root + "idx.parquet"
    data = parquet_bytes(mixed_table(250), row_group_size=100)
    s3dlio.put_bytes(uri, data)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    idx = s3dlio.PyParquetIndex()
    assert not idx.is_indexed(uri) and idx.file_rg_count(uri) is None
    idx.ensure_indexed([uri, uri], epoch=1, batch_size=4)
    assert idx.is_indexed(uri) and idx.file_count() == 1 and idx.file_rg_count(uri) == 3
    rg, offset, length = idx.rg_lookup(uri, 150)
    assert rg == 1 and (offset, length) == idx.rg_range(uri, 1)
    chunks = [meta.row_group(1).column(j) for j in range(meta.num_columns)]
    start = min(c.dictionary_page_offset or c.data_page_offset for c in chunks)
    assert offset == start and length == sum(c.total_compressed_size for c in chunks)
    assert bytes(s3dlio.get_range(uri, offset, length)) == bytes(
        s3dlio.parquet_get_rg(uri, 1, decode="raw")
    )
    assert idx.rg_for_sample(uri, 249) == 2 and idx.rg_for_sample(uri, 10_000) == 2
    assert not idx.was_fetched(uri, 1, 1)
    assert idx.check_and_mark(uri, 1, 1) is False and idx.check_and_mark(uri, 1, 1) is True
    assert idx.was_fetched(uri, 1, 1) and not idx.was_fetched(uri, 1, 2)
    idx.mark_fetched(uri, 0, 2)
    assert idx.was_fetched(uri, 0, 2)
    with pytest.raises(IndexError):
        idx.rg_range(uri, 3)
    with pytest.raises(InvalidArgumentError, match="not indexed"):
        idx.rg_range(file_root + "other.parquet", 0)
    one_col = s3dlio.PyParquetIndex(col_indices=[1])
    one_col.ensure_indexed([uri])
    x = meta.row_group(2).column(1)
    x_start = x.dictionary_page_offset or x.data_page_offset
    assert one_col.rg_range(uri, 2) == (x_start, x.total_compressed_size)
    idx.invalidate_uri(uri)
    assert idx.file_count() == 0
    idx.ensure_indexed([uri])
    idx.clear()
    assert len(idx) == 0


# -- the original reads the same -----------------------------------------------------------------

_ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = _ROOT / ".venv-original" / "bin" / "python"

ORIGINAL_SCRIPT = """
import json, sys, s3dlio
base, local = sys.argv[1], sys.argv[2]
s3dlio.generate_and_write_parquet(base + "o1.parquet", 5, 300, 4)
s3dlio.generate_and_write_parquet_schema(base + "o2.parquet", [("emb", 8), ("y", 1)], 40, 3)
out = {}
for name in ("o1", "o2", "ours"):
    uri = base + name + ".parquet"
    out[name] = {"offsets": s3dlio.parquet_rg_row_offsets(uri)}
    for rg in range(len(out[name]["offsets"]) - 1):
        for cols in (None, [1], [0, 1]):
            for decode in ("arrow", "raw"):
                data = bytes(s3dlio.parquet_get_rg(uri, rg, col_indices=cols, decode=decode))
                open(f"{local}{name}-{rg}-{cols}-{decode}.bin", "wb").write(data)
print(json.dumps(out))
"""


def test_same_answers_as_the_original(file_root: str) -> None:
    import json
    import os
    import subprocess
    import tempfile

    if not ORIGINAL.exists():
        pytest.skip(f"the original wheel is not installed ({ORIGINAL} missing)")
    s3dlio.generate_and_write_parquet_schema(
        file_root + "ours.parquet", [("a", 3), ("b", 1)], 25, 2
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(ORIGINAL), "-c", ORIGINAL_SCRIPT, file_root, parse_uri(file_root).key],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    base = parse_uri(file_root).key
    for name, info in theirs.items():
        uri = f"{file_root}{name}.parquet"
        assert s3dlio.parquet_rg_row_offsets(uri) == info["offsets"]
        for rg in range(len(info["offsets"]) - 1):
            for cols in (None, [1], [0, 1]):
                raw = Path(f"{base}{name}-{rg}-{cols}-raw.bin").read_bytes()
                assert bytes(s3dlio.parquet_get_rg(uri, rg, cols, decode="raw")) == raw
                arrow = Path(f"{base}{name}-{rg}-{cols}-arrow.bin").read_bytes()
                want = pa.ipc.open_stream(arrow).read_all()
                got = pa.ipc.open_stream(s3dlio.parquet_get_rg(uri, rg, cols)).read_all()
                assert same(got, want), (name, rg, cols)
