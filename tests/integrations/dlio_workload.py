"""A small unet3d-like DLIO workload on s3dlio: what ``make dlio`` runs and the tests reuse.

DLIO runs from its own venv (``.venv-dlio``, built by ``make dlio``: DLIO 2.0.0 from PyPI with
TensorFlow, torch, pydftracer and mpich), as ``python -m s3dlio.integrations.dlio`` with
DLIO's own hydra arguments; moto's S3 server runs from the project's venv, as the tests start
it. ``python -m tests.integrations.dlio_workload`` (from the repository root) generates the
dataset and trains two epochs on ``s3://`` and on ``file://``, and the same workload on DLIO's
own local-file storage for comparison, printing DLIO's figures (AU %, samples/s, MB/s) from
each run's ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DLIO_VENV = Path(os.environ.get("S3DLIO_DLIO_VENV", REPO / ".venv-dlio"))
DLIO_PYTHON = DLIO_VENV / "bin" / "python"
#: Every DLIO run is stopped after this long (a run takes well under a minute here).
RUN_TIMEOUT = 240.0

#: The workload: unet3d's shape (npz, 1 sample per file, PyTorch loader, checkpoints), tiny.
FILES = 8
RECORD = 256 * 1024
EPOCHS = 2


def workload(
    data_folder: str,
    checkpoint_folder: str,
    output: str | os.PathLike[str],
    *,
    fmt: str = "npz",
    framework: str = "pytorch",
    generate: bool = True,
    train: bool = True,
    checkpoint: bool = True,
    epochs: int = EPOCHS,
    files: int = FILES,
    record: int = RECORD,
    extra: Sequence[str] = (),
) -> list[str]:
    """DLIO's hydra arguments for the small unet3d-like workload."""
    loader = "tensorflow" if framework == "tensorflow" else "pytorch"
    side = int((record) ** 0.5)
    return [
        "workload=unet3d_a100",
        f"++workload.framework={framework}",
        f"++workload.workflow.generate_data={generate}",
        f"++workload.workflow.train={train}",
        f"++workload.workflow.checkpoint={checkpoint}",
        f"++workload.dataset.data_folder={data_folder}",
        f"++workload.dataset.format={fmt}",
        f"++workload.dataset.num_files_train={files}",
        f"++workload.dataset.record_length={side * side}",
        "++workload.dataset.record_length_stdev=0",
        f"++workload.dataset.record_length_resize={side * side}",
        f"++workload.reader.data_loader={loader}",
        "++workload.reader.read_threads=2",
        "++workload.reader.batch_size=2",
        f"++workload.train.epochs={epochs}",
        "++workload.train.computation_time=0.02",
        f"++workload.checkpoint.checkpoint_folder={checkpoint_folder}",
        "++workload.checkpoint.checkpoint_after_epoch=1",
        "++workload.checkpoint.epochs_between_checkpoints=1",
        "++workload.checkpoint.model_size=65536",
        f"++workload.output.folder={output}",
        f"hydra.run.dir={output}/hydra",
        *extra,
    ]


@dataclass
class Run:
    """One finished DLIO run."""

    returncode: int
    stdout: str
    stderr: str
    output: Path
    seconds: float

    @property
    def log(self) -> str:
        """DLIO's own log (``dlio.log`` in the output folder), or ``""``."""
        path = self.output / "dlio.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def summary(self) -> dict[str, Any]:
        """DLIO's ``summary.json``."""
        return json.loads((self.output / "summary.json").read_text())

    def figures(self) -> dict[str, float]:
        """DLIO's averages: AU %, samples/s and MB/s over the training epochs."""
        metric = self.summary()["metric"]
        return {
            "au_percent": metric["train_au_mean_percentage"],
            "samples_per_s": metric["train_throughput_mean_samples_per_second"],
            "mb_per_s": metric["train_io_mean_MB_per_second"],
        }


def start(
    args: Sequence[str],
    output: str | os.PathLike[str],
    *,
    env: Mapping[str, str | None] | None = None,
    own_storage: bool = False,
) -> tuple[subprocess.Popen[str], Path, float]:
    """Start DLIO (on s3dlio, or with ``own_storage`` DLIO's unmodified entry point)."""
    if not DLIO_PYTHON.is_file():
        raise FileNotFoundError(f"{DLIO_PYTHON} is missing: build it with `make dlio-venv`")
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module = "dlio_benchmark.main" if own_storage else "s3dlio.integrations.dlio"
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(DLIO_PYTHON), "-m", module, *args],
        cwd=out,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, out, time.monotonic()


def finish(started: tuple[subprocess.Popen[str], Path, float], timeout: float = RUN_TIMEOUT) -> Run:
    """Wait for a started run (killing its process group on timeout) and collect it."""
    import signal

    proc, out, t0 = started
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
        stderr += f"\n[killed after {timeout:.0f} s]"
    return Run(proc.returncode, stdout, stderr, out, time.monotonic() - t0)


def run(
    args: Sequence[str],
    output: str | os.PathLike[str],
    *,
    env: Mapping[str, str | None] | None = None,
    own_storage: bool = False,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run DLIO to the end (see :func:`start`)."""
    return finish(start(args, output, env=env, own_storage=own_storage), timeout)


def _print(name: str, result: Run) -> None:
    if result.returncode != 0:
        print(f"{name}: DLIO failed (exit {result.returncode})\n{result.stderr[-3000:]}")
        return
    f = result.figures()
    print(
        f"{name:<34} AU {f['au_percent']:6.2f} %   {f['samples_per_s']:8.2f} samples/s"
        f"   {f['mb_per_s']:7.2f} MB/s   ({result.seconds:.0f} s with start-up)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``make dlio``: the workload on s3:// (moto), file://, and DLIO's own local storage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["s3", "file", "dlio-local"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the output folders")
    ns = parser.parse_args(argv)
    which = ns.only or ["s3", "file", "dlio-local"]
    sys.path.insert(0, str(REPO))
    from tests.servers.common import free_port, start_server, stop_server

    base = Path(tempfile.mkdtemp(prefix="s3dlio-dlio-"))
    print(f"DLIO {EPOCHS} epochs of {FILES} npz files ({RECORD // 1024} KiB), outputs in {base}")
    failed = False
    moto = None
    try:
        env: dict[str, str | None] = {}
        if "s3" in which:
            port = free_port()
            moto = start_server(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                port,
                base / "moto.log",
            )
            env = {
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            bucket = f"dlio-{uuid.uuid4().hex[:8]}"
            import s3dlio

            with s3dlio.Client(
                endpoint_url=env["AWS_ENDPOINT_URL"],
                region="us-east-1",
                access_key_id="testing",
                secret_access_key="testing",
            ) as c:
                c.create_bucket(f"s3://{bucket}")
            args = workload(f"s3://{bucket}/unet3d", f"s3://{bucket}/checkpoints", base / "s3")
            result = run(args, base / "s3", env=env)
            _print("s3dlio, s3:// (moto)", result)
            failed |= result.returncode != 0
        if "file" in which:
            args = workload(f"file://{base}/file-data", f"file://{base}/file-ckpt", base / "file")
            result = run(args, base / "file")
            _print("s3dlio, file://", result)
            failed |= result.returncode != 0
        if "dlio-local" in which:
            args = workload(f"{base}/local-data", f"{base}/local-ckpt", base / "local")
            result = run(args, base / "local", own_storage=True)
            _print("DLIO's own local-file storage", result)
            failed |= result.returncode != 0
    finally:
        if moto is not None:
            stop_server(moto)
        if not ns.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
