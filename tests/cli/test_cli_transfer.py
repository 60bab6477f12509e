"""``s3-cli`` transfers: cp across backends and streams, partial failures, Ctrl-C, progress bars."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import REMOTE, only_lines, read_tree, root_of, run_cli

import s3dlio


def test_cp_between_backends_streams_large_objects(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A local file goes through every remote backend present and back, byte for byte.

    18 MiB is above the size where copies stream part by part through a writer.
    """
    roots = []
    for scheme in REMOTE:
        try:
            roots.append(root_of(request, scheme))
        except pytest.skip.Exception:
            continue
    data = os.urandom(18 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    source = str(tmp_path / "big.bin")
    for root in roots:
        r = run_cli("cp", source, root)  # DST ending in '/' receives the source's name
        assert r.rc == 0, r.err
        source = root + "big.bin"
    r = run_cli("cp", source, str(tmp_path / "back.bin"))
    assert r.rc == 0, r.err
    assert (tmp_path / "back.bin").read_bytes() == data


def test_cp_from_stdin(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/streamed/obj.bin"
    data = os.urandom(3 << 20)
    r = run_cli("cp", "-", uri, input=data)
    assert r.rc == 0, r.err
    assert bytes(s3dlio.get(uri)) == data


def test_download_names_each_object_that_failed(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/store/"
    for key in ("a", "sub/b", "sub/c", "z"):
        s3dlio.put_bytes(root + key, key.encode())
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").write_bytes(b"a file where the directory sub/ should go")
    r = run_cli("download", root, str(dest))
    assert r.rc == 1
    lines = only_lines(r.err)
    assert re.fullmatch(r"downloaded 2 objects, 2 B in .*", lines[0])  # a and z
    assert lines[1] == "s3-cli: error: 2 objects failed"
    failed = lines[2:]
    assert len(failed) == 2 and all(line.startswith("s3-cli: failed: ") for line in failed)
    assert [
        root + "sub/b" in failed[0] or root + "sub/b" in failed[1],
        root + "sub/c" in failed[0] or root + "sub/c" in failed[1],
    ] == [True, True]
    files = read_tree(dest)
    assert (files["a"], files["z"]) == (b"a", b"z")


#: ``s3-cli`` with Ctrl-C raising ``KeyboardInterrupt`` even when the suite runs as a background
#: job, which inherits SIGINT ignored (Python then leaves it ignored, as every program started
#: that way must).
_CLI_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('s3dlio.cli', run_name='__main__', alter_sys=True)"
)


def test_interrupt_aborts_the_object_being_written(tmp_path: Path) -> None:
    """Ctrl-C while `cp - URI` streams stdin: exit 130, no object, no temp file left."""
    target = tmp_path / "out"
    target.mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", _CLI_WITH_CTRL_C, "cp", "-", f"file://{target}/obj"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdin is not None
        try:
            proc.stdin.write(os.urandom(20 << 20))  # more than one 16 MiB part: an upload begins
            proc.stdin.flush()
            deadline = time.monotonic() + 20
            while not os.listdir(target):  # the upload's temp file appears with the first part
                assert time.monotonic() < deadline, "the upload never started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 130
        finally:
            proc.kill()
    assert only_lines(err.decode()) == ["s3-cli: error: interrupted"]
    assert os.listdir(target) == []


def _run_in_terminal(args: list[str]) -> tuple[int, str]:
    """Run ``s3-cli ARGS`` with stderr on a pseudo-terminal; returns (exit code, what it drew)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "s3dlio.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_bar_shows_rate_and_eta_in_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(40 << 20))
    rc, drawn = _run_in_terminal(["cp", str(tmp_path / "big.bin"), str(tmp_path / "copy.bin")])
    assert rc == 0
    frames = [f for f in re.split(r"[\r\n]+", drawn) if f.strip()]
    # tqdm: "cp: 100%|████| 41.9M/41.9M [00:00<00:00, 180MB/s, 1/1 objects]"
    final = [f for f in frames if f.startswith("cp: 100%|")][-1]
    assert re.search(r"41\.9M/41\.9M \[\d\d:\d\d<\d\d:\d\d, [\d.]+[kMG]?B/s, 1/1 objects\]", final)
    assert re.fullmatch(r"copied 1 object, 41\.9 MB in .*MB/s\)", frames[-1])

    rc, drawn = _run_in_terminal(["ls", "-r", "--count-only", f"file://{tmp_path}/"])
    assert rc == 0 and re.search(r"listed: 2 objects \[\d\d:\d\d, [\d.]+ objects/s\]", drawn)


def test_a_raising_progress_callback_stops_transfers_without_partial_objects(
    tmp_path: Path,
) -> None:
    """How Ctrl-C reaches worker threads: the callback raises, streamed objects are aborted."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / name).write_bytes(os.urandom(17 << 20))  # above the streaming threshold
    calls: list[tuple[int, int]] = []

    def stop_at_second_call(nbytes: int, objects: int) -> None:
        calls.append((nbytes, objects))
        if len(calls) >= 2:
            raise s3dlio.CancelledError("stop")

    dst = tmp_path / "dst"
    with pytest.raises(s3dlio.CancelledError):
        s3dlio.copy(f"file://{src}/a", f"file://{dst}/a", progress=stop_at_second_call)
    with pytest.raises(s3dlio.BatchError) as caught:
        s3dlio.upload(str(src), f"file://{dst}/", max_in_flight=1, progress=stop_at_second_call)
    assert sorted(uri.rsplit("/", 1)[-1] for uri, _ in caught.value.failures) == ["a", "b"]
    assert calls[0] == (16 << 20, 0)  # bytes are reported part by part
    assert not dst.exists() or list(dst.rglob("*")) == []
