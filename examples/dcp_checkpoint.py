"""torch.distributed.checkpoint (DCP) to any URI with s3dlio, and s3torchconnector code unchanged.

``python examples/dcp_checkpoint.py [BASE_URI]`` (default: a temp ``file://`` directory; try
``s3://bucket/prefix`` or ``az://account/container/prefix``). In one process (no process
group; under ``torchrun`` the same calls save and load sharded state, each rank its part):

1. ``dcp.save`` / ``dcp.load`` of a model and optimizer through ``s3dlio.torch.dcp``;
2. the same load with a typed error for a URI that holds no checkpoint;
3. code written for s3torchconnector, with its import changed to
   ``s3dlio.compat.s3torchconnector``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings

import torch
import torch.distributed.checkpoint as dcp

from s3dlio.errors import NotFoundError
from s3dlio.torch.dcp import StorageReader, StorageWriter
from s3dlio.torch.dcp import load as s3dlio_load

# One process, no process group: DCP says so once per call.
warnings.filterwarnings("ignore", "torch.distributed is disabled")


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))


def run(base: str) -> None:
    """Save, load and verify under ``base``."""
    base = base.rstrip("/")
    net = model()
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(8, 32)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "optim": opt.state_dict(), "step": 100}

    # 1. DCP through s3dlio: shards streamed, CRC32C per 4 MiB, .metadata written last
    dcp.save(state, storage_writer=StorageWriter(f"{base}/step-100", prefix_strategy="hex"))
    fresh = model()
    fresh_opt = torch.optim.AdamW(fresh.parameters())
    target = {"model": fresh.state_dict(), "optim": fresh_opt.state_dict(), "step": 0}
    dcp.load(target, storage_reader=StorageReader(f"{base}/step-100"))
    fresh.load_state_dict(target["model"])
    assert target["step"] == 100
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), net.parameters(), strict=True))
    print(f"dcp.save/dcp.load through s3dlio: {base}/step-100 ok")

    # 2. the one-call helpers raise s3dlio's typed errors (DCP wraps them otherwise)
    try:
        s3dlio_load(target, f"{base}/step-999")
    except NotFoundError as exc:
        print(f"no checkpoint there: {exc}")

    # 3. s3torchconnector code, one import changed
    from s3dlio.compat.s3torchconnector import S3Checkpoint
    from s3dlio.compat.s3torchconnector.dcp import S3StorageReader, S3StorageWriter

    checkpoint = S3Checkpoint(region="us-east-1")
    with checkpoint.writer(f"{base}/epoch0.ckpt") as writer:
        torch.save(net.state_dict(), writer)
    with checkpoint.reader(f"{base}/epoch0.ckpt") as reader:
        restored = torch.load(reader, weights_only=True)
    assert all(torch.equal(restored[k], v) for k, v in net.state_dict().items())
    dcp.save(net.state_dict(), storage_writer=S3StorageWriter("us-east-1", f"{base}/dcp"))
    again = model().state_dict()
    dcp.load(again, storage_reader=S3StorageReader("us-east-1", f"{base}/dcp"))
    assert all(torch.equal(again[k], v) for k, v in net.state_dict().items())
    print("s3torchconnector-style S3Checkpoint and S3StorageWriter/S3StorageReader: ok")


def main() -> None:
    if len(sys.argv) > 1:
        run(sys.argv[1])
        return
    tmp = tempfile.mkdtemp(prefix="s3dlio-dcp-")
    try:
        run(f"file://{tmp}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
