"""Train a tiny PyTorch model from TFRecord files in object storage.

Writes a synthetic classification dataset as TFRecord shards (with index files) under a URI,
then trains a linear classifier from it with ``s3dlio.torch.TFRecordDataset``: records are
fetched by index with range requests, sharded by rank, shuffled per epoch, loaded by
``DataLoader`` workers, and the loader's position is checkpointed and restored mid-epoch.

    python examples/train_torch.py                         # a temp dir on file://
    python examples/train_torch.py s3://bucket/tiny-train/ # any backend (credentials from env)

Run it under ``torchrun --nproc_per_node=2`` to see the ranks split the records.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from s3dlio.formats.example import encode_example
from s3dlio.formats.tfrecord import TFRecordWriter
from s3dlio.torch import ResumableDataLoader, TFRecordDataset

FEATURES = 16
SHARDS, PER_SHARD = 4, 512
BATCH = 64


def write_dataset(root: str) -> None:
    """``SHARDS`` TFRecord files of ``tf.train.Example`` records ``{"x", "label"}``."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=FEATURES).astype(np.float32)
    for shard in range(SHARDS):
        with TFRecordWriter(f"{root}train-{shard:03d}.tfrecord", index=True) as writer:
            for _ in range(PER_SHARD):
                x = rng.normal(size=FEATURES).astype(np.float32)
                label = np.array([int(x @ weights > 0)], dtype=np.int64)
                writer.write(encode_example({"x": x, "label": label}))


def to_tensors(record: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoded Example as ``(features, label)`` tensors (module level: picklable)."""
    return torch.from_numpy(record["x"]), torch.tensor(int(record["label"][0]))


def train(root: str, epochs: int = 3) -> None:
    """Train for ``epochs``, checkpointing and restoring the loader in the middle of one."""
    dataset = TFRecordDataset(root, decode=True, transform=to_tensors)
    sampler = dataset.sampler(shuffle=True, seed=42)  # ranks from torch.distributed / RANK
    loader = ResumableDataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=2)
    model = nn.Linear(FEATURES, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    print(f"{len(dataset)} records in {len(dataset.uris)} files, {len(sampler)} for this rank")

    for epoch in range(epochs):
        loader.set_epoch(epoch)
        started, seen, correct, total_loss = time.perf_counter(), 0, 0, 0.0
        for step, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            total_loss += loss.item() * len(y)
            if epoch == 1 and step == 5:
                # A mid-epoch checkpoint of the data position: a small dict to save with the
                # model. A fresh loader restored from it yields exactly the remaining batches.
                state = loader.state_dict()
                print(f"  checkpoint after {state['samples_seen']} samples: {state}")
                resumed = ResumableDataLoader(
                    dataset, batch_size=BATCH, sampler=dataset.sampler(), num_workers=2
                )
                resumed.load_state_dict(state)
                remaining = sum(len(y) for _, y in resumed)
                print(f"  a restored loader would deliver the other {remaining} samples")
        elapsed = time.perf_counter() - started
        print(
            f"epoch {epoch}: loss {total_loss / seen:.3f}  accuracy {correct / seen:.3f}  "
            f"{seen / elapsed:,.0f} samples/s"
        )


def main() -> None:
    """Write the dataset under the URI given (or a temp dir), then train from it."""
    if len(sys.argv) > 1:
        root = sys.argv[1].rstrip("/") + "/"
        write_dataset(root)
        train(root)
        return
    base = tempfile.mkdtemp(prefix="s3dlio-train-")
    try:
        root = f"file://{base}/"
        write_dataset(root)
        train(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
