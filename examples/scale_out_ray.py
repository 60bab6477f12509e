"""Scale-out on Ray: generate a TFRecord dataset across the cluster, convert it to Parquet with
Ray Data (reading and writing through s3dlio), then train a tiny model from the Parquet files.

python examples/scale_out_ray.py [--address HOST:PORT]     (needs: pip install 's3dlio[ray,torch]')

Without ``--address`` a local Ray runtime is started (2 CPUs); with it, the script joins that
cluster as a driver (``make test-ray`` runs it on its two-node loopback cluster). S3 is an
embedded moto server on loopback, as in the other examples; the tasks learn where it is from
the ``s3dlio.Client`` they are sent (a client pickles as its options).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np
import ray
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _embedded import embedded_s3  # noqa: E402

import s3dlio  # noqa: E402
from s3dlio.ray import put_prefix, read_objects, write_objects  # noqa: E402

BUCKET = "s3://scale-out"
FEATURES = 32


def features(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parquet rows -> model inputs: the first bytes of each record as floats, a binary label."""
    x = np.stack([np.frombuffer(d[:FEATURES], np.uint8) for d in batch["data"]]) / 255.0
    return {"x": x.astype(np.float32), "y": (batch["label"] % 2).astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="a running Ray cluster (default: start one here)")
    parser.add_argument("--objects", type=int, default=32, help="TFRecord objects to generate")
    args = parser.parse_args()

    with embedded_s3() as endpoint:
        client = s3dlio.Client(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id="demo",
            secret_access_key="demo",
        )
        client.create_bucket(BUCKET)
        if args.address:
            ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            # 1. generate: each Ray task makes a range of objects (Examples {data, label})
            made = put_prefix(
                f"{BUCKET}/tfrecord/",
                args.objects,
                "256KiB",
                object_type="tfrecord",
                record_size="4KiB",
                template="train-{:04d}-of-{}.tfrecord",
                seed=42,
                client=client,
            )
            print(
                f"generated {len(made)} TFRecord objects ({made.nbytes / 2**20:.1f} MiB) in "
                f"{made.tasks} Ray tasks on {len(made.nodes)} node(s)"
            )

            # 2. convert: Ray Data reads the records through s3dlio, writes Parquet through it
            records = read_objects(f"{BUCKET}/tfrecord/", "tfrecord", client=client)
            written = write_objects(records, f"{BUCKET}/parquet/", "parquet", client=client)
            print(f"converted to {len(written)} Parquet objects, e.g. {written[0]}")

            # 3. train: batches from the Parquet row groups, a few steps of a tiny model
            table = read_objects(f"{BUCKET}/parquet/", "parquet", client=client)
            print(f"{table.count()} rows, columns {table.schema().names}")
            model = torch.nn.Linear(FEATURES, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            batches = table.map_batches(features).iter_batches(batch_size=128, batch_format="numpy")
            for step, batch in enumerate(batches):
                x, y = torch.tensor(batch["x"]), torch.tensor(batch["y"])
                loss = loss_fn(model(x).squeeze(1), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step % 5 == 0:
                    print(f"step {step:3d}  loss {loss.item():.4f}")
                if step == 19:
                    break
            print("trained 20 steps from Parquet read through s3dlio")
        finally:
            ray.shutdown()
            client.close()


if __name__ == "__main__":
    main()
