"""A tour of the storage API on any backend: objects, ranges, listings, globs, writers, copies.

python examples/storage_api.py                 # a temp directory on file://
python examples/storage_api.py s3://bucket/x/  # any URI prefix (credentials from env)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import numpy as np

import s3dlio


def tour(root: str) -> None:
    """Exercise the object API below ``root`` (a prefix ending in ``/``)."""
    # objects: any buffer in, a zero-copy BytesView out
    s3dlio.put_bytes(root + "arrays/a.f32", np.arange(1024, dtype=np.float32))
    data = s3dlio.get(root + "arrays/a.f32")
    arr = np.frombuffer(data, dtype=np.float32)
    assert arr[1023] == 1023
    assert s3dlio.get_range(root + "arrays/a.f32", 4, 8) == np.array([1, 2], np.float32).tobytes()
    assert s3dlio.get_range(root + "arrays/a.f32", 1 << 20) == b""  # past the end: empty
    print("stat:", {k: s3dlio.stat(root + "arrays/a.f32")[k] for k in ("size", "last_modified")})

    # many objects at once, results in input order
    s3dlio.put_many([(f"{root}shards/{i:03d}.bin", os.urandom(1000 + i)) for i in range(20)])
    fetched = s3dlio.get_many([f"{root}shards/{i:03d}.bin" for i in range(20)], max_in_flight=8)
    assert [len(d) for _, d in fetched] == [1000 + i for i in range(20)]

    # listings: directories, exact names, globs, regexes
    print("list:", s3dlio.list(root))
    print("glob:", len(s3dlio.list(root + "shards/01*.bin")), "objects match shards/01*.bin")
    print("regex:", s3dlio.list(root, recursive=True, pattern=r"a\.f32$"))

    # a streaming writer: bounded memory, zstd, crc32c; nothing visible until finalize
    opts = s3dlio.WriterOptions(part_size="5MiB").with_compression("zstd", 3)
    with s3dlio.open_writer(root + "big/blob.bin", opts) as writer:
        for _ in range(12):
            writer.write(s3dlio.generate_data("1MiB", compress=4))
    written, stored = writer.finalize()
    print(f"writer: {written} bytes in, {stored} stored as {writer.uri}, {writer.checksum()}")

    # copy between backends (here within one), download, delete
    s3dlio.copy(root + "arrays/a.f32", root + "copies/")
    target = tempfile.mkdtemp(prefix="s3dlio-dl-")
    try:
        paths = s3dlio.download(root + "shards/", target)
        print(f"download: {len(paths)} files into {target}")
    finally:
        shutil.rmtree(target)
    print("deleted:", s3dlio.delete(root, recursive=True), "objects")


def main() -> None:
    """Run on ``sys.argv[1]`` or on a temp directory."""
    if len(sys.argv) > 1:
        tour(sys.argv[1].rstrip("/") + "/")
        return
    base = tempfile.mkdtemp(prefix="s3dlio-tour-")
    try:
        tour(f"file://{base}/")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
