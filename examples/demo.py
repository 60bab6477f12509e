"""The s3dlio main job, end to end: data in object storage -> training -> checkpoints -> resume.

1. Start an S3 server on loopback (moto) unless ``S3DLIO_DEMO_URI`` names a place to work
   (``file:///tmp/demo/`` works with no server; ``s3://``, ``az://``, ``gs://`` use the
   environment's credentials).
2. Generate an image-like dataset as TFRecord shards (``tf.train.Example`` records: a 32x32 RGB
   image, a label, an id) with the streaming writer, and build each shard's index.
3. Train a small CNN through ``StreamingDataset`` + ``ResumableDataLoader(num_workers=2)``: each
   shard is read front to back in large range GETs (a handful of requests per epoch instead of
   one per record), shuffled by shard order and a shuffle buffer, by worker processes. The
   map-style ``TFRecordDataset`` stays for random access (one range GET per record).
4. Checkpoint model, optimizer and the loader's position every N steps.
5. Simulate a crash mid-epoch, then resume from ``load_latest()``: the restored loader yields
   exactly the records the crashed run had not consumed.
6. Print a summary: samples/s, MB/s, checkpoint save/load times, and the op-log's counts.

``python examples/demo.py [--quick]`` (``make demo`` runs it in full).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import s3dlio
from s3dlio.checkpoint import CheckpointStore
from s3dlio.datasets.streaming import StreamingDataset
from s3dlio.formats.example import encode_example
from s3dlio.formats.tfrecord import TFRecordWriter
from s3dlio.io.oplog import read_op_log, worker_log_paths
from s3dlio.torch import ResumableDataLoader, TFRecordDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _embedded import embedded_s3  # noqa: E402

CLASSES = 4
SIDE = 32


@dataclass(frozen=True)
class Plan:
    """How big a run is."""

    shards: int
    per_shard: int
    batch: int
    steps: int
    checkpoint_every: int
    crash_at: int

    @property
    def records(self) -> int:
        return self.shards * self.per_shard


FULL = Plan(shards=8, per_shard=512, batch=32, steps=320, checkpoint_every=50, crash_at=180)
QUICK = Plan(shards=2, per_shard=96, batch=16, steps=30, checkpoint_every=8, crash_at=19)


@dataclass
class Report:
    """What the run measured."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str, value: str) -> None:
        self.rows.append((what, value))
        print(f"  {what}: {value}")


class SimulatedCrash(Exception):
    """Raised inside the training loop to stand for a killed process."""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


# -- 1. data --------------------------------------------------------------------------------------


def make_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """A noisy image whose class shows as a bright quadrant and a tint."""
    image = rng.integers(0, 96, (SIDE, SIDE, 3), dtype=np.uint8)
    half = SIDE // 2
    row, col = divmod(label, 2)
    image[row * half : (row + 1) * half, col * half : (col + 1) * half] += 120
    image[..., label % 3] += 30
    return image


def generate(root: str, plan: Plan, report: Report) -> None:
    """Write the TFRecord shards with the streaming writer, then index each shard."""
    say(f"generating {plan.records} records in {plan.shards} TFRecord shards under {root}")
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    nbytes = 0
    for shard in range(plan.shards):
        uri = f"{root}train-{shard:03d}.tfrecord"
        with TFRecordWriter(uri) as writer:
            for i in range(plan.per_shard):
                label = int(rng.integers(CLASSES))
                record = encode_example(
                    {
                        "image": make_image(rng, label).tobytes(),
                        "label": [label],
                        "id": [shard * plan.per_shard + i],
                    }
                )
                writer.write(record)
                nbytes += len(record)
        s3dlio.create_tfrecord_index(uri)  # uri + ".idx", byte-identical to DALI's tfrecord2idx
    seconds = time.perf_counter() - started
    report.add(
        "dataset written", f"{plan.records} records, {nbytes / 1e6:.1f} MB in {seconds:.2f} s"
    )
    listed = s3dlio.list(root)
    report.add("objects listed", f"{len(listed)} ({plan.shards} shards + {plan.shards} indexes)")


# -- 2. training ----------------------------------------------------------------------------------


