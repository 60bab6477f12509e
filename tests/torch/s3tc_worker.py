"""One rank of a gloo group running s3torchconnector-style code (test_s3torchconnector_parity.py).

    python s3tc_worker.py RANK WORLD

The start-up protocol is procgroup.py's (rank 0 prints ``{"port": P}``, the others read it,
every rank prints ``{"ready": true}``). Then one JSON line per command, answered by one line:

* ``{"op": "save", "uri", "seed", "threads", "strategy": "default"|"round_robin"|"binary"}``:
  every rank saves :func:`state` through ``S3StorageWriter`` (the strategy built in this
  process, after the group is up, as user code does); answers ``{"ok", "error"}``.
* ``{"op": "keys", "prefix", "workers"}``: the keys this rank gets from a sharded
  ``S3IterableDataset`` (read through a ``DataLoader`` with ``workers`` workers); answers
  ``{"keys": [...]}``.
* ``{"op": "exit"}``.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from s3dlio.compat.s3torchconnector import S3IterableDataset
from s3dlio.compat.s3torchconnector.dcp import (
    BinaryPrefixStrategy,
    RoundRobinPrefixStrategy,
    S3StorageWriter,
)
from tests.torch.gloo_rank import join_group, say

REGION = "us-east-1"
ROUND_ROBIN = ["prefix1", "prefix2", "prefix3"]


def state(seed: int) -> dict[str, torch.Tensor]:
    """What every rank saves (replicated items: DCP writes each once); also used by the test."""
    g = torch.Generator().manual_seed(seed)
    return {
        "tensor1": torch.randn(64, 10, 10, generator=g),
        "tensor2": torch.randn(5, 5, generator=g),
        "scalar": torch.tensor(3.14),
    }


def key_of(reader: Any) -> str:
    return str(reader.key)


def strategy(name: str) -> Any:
    if name == "round_robin":
        return RoundRobinPrefixStrategy(ROUND_ROBIN)
    if name == "binary":
        return BinaryPrefixStrategy(epoch_num=4, min_prefix_length=4, prefix_count=4)
    return None


def main() -> None:
    rank, world = int(sys.argv[1]), int(sys.argv[2])
    join_group(rank, world)
    say({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        try:
            if cmd["op"] == "save":
                writer = S3StorageWriter(
                    region=REGION,
                    path=cmd["uri"],
                    thread_count=cmd["threads"],
                    overwrite=True,
                    prefix_strategy=strategy(cmd["strategy"]),
                )
                dcp.save(state(cmd["seed"]), storage_writer=writer)
                say({"ok": True, "error": None})
            else:
                ds = S3IterableDataset.from_prefix(
                    cmd["prefix"], region=REGION, enable_sharding=True, transform=key_of
                )
                loader = torch.utils.data.DataLoader(
                    ds, batch_size=None, num_workers=cmd["workers"]
                )
                say({"keys": list(loader)})
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            say({"ok": False, "error": "".join(traceback.format_exception_only(exc))})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
