"""One rank of test_distributed.py's real ``torch.distributed`` job (gloo on 127.0.0.1).

``python dist_worker.py BASE_URI`` with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT`` set. Saves a per-rank state collectively, loads its own and a neighbour's
shard, then checks that a save where one rank fails commits nothing. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from s3dlio import S3DlioError
from s3dlio.checkpoint import CheckpointStore


def main() -> None:
    base = sys.argv[1]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        store = CheckpointStore(base, strategy="round_robin")
        writer = store.writer(world, rank)
        state = {"w": torch.full((256, 256), float(rank)), "rank": rank}
        key = writer.save(10, 1, "torch", state, user_meta={"world": world})
        mine = store.load_latest()  # the rank comes from torch.distributed
        other = store.load_latest(rank=(rank + 1) % world)

        failed = ""
        try:  # rank 1 hands over something that cannot be saved: nobody commits
            writer.save(11, 1, "torch", "not data" if rank == 1 else {"x": torch.ones(2)})
        except (TypeError, S3DlioError) as exc:
            failed = type(exc).__name__
        dist.barrier()
        steps = [i.step for i in store.list_checkpoints()]
        print(
            json.dumps(
                {
                    "rank": rank,
                    "key": key,
                    "mine": [mine["rank"], float(mine["w"][7, 7])],
                    "other": other["rank"],
                    "failed": failed,
                    "steps": steps,
                }
            ),
            flush=True,
        )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
