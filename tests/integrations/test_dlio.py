"""DLIO 2.0.0 (from PyPI, unmodified, in ``.venv-dlio``) running on s3dlio.

Each DLIO process runs ``python -m s3dlio.integrations.dlio`` with DLIO's own hydra arguments
(the small unet3d-like workload of :mod:`tests.integrations.dlio_workload`: generate, then
train two epochs, checkpoints) against moto's S3 server and a local directory, and the other
formats (npy, hdf5, and tfrecord under DLIO's TensorFlow framework and loader) on S3. A DLIO
run takes ~30-60 s here, most of it importing TensorFlow and torch, so the runs of one module
fixture start together and the tests then check one run each.

What proves DLIO went through s3dlio: s3dlio's op-log of the run shows the generator's PUT
of every training file; the reads cannot have been DLIO's own (DLIO 2.0.0's readers open
``os.path.abspath`` of the name, ``<cwd>/s3:/...`` or ``<cwd>/file:/...``, which does not
exist, and its S3 storage reads nothing), so two epochs trained without an error were read
by s3dlio's readers (the DataLoader workers' own op-logs are not checked: DLIO keeps its
workers until exit, when they are killed before flushing); and the data and checkpoints are
read back by numpy, h5py and torch's DCP.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import s3dlio
from s3dlio.io.oplog import read_op_log, worker_log_paths
from tests.integrations.dlio_workload import (
    DLIO_PYTHON,
    FILES,
    RECORD,
    Run,
    finish,
    start,
    workload,
)
from tests.servers.azurite import ACCOUNT as AZ_ACCOUNT

pytestmark = [
    pytest.mark.skipif(not DLIO_PYTHON.is_file(), reason="no .venv-dlio (make dlio-venv)"),
    pytest.mark.timeout(600),
]

SIDE = int(RECORD**0.5)
#: Steps per epoch: FILES samples in batches of 2.
STEPS = FILES // 2


def _ops(path: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for log in [str(path), *worker_log_paths(path)]:
        if Path(log).is_file():
            rows.extend(read_op_log(log))
    return rows


def _train_names(files: int = FILES, fmt: str = "npz") -> list[str]:
    return [f"train/img_{i}_of_{files}.{fmt}" for i in range(files)]


@pytest.fixture(scope="module")
def unet3d(moto_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The unet3d-like workload on s3:// and file://, run side by side."""
    base = tmp_path_factory.mktemp("dlio")
    root = f"s3://{moto_s3.bucket}/dlio-{uuid.uuid4().hex[:8]}"
    cases = {
        "s3": (f"{root}/unet3d", f"{root}/checkpoints"),
        "file": (f"file://{base}/file/unet3d", f"file://{base}/file/checkpoints"),
    }
    started = {}
    for name, (data, ckpt) in cases.items():
        out = base / f"out-{name}"
        env = {"S3DLIO_DLIO_OP_LOG": str(base / f"ops-{name}.tsv.zst")}
        started[name] = start(workload(data, ckpt, out), out, env=env)
    runs = {name: finish(proc) for name, proc in started.items()}
    yield {
        name: {"run": runs[name], "data": data, "ckpt": ckpt, "ops": base / f"ops-{name}.tsv.zst"}
        for name, (data, ckpt) in cases.items()
    }


def _succeeded(run: Run) -> None:
    assert run.returncode == 0, f"DLIO exit {run.returncode}\n{run.stderr[-4000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-4000:]


@pytest.mark.parametrize("backend", ["s3", "file"])
def test_unet3d_generates_trains_two_epochs_and_checkpoints(
    unet3d: dict[str, Any], backend: str
) -> None:
    case = unet3d[backend]
    run: Run = case["run"]
    _succeeded(run)

    summary = run.summary()
    assert summary["epochs"] == 2 and summary["num_files_train"] == FILES
    metric = summary["metric"]
    assert len(metric["train_au_percentage"]) == 2
    figures = run.figures()
    assert 0 < figures["au_percent"] <= 100
    assert figures["samples_per_s"] > 0 and figures["mb_per_s"] > 0

    data = case["data"]
    listed = sorted(s3dlio.list(f"{data}/train/"))
    assert listed == sorted(f"{data}/{n}" for n in _train_names())
    array = np.load(io.BytesIO(s3dlio.get(listed[0])))["x"]
    assert array.shape == (SIDE, SIDE, 1) and array.dtype == np.uint8

    import torch

    from s3dlio.torch.dcp import load

    for epoch in (1, 2):
        state = {"a": torch.ones(65536, dtype=torch.int8)}
        load(state, f"{case['ckpt']}/model-{epoch}-{STEPS}-0.pt")  # DCP: CRCs checked
        assert state["a"].dtype == torch.int8 and not state["a"].any()  # DLIO saves zeros

    ops = _ops(case["ops"])  # the main process's log: the generator's writes
    puts = {r["file"] for r in ops if r["op"].startswith("PUT") and not r["error"]}
    for name in _train_names():
        assert any(f.endswith(name) for f in puts), f"{name} not written through s3dlio"


