"""``torch.distributed.checkpoint`` save/load of a ``state_dict`` (one process, no process
group): ours (``s3dlio.torch.dcp.StorageWriter`` / ``StorageReader``), s3torchconnector's
``S3StorageWriter`` / ``S3StorageReader``, and DCP's ``FileSystemWriter`` / ``FileSystemReader``.

Params: ``uri`` (the checkpoint: ``s3://bucket/prefix`` or a local directory), ``tensors`` and
``tensor_bytes``; ``endpoint`` for s3torchconnector; ``thread_count`` for the writers.
A save round writes the checkpoint to ``uri`` (the suite deletes it after each round, so the
store never holds more than one); a load round reads the checkpoint at ``uri`` into
preallocated tensors and checks a few values. The first load contender process writes that
checkpoint at set-up; later processes of the same row (the suite runs each round in a fresh
process) find it there. A load process keeps only the values it checks, not the whole source
``state_dict``, so its memory is the destination ``state_dict`` plus what the reader needs.

``raw_put`` and ``raw_multipart`` are bare upload loops (the machine's and the server's
ceiling for the same bytes): single PUTs of ``tensor_bytes`` each, or one multipart upload of
``part_bytes`` parts, ``in_flight`` requests at once, through s3dlio's own data path.
"""

from __future__ import annotations

import gc
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor

from _common import result

REGION = "us-east-1"


def _state_dict(params: dict) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    n = params["tensor_bytes"] // 4
    return {f"layer{i}.weight": torch.rand(n, generator=gen) for i in range(params["tensors"])}


