"""Checkpoint save/load of a ``state_dict``: ours (CheckpointStore), ``torch.save`` /
``torch.load`` to local files, and the original's ``save_checkpoint`` / ``load_checkpoint``
(which take bytes: the state_dict goes through ``torch.save`` into memory first).

Params: ``dir`` (a fresh directory for this contender), ``tensors`` and ``tensor_bytes``.
A save round writes a new checkpoint and removes the previous one; a load round reads back
the checkpoint written during set-up.
"""

from __future__ import annotations

import io
import os
import shutil

from _common import result


def _state_dict(params: dict) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    n = params["tensor_bytes"] // 4
    return {f"layer{i}.weight": torch.rand(n, generator=gen) for i in range(params["tensors"])}


def _size(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def _fresh(directory: str) -> str:
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    return directory


def ours_save(params: dict) -> object:
    """``CheckpointStore(file://dir, keep_last=1).save(step, 0, "torch", state_dict)``."""
    from s3dlio.checkpoint import CheckpointStore

    state = _state_dict(params)
    store = CheckpointStore("file://" + _fresh(params["dir"]) + "/", keep_last=1)
    step = iter(range(1, 1 << 30))

    def run() -> dict:
        store.save(next(step), 0, "torch", state)
        return result(_size(state), len(state))

    return run


def ours_load(params: dict) -> object:
    """``CheckpointStore.load_latest()`` (CRC32C verified; tensors over the read buffer)."""
    from s3dlio.checkpoint import CheckpointStore

    state = _state_dict(params)
    store = CheckpointStore("file://" + _fresh(params["dir"]) + "/")
    store.save(1, 0, "torch", state)
    expected = _size(state)
    del state

    def run() -> dict:
        loaded = store.load_latest()
        size = _size(loaded)
        if size != expected:
            raise RuntimeError(f"loaded {size} bytes, saved {expected}")
        return result(size, len(loaded))

    return run


def torch_save(params: dict) -> object:
    """``torch.save(state_dict, path)`` to a new file; the previous one is removed."""
    import torch

    state = _state_dict(params)
    directory = _fresh(params["dir"])
    step = iter(range(1, 1 << 30))
    previous: list[str] = []

    def run() -> dict:
        path = os.path.join(directory, f"ckpt-{next(step)}.pt")
        torch.save(state, path)
        for old in previous:
            os.remove(old)
        previous[:] = [path]
        return result(_size(state), len(state))

    return run


def torch_load(params: dict) -> object:
    """``torch.load(path, weights_only=True)``."""
    import torch

    state = _state_dict(params)
    path = os.path.join(_fresh(params["dir"]), "ckpt.pt")
    torch.save(state, path)
    del state

    def run() -> dict:
        loaded = torch.load(path, weights_only=True)
        return result(_size(loaded), len(loaded))

    return run


def original_save(params: dict) -> object:
    """The original: ``torch.save`` into memory, then ``save_checkpoint(uri, step, ...)``."""
    import torch

    import s3dlio

    state = _state_dict(params)
    uri = "file://" + _fresh(params["dir"]) + "/"
    step = iter(range(1, 1 << 30))

    def run() -> dict:
        buf = io.BytesIO()
        torch.save(state, buf)
        n = next(step)
        s3dlio.save_checkpoint(uri, n, 0, "torch", buf.getbuffer())
        if n > 1:  # keep only the newest, as keep_last=1 does for ours
            store = s3dlio.PyCheckpointStore(uri)
            store.delete_checkpoint(n - 1)
        return result(_size(state), len(state))

    return run


def original_load(params: dict) -> object:
    """The original: ``load_checkpoint(uri)`` bytes, then ``torch.load`` from memory."""
    import torch

    import s3dlio

    state = _state_dict(params)
    uri = "file://" + _fresh(params["dir"]) + "/"
    buf = io.BytesIO()
    torch.save(state, buf)
    s3dlio.save_checkpoint(uri, 1, 0, "torch", buf.getbuffer())
    del state, buf

    def run() -> dict:
        data = s3dlio.load_checkpoint(uri)
        loaded = torch.load(io.BytesIO(memoryview(data)), weights_only=True)
        return result(_size(loaded), len(loaded))

    return run
