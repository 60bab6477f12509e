"""Checkpoints move between s3dlio and the original s3dlio 0.10 wheel, both ways (file://).

The original runs in a subprocess with the peers' venv (``benchmarks/.venv-peers``), from a
directory where this checkout's package cannot shadow it. Skipped when that venv is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import crc32c
import pytest

from s3dlio.checkpoint import CheckpointStore, load_checkpoint_with_validation

_ROOT = Path(__file__).resolve().parents[2]
#: `make test` installs the original wheel in .venv-original; the benchmarks' peers venv has it too.
PEERS_PYTHON = next(
    (
        p
        for p in (
            _ROOT / ".venv-original" / "bin" / "python",
            _ROOT / "benchmarks" / ".venv-peers" / "bin" / "python",
        )
        if p.exists()
    ),
    _ROOT / ".venv-original" / "bin" / "python",
)


@pytest.fixture(scope="module")
def original() -> Path:
    """The peers' python (the original s3dlio is imported by each script)."""
    if not PEERS_PYTHON.exists():
        pytest.skip(f"original s3dlio wheel not installed ({PEERS_PYTHON} missing)")
    return PEERS_PYTHON


def run_original(code: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(PEERS_PYTHON), "-c", textwrap.dedent(code), *args],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "No module named 's3dlio'" in done.stderr:
        pytest.skip("the peers' venv has no s3dlio")
    assert done.returncode == 0, done.stderr
    return done.stdout


def crc(data: bytes) -> str:
    return f"{crc32c.crc32c(data):08x}"


ORIGINAL_WRITES = """
import glob, json, sys, s3dlio
base = sys.argv[1]
flat = s3dlio.PyCheckpointStore(base + "flat/")
flat.save(1, 0, "torch", b"one" * 1000)
flat.save(2, 1, "jax", b"two" * 1000)
s3dlio.PyCheckpointStore(base + "zst/", compression_level=3).save(3, 0, "torch", b"z" * 100000)
rr = s3dlio.PyCheckpointStore(base + "rr/", strategy="round_robin")
metas = [rr.writer(2, r).save_distributed_shard(4, 1, "torch", bytes([65 + r]) * 5000)
         for r in range(2)]
rr.writer(2, 0).finalize_distributed_checkpoint(4, 1, "torch", metas)
single = s3dlio.PyCheckpointStore(base + "crc/")
single.save(1, 0, "torch", bytes(range(256)) * 41)
checksum = single.reader().load_latest_manifest()["shards"][0]["checksum"]
written = {"keys": [m["key"] for m in metas], "checksum": checksum}
"""

READ_BACK = """
base, root = sys.argv[2], sys.argv[3]
out = {"written": written}
for name in ("flat", "zst", "tree", "bin"):
    store = s3dlio.PyCheckpointStore(base + name + "/")
    out[name + "/list"] = [[c.step, c.epoch, c.framework, c.status, c.world_size, c.total_size]
                           for c in store.list_checkpoints()]
    reader = store.reader()
    manifest = reader.load_latest_manifest()
    out[name + "/shards"] = [bytes(reader.read_shard_by_rank(manifest, r)).hex()[:64]
                             for r in range(manifest["world_size"])]
    out[name + "/sizes"] = [len(reader.read_shard_by_rank(manifest, r))
                            for r in range(manifest["world_size"])]
    if manifest["world_size"] == 1:
        out[name + "/latest"] = len(store.load_latest())
for path in sorted(glob.glob(root + "/*/shards/**/rank-*.bin*", recursive=True)):
    out["validated:" + path[len(root):]] = len(s3dlio.load_checkpoint_with_validation("file://" + path))
print(json.dumps(out))
"""


def check_we_read_what_the_original_wrote(base: str, written: dict[str, Any]) -> None:
    shard_keys = written["keys"]
    assert written["checksum"] == f"crc32c:{crc(bytes(range(256)) * 41)}"

    flat = CheckpointStore(base + "flat/")
    assert bytes(flat.load_latest()) == b"two" * 1000
    assert bytes(flat.load(1)) == b"one" * 1000
    infos = flat.list_checkpoints()
    assert [(i.step, i.epoch, i.framework, i.status) for i in infos] == [
        (1, 0, "torch", "complete"),
        (2, 1, "jax", "complete"),
    ]
    assert infos[0].total_size == 3000 and infos[0].user_meta is None

    assert bytes(CheckpointStore(base + "zst/").load_latest()) == b"z" * 100000

    rr = CheckpointStore(base + "rr/")
    assert bytes(rr.load_latest(rank=0)) == b"A" * 5000
    assert bytes(rr.load_latest(rank=1)) == b"B" * 5000
    manifest = rr.reader().load_latest_manifest()
    assert manifest is not None and manifest["world_size"] == 2
    assert load_checkpoint_with_validation(base + "rr/" + shard_keys[1]) == b"B" * 5000


def test_checkpoints_move_both_ways(original: Path, disk_dir: Path) -> None:
    """We write; then one run of the original writes its own and reads ours; we read its."""
    import numpy as np

    theirs, base = f"file://{disk_dir}/theirs/", f"file://{disk_dir}/ours/"
    flat = CheckpointStore(base + "flat/")
    flat.save(1, 0, "torch", b"first" * 100)
    flat.save(2, 5, "torch", b"second" * 100, user_meta={"loss": 0.25})
    CheckpointStore(base + "zst/", compression_level=5).save(3, 0, "jax", b"q" * 50000)
    tree = {"w": np.arange(1000, dtype=np.float32), "step": 4}
    CheckpointStore(base + "tree/").save(4, 0, "jax", tree)
    binary = CheckpointStore(base + "bin/", strategy="binary")
    metas = [
        binary.writer(3, r).save_distributed_shard(5, 2, "torch", bytes([r]) * (10 + r))
        for r in range(3)
    ]
    binary.writer(3, 0).finalize_distributed_checkpoint(5, 2, "torch", metas)

    script = ORIGINAL_WRITES + READ_BACK
    out = json.loads(run_original(script, theirs, base, str(disk_dir / "ours")))
    check_we_read_what_the_original_wrote(theirs, out["written"])

    assert out["flat/list"] == [
        [1, 0, "torch", "complete", 1, 500],
        [2, 5, "torch", "complete", 1, 600],
    ]
    assert out["flat/latest"] == 600
    assert out["flat/shards"] == [(b"second" * 100).hex()[:64]]
    assert out["zst/latest"] == 50000
    assert out["zst/shards"] == [(b"q" * 50000).hex()[:64]]
    tree_bytes = bytes(CheckpointStore(base + "tree/").load_latest(raw=True))
    assert out["tree/sizes"] == [len(tree_bytes)]
    assert out["tree/shards"] == [tree_bytes.hex()[:64]]
    assert out["bin/list"] == [[5, 2, "torch", "complete", 3, 10 + 11 + 12]]
    assert out["bin/shards"] == [(bytes([r]) * (10 + r)).hex() for r in range(3)]
    validated = {k: v for k, v in out.items() if k.startswith("validated:")}
    assert len(validated) == 2 + 1 + 1 + 3
    assert sorted(validated.values()) == sorted([500, 600, 50000, len(tree_bytes), 10, 11, 12])
