"""Every example runs, so none can rot: each as its own process, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str, timeout: float = 120) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=EXAMPLES.parent
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_demo_quick_on_its_embedded_server() -> None:
    out = run(sys.executable, str(EXAMPLES / "demo.py"), "--quick", timeout=180)
    assert "embedded S3 server (moto)" in out
    assert "exactly once" in out and "simulated crash" in out
    assert "restored step" in out and "op-log" in out


@pytest.mark.parametrize(
    "script",
    [
        "storage_api.py",
        "formats.py",
        "parquet.py",
        "oplog.py",
        "checkpoint.py",
        "dcp_checkpoint.py",
        "jax_pipeline.py",
        "train_torch.py",
    ],
)
def test_example_on_a_local_directory(script: str) -> None:
    run(sys.executable, str(EXAMPLES / script))


def test_backends_against_each_emulator(s3_root: str, az_root: str, gs_root: str) -> None:
    out = run(sys.executable, str(EXAMPLES / "backends.py"), s3_root, az_root, gs_root)
    assert out.count("17 objects") == 3


def test_cli_tour_on_s3(s3_root: str) -> None:
    out = run("bash", str(EXAMPLES / "cli_tour.sh"), s3_root)
    assert f"{s3_root}up/sub/b.txt" in out and "world" in out


def test_loader_throughput_runs() -> None:
    run(sys.executable, str(EXAMPLES / "loader_throughput.py"), "--small", "200", "--large", "4")
