"""HDF5 slice reads and NPZ member reads: ours (``s3dlio.formats``) against h5py and
``np.load`` on the local file, and the original's ``read_npz`` (``s3://`` only).

HDF5 params: ``path`` (local file) or ``uri``, ``dataset``, ``slices`` (count), ``rows`` (rows
per slice), ``seed``: each round reads the same pseudo-random row slices.
NPZ params: ``path`` or ``uri`` and ``members`` (names): each round reads every member once.
"""

from __future__ import annotations

import random

from _common import check, result


def _starts(params: dict, total_rows: int) -> list[int]:
    rng = random.Random(params.get("seed", 0))
    return [rng.randrange(0, total_rows - params["rows"]) for _ in range(params["slices"])]


def _slices(dataset, params: dict) -> object:
    starts = _starts(params, dataset.shape[0])
    rows = params["rows"]

    def run() -> dict:
        size = 0
        for start in starts:
            size += dataset[start : start + rows].nbytes
        check(size, params["case_bytes"], "hdf5 slices")
        return result(size, len(starts))

    return run


def h5py_slices(params: dict) -> object:
    """``h5py.File(path)[dataset][a:b]`` on the local file."""
    import h5py

    handle = h5py.File(params["path"], "r")
    return _slices(handle[params["dataset"]], params)


def ours_hdf5_slices(params: dict) -> object:
    """``s3dlio.formats.hdf5.open_hdf5(uri)[dataset][a:b]``."""
    from s3dlio.formats.hdf5 import open_hdf5

    handle = open_hdf5(params["uri"])
    return _slices(handle[params["dataset"]], params)


def numpy_npz(params: dict) -> object:
    """``np.load(path)[member]`` for each member (the archive opened per member)."""
    import numpy as np

    members = params["members"]

    def run() -> dict:
        size = 0
        for name in members:
            with np.load(params["path"]) as archive:
                size += archive[name].nbytes
        check(size, params["case_bytes"], "npz members")
        return result(size, len(members))

    return run


def read_npz(params: dict) -> object:
    """``s3dlio.read_npz(uri, member)`` for each member (ours or the original's, by venv)."""
    import s3dlio

    reader = getattr(s3dlio, "read_npz", None)
    if reader is None:
        from s3dlio.formats.npz import read_npz as reader
    members = params["members"]

    def run() -> dict:
        size = 0
        for name in members:
            size += reader(params["uri"], name).nbytes
        check(size, params["case_bytes"], "npz members")
        return result(size, len(members))

    return run
