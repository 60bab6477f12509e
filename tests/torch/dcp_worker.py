"""One rank of a gloo process group on loopback, driven by JSON lines on stdin (test_dcp.py).

    python dcp_worker.py RANK WORLD

Rank 0 hosts the TCP store on a free port and prints ``{"port": P}``; the others read the port
as their first stdin line. Every rank then prints ``{"ready": true}`` and answers one JSON line
per command:

* ``{"op": "save", "uri", "ranks", "seed", "block"?, "prefix_strategy"?, "async"?}``: the
  ranks listed save the sharded state of :func:`state` (DTensors over those ranks);
  with ``block``, the rank prints ``{"blocked": true}`` after its first tensor has gone into
  the writer and waits for stdin to close (the test kills it there).
* ``{"op": "load", "uri", "ranks", "seed"}``: load into empty DTensors sharded over ``ranks``
  and compare with the expected shards; answers ``{"ok": bool, "error": str|null}``.
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
from torch.distributed.checkpoint import DefaultSavePlanner
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

from s3dlio.torch.dcp import StorageReader, StorageWriter
from tests.torch.gloo_rank import join_group, say


def full_state(seed: int) -> dict[str, Any]:
    """The unsharded values every test compares against (also imported by test_dcp.py)."""
    w = torch.arange(10 * 6, dtype=torch.float32).reshape(10, 6) + seed
    emb = (torch.arange(4 * 9, dtype=torch.float32).reshape(4, 9) * 0.5 + seed).to(torch.bfloat16)
    big = torch.arange(3 << 20, dtype=torch.int32).reshape(-1, 1024) + seed  # 12 MiB: parts
    return {
        "model": {"w": w, "emb": emb, "big": big, "bias": torch.full((5,), float(seed))},
        "step": seed * 10,
    }


def state(seed: int, mesh: DeviceMesh) -> dict[str, Any]:
    """The full state sharded over ``mesh``: w on dim 0, emb on dim 1, big on dim 0."""
    full = full_state(seed)
    m = full["model"]
    return {
        "model": {
            "big": distribute_tensor(m["big"], mesh, [Shard(0)]),
            "w": distribute_tensor(m["w"], mesh, [Shard(0)]),
            "emb": distribute_tensor(m["emb"], mesh, [Shard(1)]),
            "bias": distribute_tensor(m["bias"], mesh, [Replicate()]),
        },
        "step": full["step"],
    }


def empty_like(sd: dict[str, Any]) -> dict[str, Any]:
    model = {}
    for k, v in sd["model"].items():
        local = torch.zeros_like(v.to_local())
        model[k] = DTensor.from_local(
            local, v.device_mesh, v.placements, run_check=False, shape=v.shape, stride=v.stride()
        )
    return {"model": model, "step": -1}


class BlockingPlanner(DefaultSavePlanner):
    """Stops this rank for good after its first tensor went into a shard writer."""

    calls = 0

    def resolve_data(self, write_item: Any) -> Any:
        BlockingPlanner.calls += 1
        if BlockingPlanner.calls == 2:
            say({"blocked": True})
            sys.stdin.read()  # until the test kills us (or closes stdin)
            raise RuntimeError("released")
        return super().resolve_data(write_item)


def main() -> None:
    rank, world = int(sys.argv[1]), int(sys.argv[2])
    join_group(rank, world)
    subsets = [(0, 1), (0, 1, 2)] if world == 3 else [(0, 1)]
    groups = {s: dist.new_group(list(s)) for s in subsets}
    meshes: dict[tuple[int, ...], DeviceMesh] = {}
    say({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        ranks = tuple(cmd["ranks"])
        if rank not in ranks:
            continue
        if ranks not in meshes:
            meshes[ranks] = DeviceMesh.from_group(groups[ranks], "cpu")
        mesh, group = meshes[ranks], groups[ranks]
        try:
            if cmd["op"] == "save":
                sd = state(cmd["seed"], mesh)
                writer = StorageWriter(
                    cmd["uri"],
                    prefix_strategy=cmd.get("prefix_strategy"),
                    part_size="5MiB",
                    thread_count=2,
                )
                planner = BlockingPlanner() if cmd.get("block") else None
                if cmd.get("async"):
                    dcp.async_save(
                        sd, storage_writer=writer, planner=planner, process_group=group
                    ).result()
                else:
                    dcp.save(sd, storage_writer=writer, planner=planner, process_group=group)
                say({"ok": True, "error": None})
            else:
                expected = state(cmd["seed"], mesh)
                sd = empty_like(expected)
                dcp.load(sd, storage_reader=StorageReader(cmd["uri"]), process_group=group)
                bad = [
                    k
                    for k, v in expected["model"].items()
                    if not torch.equal(v.to_local(), sd["model"][k].to_local())
                ]
                if sd["step"] != expected["step"]:
                    bad.append("step")
                say({"ok": not bad, "error": f"differs: {bad}" if bad else None})
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            say({"ok": False, "error": "".join(traceback.format_exception_only(exc))})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