def _size(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def _quiet() -> None:
    # "torch.distributed is disabled ... assuming the intent is to save in a single process"
    warnings.filterwarnings("ignore", "torch.distributed is disabled")
    warnings.filterwarnings("ignore", "Detected an existing checkpoint")


def _samples(state: dict) -> dict:
    """The values a load round checks: the first 1,024 of every fourth tensor."""
    return {k: state[k][:1024].clone() for k in list(state)[:: max(1, len(state) // 4)]}


def _checked(loaded: dict, samples: dict) -> dict:
    import torch

    for k, want in samples.items():
        if not torch.equal(loaded[k][:1024], want):
            raise RuntimeError(f"{k} differs after load")
    return result(_size(loaded), len(loaded))


def _save(state: dict, make_writer) -> object:  # type: ignore[no-untyped-def]
    import torch.distributed.checkpoint as dcp

    _quiet()

    def run() -> dict:
        dcp.save(state, storage_writer=make_writer(), no_dist=True)
        return result(_size(state), len(state))

    return run


def _sampled(params: dict) -> dict:
    """:func:`_samples` of :func:`_state_dict`, one tensor alive at a time."""
    import torch

    gen = torch.Generator().manual_seed(0)
    n = params["tensor_bytes"] // 4
    every = max(1, params["tensors"] // 4)
    samples = {}
    for i in range(params["tensors"]):
        tensor = torch.rand(n, generator=gen)
        if i % every == 0:
            samples[f"layer{i}.weight"] = tensor[:1024].clone()
        del tensor
    return samples


def _load(params: dict, make_writer, make_reader, exists) -> object:  # type: ignore[no-untyped-def]
    """Set up a load round. The source ``state_dict`` exists only in the process that writes
    the checkpoint (the warm-up round's); a round's process holds the destination alone (a
    freed source would stay resident where the allocator keeps freed memory)."""
    import torch
    import torch.distributed.checkpoint as dcp

    _quiet()
    if not exists():
        state = _state_dict(params)
        dcp.save(state, storage_writer=make_writer(), no_dist=True)
        samples = _samples(state)
        del state
    else:
        samples = _sampled(params)
    gc.collect()
    n = params["tensor_bytes"] // 4
    target = {f"layer{i}.weight": torch.zeros(n) for i in range(params["tensors"])}

    def run() -> dict:
        dcp.load(target, storage_reader=make_reader(), no_dist=True)
        return _checked(target, samples)

    return run


def _s3_exists(params: dict) -> bool:
    """Whether the checkpoint at ``params["uri"]`` has its ``.metadata`` (boto3, both venvs)."""
    import boto3

    bucket, _, prefix = params["uri"][len("s3://") :].partition("/")
    client = boto3.client("s3", region_name=REGION, endpoint_url=params.get("endpoint"))
    answer = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/.metadata", MaxKeys=1)
    return bool(answer.get("KeyCount"))


def _exists(params: dict) -> bool:
    uri = params["uri"]
    if uri.startswith("s3://"):
        return _s3_exists(params)
    return os.path.exists(os.path.join(uri.removeprefix("file://"), ".metadata"))


# -- ours -----------------------------------------------------------------------------------


def ours_save(params: dict) -> object:
    """``dcp.save(state, storage_writer=s3dlio.torch.dcp.StorageWriter(uri))``."""
    from s3dlio.torch.dcp import StorageWriter

    threads = params.get("thread_count", 2)
    return _save(_state_dict(params), lambda: StorageWriter(params["uri"], thread_count=threads))


def ours_load(params: dict) -> object:
    """``dcp.load(state, storage_reader=s3dlio.torch.dcp.StorageReader(uri))`` (CRC32C checked)."""
    from s3dlio.torch.dcp import StorageReader, StorageWriter

    threads = params.get("thread_count", 2)
    return _load(
        params,
        lambda: StorageWriter(params["uri"], thread_count=threads),
        lambda: StorageReader(params["uri"]),
        lambda: _exists(params),
    )


# -- s3torchconnector -----------------------------------------------------------------------


def _s3fs(params: dict, reader_constructor=None):  # type: ignore[no-untyped-def]
    from s3torchconnector._s3client import S3Client, S3ClientConfig
    from s3torchconnector.dcp import S3FileSystem

    client = S3Client(
        REGION, endpoint=params["endpoint"], s3client_config=S3ClientConfig(force_path_style=True)
    )
    return S3FileSystem(REGION, s3_client=client, reader_constructor=reader_constructor)


def _s3tc_writer(params: dict):  # type: ignore[no-untyped-def]
    from s3torchconnector.dcp import S3StorageWriter

    writer = S3StorageWriter(REGION, params["uri"], thread_count=params.get("thread_count", 1))
    writer.fs = _s3fs(params)  # S3StorageWriter takes no endpoint: same writer, our endpoint
    return writer


def _s3tc_reader(params: dict):  # type: ignore[no-untyped-def]
    from s3torchconnector.dcp import S3StorageReader

    reader = S3StorageReader(REGION, params["uri"])
    reader.fs = _s3fs(params, reader._reader_constructor)
    return reader


def s3tc_save(params: dict) -> object:
    """``dcp.save`` through s3torchconnector's ``S3StorageWriter``."""
    return _save(_state_dict(params), lambda: _s3tc_writer(params))


def s3tc_load(params: dict) -> object:
    """``dcp.load`` through s3torchconnector's ``S3StorageReader`` (its default DCP reader)."""
    return _load(
        params,
        lambda: _s3tc_writer(params),
        lambda: _s3tc_reader(params),
        lambda: _s3_exists(params),
    )


# -- DCP on local disk ----------------------------------------------------------------------


def _fresh(directory: str) -> str:
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    return directory


def fs_save(params: dict) -> object:
    """``dcp.save`` through DCP's ``FileSystemWriter`` (fsync off, as ours does not fsync)."""
    from torch.distributed.checkpoint import FileSystemWriter

    path = params["uri"]  # an empty directory before each round (the suite sees to it)
    threads = params.get("thread_count", 1)
    return _save(
        _state_dict(params),
        lambda: FileSystemWriter(path, sync_files=False, thread_count=threads),
    )


def fs_load(params: dict) -> object:
    """``dcp.load`` through DCP's ``FileSystemReader``."""
    from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

    path = params["uri"]
    return _load(
        params,
        lambda: FileSystemWriter(_fresh(path), sync_files=False),  # at set-up, untimed
        lambda: FileSystemReader(path),
        lambda: _exists(params),
    )


# -- bare upload loops (limits) -------------------------------------------------------------


def _raw(params: dict, send) -> object:  # type: ignore[no-untyped-def]
    import numpy as np

    total = params["tensors"] * params["tensor_bytes"]
    data = memoryview(np.random.default_rng(0).integers(0, 255, total, dtype=np.uint8))

    def run() -> dict:
        send(data)
        return result(total, params["tensors"])

    return run


def raw_put(params: dict) -> object:
    """``tensors`` single PUTs of ``tensor_bytes`` each, ``in_flight`` at once."""
    import s3dlio

    size, uri = params["tensor_bytes"], params["uri"]

    def send(data: memoryview) -> None:
        def put(i: int) -> None:
            s3dlio.put_bytes(f"{uri}/{i}", data[i * size : (i + 1) * size])

        with ThreadPoolExecutor(params["in_flight"]) as pool:
            list(pool.map(put, range(len(data) // size)))

    return _raw(params, send)


def raw_multipart(params: dict) -> object:
    """One multipart upload of ``part_bytes`` parts, ``in_flight`` at once, then complete."""
    from s3dlio.io.store import backend_for
    from s3dlio.io.uri import parse_uri

    target = parse_uri(params["uri"] + "/object")
    backend = backend_for(target)
    part = params["part_bytes"]

    def send(data: memoryview) -> None:
        upload = backend.begin_upload(target)
        offsets = range(0, len(data), part)
        with ThreadPoolExecutor(params["in_flight"]) as pool:
            list(
                pool.map(
                    lambda n: upload.write_part(n, offsets[n], data[offsets[n] :][:part], False),
                    range(len(offsets)),
                )
            )
        upload.commit()

    return _raw(params, send)
