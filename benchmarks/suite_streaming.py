"""Streaming shard datasets from S3 (nginx on loopback): records/s and requests per epoch.

The same samples (an image-like ``jpg`` of ``SAMPLE`` bytes and an integer ``cls``) in each
library's own format: WebDataset tar shards (ours and ``webdataset``), litdata chunks, MDS
shards (``mosaicml-streaming``), all of about ``SHARD`` bytes; ours also reads TFRecord shards
of the same payloads. One round is one epoch in one process (no DataLoader workers), with the
peers' local shard caches fresh each round (ours has no cache on). The map-style
``TFRecordDataset`` (one range GET per record) is the request-count reference.

mosaicml-streaming runs in a venv of its own, ``benchmarks/.venv-mosaic`` (``setup.sh``): its
package imports torchvision, whose PyPI wheels load only against PyPI's torch of the same
release, not against the peers' torch 2.13.0+cpu ("operator torchvision::nms does not exist");
that venv has mosaicml-streaming 0.13.0 with torch 2.14.1 and torchvision 0.29.1. It writes its
own MDS shards with its ``MDSWriter`` and reads them through its own S3 downloader (boto3).
litdata is read through its boto3 path (see the contender).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .harness import Case, Context, Target, ours, peer
from .servers import Nginx, nginx_binary, s3_env

FILE = "stream_datasets.py"  # not "streaming.py": that would shadow mosaic's package
NEEDS = ("s3dlio.datasets.streaming", "s3dlio.io.backends.s3")
SAMPLE = 4000
SHARD = 32 << 20
BUCKET = "stream"


def _write(ctx: Context, count: int) -> tuple[list[str], list[str]]:
    """WebDataset tar shards and TFRecord shards (+ indexes) of the same samples."""
    from s3dlio.formats.shards import ShardWriter
    from s3dlio.formats.tfrecord import create_tfrecord_index

    top = ctx.workdir / "srv" / BUCKET
    top.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, SAMPLE + 4096, dtype=np.uint8).tobytes()
    root = f"file://{top}/"
    with (
        ShardWriter(root + "wds/train-%05d.tar", max_size=SHARD) as tars,
        ShardWriter(root + "tfr/train-%05d.tfrecord", format="tfrecord", max_size=SHARD) as tfr,
    ):
        for i in range(count):
            jpg = base[i % 4096 : i % 4096 + SAMPLE]
            tars.write({"__key__": f"s{i:08d}", "jpg": jpg, "cls": i % 1000})
            tfr.write(jpg)
    for uri in tfr.shards:
        create_tfrecord_index(uri)
    key = len(root)
    return [u[key:] for u in tars.shards], [u[key:] for u in tfr.shards]


def suite(ctx: Context) -> Iterator[Case]:
    """One epoch of ``count`` samples per round, from nginx."""
    if nginx_binary() is None:
        return
    count = ctx.scale(60_000, 12_000)
    tars, tfrecords = _write(ctx, count)
    keys = ctx.workdir / "tars.keys"
    keys.write_text("".join(k + "\n" for k in tars))
    server = ctx.stack.enter_context(Nginx(ctx.workdir / "srv"))
    env = s3_env(server.endpoint)
    common = {
        "endpoint": server.endpoint,
        "bucket": BUCKET,
        "root": str(ctx.workdir / "srv"),
        "tars": str(keys),
        "tfrecords": tfrecords,
        "count": count,
        "shard_bytes": SHARD,
    }
    yield Case(
        f"{count:,} samples of {SAMPLE:,} B in ~{SHARD >> 20} MiB shards, one epoch from S3",
        "samples/s",
        [
            ours(
                "ours StreamingDataset (tar)",
                FILE,
                "ours_streaming",
                needs=NEEDS,
                env=env,
                **common,
            ),
            ours(
                "ours StreamingDataset (TFRecord)",
                FILE,
                "ours_streaming",
                needs=NEEDS,
                env=env,
                format="tfrecord",
                **common,
            ),
            peer(
                "webdataset (curl)",
                FILE,
                "webdataset_http",
                needs=("webdataset",),
                env=env,
                **common,
            ),
            peer(
                "litdata",
                FILE,
                "litdata_stream",
                needs=("litdata",),
                env=env,
                **common,
            ),
            peer(
                "mosaicml-streaming",
                FILE,
                "mosaic_stream",
                needs=("streaming",),
                env=env,
                venv="mosaic",
                **common,
            ),
        ],
        bytes=count * SAMPLE,
        objects=count,
        targets=[
            Target("ours StreamingDataset (tar)", "webdataset (curl)", 1.5),
            Target("ours StreamingDataset (tar)", "litdata", 1.5),
            Target("ours StreamingDataset (tar)", "mosaicml-streaming", 1.5),
            Target("ours StreamingDataset (TFRecord)", "webdataset (curl)", 1.5),
            Target("ours StreamingDataset (TFRecord)", "litdata", 1.5),
            Target("ours StreamingDataset (TFRecord)", "mosaicml-streaming", 1.5),
        ],
        note="Requests per epoch of each row are in the JSON (`requests` of each round); "
        "webdataset's count is one curl GET per shard.",
        round_timeout=600,
    )
    yield Case(
        "map-style reference: one TFRecord shard of those samples, one range GET per record",
        "samples/s",
        [
            ours(
                "ours map-style TFRecordDataset",
                FILE,
                "ours_map_style",
                needs=NEEDS,
                env=env,
                **{**common, "tfrecords": tfrecords[:1], "count": 0},
            ),
        ],
        note="Only for the request count per record: a map-style epoch makes one request per "
        "record.",
    )
