"""GET 1,024 x 64 KiB through a 3-endpoint store (three nginx) against one endpoint.

Run: ``.venv/bin/python -m benchmarks.multi_endpoint [--rounds 7]``. The three nginx serve the
same directory; the single-endpoint case reads from the first of them through a plain
``s3dlio.Client``, the multi-endpoint case through ``create_multi_endpoint_store([...]).client``
(round robin), both with ``get_many(max_in_flight=64)``. Rounds alternate; medians and the ratio
are printed (and written as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from .data import KiB, write_files
from .servers import Nginx, s3_env

COUNT, SIZE, BUCKET = 1024, 64 * KiB, "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="s3dlio-bench-multi-"))
    paths = write_files(root / BUCKET, COUNT, SIZE)
    servers = [Nginx(root, workers=1) for _ in range(3)]
    try:
        os.environ.update(s3_env(servers[0].endpoint))
        import s3dlio

        keys = [p.name for p in paths]
        single = s3dlio.Client(endpoint_url=servers[0].endpoint)
        uris = [f"s3://{BUCKET}/{k}" for k in keys]
        store = s3dlio.create_multi_endpoint_store(
            [f"s3://127.0.0.1:{s.port}/{BUCKET}/" for s in servers]
        )
        multi_uris = [f"s3://127.0.0.1:{servers[0].port}/{BUCKET}/{k}" for k in keys]
        cases = {
            "single endpoint": lambda: single.get_many(uris, 64),
            "3-endpoint store": lambda: store.client.get_many(multi_uris, 64),
        }
        for run in cases.values():  # warm connections
            run()
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, run in cases.items():
                started = time.perf_counter()
                got = run()
                elapsed = time.perf_counter() - started
                assert len(got) == COUNT and all(len(d) == SIZE for _, d in got)
                rates[name].append(COUNT / elapsed)
        medians = {name: statistics.median(r) for name, r in rates.items()}
        ratio = medians["3-endpoint store"] / medians["single endpoint"]
        spread = [s["total_requests"] for s in store.get_endpoint_stats()]
        for name, value in medians.items():
            print(f"{name:18s} {value:10.0f} objects/s (median of {args.rounds})")
        print(
            f"ratio 3-endpoint / single: {ratio:.2f}x (target >= 0.9x); requests per endpoint {spread}"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"medians": medians, "rounds": rates, "ratio": ratio, "spread": spread})
            )
    finally:
        for server in servers:
            server.stop()
        for p in paths:
            p.unlink()


if __name__ == "__main__":
    main()
