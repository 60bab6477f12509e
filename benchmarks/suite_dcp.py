"""torch.distributed.checkpoint: ``dcp.save`` / ``dcp.load`` of a ~1 GiB ``state_dict``.

Against S3 (moto under gunicorn, one worker, 8 threads, on loopback): ours
(``s3dlio.torch.dcp``) and s3torchconnector's ``S3StorageWriter`` / ``S3StorageReader``, both
at one and two shard objects per rank (``thread_count``; s3torchconnector's default is 1,
ours 2). On local disk: ours on ``file://`` and DCP's ``FileSystemWriter`` /
``FileSystemReader``. One process, no process group. Loads read into preallocated tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

from .data import MiB
from .harness import Case, Context, Target, ours, peer
from .servers import MotoGunicorn, s3_env

FILE = "dcp.py"
BUCKET = "bench-dcp"


def suite(ctx: Context) -> Iterator[Case]:
    """Save, then load, on S3 (moto) and on local disk."""
    tensors = ctx.scale(64, 8)
    tensor_bytes = 16 * MiB
    total = tensors * tensor_bytes
    shape = {"tensors": tensors, "tensor_bytes": tensor_bytes}
    label = f"{tensors} x {tensor_bytes // MiB} MiB float32 ({total / 2**30:.2f} GiB)"
    moto = ctx.stack.enter_context(MotoGunicorn(threads=8))
    moto.create_bucket(BUCKET)
    env = s3_env(moto.endpoint)
    needs_ours = ("s3dlio.torch.dcp", "torch")
    needs_s3tc = ("s3torchconnector.dcp", "torch")

    for op in ("save", "load"):
        rows = []
        for threads in (1, 2):
            rows.append(
                ours(
                    f"ours s3:// {threads}t",
                    FILE,
                    f"ours_{op}",
                    needs=needs_ours,
                    env=env,
                    group="s3",
                    uri=f"s3://{BUCKET}/ours-{op}-{threads}",
                    thread_count=threads,
                    **shape,
                )
            )
            rows.append(
                peer(
                    f"s3torchconnector {threads}t",
                    FILE,
                    f"s3tc_{op}",
                    needs=needs_s3tc,
                    env=env,
                    group="s3",
                    uri=f"s3://{BUCKET}/s3tc-{op}-{threads}",
                    endpoint=moto.endpoint,
                    thread_count=threads,
                    **shape,
                )
            )
        rows.append(
            ours(
                "ours file://",
                FILE,
                f"ours_{op}",
                needs=needs_ours,
                group="local",
                uri=f"file://{ctx.workdir / f'ours-{op}'}",
                **shape,
            )
        )
        rows.append(
            peer(
                "DCP FileSystemWriter" if op == "save" else "DCP FileSystemReader",
                FILE,
                f"fs_{op}",
                needs=("torch",),
                venv="ours",
                group="local",
                uri=str(ctx.workdir / f"fs-{op}"),
                **shape,
            )
        )
        fs_name = rows[-1].name
        yield Case(
            f"dcp.{op} of a state_dict of {label}",
            "GB/s",
            rows,
            bytes=total,
            objects=tensors,
            targets=[
                Target("ours s3:// 1t", "s3torchconnector 1t", 1.0),
                Target("ours s3:// 2t", "s3torchconnector 2t", 1.0),
                Target("ours file://", fs_name, 1.0),
            ],
            note="s3:// rows: moto (one Python process) bounds every client; file:// rows: "
            "page cache, no fsync. Ours verifies CRC32C on load; the others check nothing.",
            round_timeout=300.0,
        )