@pytest.fixture(scope="module")
def backends(
    azurite: Any, fake_gcs: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Run, str]]:
    """The workload (one epoch, a checkpoint) on az:// (Azurite), gs:// (fake-gcs-server) and
    direct:// (O_DIRECT, in pytest's temporary directory), run side by side."""
    base = tmp_path_factory.mktemp("dlio-backends")
    tag = uuid.uuid4().hex[:8]
    roots = {
        "az": f"az://{AZ_ACCOUNT}/{azurite.container}/dlio-{tag}",
        "gs": f"gs://{fake_gcs.bucket}/dlio-{tag}",
        "direct": f"direct://{base}/direct",
    }
    started = {}
    for name, root in roots.items():
        out = base / f"out-{name}"
        args = workload(f"{root}/unet3d", f"{root}/checkpoints", out, epochs=1, files=4)
        started[name] = start(args, out)
    return {name: (finish(proc), roots[name]) for name, proc in started.items()}


@pytest.mark.parametrize("backend", ["az", "gs", "direct"])
def test_unet3d_on_the_other_backends(backends: dict[str, tuple[Run, str]], backend: str) -> None:
    run, root = backends[backend]
    _succeeded(run)
    assert run.summary()["epochs"] == 1
    data = f"{root}/unet3d"
    listed = sorted(s3dlio.list(f"{data}/train/"))
    assert listed == sorted(f"{data}/{n}" for n in _train_names(4))
    array = np.load(io.BytesIO(s3dlio.get(listed[0])))["x"]
    assert array.shape == (SIDE, SIDE, 1) and array.dtype == np.uint8

    import torch

    from s3dlio.torch.dcp import load

    state = {"a": torch.ones(65536, dtype=torch.int8)}
    load(state, f"{root}/checkpoints/model-1-2-0.pt")  # 4 samples in batches of 2: step 2
    assert not state["a"].any()  # DLIO saves zeros


#: DLIO's PyTorch loader with DataLoader workers started by ``spawn`` (DLIO's default: fork).
SPAWN = "++workload.reader.multiprocessing_context=spawn"