def to_sample(record: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A decoded Example as (image CHW float, label, id) tensors."""
    pixels = np.frombuffer(record["image"][0], dtype=np.uint8).reshape(SIDE, SIDE, 3)
    image = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)
    return image, torch.tensor(int(record["label"][0])), torch.tensor(int(record["id"][0]))


def make_model() -> nn.Module:
    """A small CNN."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, CLASSES),
    )


@dataclass
class Trainer:
    """Model, optimizer and loader, built fresh or restored from a checkpoint."""

    root: str
    store: CheckpointStore
    plan: Plan
    step: int = 0
    epoch: int = 0
    ids_this_epoch: list[int] = field(default_factory=list)
    save_seconds: list[float] = field(default_factory=list)
    samples: int = 0
    train_seconds: float = 0.0

    def __post_init__(self) -> None:
        torch.manual_seed(0)
        self.dataset = StreamingDataset(
            self.root,  # the shards; their .idx files are left out
            format="tfrecord",
            shuffle=True,
            seed=7,
            shuffle_buffer=256,
            decode=True,
            transform=to_sample,
        )
        self.loader = ResumableDataLoader(
            self.dataset,
            batch_size=self.plan.batch,
            num_workers=2,
            multiprocessing_context="fork",
        )
        self.model = make_model()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)

    def restore(self) -> float:
        """Load the newest complete checkpoint; returns the seconds it took."""
        started = time.perf_counter()
        state = self.store.load_latest()
        seconds = time.perf_counter() - started
        info = max(self.store.list_checkpoints(), key=lambda c: c.step)
        meta = info.user_meta
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(meta["loader"])
        self.step, self.epoch = info.step, meta["epoch"]
        self.ids_this_epoch = list(meta["ids_this_epoch"])
        return seconds

    def checkpoint(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        meta = {
            "loader": self.loader.state_dict(),
            "epoch": self.epoch,
            "ids_this_epoch": self.ids_this_epoch,
        }
        started = time.perf_counter()
        self.store.save(self.step, self.epoch, "torch", state, user_meta=meta)
        self.save_seconds.append(time.perf_counter() - started)

    def run(self, until: int, crash_at: int | None = None) -> None:
        """Train up to step ``until`` (raising :class:`SimulatedCrash` at ``crash_at``)."""
        loss_fn = nn.CrossEntropyLoss()
        while self.step < until:
            self.loader.set_epoch(self.epoch)
            started = time.perf_counter()
            correct = seen = 0
            for images, labels, ids in self.loader:
                self.optimizer.zero_grad()
                logits = self.model(images)
                loss = loss_fn(logits, labels)
                loss.backward()
                self.optimizer.step()
                self.step += 1
                self.samples += len(labels)
                seen += len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                self.ids_this_epoch.extend(ids.tolist())
                if self.step % self.plan.checkpoint_every == 0:
                    self.checkpoint()
                if self.step == crash_at:
                    self.train_seconds += time.perf_counter() - started
                    raise SimulatedCrash(f"simulated crash at step {self.step}")
                if self.step >= until:
                    break
            self.train_seconds += time.perf_counter() - started
            accuracy = correct / seen if seen else 0.0
            print(f"  epoch {self.epoch}: step {self.step}, accuracy {accuracy:.2f}", flush=True)
            if self.step < until or len(self.ids_this_epoch) == self.plan.records:
                self.check_epoch()
                self.epoch += 1
                self.ids_this_epoch = []

    def check_epoch(self) -> None:
        """Every record exactly once in a finished epoch, across any crash and resume."""
        counts = Counter(self.ids_this_epoch)
        if len(self.ids_this_epoch) != self.plan.records or len(counts) != self.plan.records:
            raise AssertionError(
                f"epoch {self.epoch}: {len(self.ids_this_epoch)} samples, {len(counts)} distinct"
            )


def train(root: str, ckpt_root: str, plan: Plan, report: Report) -> int:
    """Train, crash, resume, finish; fill the report; return the samples loaded."""
    say(
        f"training {plan.steps} steps (batch {plan.batch}, 2 DataLoader workers), "
        f"checkpoint every {plan.checkpoint_every}, crash at step {plan.crash_at}"
    )
    store = CheckpointStore(ckpt_root, keep_last=3)
    first = Trainer(root, store, plan)
    try:
        first.run(plan.steps, crash_at=plan.crash_at)
    except SimulatedCrash as crash:
        print(f"  !! {crash}: the process's state is gone; restarting from storage")
    del first.loader  # the crashed run's loader and model are discarded

    say("resuming from the latest checkpoint")
    resumed = Trainer(root, CheckpointStore(ckpt_root, keep_last=3), plan)
    load_seconds = resumed.restore()
    lost = plan.crash_at - resumed.step
    print(f"  restored step {resumed.step} (epoch {resumed.epoch}); {lost} steps to redo")
    resumed.run(plan.steps)

    samples = first.samples + resumed.samples
    seconds = first.train_seconds + resumed.train_seconds
    record_bytes = SIDE * SIDE * 3 + 40
    saves = first.save_seconds + resumed.save_seconds
    kept = store.list_checkpoints()
    report.add(
        "training",
        f"{samples} samples in {seconds:.1f} s = {samples / seconds:,.0f} samples/s, "
        f"{samples * record_bytes / seconds / 1e6:.1f} MB/s of records",
    )
    report.add("exactly once", "every finished epoch saw each record once, across the crash")
    report.add(
        "checkpoints",
        f"{len(saves)} saved, mean {1000 * sum(saves) / len(saves):.0f} ms; "
        f"load {1000 * load_seconds:.0f} ms; kept {[c.step for c in kept]}",
    )
    return samples


def random_access(root: str, plan: Plan, report: Report) -> None:
    """The map-style dataset stays for random access: any record with one range GET."""
    dataset = TFRecordDataset(root, decode=True)
    i = plan.records // 2
    report.add("random access", f"record {i} has id {int(dataset[i]['id'][0])} (one range GET)")


def summarize_op_log(log: str, report: Report, plan: Plan, samples: int) -> None:
    """Count the operations of this process and of its DataLoader workers (their own files)."""
    workers = worker_log_paths(log)
    counts: Counter[str] = Counter()
    nbytes = data_gets = 0
    for path in [log, *workers]:
        for row in read_op_log(path):
            counts[row["op"]] += 1
            nbytes += int(row["bytes"])
            data_gets += row["op"] in ("GET", "GET_RANGE") and row["file"].endswith(".tfrecord")
    by_op = ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
    report.add(
        "op-log",
        f"{sum(counts.values())} requests ({len(workers)} worker logs), "
        f"{nbytes / 1e6:.1f} MB: {by_op}",
    )
    epochs = samples / plan.records
    report.add(
        "requests per epoch",
        f"{data_gets / epochs:.1f} range GETs of the shards ({data_gets} for {epochs:.2f} "
        f"epochs of {plan.records} records, resume included); a map-style dataset makes one "
        f"per record ({plan.records} per epoch)",
    )


# -- 3. the whole job -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the demo (``--quick`` for the test suite's reduced run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run for the test suite")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    report = Report()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        base = os.environ.get("S3DLIO_DEMO_URI")
        if base:
            base = base.rstrip("/") + f"/s3dlio-demo-{uuid.uuid4().hex[:8]}/"
        else:
            endpoint = stack.enter_context(embedded_s3())
            print(f"embedded S3 server (moto) at {endpoint}")
            bucket = f"s3dlio-demo-{uuid.uuid4().hex[:8]}"
            s3dlio.create_bucket(f"s3://{bucket}")
            base = f"s3://{bucket}/"
        logdir = tempfile.mkdtemp(prefix="s3dlio-demo-log-")
        stack.callback(shutil.rmtree, logdir, ignore_errors=True)
        log = os.path.join(logdir, "ops.tsv.zst")
        s3dlio.init_op_log(log)
        try:
            try:
                generate(base + "data/", plan, report)
                samples = train(base + "data/", base + "checkpoints/", plan, report)
            finally:
                s3dlio.finalize_op_log()
            random_access(base + "data/", plan, report)  # after the log: not a training request
        finally:
            s3dlio.delete(base, recursive=True)
        summarize_op_log(log, report, plan, samples)
    say(f"summary ({time.perf_counter() - started:.0f} s)")
    width = max(len(what) for what, _ in report.rows)
    for what, value in report.rows:
        print(f"  {what:<{width}}  {value}")


if __name__ == "__main__":
    main()
