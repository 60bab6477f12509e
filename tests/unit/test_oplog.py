"""The op-log's exact byte layout, on the local backends."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import zstandard

import s3dlio
from s3dlio.io.oplog import HEADER, format_timestamp

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def _read(path: Path) -> list[list[str]]:
    with open(path, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    assert text.startswith(HEADER)
    return [line.split("\t") for line in text.splitlines()]


def test_header_and_rows(store_root: str, tmp_path: Path) -> None:
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log)
    assert s3dlio.is_op_log_active()
    s3dlio.put_bytes(store_root + "x.bin", b"12345")
    s3dlio.get(store_root + "x.bin")
    s3dlio.get_range(store_root + "x.bin", 1, 2)
    s3dlio.stat(store_root + "x.bin")
    s3dlio.list(store_root)
    s3dlio.delete(store_root + "x.bin")
    try:
        s3dlio.get(store_root + "missing\tname")
    except s3dlio.NotFoundError:
        pass
    stats = s3dlio.op_log_stats()
    s3dlio.finalize_op_log()
    assert not s3dlio.is_op_log_active()
    rows = _read(log)
    assert rows[0] == HEADER.rstrip("\n").split("\t")
    assert len(rows[0]) == 13
    body = rows[1:]
    assert all(len(r) == 13 for r in body)
    ops = [r[2] for r in body]
    for op in ("PUT", "GET", "GET_RANGE", "HEAD", "LIST", "DELETE"):
        assert op in ops, ops
    assert [int(r[0]) for r in body] == list(range(len(body)))
    for r in body:
        assert TS.match(r[9]) and TS.match(r[11])
        assert int(r[12]) >= 0
        if r[2] in ("HEAD", "LIST", "DELETE"):
            assert r[10] == ""
        if r[2] in ("GET", "GET_RANGE") and not r[8]:
            assert TS.match(r[10])
    get_row = next(r for r in body if r[2] == "GET" and not r[8])
    assert get_row[5] == "5" and get_row[7].endswith("x.bin")
    error_row = next(r for r in body if r[8])
    assert "\t" not in error_row[8] and "missing name" in error_row[7]
    assert stats["operations"] == len(body) and stats["active"]


def test_timestamp_format() -> None:
    assert format_timestamp(1_767_323_045_123_456_789) == "2026-01-02T03:04:05.123456789Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000000000Z"


def test_closed_at_exit_without_finalize(tmp_path: Path) -> None:
    log = tmp_path / "exit.tsv.zst"
    code = (
        "import s3dlio\n"
        f"s3dlio.init_op_log({str(log)!r})\n"
        f"s3dlio.put_bytes('file://{tmp_path}/a', b'x')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    rows = _read(log)
    assert [r[2] for r in rows[1:]] == ["PUT"]


def test_forked_workers_log_to_their_own_files(disk_dir: Path, tmp_path: Path) -> None:
    import multiprocessing as mp

    from s3dlio.io.oplog import read_op_log, worker_log_paths

    root = f"file://{disk_dir}/"
    s3dlio.put_many([(f"{root}{i}", b"x" * i) for i in range(1, 7)])
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(log)
    s3dlio.get(root + "1")
    ctx = mp.get_context("fork")
    pool = ctx.Pool(2)
    sizes = pool.map(_read_len, [f"{root}{i}" for i in range(2, 7)])
    pool.close()  # workers leave normally (as DataLoader workers do) and close their logs
    pool.join()
    s3dlio.finalize_op_log()
    assert sizes == [2, 3, 4, 5, 6]
    parent = list(read_op_log(log))
    assert [r["op"] for r in parent] == ["GET"]
    workers = worker_log_paths(log)
    assert 1 <= len(workers) <= 2
    assert all(".worker-" in w and w.endswith(".tsv.zst") for w in workers)
    rows = [r for w in workers for r in read_op_log(w)]
    assert sorted(int(r["bytes"]) for r in rows if r["op"] == "GET") == [2, 3, 4, 5, 6]


def _read_len(uri: str) -> int:
    return len(s3dlio.get(uri))
