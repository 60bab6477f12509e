"""torch.distributed.checkpoint: ``dcp.save`` / ``dcp.load`` of a ~1 GiB ``state_dict``.

Against S3 (moto under gunicorn, one worker, 8 threads, on loopback): ours
(``s3dlio.torch.dcp``) and s3torchconnector's ``S3StorageWriter`` / ``S3StorageReader``, both
at one and two shard objects per rank (``thread_count``; s3torchconnector's default is 1,
ours 2). On local disk: ours on ``file://`` and DCP's ``FileSystemWriter`` /
``FileSystemReader``. One process, no process group. Loads read into preallocated tensors.

Each contender holds a gigabyte or two, and moto keeps every object in its process (spooled
to temporary files), so the cases run isolated: one contender process at a time, a fresh one
per round (set-up untimed), every saved checkpoint deleted after its round, and each row's
peak RSS during its rounds recorded. The save case has two bare upload loops into the same
moto as limits (single PUTs, and one multipart upload of 8 MiB parts as s3torchconnector
sends them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .data import MiB
from .harness import Case, Contender, Context, Target, ours, peer
from .servers import MotoGunicorn, s3_env

FILE = "dcp.py"
BUCKET = "bench-dcp"


def _moto_memory(moto: MotoGunicorn) -> str:
    """Resident and peak memory of moto's gunicorn processes (master and worker), for notes."""
    pids = [moto._proc.pid]
    try:
        with open(f"/proc/{moto._proc.pid}/task/{moto._proc.pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        return "moto memory: unknown"
    rss = hwm = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            rss += int(fields["VmRSS"].split()[0]) * 1024
            hwm += int(fields["VmHWM"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            continue
    return f"moto's processes: {rss / 2**20:,.0f} MiB resident, {hwm / 2**20:,.0f} MiB at peak"


def _s3_cleaner(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    from .servers import DUMMY_CREDENTIALS

    creds = DUMMY_CREDENTIALS
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=creds["AWS_REGION"],
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}),
    )

    def delete_prefix(prefix: str) -> None:
        """Delete every object and pending multipart upload under ``prefix``."""
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
        uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        for u in uploads.get("Uploads", []):
            client.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])

    return delete_prefix


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
    delete_prefix = _s3_cleaner(moto.endpoint)
    needs_ours = ("s3dlio.torch.dcp", "torch")
    needs_s3tc = ("s3torchconnector.dcp", "torch")

    def after_save(contender: Contender) -> None:
        uri = str(contender.params.get("uri", ""))
        if uri.startswith(f"s3://{BUCKET}/"):
            delete_prefix(uri[len(f"s3://{BUCKET}/") :] + "/")
        elif uri:
            path = Path(uri.removeprefix("file://"))
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)

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
        if op == "save":
            for name, function, extra in (
                (f"bare loop: {tensors} PUTs of 16 MiB, 8 at once", "raw_put", {}),
                (
                    "bare loop: 1 multipart upload, 8 MiB parts, 8 at once",
                    "raw_multipart",
                    {"part_bytes": 8 * MiB},
                ),
            ):
                rows.append(
                    Contender(
                        name,
                        "limit",
                        "ours",
                        FILE,
                        function,
                        {"uri": f"s3://{BUCKET}/{function}", "in_flight": 8, **extra, **shape},
                        env=env,
                        group="s3",
                    )
                )
        local = ctx.workdir / f"ours-{op}"
        fs_dir = ctx.workdir / f"fs-{op}"
        os.makedirs(fs_dir, exist_ok=True)
        rows.append(
            ours(
                "ours file://",
                FILE,
                f"ours_{op}",
                needs=needs_ours,
                group="local",
                uri=f"file://{local}",
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
                uri=str(fs_dir),
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
            "page cache, no fsync. Ours verifies CRC32C on load; the others check nothing. "
            "Each round ran in a fresh process, alone; peak RSS is that process's high-water "
            "mark during the round (RSS at start: the state_dict, or the load's destination).",
            round_timeout=300.0,
            isolated=True,
            after_round=after_save if op == "save" else None,
            epilogue=lambda: f"After the case, {_moto_memory(moto)}.",
        )
        for row in rows:  # the load checkpoints were kept for the case's rounds
            uri = str(row.params.get("uri", ""))
            if uri.startswith(f"s3://{BUCKET}/"):
                delete_prefix(uri[len(f"s3://{BUCKET}/") :] + "/")
