"""``s3-cli --op-log`` output, and ``s3-cli replay`` of our logs and of warp-style logs."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import zstandard
from cli_helpers import run_cli

import s3dlio
from s3dlio.cli.replay import parse_timestamp

HEADER = (
    "idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror"
    "\tstart\tfirst_byte\tend\tduration_ns"
)


def read_log(path: Path) -> list[dict[str, str]]:
    """The op-log's lines as dicts, checking the exact header and 13 columns per line."""
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()
    lines = raw.decode().splitlines()
    assert lines[0] == HEADER
    names = HEADER.split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(row) == 13 for row in rows)
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_op_log_flag_records_every_request(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/store/"
    log = tmp_path / "put.tsv.zst"
    r = run_cli("--op-log", str(log), "put", root, "-n", "3", "-s", "4KiB", "-q")
    assert r.rc == 0, r.err
    rows = read_log(log)
    assert sorted((row["op"], row["file"], row["bytes"]) for row in rows) == [
        ("PUT", f"{tmp_path}/store/object_{i}_of_3.dat", "4096") for i in range(3)
    ]
    assert all(parse_timestamp(row["end"]) >= parse_timestamp(row["start"]) for row in rows)

    log = tmp_path / "ls.tsv.zst"  # a global option after the command works too
    r = run_cli("ls", root, "--op-log", str(log))
    assert r.rc == 0 and len(r.lines) == 3
    assert [row["op"] for row in read_log(log)] == ["LIST"]


def _kinds(rows: list[dict[str, str]], base: str) -> Counter[tuple[str, str]]:
    """(operation kind, name relative to ``base``) of each line, GET_RANGE counted as GET."""
    return Counter(
        ("GET" if row["op"] == "GET_RANGE" else row["op"], row["file"].removeprefix(base))
        for row in rows
    )


def test_replay_reissues_the_same_operations_on_another_prefix(tmp_path: Path) -> None:
    source, target = f"file://{tmp_path}/src/", f"file://{tmp_path}/dst/"
    s3dlio.init_op_log(tmp_path / "recorded.tsv.zst")
    try:
        for i, size in enumerate((1000, 70000, 0)):
            s3dlio.put_bytes(f"{source}d/obj{i}", bytes(size))
        s3dlio.get(source + "d/obj1")
        s3dlio.stat(source + "d/obj0")
        s3dlio.list(source + "d/")
        s3dlio.delete(source + "d/obj2")
    finally:
        s3dlio.finalize_op_log()
    recorded = read_log(tmp_path / "recorded.tsv.zst")

    r = run_cli(
        "replay",
        str(tmp_path / "recorded.tsv.zst"),
        "--target",
        target,
        "--speed",
        "0",
        "--source-prefix",
        f"{tmp_path}/src/",
        "--json",
        "--op-log",
        str(tmp_path / "replayed.tsv.zst"),
    )
    assert r.rc == 0, r.err
    report = json.loads(r.out)
    assert (report["operations"], report["errors"]) == (7, 0)
    assert {op: row["count"] for op, row in report["ops"].items()} == {
        "PUT": 3,
        "GET": 1,
        "HEAD": 1,
        "LIST": 1,
        "DELETE": 1,
    }
    assert report["ops"]["PUT"]["bytes"] == 71000
    replayed = read_log(tmp_path / "replayed.tsv.zst")
    assert _kinds(replayed, f"{tmp_path}/dst/") == _kinds(recorded, f"{tmp_path}/src/")
    assert s3dlio.list(target, recursive=True) == [target + "d/obj0", target + "d/obj1"]
    assert len(s3dlio.get(target + "d/obj1")) == 70000


def test_replay_of_a_warp_log_keeps_relative_timing(tmp_path: Path) -> None:
    """A warp-style log (plain text, local-time offsets, STAT) replayed twice as fast.

    Each operation must start no earlier than its logged distance / 2 after an earlier one
    (less the earlier one's own delay, which the report bounds).
    """
    lines = [HEADER]
    plan = [  # offset ms, op, object, bytes
        (0, "PUT", "bench/x/obj.1", 2048),
        (120, "STAT", "bench/x/obj.1", 0),
        (240, "GET", "bench/x/obj.1", 2048),
        (300, "LIST", "bench/x/", 0),
        (400, "DELETE", "bench/x/obj.1", 0),
        (410, "CREATE_BUCKET", "bench", 0),
    ]
    for idx, (offset, op, name, nbytes) in enumerate(plan):
        start = f"2024-05-06T14:00:01.{offset:03d}5+02:00"
        lines.append(
            f"{idx}\t1\t{op}\tclient1\t1\t{nbytes}\thttp://10.0.0.1:9000\t{name}\t\t{start}"
            f"\t{start}\t{start}\t1000"
        )
    (tmp_path / "warp.csv").write_text("\n".join(lines) + "\n")
    target = f"file://{tmp_path}/replayed/"
    r = run_cli(
        "replay",
        str(tmp_path / "warp.csv"),
        "--target",
        target,
        "--speed",
        "2",
        "--json",
        "--op-log",
        str(tmp_path / "replayed.tsv.zst"),
    )
    assert r.rc == 0, r.err
    report = json.loads(r.out)
    assert report["errors"] == 0 and report["skipped"] == {"CREATE_BUCKET": 1}
    assert report["seconds"] >= 0.2
    rows = read_log(tmp_path / "replayed.tsv.zst")
    assert [(row["op"], row["file"]) for row in rows] == [
        ("PUT", f"{tmp_path}/replayed/obj.1"),
        ("HEAD", f"{tmp_path}/replayed/obj.1"),
        ("GET_RANGE", f"{tmp_path}/replayed/obj.1"),
        ("LIST", f"{tmp_path}/replayed/"),
        ("DELETE", f"{tmp_path}/replayed/obj.1"),
    ]
    # Measured from the second operation: the first one also pays for one-time set-up.
    starts = [parse_timestamp(row["start"]) for row in rows]
    slack_ns = int(report["late_ms"]["max"] * 1e6) + 10_000_000
    for (offset, *_), start in zip(plan[2:5], starts[2:], strict=True):
        assert start - starts[1] >= (offset - plan[1][0]) * 1_000_000 // 2 - slack_ns


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_timestamp("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_timestamp("1970-01-01T01:00:01.000000001+01:00") == 1_000_000_001
    assert parse_timestamp("2026-01-02T03:04:05.123456789Z") % 1_000_000_000 == 123456789
