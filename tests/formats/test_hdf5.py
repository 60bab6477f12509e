"""HDF5 over range requests: h5py on a local copy vs h5py through RangeFile, and writing."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest

import s3dlio
from s3dlio.formats.hdf5 import open_hdf5


@pytest.fixture
def local_h5(tmp_path: Path) -> Path:
    path = tmp_path / "local.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("grid", data=rng.random((1000, 1000), dtype=np.float32), chunks=(50, 50))
        f.create_dataset(
            "packed",
            data=np.arange(400_000, dtype=np.int32).reshape(400, 1000),
            chunks=(20, 100),
            compression="gzip",
        )
        group = f.create_group("meta")
        group.create_dataset("names", data=np.array([b"a", b"bb", b"ccc"]))
        group.attrs["version"] = 3
        f.create_dataset("contiguous", data=np.arange(10_000, dtype=np.float64))
    return path


def test_remote_slices_equal_local(store_root: str, local_h5: Path) -> None:
    uri = store_root + "data.h5"
    s3dlio.put_bytes(uri, local_h5.read_bytes())
    size = local_h5.stat().st_size
    with h5py.File(local_h5, "r") as local, open_hdf5(uri) as remote:
        source = remote.rangefile
        part = remote["grid"][100:110, 200:260]
        assert np.array_equal(part, local["grid"][100:110, 200:260])
        # only the two chunks touched (plus metadata) were fetched, not the 4 MB file
        assert source.bytes_fetched < size / 10, (source.bytes_fetched, size)
        assert source.requests < 10
        assert np.array_equal(remote["packed"][35:45, 990:], local["packed"][35:45, 990:])
        assert np.array_equal(remote["contiguous"][5000:5010], local["contiguous"][5000:5010])
        assert list(remote["meta/names"][:]) == list(local["meta/names"][:])
        assert remote["meta"].attrs["version"] == 3
        assert source.bytes_fetched < size / 4
        assert np.array_equal(remote["grid"][:], local["grid"][:])  # a full read works too


def test_write_modes(store_root: str) -> None:
    uri = store_root + "out/new.h5"
    data = np.arange(12_000, dtype=np.float32).reshape(120, 100)
    with open_hdf5(uri, "w") as f:
        f.create_dataset("x", data=data, chunks=(10, 100))
        f.attrs["note"] = "written remotely"
    with h5py.File(io.BytesIO(bytes(s3dlio.get(uri))), "r") as check:
        assert np.array_equal(check["x"][:], data) and check.attrs["note"] == "written remotely"
    with open_hdf5(uri, "a") as f:
        f.create_dataset("y", data=np.ones(5))
        f["x"][0, :] = -1
    with open_hdf5(uri) as f:
        assert sorted(f) == ["x", "y"]
        assert f["x"][0, 0] == -1 and f["x"][1, 0] == data[1, 0]
    with pytest.raises(FileExistsError):
        open_hdf5(uri, "w-")
    with pytest.raises(s3dlio.NotFoundError):
        open_hdf5(store_root + "missing.h5", "r+")


def test_exception_uploads_nothing(store_root: str) -> None:
    uri = store_root + "never.h5"
    with pytest.raises(RuntimeError), open_hdf5(uri, "w") as f:
        f.create_dataset("x", data=np.ones(10))
        raise RuntimeError("stop")
    assert not s3dlio.exists(uri)
