"""A save killed with SIGKILL mid-way changes nothing; the next save succeeds and tidies up."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import s3dlio
from s3dlio.checkpoint import CheckpointStore
from s3dlio.checkpoint.manifest import Latest
from s3dlio.io.backends.file import TEMP_MARK

CHILD = Path(__file__).with_name("crash_child.py")


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of the child's stdout, or "" if it exits or stays silent for ``timeout`` s."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline()


def kill_mid_save(root: str, step: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), root, str(step)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc, timeout=60)
        if line.strip() != "MIDSAVE":
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"child said {line!r} instead of MIDSAVE: {err}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def temp_files(store_root: str) -> list[str]:
    """Hidden temp files of unfinished local writes below ``store_root``."""
    top = store_root.split("://", 1)[1]
    return [
        os.path.join(d, f) for d, _, files in os.walk(top) for f in files if f.startswith(TEMP_MARK)
    ]


def pending_uploads(request: pytest.FixtureRequest, store_root: str) -> list[str] | None:
    """Keys of the multipart uploads still open below an ``s3://`` ``store_root`` (else None)."""
    if not store_root.startswith("s3://"):
        return None
    bucket, prefix = store_root[len("s3://") :].split("/", 1)
    answer = (
        request.getfixturevalue("moto_s3")
        .client()
        .list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    )
    return [u["Key"] for u in answer.get("Uploads", [])]


def test_sigkill_mid_save_keeps_previous_checkpoint(
    store_root: str, request: pytest.FixtureRequest
) -> None:
    store = CheckpointStore(store_root)
    before = {"w": np.arange(4096, dtype=np.float64), "step": 1}
    first = store.save(1, 0, "numpy", before)

    kill_mid_save(store_root, 2)
    local = store_root.startswith(("file://", "direct://"))
    if local:
        assert temp_files(store_root)  # the killed save left its partial shard behind
    if store_root.startswith("s3://"):
        assert pending_uploads(request, store_root)  # ... or its open multipart upload

    fresh = CheckpointStore(store_root)
    loaded = fresh.load_latest()
    np.testing.assert_array_equal(loaded["w"], before["w"])
    assert loaded["step"] == 1
    assert [i.step for i in fresh.list_checkpoints()] == [1]
    assert Latest.decode(s3dlio.get(store_root + "latest.json")).manifest_key == first

    after = {"w": np.full(10, 2.0)}
    second = fresh.save(2, 0, "numpy", after)
    np.testing.assert_array_equal(CheckpointStore(store_root).load_latest()["w"], after["w"])
    assert [i.step for i in fresh.list_checkpoints()] == [1, 2]

    # Nothing of the killed save is left: every stored object belongs to a manifest.
    manifests = [fresh.manifest(n) for n in fresh.manifest_names()]
    referenced = {s.key for m in manifests if m is not None for s in m.shards}
    stored = {u[len(store_root) :] for u in s3dlio.list(store_root, recursive=True)}
    assert stored == {"latest.json", first, second, *referenced}
    assert pending_uploads(request, store_root) in (None, [])  # aborted by the clean-up
    if local:
        assert temp_files(store_root) == []
        top = store_root.split("://", 1)[1]
        shard_dirs = {d for d, _, files in os.walk(os.path.join(top, "shards")) if files}
        assert len(shard_dirs) == 2
