"""TFRecord reading, writing and indexing, cross-checked against the ``tfrecord`` package."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tfrecord.reader import tfrecord_iterator, tfrecord_loader
from tfrecord.tools.tfrecord2idx import create_index
from tfrecord.writer import TFRecordWriter as PkgWriter

import s3dlio
from s3dlio.errors import IntegrityError, NotFoundError, UnsupportedOperationError
from s3dlio.formats.tfrecord import (
    TFRecordReader,
    TFRecordWriter,
    decode_example,
    iter_records,
)
from tests.helpers import tfrecord_frame

MiB = 1024 * 1024


def _payloads(count: int, seed: int = 0, max_size: int = 3000) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.bytes(int(n)) for n in rng.integers(0, max_size, count)]


def _package_file(path: Path, count: int = 60) -> list[dict]:
    """A TFRecord file of Examples written by the ``tfrecord`` package; returns the features."""
    rng = np.random.default_rng(1)
    rows = []
    writer = PkgWriter(str(path))
    for _ in range(count):
        row = {
            "image": rng.bytes(int(rng.integers(1, 2000))),
            "label": int(rng.integers(-(2**40), 2**40)),
            "scores": rng.random(int(rng.integers(1, 6))).astype(np.float32).tolist(),
        }
        writer.write(
            {
                "image": (row["image"], "byte"),
                "label": (row["label"], "int"),
                "scores": (row["scores"], "float"),
            }
        )
        rows.append(row)
    writer.close()
    return rows


def _local(uri: str, tmp_path: Path, name: str = "copy.tfrecord") -> Path:
    """Download ``uri`` to a local file (for the ``tfrecord`` package, which reads paths)."""
    path = tmp_path / name
    path.write_bytes(bytes(s3dlio.get(uri)))
    return path


def test_package_files_read_identically(store_root: str, tmp_path: Path) -> None:
    path = tmp_path / "pkg.tfrecord"
    rows = _package_file(path)
    uri = store_root + "pkg.tfrecord"
    s3dlio.put_bytes(uri, path.read_bytes())
    theirs = [bytes(r) for r in tfrecord_iterator(str(path))]
    ours = [bytes(r) for r in TFRecordReader(uri)]
    assert ours == theirs
    decoded = [decode_example(r) for r in TFRecordReader(uri)]
    for row, got in zip(rows, decoded, strict=True):
        assert got["image"].dtype == object and list(got["image"]) == [row["image"]]
        assert got["label"].dtype == np.int64 and got["label"].tolist() == [row["label"]]
        assert got["scores"].dtype == np.float32
        assert np.array_equal(got["scores"], np.array(row["scores"], np.float32))
    parsed = list(tfrecord_loader(str(path), None, None))
    for ref, got in zip(parsed, decoded, strict=True):
        assert ref["image"] == got["image"][0]
        assert np.array_equal(ref["label"], got["label"])
        assert np.array_equal(ref["scores"], got["scores"])


def test_index_matches_tfrecord2idx_byte_for_byte(store_root: str, tmp_path: Path) -> None:
    path = tmp_path / "pkg.tfrecord"
    _package_file(path, 40)
    with open(path, "ab") as f:  # add records of other sizes (empty one included)
        for payload in _payloads(25, seed=3):
            f.write(tfrecord_frame(payload))
    reference = tmp_path / "pkg.idx"
    create_index(str(path), str(reference))  # what `python -m tfrecord.tools.tfrecord2idx` runs
    uri = store_root + "data/pkg.tfrecord"
    s3dlio.put_bytes(uri, path.read_bytes())
    assert s3dlio.create_tfrecord_index(uri) == 65
    assert bytes(s3dlio.get(uri + ".idx")) == reference.read_bytes()
    assert s3dlio.index_tfrecord_bytes(path.read_bytes()) == reference.read_text()
    entries = s3dlio.read_tfrecord_index(uri + ".idx")
    assert entries == s3dlio.get_tfrecord_index_entries(path.read_bytes())
    assert entries == [tuple(map(int, line.split())) for line in reference.read_text().splitlines()]
    other = store_root + "elsewhere/custom.idx"
    assert s3dlio.create_tfrecord_index(uri, other) == 65
    assert bytes(s3dlio.get(other)) == reference.read_bytes()


def test_local_paths_accepted(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    _package_file(path, 5)
    assert s3dlio.create_tfrecord_index(str(path)) == 5
    assert len(s3dlio.read_tfrecord_index(str(path) + ".idx")) == 5
    assert len(TFRecordReader(str(path))) == 5


def test_our_files_read_by_the_package(store_root: str, tmp_path: Path) -> None:
    uri = store_root + "ours.tfrecord"
    rng = np.random.default_rng(7)
    rows = []
    with TFRecordWriter(uri, index=True) as writer:
        for i in range(50):
            row = {
                "image": rng.bytes(int(rng.integers(0, 3000))),
                "label": [i, -i, 2**50],
                "scores": rng.random(3).astype(np.float32),
            }
            writer.write_example(row)
            rows.append(row)
    assert writer.records == 50
    path = _local(uri, tmp_path)
    index = _local(uri + ".idx", tmp_path, "copy.idx")
    description = {"image": "byte", "label": "int", "scores": "float"}
    for row, got in zip(rows, tfrecord_loader(str(path), None, description), strict=True):
        assert got["image"] == row["image"]
        assert got["label"].tolist() == row["label"]
        assert np.array_equal(got["scores"], row["scores"])
    reference = tmp_path / "ref.idx"
    create_index(str(path), str(reference))
    assert index.read_bytes() == reference.read_bytes()


def test_read_record_is_one_range_request(store_root: str) -> None:
    payloads = _payloads(30, seed=4)
    uri = store_root + "rand.tfrecord"
    with TFRecordWriter(uri, index=True) as writer:
        for p in payloads:
            writer.write(p)
    reader = TFRecordReader(uri)  # index: uri + ".idx"
    assert len(reader) == 30
    before = reader.stats.requests
    assert bytes(reader.read_record(17)) == payloads[17]
    assert reader.stats.requests == before + 1
    assert reader.stats.bytes_fetched == len(payloads[17]) + 16
    assert bytes(reader[-1]) == payloads[-1]
    assert [bytes(r) for r in reader.read_records([3, 0, 29])] == [payloads[i] for i in (3, 0, 29)]
    with pytest.raises(IndexError):
        reader.read_record(30)
    assert [bytes(r) for r in reader.iter_records(5, 9)] == payloads[5:9]
    assert [bytes(r) for r in reader.iter_records(28)] == payloads[28:]


def test_missing_index_names_the_fix(store_root: str) -> None:
    uri = store_root + "noidx.tfrecord"
    s3dlio.put_bytes(uri, tfrecord_frame(b"abc"))
    reader = TFRecordReader(uri)
    assert [bytes(r) for r in reader] == [b"abc"]
    with pytest.raises(NotFoundError, match="create_tfrecord_index"):
        reader.read_record(0)
    with pytest.raises(TypeError, match="create_tfrecord_index"):
        len(reader)


def test_explicit_index_entries(store_root: str) -> None:
    payloads = _payloads(12, seed=5)
    data = b"".join(tfrecord_frame(p) for p in payloads)
    uri = store_root + "x.tfrecord"
    s3dlio.put_bytes(uri, data)
    reader = TFRecordReader(uri, index=s3dlio.get_tfrecord_index_entries(data))
    assert [bytes(reader.read_record(i)) for i in range(12)] == payloads


def test_flipped_payload_byte_raises_with_uri_and_offset(store_root: str) -> None:
    payloads = _payloads(20, seed=6, max_size=500)
    frames = [tfrecord_frame(p) for p in payloads]
    data = bytearray(b"".join(frames))
    bad = 13
    while not payloads[bad]:
        bad += 1
    offset = sum(len(f) for f in frames[:bad])
    data[offset + 12 + len(payloads[bad]) // 2] ^= 0x01
    uri = store_root + "corrupt.tfrecord"
    s3dlio.put_bytes(uri, bytes(data))
    got = []
    with pytest.raises(IntegrityError) as info:
        for record in TFRecordReader(uri):
            got.append(bytes(record))
    assert got == payloads[:bad]
    assert uri in str(info.value) and f"offset {offset}" in str(info.value)
    # unverified reading returns the (corrupt) data; by index, the bad record alone fails
    assert len(list(TFRecordReader(uri, verify=False))) == 20
    reader = TFRecordReader(uri, index=s3dlio.get_tfrecord_index_entries(data))
    assert bytes(reader.read_record(bad - 1)) == payloads[bad - 1]
    with pytest.raises(IntegrityError, match=f"offset {offset}"):
        reader.read_record(bad)


def test_corrupt_length_field_is_caught(store_root: str) -> None:
    data = bytearray(tfrecord_frame(b"hello") + tfrecord_frame(b"world"))
    data[len(tfrecord_frame(b"hello"))] ^= 0x40  # the second record's length
    uri = store_root + "badlen.tfrecord"
    s3dlio.put_bytes(uri, bytes(data))
    with pytest.raises(IntegrityError, match="header"):
        list(TFRecordReader(uri))


def test_truncated_last_record(store_root: str) -> None:
    payloads = _payloads(10, seed=8, max_size=800)
    payloads[-1] = b"z" * 700
    data = b"".join(tfrecord_frame(p) for p in payloads)
    uri = store_root + "trunc.tfrecord"
    s3dlio.put_bytes(uri, data[:-300])
    got = []
    with pytest.raises(IntegrityError, match=r"truncated record at offset \d+") as info:
        for record in TFRecordReader(uri):
            got.append(bytes(record))
    assert got == payloads[:-1]
    assert str(len(data) - 716) in str(info.value)
    with pytest.raises(IntegrityError, match="truncated"):
        s3dlio.create_tfrecord_index(uri)
    s3dlio.put_bytes(uri, data[:-710])  # ends inside the 12-byte header
    with pytest.raises(IntegrityError, match="truncated record header"):
        list(TFRecordReader(uri, verify=False))


def test_gzip_read_and_write(store_root: str, tmp_path: Path) -> None:
    payloads = _payloads(300, seed=9)
    uri = store_root + "z.tfrecord.gz"
    with TFRecordWriter(uri, compression="gzip") as writer:
        for p in payloads:
            writer.write(p)
    path = _local(uri, tmp_path, "z.gz")
    assert [bytes(r) for r in tfrecord_iterator(str(path), compression_type="gzip")] == payloads
    assert [bytes(r) for r in TFRecordReader(uri, compression="gzip")] == payloads
    # a file gzipped by the standard library, in two members, read back in small blocks
    plain = b"".join(tfrecord_frame(p) for p in payloads)
    half = len(plain) // 2
    uri2 = store_root + "std.tfrecord.gz"
    s3dlio.put_bytes(uri2, gzip.compress(plain[:half]) + gzip.compress(plain[half:]))
    reader = TFRecordReader(uri2, compression="gzip", block_size=64 * 1024)
    assert [bytes(r) for r in reader] == payloads
    with pytest.raises(UnsupportedOperationError, match="sequentially"):
        reader.read_record(0)
    s3dlio.put_bytes(uri2, gzip.compress(plain)[:-20])
    with pytest.raises(IntegrityError, match="gzip"):
        list(TFRecordReader(uri2, compression="gzip"))


def test_records_spanning_blocks_and_larger_than_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    sizes = [100] * 50 + [70_000, 5, 300_000, 0, 1_000_000] + list(rng.integers(0, 5000, 200))
    payloads = [rng.bytes(int(n)) for n in sizes]
    uri = f"file://{tmp_path}/span.tfrecord"
    with TFRecordWriter(uri) as writer:
        for p in payloads:
            writer.write(p)
    for block in (4096, 65536, 1 << 20):
        for prefetch in (True, False):
            reader = TFRecordReader(uri, block_size=block, prefetch=prefetch)
            assert [bytes(r) for r in reader] == payloads


def test_records_stay_valid_while_held(tmp_path: Path) -> None:
    payloads = _payloads(3000, seed=11)
    uri = f"file://{tmp_path}/hold.tfrecord"
    with TFRecordWriter(uri) as writer:
        for p in payloads:
            writer.write(p)
    held = list(TFRecordReader(uri, block_size=64 * 1024))  # views kept across many blocks
    assert [bytes(r) for r in held] == payloads


def test_in_memory_records() -> None:
    payloads = _payloads(40, seed=12)
    data = b"".join(tfrecord_frame(p) for p in payloads)
    assert [bytes(r) for r in iter_records(data)] == payloads
    assert [bytes(r) for r in iter_records(memoryview(data), verify=False)] == payloads
    assert list(iter_records(b"")) == []


def test_empty_file(store_root: str) -> None:
    uri = store_root + "empty.tfrecord"
    with TFRecordWriter(uri, index=True):
        pass
    assert list(TFRecordReader(uri)) == []
    assert len(TFRecordReader(uri)) == 0
    assert s3dlio.create_tfrecord_index(uri) == 0


def test_writer_exception_leaves_nothing(store_root: str) -> None:
    uri = store_root + "aborted.tfrecord"
    with pytest.raises(RuntimeError), TFRecordWriter(uri) as writer:
        writer.write(b"x" * 100)
        raise RuntimeError("stop")
    assert not s3dlio.exists(uri)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(
        st.one_of(st.integers(0, 64), st.integers(0, 4096), st.integers(0, MiB)),
        min_size=0,
        max_size=12,
    ),
    block=st.sampled_from([4096, 100_000, 8 * MiB]),
)
def test_roundtrip_random_sizes(tmp_path: Path, sizes: list[int], block: int) -> None:
    payloads = [os.urandom(n) for n in sizes]
    uri = f"file://{tmp_path}/hyp-{len(sizes)}-{block}.tfrecord"
    with TFRecordWriter(uri, index=True) as writer:
        for p in payloads:
            writer.write(p)
    assert [bytes(r) for r in TFRecordReader(uri, block_size=block)] == payloads
    reader = TFRecordReader(uri)
    assert len(reader) == len(payloads)
    for i in range(len(payloads)):
        assert bytes(reader.read_record(i)) == payloads[i]
    assert s3dlio.create_tfrecord_index(uri, uri + ".again") == len(payloads)
    assert bytes(s3dlio.get(uri + ".again")) == bytes(s3dlio.get(uri + ".idx"))


def test_stale_index_is_detected(store_root: str) -> None:
    uri = store_root + "stale.tfrecord"
    s3dlio.put_bytes(uri, tfrecord_frame(b"a" * 10) + tfrecord_frame(b"b" * 20))
    s3dlio.create_tfrecord_index(uri)
    s3dlio.put_bytes(
        uri, tfrecord_frame(b"a" * 12) + tfrecord_frame(b"b" * 20)
    )  # rewritten: index is stale
    reader = TFRecordReader(uri)
    with pytest.raises(IntegrityError, match="stale index"):
        reader.read_record(0)
    with pytest.raises(IntegrityError, match="past the end"):
        TFRecordReader(uri, index=[(40, 100)]).read_record(0)


def test_runs_of_equal_records_of_every_length(tmp_path: Path) -> None:
    """Runs of equal-length records (found with strided probes) ending at every position."""
    rng = np.random.default_rng(13)
    payloads = []
    for run in list(range(1, 70)) + [200, 1000, 1500]:
        size = int(rng.integers(0, 40))
        payloads += [rng.bytes(size) for _ in range(run)]
    path = tmp_path / "runs.tfrecord"
    path.write_bytes(b"".join(tfrecord_frame(p) for p in payloads))
    assert [bytes(r) for r in tfrecord_iterator(str(path))] == payloads
    for block in (4096, 65536, 1 << 20):
        for verify in (True, False):
            reader = TFRecordReader(str(path), verify=verify, block_size=block)
            assert [bytes(r) for r in reader] == payloads
    offsets = np.cumsum([0] + [len(p) + 16 for p in payloads[:-1]])
    assert s3dlio.get_tfrecord_index_entries(path.read_bytes()) == [
        (int(o), len(p) + 16) for o, p in zip(offsets, payloads, strict=True)
    ]
