"""``torch.distributed.checkpoint`` save/load of a ``state_dict`` (one process, no process
group): ours (``s3dlio.torch.dcp.StorageWriter`` / ``StorageReader``), s3torchconnector's
``S3StorageWriter`` / ``S3StorageReader``, and DCP's ``FileSystemWriter`` / ``FileSystemReader``.

Params: ``uri`` (the checkpoint: ``s3://bucket/prefix`` or a local directory), ``tensors`` and
``tensor_bytes``; ``endpoint`` for s3torchconnector; ``thread_count`` for the writers.
A save round writes the checkpoint again to the same URI (each library overwrites its own: no
store grows round after round); a load round reads the checkpoint written at set-up into
preallocated tensors and checks a few values.
"""

from __future__ import annotations

import os
import shutil
import warnings

from _common import result

REGION = "us-east-1"


def _state_dict(params: dict) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    n = params["tensor_bytes"] // 4
    return {f"layer{i}.weight": torch.rand(n, generator=gen) for i in range(params["tensors"])}


def _empty(state: dict) -> dict:
    import torch

    return {k: torch.zeros_like(v) for k, v in state.items()}


def _size(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def _quiet() -> None:
    # "torch.distributed is disabled ... assuming the intent is to save in a single process"
    warnings.filterwarnings("ignore", "torch.distributed is disabled")
    warnings.filterwarnings("ignore", "Detected an existing checkpoint")


def _checked(loaded: dict, state: dict) -> dict:
    import torch

    for k in list(state)[:: max(1, len(state) // 4)]:
        if not torch.equal(loaded[k][:1024], state[k][:1024]):
            raise RuntimeError(f"{k} differs after load")
    return result(_size(loaded), len(loaded))


def _save(state: dict, make_writer) -> object:  # type: ignore[no-untyped-def]
    import torch.distributed.checkpoint as dcp

    _quiet()

    def run() -> dict:
        dcp.save(state, storage_writer=make_writer(), no_dist=True)
        return result(_size(state), len(state))

    return run


def _load(state: dict, make_writer, make_reader) -> object:  # type: ignore[no-untyped-def]
    import torch.distributed.checkpoint as dcp

    _quiet()
    dcp.save(state, storage_writer=make_writer(), no_dist=True)
    target = _empty(state)

    def run() -> dict:
        dcp.load(target, storage_reader=make_reader(), no_dist=True)
        return _checked(target, state)

    return run


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
        _state_dict(params),
        lambda: StorageWriter(params["uri"], thread_count=threads),
        lambda: StorageReader(params["uri"]),
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
    return _load(_state_dict(params), lambda: _s3tc_writer(params), lambda: _s3tc_reader(params))


# -- DCP on local disk ----------------------------------------------------------------------


def _fresh(directory: str) -> str:
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    return directory


def fs_save(params: dict) -> object:
    """``dcp.save`` through DCP's ``FileSystemWriter`` (fsync off, as ours does not fsync)."""
    from torch.distributed.checkpoint import FileSystemWriter

    path = _fresh(params["uri"])
    threads = params.get("thread_count", 1)
    return _save(
        _state_dict(params),
        lambda: FileSystemWriter(path, sync_files=False, thread_count=threads),
    )


def fs_load(params: dict) -> object:
    """``dcp.load`` through DCP's ``FileSystemReader``."""
    from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

    path = _fresh(params["uri"])
    return _load(
        _state_dict(params),
        lambda: FileSystemWriter(path, sync_files=False),
        lambda: FileSystemReader(path),
    )
