"""The s3:// data path against plain boto3 and a bare ``http.client`` loop, on one local server.

    .venv/bin/python benchmarks/s3_data_path.py [--rounds 5] [--ops 1000]

GETs go to nginx on loopback (a path-style S3 GET endpoint that ignores signatures; moto is far
too slow to tell clients apart), PUTs to moto. Each round runs every variant once, in turn, and
the medians over the rounds are printed: objects/s, GB/s and the client process's CPU time per
object (the server's share excluded). The bare loop is the floor: one connection, no signing,
``readinto`` into a reused buffer.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.servers import Nginx  # noqa: E402
from tests.servers.common import free_port, start_server, stop_server  # noqa: E402

SMALL = 64 * 1024
LARGE = 64 * 1024 * 1024
N_SMALL = 256
BUCKET = "bench"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(seconds, client CPU seconds, objects) of one call."""
    wall, cpu = time.perf_counter(), _cpu()
    count = fn()
    return time.perf_counter() - wall, _cpu() - cpu, count


def _run(title: str, variants: dict[str, Callable[[], int]], size: int, rounds: int) -> None:
    print(f"\n{title}")
    for fn in variants.values():  # warm-up: connections, clients, page cache
        fn()
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(_measure(variants[name]))
    for name, runs in samples.items():
        rate = statistics.median(n / s for s, _, n in runs)
        cpu_us = statistics.median(c / n * 1e6 for _, c, n in runs)
        print(
            f"  {name:<40} {rate:9.0f} obj/s {rate * size / 1e9:6.2f} GB/s {cpu_us:9.0f} us CPU/obj"
        )


def _boto3(endpoint: str, pool: int = 16) -> object:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool),
    )


def _each(fn: Callable[[object], object], items: list) -> int:
    for item in items:
        fn(item)
    return len(items)


def _threads(fn: Callable[[int], object], ops: int, threads: int) -> int:
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fn, range(ops)):
            pass
    return ops


def bench_gets(rounds: int, ops: int, workdir: Path) -> None:
    import s3dlio
    from s3dlio import RangeEngineConfig
    from s3dlio.io.range_engine import fetch
    from s3dlio.io.store import backend_for
    from s3dlio.io.uri import parse_uri

    data = workdir / "data" / BUCKET
    data.mkdir(parents=True)
    for i in range(N_SMALL):
        (data / f"small/{i}").parent.mkdir(exist_ok=True)
        (data / f"small/{i}").write_bytes(os.urandom(SMALL))
    (data / "large").write_bytes(os.urandom(LARGE))
    with Nginx(workdir / "data") as nginx:
        os.environ["AWS_ENDPOINT_URL"] = nginx.endpoint
        s3dlio.configure_s3()
        boto = _boto3(nginx.endpoint)
        small = [f"s3://{BUCKET}/small/{i % N_SMALL}" for i in range(ops)]
        buf = bytearray(LARGE)
        view = memoryview(buf)
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port)

        def bare(key: str, n: int) -> int:
            for i in range(n):
                conn.request("GET", f"/{BUCKET}/{key.format(i % N_SMALL)}")
                response = conn.getresponse()
                length = int(response.getheader("Content-Length"))
                done = 0
                while done < length:
                    done += response.readinto(view[done:length])
            return n

        def boto_get(key: str) -> int:
            return len(boto.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        _run(
            "GET 64 KiB objects, one thread",
            {
                "bare http.client loop (floor)": lambda: bare("small/{}", ops),
                "s3dlio.get": lambda: _each(s3dlio.get, small),
                "boto3 get_object().read()": lambda: _each(
                    lambda i: boto_get(f"small/{i % N_SMALL}"), list(range(ops // 8))
                ),
            },
            SMALL,
            rounds,
        )
        _run(
            "GET 64 KiB objects, 8 in flight",
            {
                "s3dlio.get_many(max_in_flight=8)": lambda: len(s3dlio.get_many(small, 8)),
                "boto3, 8 threads": lambda: _threads(
                    lambda i: boto_get(f"small/{i % N_SMALL}"), ops // 4, 8
                ),
            },
            SMALL,
            rounds,
        )
        large = f"s3://{BUCKET}/large"
        _run(
            "GET one 64 MiB object",
            {
                "bare http.client loop (floor)": lambda: bare("large", 1),
                "s3dlio.get (RangeEngine defaults)": lambda: len(s3dlio.get(large)) // LARGE,
                "s3dlio.get, one stream (no split)": lambda: (
                    fetch(
                        backend_for(large),
                        parse_uri(large),
                        config=RangeEngineConfig(enabled=False),
                    ).nbytes
                    // LARGE
                ),
                "s3dlio.get_into (reused buffer)": lambda: s3dlio.get_into(large, buf) // LARGE,
                "boto3 get_object().read()": lambda: boto_get("large") // LARGE,
            },
            LARGE,
            rounds,
        )
        conn.close()


def bench_puts(rounds: int, ops: int, workdir: Path) -> None:
    import s3dlio

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        workdir / "moto.log",
    )
    try:
        os.environ["AWS_ENDPOINT_URL"] = url
        s3dlio.configure_s3()
        boto = _boto3(url)
        boto.create_bucket(Bucket=BUCKET)
        payload = os.urandom(SMALL)
        n = max(50, ops // 10)
        _run(
            "PUT 64 KiB objects to moto, one thread (moto bounds the rate)",
            {
                "s3dlio.put_bytes": lambda: _each(
                    lambda i: s3dlio.put_bytes(f"s3://{BUCKET}/p/{i}", payload), list(range(n))
                ),
                "boto3 put_object": lambda: _each(
                    lambda i: boto.put_object(Bucket=BUCKET, Key=f"b/{i}", Body=payload),
                    list(range(n)),
                ),
            },
            SMALL,
            rounds,
        )
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=1000, help="small objects per round")
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="s3dlio-bench-s3-") as tmp:
        bench_gets(args.rounds, args.ops, Path(tmp))
        bench_puts(args.rounds, args.ops, Path(tmp))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
