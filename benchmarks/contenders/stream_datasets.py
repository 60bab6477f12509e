"""Streaming datasets over S3 (nginx): ours, webdataset, litdata and mosaicml-streaming, each
reading the same samples in its own format, one epoch per round, in one process.

Params: ``endpoint``, ``bucket``, ``root`` (the directory nginx serves), ``tars`` (file listing
the WebDataset tar shards' keys), ``count`` (samples). Each factory prepares its own format from
the tar shards (untimed, once: litdata's chunks and mosaic's MDS shards are written beside
them), and every round reads every sample once from the endpoint, with a fresh local directory
for the peers that cache whole shards locally (as they must: both always do). A round reports
``requests``: HTTP requests it made (counted at urllib3, where boto3 sends them; ours counts
its own; webdataset's curl makes one per shard; litdata's obstore one per chunk).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from typing import Any

from _common import check, result


def _keys(params: dict) -> list[str]:
    with open(params["tars"]) as f:
        return [line.strip() for line in f if line.strip()]


def _samples(params: dict) -> list[tuple[str, bytes, int]]:
    """``(key, jpg, cls)`` of every sample, read from the local tar shards."""
    out = []
    for key in _keys(params):
        with tarfile.open(os.path.join(params["root"], params["bucket"], key)) as tar:
            files: dict[str, dict[str, bytes]] = {}
            for member in tar:
                stem, ext = member.name.split(".", 1)
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                files.setdefault(stem, {})[ext] = data
            out.extend((k, v["jpg"], int(v["cls"])) for k, v in files.items())
    return out


class _Requests:
    """Counts the HTTP requests urllib3 sends in this process (boto3's transport)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        from urllib3 import connectionpool

        original = connectionpool.HTTPConnectionPool.urlopen
        if getattr(original, "_counted", False):
            return

        def urlopen(self: Any, *args: Any, **kwargs: Any) -> Any:
            cls.count += 1
            return original(self, *args, **kwargs)

        urlopen._counted = True  # type: ignore[attr-defined]
        connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def ours_streaming(params: dict) -> object:
    """``StreamingDataset([tar shards], format="webdataset")`` (or TFRecord shards), cache off."""
    from s3dlio.datasets.streaming import StreamingDataset

    fmt = params.get("format", "webdataset")
    keys = _keys(params) if fmt == "webdataset" else params["tfrecords"]
    uris = [f"s3://{params['bucket']}/{k}" for k in keys]
    dataset = StreamingDataset(uris, format=fmt, part_size=params.get("part_size", "8MiB"))

    def run() -> dict:
        before = dataset.stats.requests
        size = count = 0
        for sample in dataset:
            size += len(sample["jpg"]) if fmt == "webdataset" else len(sample)
            count += 1
        check(count, params["count"], "samples")
        return result(size, count, requests=dataset.stats.requests - before)

    return run


def ours_map_style(params: dict) -> object:
    """The map-style ``TFRecordDataset`` read in order: one range GET per record."""
    from s3dlio.datasets.records import TFRecordDataset

    uris = [f"s3://{params['bucket']}/{k}" for k in params["tfrecords"]]
    dataset = TFRecordDataset(uris)

    def run() -> dict:
        size = count = 0
        for i in range(len(dataset)):
            size += len(dataset[i])
            count += 1
        check(count, params["count"], "samples")
        return result(size, count, requests=count)

    return run


def webdataset_http(params: dict) -> object:
    """``webdataset.WebDataset`` over the shards' http URLs (streamed by curl, its default)."""
    import webdataset as wds

    urls = [f"{params['endpoint']}/{params['bucket']}/{k}" for k in _keys(params)]

    def run() -> dict:
        size = count = 0
        for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
            size += len(sample["jpg"])
            count += 1
        check(count, params["count"], "samples")
        return result(size, count, requests=len(urls))

    return run


def litdata_stream(params: dict) -> object:
    """``litdata.StreamingDataset("s3://...")`` over litdata chunks (written once here)."""
    import litdata as ld
    import litdata.streaming.downloader as downloader
    from litdata.streaming.writer import BinaryWriter

    # litdata takes its obstore path whenever obstore is installed (it is, for the S3 suite),
    # and builds that store without allow_http, so it cannot reach a plain-http endpoint: use
    # the path it takes without obstore (boto3), as a user without obstore would.
    downloader._OBSTORE_AVAILABLE = False  # type: ignore[attr-defined]

    out = os.path.join(params["root"], params["bucket"], "litdata")
    if not os.path.exists(os.path.join(out, "index.json")):
        os.makedirs(out, exist_ok=True)
        writer = BinaryWriter(out, chunk_bytes=params["shard_bytes"])
        for i, (key, jpg, cls) in enumerate(_samples(params)):
            writer.add_item(i, {"key": key, "jpg": jpg, "cls": cls})
        writer.done()
        writer.merge()
    _Requests.install()
    remote = f"s3://{params['bucket']}/litdata"

    def run() -> dict:
        cache = tempfile.mkdtemp(prefix="bench-litdata-")
        before = _Requests.count
        try:
            ds = ld.StreamingDataset(remote, cache_dir=cache, max_cache_size="100GB")
            size = count = 0
            for sample in ds:
                size += len(sample["jpg"])
                count += 1
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        check(count, params["count"], "samples")
        chunks = len([f for f in os.listdir(out) if f.endswith(".bin")])
        return result(size, count, requests=_Requests.count - before + chunks)

    return run


def mosaic_stream(params: dict) -> object:
    """``streaming.StreamingDataset(remote="s3://...")`` over MDS shards (written once here by
    its ``MDSWriter``), run in ``benchmarks/.venv-mosaic``."""
    from streaming import MDSWriter, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    out = os.path.join(params["root"], params["bucket"], "mds")
    if not os.path.exists(os.path.join(out, "index.json")):
        columns = {"key": "str", "jpg": "bytes", "cls": "int"}
        with MDSWriter(out=out, columns=columns, size_limit=params["shard_bytes"]) as writer:
            for key, jpg, cls in _samples(params):
                writer.write({"key": key, "jpg": jpg, "cls": cls})
    os.environ["S3_ENDPOINT_URL"] = params["endpoint"]
    _Requests.install()
    remote = f"s3://{params['bucket']}/mds"

    def run() -> dict:
        clean_stale_shared_memory()
        local = tempfile.mkdtemp(prefix="bench-mds-")
        before = _Requests.count
        try:
            # batch_size=1 would leave predownload at its default of 8 samples, and its ready
            # thread then sleeps 7 ms per 8 samples (~900 samples/s): give it a training batch
            # and let it fetch ahead as far as it likes (its fastest setting here).
            ds = StreamingDataset(
                remote=remote,
                local=local,
                shuffle=False,
                batch_size=256,
                predownload=params["count"],
            )
            size = count = 0
            for sample in ds:
                size += len(sample["jpg"])
                count += 1
            del ds
        finally:
            shutil.rmtree(local, ignore_errors=True)
        check(count, params["count"], "samples")
        return result(size, count, requests=_Requests.count - before)

    return run
