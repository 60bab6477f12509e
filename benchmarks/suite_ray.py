"""``copy_prefix`` of 2,000 objects on a two-node loopback Ray cluster vs ``s3-cli cp`` (one
process): s3:// (moto) to file://.

Ray is not in the main venv, so this suite is a program of its own, run in ``.venv-ray``::

    make ray-venv && .venv-ray/bin/python -m benchmarks.suite_ray [--objects 2000] [--size 64KiB]

It starts moto (``python -m moto.server``) on 127.0.0.1 and the same two-node cluster as the
tests (head 127.0.0.2 and a node 127.0.0.3, 1 CPU each), fills ``s3://bench/src/`` once, then
runs the contenders in interleaved rounds, each copying the whole prefix to a fresh local
directory: ``s3-cli cp -r`` (one process), ``s3-cli cp -r --ray ADDRESS`` (a driver process that
connects, lists and sends groups to the tasks) and ``copy_prefix()`` from an already connected
driver (no process or connection start-up). Medians and ratios go to stdout and, with
``--json``, to a file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ray"))
from ray_cluster import HEAD_IP, NODE_IP, free_port, start, stop, wait_port  # noqa: E402


def _moto(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port("127.0.0.1")
    log = Path(tempfile.gettempdir()) / f"bench-ray-moto-{port}.log"
    proc = start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log, env
    )
    wait_port("127.0.0.1", port, proc, log)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size", default="64KiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()

    env = dict(os.environ)
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    procs: list[subprocess.Popen[bytes]] = []
    temp = Path(tempfile.mkdtemp(prefix="s3dlio-bray-", dir="/tmp"))
    try:
        moto, endpoint = _moto(env)
        procs.append(moto)
        env["AWS_ENDPOINT_URL"] = endpoint
        os.environ.update(env)  # this driver, and the nodes started below, see the same
        import ray

        import s3dlio
        from s3dlio.ray import copy_prefix

        ray_bin = str(Path(sys.executable).with_name("ray"))
        port = free_port(HEAD_IP)
        common = ["--num-cpus=1", "--object-store-memory=150000000", "--disable-usage-stats"]
        procs.append(
            start(
                [ray_bin, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}"]
                + ["--include-dashboard=false", f"--temp-dir={temp}", "--block", *common],
                temp / "head.log",
                env,
            )
        )
        wait_port(HEAD_IP, port, procs[-1], temp / "head.log")
        address = f"{HEAD_IP}:{port}"
        procs.append(
            start(
                [ray_bin, "start", f"--address={address}", f"--node-ip-address={NODE_IP}"]
                + ["--block", *common],
                temp / "node.log",
                env,
            )
        )
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        deadline = time.monotonic() + 90
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the second Ray node did not join")
            time.sleep(0.2)

        client = s3dlio.Client(endpoint_url=endpoint)
        client.create_bucket("s3://bench")
        s3dlio.put("s3://bench/src/", args.objects, size=args.size, seed=1, client=client)
        total = args.objects * s3dlio.parse_size(args.size)
        cli = str(Path(sys.executable).with_name("s3-cli"))
        out = temp / "out"

        def cli_cp(extra: list[str]) -> float:
            dest = out / f"d{time.monotonic_ns()}"
            began = time.perf_counter()
            subprocess.run(
                [cli, "-q", "cp", "-r", "s3://bench/src/", f"{dest}/", *extra],
                check=True,
                env=env,
                timeout=600,
            )
            took = time.perf_counter() - began
            assert len(os.listdir(dest)) == args.objects
            shutil.rmtree(dest)
            return took

        def in_driver() -> float:
            dest = out / f"d{time.monotonic_ns()}"
            began = time.perf_counter()
            report = copy_prefix("s3://bench/src/", f"file://{dest}/", client=client)
            took = time.perf_counter() - began
            assert len(report) == args.objects and len(report.nodes) == 2
            shutil.rmtree(dest)
            return took

        contenders = {
            "s3-cli cp -r (one process)": lambda: cli_cp([]),
            "s3-cli cp -r --ray (2 nodes)": lambda: cli_cp(["--ray", address]),
            "copy_prefix() in a connected driver (2 nodes)": in_driver,
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, run in contenders.items():
                times[name].append(run())
        base = statistics.median(times["s3-cli cp -r (one process)"])
        rows = []
        print(f"\n{args.objects} objects x {args.size} ({total / 2**20:.0f} MiB), s3:// -> file://")
        for name, seconds in times.items():
            med = statistics.median(seconds)
            rows.append(
                {
                    "contender": name,
                    "median_s": round(med, 3),
                    "objects_per_s": round(args.objects / med, 1),
                    "MiB_per_s": round(total / 2**20 / med, 2),
                    "speed_vs_one_process": round(base / med, 3),
                    "rounds_s": [round(t, 3) for t in seconds],
                }
            )
            print(
                f"  {name:48s} {med:7.2f} s  {args.objects / med:8.1f} obj/s  "
                f"x{base / med:.2f} vs one process"
            )
        if args.json:
            Path(args.json).write_text(json.dumps({"objects": args.objects, "size": args.size,
                                                   "rows": rows}, indent=1))  # fmt: skip
        client.close()
    finally:
        try:
            import ray

            ray.shutdown()
        except ImportError:
            pass
        stop(list(reversed(procs)))
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
