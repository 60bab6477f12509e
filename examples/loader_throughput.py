"""Loader throughput on ``file://``: samples per second for small and large objects.

Writes the objects under a temp directory (warm page cache), then times whole passes in which
the consumer reads every byte it receives (a loader that defers the copy gets no credit):

* the async loader (``for item in loader``), fixed concurrency and ``auto_tune``;
* ``S3IterableDataset`` through ``torch.utils.data.DataLoader(num_workers=2)``.

Run with the original s3dlio wheel's interpreter (``benchmarks/.venv-peers/bin/python``, from
a directory other than the repository) and it times the original's ``create_async_loader`` on
the same files instead, for a side-by-side figure. Prints the best of three passes.

    .venv/bin/python examples/loader_throughput.py [--small N] [--large N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable

import numpy as np

import s3dlio

OURS = hasattr(s3dlio, "LoaderOptions")


def write(directory: str, count: int, size: int) -> str:
    os.makedirs(directory)
    data = os.urandom(size)
    for i in range(count):
        with open(os.path.join(directory, f"obj-{i:06d}.bin"), "wb") as handle:
            handle.write(data)
    return f"file://{directory}/"


def touch(buf: object) -> int:
    """Read every byte (as 64-bit words) and return the size."""
    view = memoryview(buf).cast("B")  # type: ignore[arg-type]
    np.frombuffer(view, dtype=np.uint64).sum()
    return len(view)


def best_of(passes: int, run: Callable[[], tuple[int, int]]) -> tuple[float, float]:
    best = (0.0, 0.0)
    for _ in range(passes):
        started = time.perf_counter()
        items, nbytes = run()
        elapsed = time.perf_counter() - started
        if items / elapsed > best[0]:
            best = (items / elapsed, nbytes / elapsed)
    return best


def ours_loader(uri: str, **options: object) -> Callable[[], tuple[int, int]]:
    loader = s3dlio.create_async_loader(uri, s3dlio.LoaderOptions(**options))  # type: ignore[arg-type]

    def run() -> tuple[int, int]:
        items = nbytes = 0
        for view in loader:
            items += 1
            nbytes += touch(view)
        return items, nbytes

    return run


def ours_dataloader(uri: str) -> Callable[[], tuple[int, int]]:
    from torch.utils.data import DataLoader

    from s3dlio.torch import S3IterableDataset

    ds = S3IterableDataset.from_prefix(uri, prefetch=32, batch_size=64)
    loader = DataLoader(ds, batch_size=64, num_workers=2)  # equal sizes: one stacked tensor

    def run() -> tuple[int, int]:
        items = nbytes = 0
        for batch in loader:
            items += len(batch)
            nbytes += touch(batch.numpy().reshape(-1))
        return items, nbytes

    return run


def original_loader(uri: str, prefetch: int) -> Callable[[], tuple[int, int]]:
    async def consume() -> tuple[int, int]:
        loader = s3dlio.create_async_loader(uri, {"prefetch": prefetch, "batch_size": 1})
        items = nbytes = 0
        async for batch in loader:
            for view in batch:
                items += 1
                nbytes += touch(view)
        return items, nbytes

    return lambda: asyncio.run(consume())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10000, help="4 KiB objects")
    parser.add_argument("--large", type=int, default=200, help="4 MiB objects")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="s3dlio-loader-bench-")
    try:
        cases = [("4 KiB", write(f"{base}/small", args.small, 4096))]
        cases.append(("4 MiB", write(f"{base}/large", args.large, 4 << 20)))
        for label, uri in cases:
            if OURS:
                runs = {
                    "loader prefetch=64 num_workers=8": ours_loader(
                        uri, prefetch=64, num_workers=8
                    ),
                    "loader prefetch=64 auto_tune": ours_loader(uri, prefetch=64, auto_tune=True),
                    "S3IterableDataset + DataLoader(num_workers=2)": ours_dataloader(uri),
                }
            else:
                runs = {"original create_async_loader prefetch=64": original_loader(uri, 64)}
            for name, run in runs.items():
                per_s, bytes_s = best_of(3, run)
                print(
                    f"{label:>6}  {name:<48} {per_s:>10,.0f} samples/s  {bytes_s / 1e6:>8,.0f} MB/s"
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
