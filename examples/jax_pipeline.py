"""A JAX input pipeline: batches of objects from storage as ``jax.Array``s, prefetched.

    python examples/jax_pipeline.py [URI_PREFIX]

Each host (``jax.process_index()``) takes its own share of the objects; shuffling is a pure
function of (seed, epoch), so every host agrees on the order.
"""

from __future__ import annotations

import shutil
import sys
import tempfile

import jax.numpy as jnp
import numpy as np

import s3dlio
from s3dlio.jax import JaxIterable

SAMPLES, FEATURES = 256, 32


def run(root: str) -> None:
    """Write float32 samples as objects under ``root``, then reduce them in JAX batches."""
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32)
    s3dlio.put_many([(f"{root}sample-{i:04d}.f32", row) for i, row in enumerate(samples)])

    pipeline = JaxIterable.from_prefix(
        root,
        batch_size=32,
        shuffle=True,
        seed=1,
        prefetch=8,
        output="jax",
        transform=lambda raw: np.frombuffer(raw, dtype=np.float32),
    )
    total = jnp.zeros(FEATURES)
    batches = 0
    for batch in pipeline:
        total = total + batch.sum(axis=0)  # batch: a (32, FEATURES) jax.Array
        batches += 1
    assert np.allclose(np.asarray(total), samples.sum(axis=0), atol=1e-3)
    print(f"{batches} batches of 32 from {root}: column sums match the source")
    s3dlio.delete(root, recursive=True)


def main() -> None:
    """Run on ``sys.argv[1]`` or on a temp directory."""
    if len(sys.argv) > 1:
        run(sys.argv[1].rstrip("/") + "/")
        return
    base = tempfile.mkdtemp(prefix="s3dlio-jax-")
    try:
        run(f"file://{base}/")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
