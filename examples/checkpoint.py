"""Save and restore training state with s3dlio's checkpoint store.

``python examples/checkpoint.py [BASE_URI]`` (default: a temp ``file://`` directory). Saves three
checkpoints of a small PyTorch model (or a NumPy tree without torch) with ``keep_last=2``,
restores the newest, and streams one more through ``torch.save``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile

import numpy as np

from s3dlio.checkpoint import CheckpointStore


def run(base: str) -> None:
    """Save, list, restore and verify checkpoints under ``base``."""
    store = CheckpointStore(base, keep_last=2)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)
        )
        for step in (100, 200, 300):
            with torch.no_grad():
                model[0].bias.fill_(step)
            store.save(step, step // 100, "torch", model.state_dict(), user_meta={"step": step})
        state = store.load_latest()
        restored = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)
        )
        restored.load_state_dict(state)
        assert torch.equal(restored[0].bias, torch.full((64,), 300.0))
        with store.save_stream(400, 4, "torch") as f:
            torch.save(model.state_dict(), f)
        assert torch.equal(torch.load(store.open())["2.weight"], model[2].weight)
    else:
        for step in (100, 200, 300):
            store.save(step, step // 100, "numpy", {"w": np.full(1000, step, np.float32)})
        assert store.load_latest()["w"][0] == 300
    kept = [(i.step, i.size_mb) for i in store.list_checkpoints()]
    print(f"{base}: checkpoints kept {[s for s, _ in kept]}, newest restored and verified")


def main() -> None:
    """Run on ``sys.argv[1]`` or on a temp directory."""
    if len(sys.argv) > 1:
        run(sys.argv[1].rstrip("/") + "/")
        return
    tmp = tempfile.mkdtemp(prefix="s3dlio-ckpt-", dir="/tmp")
    try:
        run(f"file://{tmp}/")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
