"""``s3-cli`` object commands (ls, stat, get, put, rm), their output and exit codes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from cli_helpers import only_lines, read_tree, run_cli, write_tree

import s3dlio


def summary(verb: str, count: int, size: str) -> str:
    """The regex of a summary line: ``<verb> 3 objects, 196.6 kB in 0.05 s (3.9 MB/s)``."""
    noun = "object" if count == 1 else "objects"
    return rf"{verb} {count} {noun}, {re.escape(size)} in \d+\.\d\d s \(\d+\.\d MB/s\)"


def test_object_commands_on_local_files(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/store/"
    r = run_cli("put", root + "data/", "-n", "3", "-s", "64KiB", "-t", "obj_{}_of_{}.bin")
    assert r.rc == 0, r.err
    assert re.fullmatch(summary("put", 3, "196.6 kB"), r.err.strip()), r.err
    names = [f"{root}data/obj_{i}_of_3.bin" for i in range(3)]
    datas = [bytes(s3dlio.get(uri)) for uri in names]
    assert [len(d) for d in datas] == [65536] * 3 and len(set(datas)) == 3

    r = run_cli("ls", root)
    assert (r.rc, r.lines) == (0, [root + "data/"])
    r = run_cli("ls", "-l", "store/data/", cwd=tmp_path)  # a bare relative path
    rows = [line.split() for line in r.lines]
    assert [row[2:] for row in rows] == [["65536", uri] for uri in names]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", row[0]) for row in rows)
    r = run_cli("ls", "--count-only", "-r", "-p", r"_[02]_of", root)
    assert (r.rc, r.out) == (0, "2\n")
    r = run_cli("stat", "--json", names[1], root + "missing", names[2])
    assert r.rc == 1
    assert [(m["uri"], m["size"]) for m in map(json.loads, r.lines)] == [
        (names[1], 65536),
        (names[2], 65536),
    ]
    assert only_lines(r.err) == [
        "s3-cli: error: 1 object failed",
        f"s3-cli: failed: HEAD {root}missing: No such file or directory",
    ]

    r = run_cli("get", names[0], "-o", str(tmp_path / "out.bin"))
    assert r.rc == 0 and (tmp_path / "out.bin").read_bytes() == datas[0]
    assert re.fullmatch(summary("got", 1, "65.5 kB"), r.err.strip()), r.err
    r = run_cli("get", "-o", "-", names[1])
    assert (r.rc, r.stdout) == (0, datas[1])
    (tmp_path / "here").mkdir()
    r = run_cli("get", names[2], cwd=tmp_path / "here")  # saved as ./NAME
    assert read_tree(tmp_path / "here") == {"obj_2_of_3.bin": datas[2]}
    r = run_cli("get", "--bench", root + "data/")
    assert r.rc == 0 and re.fullmatch(summary("read", 3, "196.6 kB"), r.out.strip()), r.out

    r = run_cli("rm", root + "data/")  # a directory without -r: refused, nothing deleted
    assert r.rc == 1 and "is a directory; use -r" in r.err
    assert s3dlio.list(root, recursive=True) == names
    r = run_cli("rm", names[0])
    assert (r.rc, s3dlio.list(root, recursive=True)) == (0, names[1:])
    assert re.fullmatch(r"deleted 1 object in \d+\.\d\d s", r.err.strip())
    r = run_cli("rm", "-r", "-p", "_1_of", root)
    assert (r.rc, s3dlio.list(root, recursive=True)) == (0, names[2:])
    r = run_cli("rm", "-r", "-q", root)
    assert (r.rc, r.err, s3dlio.list(root, recursive=True)) == (0, "", [])


def test_round_trip_on_remote_backends(remote_root: str, tmp_path: Path) -> None:
    files = {"a.bin": os.urandom((1 << 20) + 1), "sub/b.txt": b"hello", "sub/deep/empty": b""}
    write_tree(tmp_path / "src", files)
    r = run_cli("upload", f"{tmp_path}/src/**", remote_root + "up/")
    assert r.rc == 0, r.err
    assert re.fullmatch(summary("uploaded", 3, "1.05 MB"), r.err.strip()), r.err

    r = run_cli("ls", "-r", "-l", remote_root)
    listed = {row.split()[-1]: int(row.split()[-2]) for row in r.lines}
    assert listed == {remote_root + "up/" + rel: len(data) for rel, data in files.items()}
    r = run_cli("cp", remote_root + "up/", remote_root + "copy/")
    assert r.rc == 0 and re.fullmatch(summary("copied", 3, "1.05 MB"), r.err.strip()), r.err
    r = run_cli("download", remote_root + "copy/", str(tmp_path / "back"))
    assert r.rc == 0, r.err
    assert read_tree(tmp_path / "back") == files

    r = run_cli("rm", "-r", remote_root)
    assert r.rc == 0 and "deleted 6 objects" in r.err
    assert s3dlio.list(remote_root, recursive=True) == []


def test_exit_codes_and_error_lines(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/"
    s3dlio.put_bytes(root + "dir/a", b"a")
    for args in (["frobnicate"], ["put", root, "-s", "20XB"], ["get", root + "dir/"]):
        r = run_cli(*args)
        assert r.rc == 2, (args, r.err)
        assert "error" in only_lines(r.err)[-1]

    r = run_cli("get", "-o", "-", root + "dir/missing")
    assert (r.rc, r.stdout) == (1, b"")
    [line] = only_lines(r.err)
    assert re.fullmatch(
        rf"s3-cli: error: (HEAD|GET) {root}dir/missing: No such file or directory", line
    )
    r = run_cli("-vv", "get", "-o", "-", root + "dir/missing")
    assert r.rc == 1 and "Traceback" in r.err
