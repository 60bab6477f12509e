"""Local reads: ``file://`` (warm page cache) and ``direct://`` (O_DIRECT, from disk).

Figures: GB/s reading 64 x 32 MiB and 16k x 128 KiB files, against ``cat`` (the machine's
warm-cache read rate), plain Python ``readinto`` a preallocated buffer, and the original
s3dlio's ``get_many`` and loader. Each round reads every file once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from .data import KiB, MiB, write_files
from .harness import Case, Context, Target, limit, ours, peer, tool

FILE = "local.py"
#: The bare loop returning get_many's result objects (a kept buffer per file).
BARE = "bare loop, a new buffer per file"


def suite(ctx: Context) -> Iterator[Case]:
    """Large files (file:// and direct://), then small files."""
    big = ctx.workdir / "large"
    count = ctx.scale(64, 8)
    paths = write_files(big, count, 32 * MiB)
    size = count * 32 * MiB
    d = str(big)
    yield Case(
        f"file:// {count} x 32 MiB, warm page cache",
        "GB/s",
        [
            ours("ours get_many", FILE, "s3dlio_get_many", dir=d, scheme="file"),
            ours("ours get_into (reused buffer)", FILE, "ours_get_into", dir=d, scheme="file"),
            tool("cat", ["cat", *map(str, paths)]),
            limit(BARE, FILE, "bare_read_each", dir=d),
            peer("python readinto", FILE, "python_readinto", dir=d),
            peer(
                "original get_many",
                FILE,
                "s3dlio_get_many",
                dir=d,
                scheme="file",
                needs=("s3dlio",),
            ),
        ],
        bytes=size,
        objects=count,
        targets=[
            Target("ours get_many", "cat", 0.7),
            Target("ours get_into (reused buffer)", "cat", 0.7),
        ],
        note="`cat FILES > /dev/null` reads into one reused, page-aligned 128 KiB buffer that "
        "stays in cache; get_many returns a buffer per object, 2 GiB written to memory (glibc "
        "keeps the freed batch for the next: S3DLIO_MALLOC_KEEP_MB). The bare loop is the "
        "fastest Python loop returning the same objects (docs/performance.md, `file://` "
        "batches).",
    )
    # direct:// reads come from the disk: half the files (hard links) keep the run short.
    direct = ctx.workdir / "direct"
    direct.mkdir()
    for p in paths[: max(1, count // 2)]:
        os.link(p, direct / p.name)
    dcount = max(1, count // 2)
    d = str(direct)
    yield Case(
        f"direct:// {dcount} x 32 MiB (O_DIRECT, from disk)",
        "GB/s",
        [
            ours("ours get_many", FILE, "s3dlio_get_many", dir=d, scheme="direct"),
            ours("ours get_into (reused buffer)", FILE, "ours_get_into", dir=d, scheme="direct"),
            peer("python O_DIRECT preadv", FILE, "python_readinto", dir=d, direct=True),
            peer(
                "original get_many",
                FILE,
                "s3dlio_get_many",
                dir=d,
                scheme="direct",
                needs=("s3dlio",),
            ),
        ],
        bytes=dcount * 32 * MiB,
        objects=dcount,
        targets=[Target("ours get_many", "original get_many", 0.8)],
        note="The data is on the VM's virtio disk; the host may cache it, so this is the "
        "block device's rate as the VM sees it.",
    )
    shutil.rmtree(big)
    shutil.rmtree(direct)

    small = ctx.workdir / "small"
    count = ctx.scale(16384, 1024)
    paths = write_files(small, count, 128 * KiB)
    d = str(small)
    yield Case(
        f"file:// {count} x 128 KiB, warm page cache",
        "GB/s",
        [
            ours("ours get_many", FILE, "s3dlio_get_many", dir=d, scheme="file"),
            ours(
                "ours loader",
                FILE,
                "s3dlio_loader",
                dir=d,
                scheme="file",
                needs=("s3dlio:create_async_loader",),
            ),
            tool("cat", ["cat", *map(str, paths)]),
            limit(BARE, FILE, "bare_read_each", dir=d),
            peer("python readinto", FILE, "python_readinto", dir=d),
            *(
                [
                    peer(
                        "original get_many",
                        FILE,
                        "s3dlio_get_many",
                        dir=d,
                        scheme="file",
                        needs=("s3dlio",),
                    )
                ]
                if ctx.quick
                else []
            ),
            peer("original loader", FILE, "s3dlio_loader", dir=d, scheme="file", needs=("s3dlio",)),
        ],
        bytes=count * 128 * KiB,
        objects=count,
        targets=[
            Target("ours get_many", "original loader", 1.0),
            Target("ours loader", "original loader", 1.0),
        ],
        note="Loaders: create_async_loader(dir, {batch_size: 32, prefetch: 64}), every item "
        "consumed. One file per object: open + fstat + read + close each. The original's "
        "get_many runs only under --quick: its cost per object grows with the batch (1,024 "
        "files: ~1.3 GB/s; 16,384 files: ~0.1 GB/s, ~20 s a round).",
    )
