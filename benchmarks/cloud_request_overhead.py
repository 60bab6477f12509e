"""Per-request cost and large-GET throughput of the gs:// and az:// backends, against the
official clients, on the local emulators (fake-gcs-server, Azurite).

    .venv/bin/python benchmarks/cloud_request_overhead.py [--rounds 7] [--ops 300]

Each round runs every variant once, in turn (interleaved), and the medians over the rounds are
printed: wall time per small request, the client process's CPU time per request (what Python
spends; the emulator's share is excluded), and MiB/s for a 64 MiB GET. Emulators answer far
faster than the cloud, so these numbers isolate the client side.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers.azurite import BINARY, KEY, connection_string  # noqa: E402
from tests.servers.common import free_port, start_server, stop_server  # noqa: E402
from tests.servers.gcs import create_bucket, server_binary  # noqa: E402

SMALL = 64 * 1024
LARGE = 64 * 1024 * 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(fn: Callable[[int], object], ops: int) -> tuple[float, float]:
    """(wall ms per op, client CPU ms per op)."""
    wall, cpu = time.perf_counter(), _cpu()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - wall) * 1e3 / ops, (_cpu() - cpu) * 1e3 / ops


def _run(variants: dict[str, Callable[[int], object]], rounds: int, ops: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            results[name].append(_measure(fn, ops))
    for name, samples in results.items():
        if name.startswith("64MiB"):
            mib_s = statistics.median(LARGE / 2**20 / (ms / 1e3) for ms, _ in samples)
            print(f"  {name:<44} {mib_s:8.0f} MiB/s")
        else:
            wall = statistics.median(ms for ms, _ in samples)
            cpu = statistics.median(c for _, c in samples)
            print(f"  {name:<44} {wall:6.2f} ms wall  {cpu:6.2f} ms client CPU")


def bench_gcs(rounds: int, ops: int, workdir: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    import s3dlio

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(
        [
            server_binary(),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-public-host",
            f"127.0.0.1:{port}",
            "-log-level",
            "error",
        ],
        port,
        workdir / "gcs.log",
    )
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        create_bucket(url, "bench")
        bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket("bench")
        small, large = os.urandom(SMALL), os.urandom(LARGE)
        s3dlio.put_bytes("gs://bench/small", small)
        s3dlio.put_bytes("gs://bench/large", large)
        blob_small, blob_large = bucket.blob("small"), bucket.blob("large")
        no_split = s3dlio.RangeEngineConfig(enabled=False)
        from s3dlio.io.range_engine import fetch
        from s3dlio.io.store import backend_for
        from s3dlio.io.uri import parse_uri

        large_uri = parse_uri("gs://bench/large")
        print(f"gs:// on fake-gcs-server ({rounds} rounds x {ops} requests, medians)")
        _run(
            {
                "64KiB GET  google-cloud-storage": lambda i: blob_small.download_as_bytes(),
                "64KiB GET  s3dlio.get": lambda i: s3dlio.get("gs://bench/small"),
                "64KiB PUT  google-cloud-storage": lambda i: bucket.blob(
                    f"p{i}"
                ).upload_from_string(small),
                "64KiB PUT  s3dlio.put_bytes": lambda i: s3dlio.put_bytes(
                    f"gs://bench/q{i}", small
                ),
                "HEAD       google-cloud-storage": lambda i: bucket.get_blob("small"),
                "HEAD       s3dlio.stat": lambda i: s3dlio.stat("gs://bench/small"),
            },
            rounds,
            ops,
        )
        _run(
            {
                "64MiB GET  google-cloud-storage": lambda i: blob_large.download_as_bytes(),
                "64MiB GET  s3dlio, one stream": lambda i: fetch(
                    backend_for(large_uri), large_uri, config=no_split
                ),
                "64MiB GET  s3dlio.get (RangeEngine)": lambda i: s3dlio.get("gs://bench/large"),
            },
            rounds,
            1,
        )
    finally:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        stop_server(proc)


def bench_azure(rounds: int, ops: int, workdir: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    import s3dlio

    port = free_port()
    proc = start_server(
        [
            str(BINARY),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ],
        port,
        workdir / "azurite.log",
    )
    try:
        conn = connection_string("127.0.0.1", port)
        assert KEY in conn
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = conn
        service = BlobServiceClient.from_connection_string(conn)
        container = service.create_container("bench")
        small, large = os.urandom(SMALL), os.urandom(LARGE)
        root = "az://devstoreaccount1/bench/"
        s3dlio.put_bytes(root + "small", small)
        s3dlio.put_bytes(root + "large", large)
        blob_small, blob_large = (
            container.get_blob_client("small"),
            container.get_blob_client("large"),
        )
        print(f"az:// on Azurite ({rounds} rounds x {ops} requests, medians)")
        _run(
            {
                "64KiB GET  azure-storage-blob": lambda i: blob_small.download_blob().readall(),
                "64KiB GET  s3dlio.get": lambda i: s3dlio.get(root + "small"),
                "HEAD       azure-storage-blob": lambda i: blob_small.get_blob_properties(),
                "HEAD       s3dlio.stat": lambda i: s3dlio.stat(root + "small"),
            },
            rounds,
            ops,
        )
        _run(
            {
                "64MiB GET  azure-storage-blob": lambda i: blob_large.download_blob().readall(),
                "64MiB GET  s3dlio.get (RangeEngine)": lambda i: s3dlio.get(root + "large"),
            },
            rounds,
            1,
        )
    finally:
        os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--only", choices=("gs", "az"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "gs"):
            bench_gcs(args.rounds, args.ops, Path(tmp))
        if args.only in (None, "az"):
            bench_azure(args.rounds, args.ops, Path(tmp))


if __name__ == "__main__":
    main()