@pytest.fixture(scope="module")
def formats(moto_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """npy and hdf5 (PyTorch), tfrecord under TensorFlow, and npz read by spawned DataLoader
    workers (with the op-log on), on s3://, run side by side."""
    base = tmp_path_factory.mktemp("dlio-formats")
    root = f"s3://{moto_s3.bucket}/dlio-{uuid.uuid4().hex[:8]}"
    cases: dict[str, dict[str, Any]] = {
        "npy": {"fmt": "npy", "checkpoint": False},
        "hdf5": {"fmt": "hdf5", "checkpoint": False},
        "tfrecord": {"fmt": "tfrecord", "framework": "tensorflow", "checkpoint": True},
        "spawn": {"fmt": "npz", "checkpoint": False, "extra": [SPAWN]},
    }
    started = {}
    for name, kw in cases.items():
        out = base / f"out-{name}"
        args = workload(f"{root}/{name}", f"{root}/ckpt-{name}", out, epochs=1, files=4, **kw)
        env = {"S3DLIO_DLIO_OP_LOG": str(base / f"ops-{name}.tsv.zst")}
        started[name] = start(args, out, env=env)
    yield {
        name: (finish(proc), f"{root}/{name}", f"{root}/ckpt-{name}", base / f"ops-{name}.tsv.zst")
        for name, proc in started.items()
    }


def test_npy_through_s3dlio(formats: dict[str, Any]) -> None:
    run, data, _, _ = formats["npy"]
    _succeeded(run)
    assert run.summary()["epochs"] == 1
    uris = sorted(s3dlio.list(f"{data}/train/"))
    assert uris == sorted(f"{data}/{n}" for n in _train_names(4, "npy"))
    array = np.load(io.BytesIO(s3dlio.get(uris[0])))
    assert array.shape == (SIDE, SIDE, 1) and array.dtype == np.uint8


def test_hdf5_through_s3dlio(formats: dict[str, Any]) -> None:
    run, data, _, _ = formats["hdf5"]
    _succeeded(run)
    assert run.summary()["epochs"] == 1
    from s3dlio.formats.hdf5 import open_hdf5

    with open_hdf5(f"{data}/{_train_names(4, 'hdf5')[0]}") as h5:
        assert h5["records"].shape == (1, SIDE, SIDE)
        assert h5["labels"].shape == (1,)


def test_tfrecord_under_tensorflow_through_s3dlio(formats: dict[str, Any]) -> None:
    run, data, ckpt, _ = formats["tfrecord"]
    _succeeded(run)
    assert run.summary()["epochs"] == 1
    from s3dlio.formats.example import decode_example
    from s3dlio.formats.tfrecord import TFRecordReader

    name = _train_names(4, "tfrecord")[0]
    index = f"{data}/index/train/{name.split('/')[-1]}.idx"  # where DLIO keeps its DALI index
    with TFRecordReader(f"{data}/{name}", index=index) as reader:
        assert len(reader) == 1
        example = decode_example(bytes(reader.read_record(0)))
    assert len(example["image"][0]) == SIDE * SIDE
    from s3dlio.checkpoint import CheckpointStore

    state = CheckpointStore(f"{ckpt}/model-1-2-0.pb/").load_latest()  # TF tensors as NumPy
    assert isinstance(state["a"], np.ndarray) and state["a"].size > 0


def test_spawned_dataloader_workers_read_through_s3dlio(formats: dict[str, Any]) -> None:
    """DataLoader workers started by ``spawn`` re-import DLIO without s3dlio; unpickling DLIO's
    arguments installs it there again (each worker opens its own op-log then), and they read
    the ``s3://`` files through it: DLIO's own reader cannot open an ``s3://`` name, so an
    epoch without an error was read by s3dlio's. (The workers' logs are not read: DLIO ends
    them with SIGTERM, on which they exit at once, before the log's writer has flushed.)"""
    run, _, _, ops = formats["spawn"]
    _succeeded(run)
    assert "killed by signal" not in run.stderr
    summary = run.summary()
    assert summary["epochs"] == 1 and summary["num_files_train"] == 4
    assert run.figures()["samples_per_s"] > 0
    assert len(worker_log_paths(ops)) == 2, "s3dlio was not installed in each spawned worker"


@dataclass(frozen=True)
class Bad:
    """A bad input: the error it must stop DLIO with, the data folder (from moto's bucket),
    the environment changed, and whether DLIO generates the data or only trains on it."""

    error: str
    folder: Callable[[str], str]
    env: Mapping[str, str | None] = field(default_factory=dict)
    generate: bool = True
    spawn: bool = False


def _not_npz(data: str) -> None:
    """Two training files that are not npz archives (DLIO lists them, a worker reads them)."""
    for i in range(2):
        s3dlio.put_bytes(f"{data}/train/img_{i}_of_2.npz", b"not an npz archive" * 64)


BAD = {
    "unknown scheme": Bad("InvalidURIError", lambda b: f"foo://{b}/unet3d"),
    "missing credentials": Bad(
        "PermissionDeniedError",
        lambda b: f"s3://{b}/creds/unet3d",
        {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None},
    ),
    "missing bucket": Bad("NotFoundError", lambda b: f"s3://no-such-{uuid.uuid4().hex[:8]}/unet3d"),
    "corrupt file in a spawned worker": Bad(
        "IntegrityError",
        lambda b: f"s3://{b}/corrupt-{uuid.uuid4().hex[:8]}/unet3d",
        generate=False,
        spawn=True,
    ),
}


@pytest.fixture(scope="module")
def bad_runs(moto_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """DLIO started on each bad input, side by side."""
    base = tmp_path_factory.mktemp("dlio-bad")
    started = {}
    for case, bad in BAD.items():
        out = base / re.sub(r"\W", "-", case)
        data = bad.folder(moto_s3.bucket)
        if not bad.generate:
            _not_npz(data)
        args = workload(
            data,
            f"{data}-ckpt",
            out,
            epochs=1,
            files=2,
            checkpoint=False,
            generate=bad.generate,
            extra=[SPAWN] if bad.spawn else [],
        )
        started[case] = start(args, out, env=bad.env)
    return {case: finish(proc, timeout=240) for case, proc in started.items()}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_stops_dlio_with_the_typed_error(bad_runs: dict[str, Run], case: str) -> None:
    run = bad_runs[case]
    assert run.returncode == 2, f"exit {run.returncode}\n{run.stderr[-4000:]}"
    line = f"s3dlio: DLIO stopped: s3dlio.errors.{BAD[case].error}: "
    assert line in run.stderr, run.stderr[-4000:]
    assert line in run.log  # DLIO's own log names it too
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
    reported = next(x for x in run.stderr.splitlines() if x.startswith(line))
    assert "s3://" in reported or "foo://" in reported  # the URI is named
    if BAD[case].spawn:  # the worker's error comes back in one line, naming the worker
        assert reported.endswith("(in DataLoader worker process 0)") or reported.endswith(
            "(in DataLoader worker process 1)"
        ), reported
        assert "not a valid NPZ" in reported, reported
