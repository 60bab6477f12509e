"""What one Parquet row group of 2 columns costs, down to the bare wire: the ceiling under the
``parquet`` suite's row-group case.

Run: ``flock /tmp/bench.lock .venv/bin/python -m benchmarks.parquet_ceiling [--rounds 30]``.
nginx on loopback serves the suite's file (16 row groups x 8 ``float32`` columns, 1 MiB
chunks, uncompressed); every case reads row group 3, columns ``c1`` and ``c5`` (two 1 MiB
ranges), in one process, rounds interleaved, 20 reads per round; medians of wall time and of
process CPU time (all threads) per row group. The cases:

- the barest Python loop: pre-built unsigned ``GET``s with ``Range`` on kept-alive sockets,
  ``recv_into`` a preallocated buffer (in turn on one socket; on two sockets with one
  ``epoll``): what the bytes themselves cost;
- pyarrow's C++ S3 client (``S3FileSystem.open_input_file().read_at``), the two ranges in
  turn and on two threads, and its ``ParquetFile.read_row_group``;
- ours: ``read_row_group``, and the same pieces put together as before 2026-12-05 (a pool
  thread per range, pyarrow pre-buffering and decoding on its threads).
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .servers import Nginx, s3_env
from .suite_parquet import _write

ROW_GROUP, COLUMNS, PER_ROUND = 3, ["c1", "c5"], 20


def _bare(host: str, port: int, ranges: list[tuple[int, int]]) -> dict[str, Callable[[], None]]:
    heads = [
        f"GET /pq/data.parquet HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Range: bytes={off}-{off + n - 1}\r\n\r\n".encode()
        for off, n in ranges
    ]
    socks = [socket.create_connection((host, port)) for _ in ranges]
    views = [memoryview(bytearray(n + 4096)) for _, n in ranges]

    def body_done(view: memoryview, got: int, want: int) -> bool:
        end = bytes(view[: min(got, 2048)]).find(b"\r\n\r\n")
        return end >= 0 and got - end - 4 >= want

    def in_turn() -> None:
        for (_, n), head, view in zip(ranges, heads, views, strict=True):
            socks[0].sendall(head)
            got = 0
            while not body_done(view, got, n):
                got += socks[0].recv_into(view[got:])

    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    index = {s.fileno(): i for i, s in enumerate(socks)}

    def with_epoll() -> None:
        for s, head in zip(socks, heads, strict=True):
            s.sendall(head)
        got = [0] * len(socks)
        left = len(socks)
        while left:
            for fd, _ in poller.poll():
                i = index[fd]
                if got[i] < 0:
                    continue
                got[i] += socks[i].recv_into(views[i][got[i] :])
                if body_done(views[i], got[i], ranges[i][1]):
                    got[i], left = -1, left - 1

    return {
        "bare Python, 1 socket, in turn": in_turn,
        "bare Python, 2 sockets, epoll": with_epoll,
    }


def _pyarrow(host: str, port: int, ranges: list[tuple[int, int]]) -> dict[str, Callable[[], None]]:
    import pyarrow.parquet as pq
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        access_key="bench",
        secret_key="bench-secret",
        region="us-east-1",
        scheme="http",
        endpoint_override=f"{host}:{port}",
        force_virtual_addressing=False,
    )
    raw = s3.open_input_file("pq/data.parquet")
    pool = ThreadPoolExecutor(2)
    pfile = pq.ParquetFile(s3.open_input_file("pq/data.parquet"))

    def in_turn() -> None:
        for off, n in ranges:
            raw.read_at(n, off)

    def two_threads() -> None:
        for done in [pool.submit(raw.read_at, n, off) for off, n in ranges]:
            done.result()

    return {
        "pyarrow C++ read_at x2, in turn": in_turn,
        "pyarrow C++ read_at x2, 2 threads": two_threads,
        "pyarrow read_row_group": lambda: pfile.read_row_group(ROW_GROUP, columns=COLUMNS),
    }


def _ours(uri: str) -> dict[str, Callable[[], None]]:
    from s3dlio.formats.parquet import ParquetObject, _Source, coalesce, read_row_group
    from s3dlio.io.executor import run_claimed

    def before() -> None:
        obj = ParquetObject(uri)
        footer = obj.footer
        spans = coalesce(footer.ranges([ROW_GROUP], footer.resolve_columns(COLUMNS)))
        views: list = [None] * len(spans)

        def one(k: int) -> None:
            off, n = spans[k]
            views[k] = obj._get(off, n, footer.etag, footer.size)

        run_claimed(len(spans), one, len(spans))
        source = _Source(obj, footer, [off for off, _ in spans], views)
        source.parquet_file(pre_buffer=True).read_row_group(
            ROW_GROUP, columns=COLUMNS, use_threads=True
        )

    return {
        "ours read_row_group, as before (thread per range)": before,
        "ours read_row_group": lambda: read_row_group(uri, ROW_GROUP, COLUMNS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    www = Path(tempfile.mkdtemp(prefix="s3dlio-bench-pq-"))
    try:
        _measure(www, args.rounds)
    finally:
        shutil.rmtree(www, ignore_errors=True)


def _measure(www: Path, rounds: int) -> None:
    (www / "pq").mkdir()
    _write(www / "pq" / "data.parquet", 16)
    with Nginx(www) as nginx:
        os.environ.update(s3_env(nginx.endpoint))
        from s3dlio.formats.parquet import ParquetObject

        uri = "s3://pq/data.parquet"
        footer = ParquetObject(uri).footer
        ranges = footer.ranges([ROW_GROUP], footer.resolve_columns(COLUMNS))
        host, port = nginx.endpoint.split("://")[1].rsplit(":", 1)
        cases = {
            **_bare(host, int(port), ranges),
            **_pyarrow(host, int(port), ranges),
            **_ours(uri),
        }
        wall: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        for run in cases.values():  # warm-up: connections, footer cache
            for _ in range(PER_ROUND):
                run()
        load = os.getloadavg()
        for _ in range(rounds):
            for name, run in cases.items():
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(PER_ROUND):
                    run()
                wall[name].append((time.perf_counter() - t0) / PER_ROUND)
                cpu[name].append((time.process_time() - c0) / PER_ROUND)
        end = os.getloadavg()
    print(f"load average {load[0]:.2f} at start / {end[0]:.2f} at end; {rounds} rounds")
    print(f"| per row group ({len(ranges)} ranges) | wall ms (median) | min | CPU ms |")
    print("|---|---:|---:|---:|")
    for name in cases:
        print(
            f"| {name} | {statistics.median(wall[name]) * 1e3:.3f} "
            f"| {min(wall[name]) * 1e3:.3f} | {statistics.median(cpu[name]) * 1e3:.3f} |"
        )


if __name__ == "__main__":
    main()
