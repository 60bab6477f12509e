"""JaxIterable: every item, batches as arrays, jax.Array output, host sharding, resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import ident, payload, populate

import s3dlio
from s3dlio.jax import JaxIterable, S3JaxIterable


def test_covers_every_item_as_numpy_arrays(objects):
    prefix, n = objects
    it = JaxIterable.from_prefix(prefix, shuffle=True, seed=1, prefetch=4)
    arrays = list(it)
    assert sorted(ident(a) for a in arrays) == list(range(n))
    assert all(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a in arrays)
    first = next(a for a in arrays if ident(a) == 0)
    assert first.tobytes() == payload(0)
    assert len(it) == n and S3JaxIterable is JaxIterable
    assert s3dlio.JaxIterable is JaxIterable


def test_equal_sized_items_batch_into_arrays(file_root):
    root = populate(file_root, 10, size=64)
    it = JaxIterable.from_prefix(root, batch_size=4)
    batches = list(it)
    assert [b.shape for b in batches] == [(4, 64), (4, 64), (2, 64)]
    assert [ident(row) for b in batches for row in b] == list(range(10))
    dropped = JaxIterable.from_prefix(root, batch_size=4, drop_last=True)
    assert [b.shape for b in dropped] == [(4, 64), (4, 64)] and len(dropped) == 2


def test_jax_array_output(file_root):
    """In a child process: starting JAX's runtime here would make later fork()s unsafe."""
    root = populate(file_root, 6, size=32)
    code = f"""
import jax, numpy as np
from s3dlio.jax import JaxIterable
it = JaxIterable.from_prefix({root!r}, batch_size=4, output="jax")
batches = list(it)
assert all(isinstance(b, jax.Array) for b in batches), batches
assert [b.shape for b in batches] == [(4, 32), (2, 32)]
rows = [int(np.asarray(r[:8]).view(np.uint64)[0]) for b in batches for r in b]
assert rows == list(range(6)), rows
assert it.process_index == jax.process_index() == 0 and it.devices
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_transform_and_uneven_batches(local_objects):
    prefix, n = local_objects
    it = JaxIterable.from_prefix(prefix, batch_size=8, transform=lambda a: a[:8].view(np.uint64))
    batches = list(it)
    assert all(b.shape == (8, 1) for b in batches)
    assert np.concatenate(batches).ravel().tolist() == list(range(n))
    uneven = list(JaxIterable.from_prefix(prefix, batch_size=8))
    assert isinstance(uneven[0], list) and len(uneven[0]) == 8


def test_hosts_split_the_data(local_objects):
    prefix, n = local_objects
    seen = []
    for host in range(3):
        it = JaxIterable.from_prefix(prefix, shuffle=True, seed=2, rank=host, world_size=3)
        assert it.process_index == host
        seen.append([ident(a) for a in it])
    assert sorted(sum(seen, [])) == list(range(n))
    assert not set(seen[0]) & set(seen[1])
    assert JaxIterable.from_prefix(prefix).process_index == 0


def test_resume(local_objects):
    prefix, _ = local_objects
    it = JaxIterable.from_prefix(prefix, shuffle=True, seed=5)
    it.set_epoch(2)
    full = [ident(a) for a in it]
    stream = iter(it)
    first = [ident(next(stream)) for _ in range(11)]
    state = it.state_dict()
    stream.close()
    again = JaxIterable.from_prefix(prefix)
    again.load_state_dict(state)
    assert first + [ident(a) for a in again] == full
