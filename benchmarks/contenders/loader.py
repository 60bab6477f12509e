"""PyTorch ``DataLoader`` over S3 objects: ours (``s3dlio.torch``), s3torchconnector and the
original s3dlio (``s3dlio.torch``), iterable and map-style datasets.

Params: ``endpoint``, ``uri`` (the prefix), ``kind`` (``"iterable"``/``"map"``),
``num_workers``, ``batch_size``, ``prefetch``, ``context`` (the workers' multiprocessing
start method; default fork). Each item is a uint8 tensor of one object; each
round is one epoch, every sample consumed (and counted: a dataset that repeats or drops items
fails the round). Workers persist across epochs, as in training; their CPU time is counted.
"""

from __future__ import annotations

from _common import check, result

REGION = "us-east-1"


def _loader(dataset, params: dict, **extra):
    import torch.utils.data as tud

    workers = params["num_workers"]
    if workers and params.get("context"):
        extra["multiprocessing_context"] = params["context"]
    return tud.DataLoader(
        dataset,
        batch_size=params["batch_size"],
        num_workers=workers,
        persistent_workers=workers > 0,
        **extra,
    )


def _epoch(loader, params: dict) -> object:
    def run() -> dict:
        samples = size = 0
        for batch in loader:
            samples += batch.shape[0]
            size += batch.numel()
        check(samples, params["case_objects"], "samples")
        return result(size, samples)

    return run


def s3dlio_dataset(params: dict) -> object:
    """``s3dlio.torch.S3IterableDataset`` / ``S3MapDataset`` (ours or the original's, by venv).

    Both libraries name them alike; the original's ``from_prefix`` keywords are used.
    """
    import warnings

    import s3dlio.torch as st

    warnings.simplefilter("ignore", DeprecationWarning)  # the original deprecates the S3 names
    if params["kind"] == "iterable":
        dataset = st.S3IterableDataset.from_prefix(
            params["uri"],
            prefetch=params["prefetch"],
            enable_sharding=True,
            batch_size=params["batch_size"],
        )
    else:
        dataset = st.S3MapDataset.from_prefix(params["uri"])
    return _epoch(_loader(dataset, params), params)


def _to_tensor(reader):
    import torch

    return torch.frombuffer(bytearray(reader.read()), dtype=torch.uint8)


def s3torchconnector_dataset(params: dict) -> object:
    """s3torchconnector's ``S3IterableDataset`` / ``S3MapDataset`` (items read to tensors)."""
    from s3torchconnector import S3ClientConfig, S3IterableDataset, S3MapDataset

    common = {
        "region": REGION,
        "endpoint": params["endpoint"],
        "transform": _to_tensor,
        "s3client_config": S3ClientConfig(force_path_style=True),
    }
    if params["kind"] == "iterable":
        dataset = S3IterableDataset.from_prefix(params["uri"], enable_sharding=True, **common)
    else:
        dataset = S3MapDataset.from_prefix(params["uri"], **common)
    return _epoch(_loader(dataset, params), params)
