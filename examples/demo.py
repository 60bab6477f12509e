"""The s3dlio demo: generate a small dataset, list it, read it back, report throughput.

Runs on embedded defaults with no server: ``file://`` and ``direct://`` under a temp directory
(``S3DLIO_DEMO_URI`` picks another root).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import s3dlio


def run(root: str, num: int = 64, size: int = 1 << 20) -> None:
    """Write ``num`` objects of ``size`` bytes under ``root``, list them and read them back."""
    started = time.perf_counter()
    items = [(f"{root}obj_{i:04d}.bin", s3dlio.generate_data(size, seed=i)) for i in range(num)]
    s3dlio.put_many(items, max_in_flight=16)
    put_s = time.perf_counter() - started
    listed = s3dlio.list(root, recursive=True)
    assert len(listed) == num, listed
    started = time.perf_counter()
    got = s3dlio.get_many(listed, max_in_flight=16)
    get_s = time.perf_counter() - started
    total = sum(len(data) for _, data in got)
    assert all(bytes(data) == bytes(src) for (_, data), (_, src) in zip(got, items, strict=True))
    print(
        f"{root:<40} {num} x {size >> 10} KiB   put {total / put_s / 1e6:8.1f} MB/s"
        f"   get {total / get_s / 1e6:8.1f} MB/s"
    )


def main() -> None:
    """Run the demo on each local backend (or on ``S3DLIO_DEMO_URI``)."""
    custom = os.environ.get("S3DLIO_DEMO_URI")
    if custom:
        run(custom.rstrip("/") + "/demo/")
        return
    base = tempfile.mkdtemp(prefix="s3dlio-demo-", dir="/tmp")
    try:
        run(f"file://{base}/file/")
        run(f"direct://{base}/direct/")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
