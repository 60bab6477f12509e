"""DataLoader samples/s over S3 small objects (nginx on loopback), ``num_workers`` 0 and 2.

Ours (``s3dlio.torch``) against s3torchconnector's datasets and the original s3dlio's
(``s3dlio.torch``), iterable and map-style; one epoch per round, batch size 32, every sample a
uint8 tensor of one 64 KiB object, default collate. nginx answers the ListObjectsV2 request
the datasets make with a static listing of the bucket.
"""

from __future__ import annotations

from collections.abc import Iterator

from .data import KiB, write_files
from .harness import Case, Context, ours, peer
from .servers import Nginx, nginx_binary, s3_env

FILE = "loader.py"
OURS = ("s3dlio.torch", "s3dlio.io.backends.s3")


def suite(ctx: Context) -> Iterator[Case]:
    """num_workers=0, then num_workers=2."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed: run benchmarks/setup.sh")
    count, size = ctx.scale(1024, 256), 64 * KiB
    write_files(ctx.workdir / "www" / "loader", count, size)
    nginx = ctx.stack.enter_context(Nginx(ctx.workdir / "www"))
    nginx.write_listing("loader")
    env = s3_env(nginx.endpoint)
    for workers in (0, 2):
        common = {
            "endpoint": nginx.endpoint,
            "uri": "s3://loader/",
            "num_workers": workers,
            "batch_size": 32,
            "prefetch": 64,
            "env": env,
        }
        rows = []
        for kind in ("iterable",) if ctx.quick else ("iterable", "map"):
            rows += [
                ours(
                    f"ours {kind}",
                    FILE,
                    "s3dlio_dataset",
                    needs=OURS,
                    kind=kind,
                    group=kind,
                    **common,
                ),
                peer(
                    f"s3torchconnector {kind}",
                    FILE,
                    "s3torchconnector_dataset",
                    needs=("s3torchconnector",),
                    kind=kind,
                    group=kind,
                    **common,
                ),
                peer(
                    f"original {kind}",
                    FILE,
                    "s3dlio_dataset",
                    needs=("s3dlio",),
                    kind=kind,
                    group=kind,
                    context="spawn",
                    **common,
                ),
            ]
        yield Case(
            f"DataLoader over {count} x 64 KiB S3 objects, num_workers={workers}",
            "samples/s",
            rows,
            bytes=count * size,
            objects=count,
            note="Map-style datasets fetch one object per __getitem__ (no prefetch inside a "
            "worker); iterable ones prefetch (ours and the original: prefetch=64). Workers are "
            "persistent; the original's use spawn (forked workers hang in its runtime).",
            round_timeout=120,
        )
