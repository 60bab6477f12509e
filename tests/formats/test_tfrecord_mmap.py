"""``TFRecordReader(mmap=True)``: local files read through a read-only mapping, no copies.

Checked against the copying reader on the same files (every record, every window size), and for
what a mapping changes: records stay valid after the file is closed or replaced, an in-place
change is caught between windows, a truncation under a held record kills the process (SIGBUS,
as documented), and nothing but ``file://`` can be mapped.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

import s3dlio
from s3dlio.errors import IntegrityError, NotFoundError, UnsupportedOperationError
from s3dlio.formats.tfrecord import TFRecordReader, TFRecordWriter
from s3dlio.torch import TFRecordDataset
from tests.helpers import (
    MiB,
    log_rows,
    open_fds,
    rewrite_in_place,
    tfrecord_frame,
    write_tfrecord_file,
)


def _mixed_file(path: Path) -> list[bytes]:
    """Records of every kind of size: empty, tiny, runs of equal ones, larger than a window."""
    rng = np.random.default_rng(21)
    sizes = (
        [0, 1, 7] + [100] * 300 + [70_000, 5, 3 * MiB, 0, MiB] + list(rng.integers(0, 5000, 400))
    )
    payloads = [rng.bytes(int(n)) for n in sizes]
    with TFRecordWriter(f"file://{path}", index=True) as writer:
        for p in payloads:
            writer.write(p)
    return payloads


@pytest.mark.parametrize("block", [4096, 65_536, MiB, None])
@pytest.mark.parametrize("verify", [True, False])
def test_same_records_as_the_copying_reader(tmp_path: Path, block: int | None, verify: bool):
    path = tmp_path / "mixed.tfrecord"
    payloads = _mixed_file(path)
    uri = f"file://{path}"
    reader = TFRecordReader(uri, verify=verify, block_size=block, mmap=True)
    held = list(reader)  # every view kept past the end of the iteration (the file is closed)
    assert [bytes(r) for r in held] == payloads
    assert [bytes(r) for r in TFRecordReader(uri, verify=verify, block_size=block)] == payloads
    held[-1][:3] = b"xyz"  # writable, like the copying reader's records: a private copy
    assert bytes(held[-1][:3]) == b"xyz"
    assert [bytes(r) for r in TFRecordReader(uri, mmap=True)] == payloads
    assert (reader.stats.requests, reader.stats.bytes_fetched) == (1, path.stat().st_size)


def test_shards_and_random_access(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tfrecord"
    payloads = _mixed_file(path)
    reader = TFRecordReader(str(path), mmap=True)
    for start, stop in [(0, 10), (300, 306), (303, 305), (5, None), (700, 710)]:
        want = payloads[start:stop]
        assert [bytes(r) for r in reader.iter_records(start, stop)] == want
    assert len(reader) == len(payloads)
    before = open_fds()
    for i in (0, 303, 304, 700, -1):
        assert bytes(reader.read_record(i)) == payloads[i]
    assert len(open_fds() - before) == 2  # the file, and the mapping's own (Python's mmap)
    assert [bytes(r) for r in reader.read_records([2, 306, 1])] == [
        payloads[j] for j in (2, 306, 1)
    ]
    record = reader.read_record(305)
    record[:3] = b"xyz"  # an in-place transform of what it was handed...
    assert bytes(reader.read_record(305)) == payloads[305]  # ...changes no later read
    reader.close()
    assert open_fds() == before  # records are copies: nothing keeps the mapping
    assert bytes(reader.read_record(306)) == payloads[306]  # mapped again when needed
    rewrite_in_place(path, 100)  # same size, new bytes and modification time
    with pytest.raises(IntegrityError, match="modified in place"):
        reader.read_record(306)
    reader.close()


def test_corruption_is_reported_like_the_copying_reader(tmp_path: Path) -> None:
    payloads = [bytes([i]) * (1000 + i) for i in range(50)]
    frames = [tfrecord_frame(p) for p in payloads]
    data = bytearray(b"".join(frames))
    offset = sum(len(f) for f in frames[:31])
    data[offset + 12 + 500] ^= 0x10
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    uri = f"file://{path}"
    got = []
    with pytest.raises(IntegrityError, match=f"offset {offset}") as info:
        for record in TFRecordReader(uri, mmap=True, block_size=8192):
            got.append(bytes(record))
    assert got == payloads[:31] and uri in str(info.value)
    reader = TFRecordReader(uri, mmap=True, index=s3dlio.get_tfrecord_index_entries(bytes(data)))
    assert bytes(reader.read_record(30)) == payloads[30]
    with pytest.raises(IntegrityError, match=f"offset {offset}"):
        reader.read_record(31)
    path.write_bytes(bytes(data[: offset + 700]))  # ends inside record 31
    with pytest.raises(IntegrityError, match=f"truncated record at offset {offset}"):
        list(TFRecordReader(uri, mmap=True, verify=False))
    with pytest.raises(IntegrityError, match="modified in place"):
        reader.read_record(0)  # cut short under the reader's mapping: caught before a touch
    index = s3dlio.get_tfrecord_index_entries(bytes(data))
    with pytest.raises(IntegrityError, match="past the end"):
        TFRecordReader(uri, mmap=True, index=index).read_record(40)  # a stale index


def test_gzip_and_empty_files(tmp_path: Path) -> None:
    payloads = [os.urandom(n) for n in (0, 10, 5000, 200_000)] * 5
    plain = b"".join(tfrecord_frame(p) for p in payloads)
    path = tmp_path / "z.tfrecord.gz"
    path.write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]))
    for block in (None, 4096):
        reader = TFRecordReader(str(path), compression="gzip", mmap=True, block_size=block)
        assert [bytes(r) for r in reader] == payloads
        if block:  # decompressed into blocks of the size asked for, grown only to fit records
            assert max(len(w[0]) for w in _gzip_windows(reader)) < 2 * MiB
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert list(TFRecordReader(str(empty), mmap=True)) == []
    with pytest.raises(NotFoundError, match="missing.tfrecord"):
        list(TFRecordReader(str(tmp_path / "missing.tfrecord"), mmap=True))


def _gzip_windows(reader: TFRecordReader) -> list:
    from s3dlio.formats.blocks import GzipBlockSource
    from s3dlio.formats.mapped import MappedSource

    raw = MappedSource(reader.uri)  # as the reader builds it
    return list(GzipBlockSource(reader.uri, block_size=reader.block_size, raw=raw))


def test_bad_block_size_is_refused(tmp_path: Path) -> None:
    for size in (0, -1):
        with pytest.raises(ValueError, match="block_size"):
            TFRecordReader(str(tmp_path / "x.tfrecord"), mmap=True, block_size=size)


def test_only_local_files_can_be_mapped(tmp_path: Path) -> None:
    for uri in ("s3://bucket/a.tfrecord", f"direct://{tmp_path}/a.tfrecord"):
        with pytest.raises(UnsupportedOperationError, match="file://") as info:
            TFRecordReader(uri, mmap=True)
        assert uri in str(info.value)


def test_in_place_change_is_caught_between_windows(tmp_path: Path) -> None:
    path = tmp_path / "t.tfrecord"
    payloads = write_tfrecord_file(path, count=400, size=1000)
    records = iter(TFRecordReader(str(path), mmap=True, block_size=16 * 1024))
    held = [bytes(next(records)) for _ in range(20)]
    rewrite_in_place(path, path.stat().st_size - 5000)
    with pytest.raises(IntegrityError, match="modified in place"):
        for _ in records:
            pass
    assert held == payloads[:20]


def test_a_replaced_file_keeps_the_mapped_version(tmp_path: Path) -> None:
    path = tmp_path / "t.tfrecord"
    payloads = write_tfrecord_file(path, count=400, size=1000)
    records = iter(TFRecordReader(str(path), mmap=True, block_size=16 * 1024))
    first = [next(records) for _ in range(10)]
    s3dlio.put_bytes(f"file://{path}", b"replaced")  # temp file renamed over it
    assert [bytes(r) for r in first + list(records)] == payloads


def test_truncation_under_a_held_record_is_sigbus(tmp_path: Path) -> None:
    """The documented hazard of a mapping: shown in a child process, which it kills."""
    path = tmp_path / "t.tfrecord"
    write_tfrecord_file(path, count=64, size=64 * 1024)
    code = (
        "import os, sys\n"
        "from s3dlio.formats.tfrecord import TFRecordReader\n"
        "held = list(TFRecordReader(sys.argv[1], mmap=True))\n"
        "os.truncate(sys.argv[1], 4096)\n"
        "print('touching', flush=True)\n"
        "bytes(held[-1])\n"
        "print('survived', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "touching\n"
    assert done.returncode == -signal.SIGBUS


def test_descriptor_released_and_mapping_op_logged(tmp_path: Path) -> None:
    path = tmp_path / "t.tfrecord"
    payloads = write_tfrecord_file(path, count=300)
    before = open_fds()
    records = iter(TFRecordReader(str(path), mmap=True, block_size=8192))
    assert bytes(next(records)) == payloads[0]
    assert len(open_fds() - before) == 2  # the file, and the mapping's own (Python's mmap)
    records.close()
    assert open_fds() == before
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log)
    try:
        assert len(list(TFRecordReader(str(path), mmap=True, block_size=8192))) == 300
    finally:
        s3dlio.finalize_op_log()
    rows = [r for r in log_rows(log) if r[7] == str(path)]
    assert [(r[2], int(r[5])) for r in rows] == [("GET", path.stat().st_size)]


def test_dataset_reads_through_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tfrecord"
    payloads = _mixed_file(path)
    ds = TFRecordDataset(f"file://{path}", mmap=True)
    assert len(ds) == len(payloads)
    for i in (0, 3, 305, len(payloads) - 1):
        assert ds[i].numpy().tobytes() == payloads[i]
    item = ds[3]
    item += 1  # an in-place transform in one epoch...
    assert ds[3].numpy().tobytes() == payloads[3]  # ...leaves the next one intact
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    assert [t.numpy().tobytes() for t in loader] == payloads
    with pytest.raises(UnsupportedOperationError, match="file://"):
        TFRecordDataset(f"direct://{path}", mmap=True)
