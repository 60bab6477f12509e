"""What every worker script of :mod:`tests.torch.procgroup` does first: talk JSON lines and join
the gloo process group on loopback (rank 0 hosts the TCP store and prints its port)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import torch.distributed as dist

TIMEOUT = timedelta(seconds=30)


def say(obj: dict[str, Any]) -> None:
    """One JSON line to the test."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def join_group(rank: int, world: int) -> None:
    """Join the gloo group: rank 0 prints ``{"port": P}``, the others read P from stdin."""
    if rank == 0:
        store = dist.TCPStore("127.0.0.1", 0, world, True, TIMEOUT, wait_for_workers=False)
        say({"port": store.port})
    else:
        port = int(sys.stdin.readline())
        store = dist.TCPStore("127.0.0.1", port, world, False, TIMEOUT)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=TIMEOUT)
