"""Local files read through one kept-open descriptor (RangeReader): every read still checks
the version, so a file changed under a reader fails loudly and never returns mixed data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zstandard

import s3dlio
from s3dlio.errors import IntegrityError, NotFoundError
from s3dlio.formats.tfrecord import TFRecordReader
from s3dlio.io.rangefile import RangeFile, RangeReader
from s3dlio.io.uri import parse_uri
from tests.helpers import (
    open_fds,
    rewrite_in_place,
    write_tfrecord_file,
)


def test_reader_keeps_one_descriptor_and_reads_exact_bytes(tmp_path: Path) -> None:
    data = np.random.default_rng(1).bytes(300_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    before = open_fds()
    reader = RangeReader(parse_uri(f"file://{path}"))
    out = bytearray(1000)
    assert reader.read_into(5000, memoryview(out)) == (1000, 1)
    assert out == data[5000:6000]
    assert len(open_fds() - before) == 1  # opened once...
    for offset in (0, 123_456, 299_500):
        n, _ = reader.read_into(offset, memoryview(out))
        assert bytes(out[:n]) == data[offset : offset + 1000]
    assert n == 500 and reader.size == 300_000 and reader.etag
    assert len(open_fds() - before) == 1  # ...and kept
    reader.close()
    reader.close()
    assert open_fds() == before


@pytest.mark.parametrize("change", ["replaced", "shrunk", "rewritten"])
def test_rangefile_fails_when_the_file_changes(tmp_path: Path, change: str) -> None:
    data = np.random.default_rng(2).bytes(200_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    f = RangeFile(f"file://{path}", block_size=4096, max_readahead=0)
    assert f.read(100) == data[:100]
    if change == "replaced":  # atomically, as every s3dlio writer does
        s3dlio.put_bytes(f"file://{path}", data[::-1])
    elif change == "shrunk":
        os.truncate(path, 150_000)
    else:
        rewrite_in_place(path, 100_000)
    f.seek(100_000)
    with pytest.raises(IntegrityError, match="changed"):
        f.read(100)
    f.close()


def test_rangefile_of_a_deleted_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.bin"
    path.write_bytes(b"x" * 10_000)
    with RangeFile(f"file://{path}", block_size=4096) as f:
        assert f.read(10) == b"x" * 10
        path.unlink()
        f.seek(8192)
        with pytest.raises(NotFoundError):
            f.read(10)


def test_rangefile_closes_its_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "c.bin"
    path.write_bytes(b"y" * 50_000)
    before = open_fds()
    with RangeFile(f"file://{path}", block_size=4096) as f:
        assert f.read(10) == b"y" * 10
        assert len(open_fds() - before) == 1
    assert open_fds() == before


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("change", ["replaced", "shrunk", "rewritten"])
def test_tfrecord_iteration_fails_when_the_file_changes(
    tmp_path: Path, change: str, prefetch: bool
) -> None:
    path = tmp_path / "t.tfrecord"
    payloads = write_tfrecord_file(path)
    size = path.stat().st_size
    reader = TFRecordReader(f"file://{path}", block_size=16 * 1024, prefetch=prefetch)
    records = iter(reader)
    held = [next(records) for _ in range(50)]  # views into block buffers
    if change == "replaced":
        s3dlio.put_bytes(f"file://{path}", path.read_bytes()[::-1])
    elif change == "shrunk":
        os.truncate(path, size // 2)
    else:
        rewrite_in_place(path, size - 5000)
    got = []
    with pytest.raises(IntegrityError, match="changed"):
        for record in records:
            got.append(bytes(record))
    # every record handed out is the original's: from blocks read before the change
    assert [bytes(r) for r in held] == payloads[:50]
    assert got == payloads[50 : 50 + len(got)]
    assert len(got) < len(payloads) - 50


@pytest.mark.parametrize("prefetch", [False, True])
def test_tfrecord_iteration_releases_its_descriptor(tmp_path: Path, prefetch: bool) -> None:
    path = tmp_path / "r.tfrecord"
    payloads = write_tfrecord_file(path, count=300)
    before = open_fds()
    reader = TFRecordReader(f"file://{path}", block_size=8192, prefetch=prefetch)
    assert [bytes(r) for r in reader] == payloads
    assert open_fds() == before
    records = iter(reader)  # abandoned half-way: the file is closed with the generator
    assert bytes(next(records)) == payloads[0]
    assert len(open_fds() - before) == 1
    records.close()
    assert open_fds() == before


def test_local_reads_are_op_logged(tmp_path: Path) -> None:
    path = tmp_path / "logged.tfrecord"
    write_tfrecord_file(path, count=100)
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log)
    try:
        assert len(list(TFRecordReader(f"file://{path}", block_size=32 * 1024))) == 100
        with RangeFile(f"file://{path}", block_size=4096) as f:
            f.seek(5000)
            assert f.read(10) == path.read_bytes()[5000:5010]
    finally:
        s3dlio.finalize_op_log()
    with open(log, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    rows = [line.split("\t") for line in text.splitlines()[1:]]
    ranges = [r for r in rows if r[2] == "GET_RANGE" and r[7] == str(path)]
    total = sum(int(r[5]) for r in ranges)
    assert len(ranges) >= 5 and total == path.stat().st_size + 4096
