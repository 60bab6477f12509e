"""``put()``: generated raw/npz/tfrecord/hdf5 objects read back by numpy, tfrecord and h5py."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
import zstandard
from tfrecord.reader import tfrecord_loader

import s3dlio
from s3dlio.errors import BatchError, InvalidArgumentError

SIZE = 150_000


def test_raw_objects(store_root: str) -> None:
    prefix = store_root + "raw/"
    assert s3dlio.put(prefix, 3, size=SIZE) == 3
    names = sorted(s3dlio.list(prefix))
    assert names == [prefix + f"object_{i}_of_3.dat" for i in range(3)]
    blobs = [bytes(s3dlio.get(u)) for u in names]
    assert all(len(b) == SIZE for b in blobs)
    assert len(set(blobs)) == 3  # every object has its own data


@pytest.mark.parametrize("mode", ["streaming", "single-pass"])
def test_raw_modes_and_factors(tmp_path: Path, mode: str) -> None:
    prefix = f"file://{tmp_path}/m/"
    seen = []
    s3dlio.put(
        prefix,
        2,
        template="blob-{}.bin",
        size="3MiB",
        compress_factor=4,
        dedup_factor=3,
        data_gen_mode=mode,
        seed=5,
        progress=lambda n, k: seen.append((n, k)),
    )
    assert sorted(seen) == [(3 * 2**20, 1)] * 2
    data = bytes(s3dlio.get(prefix + "blob-0.bin"))
    assert len(data) == 3 * 2**20
    ratio = len(data) / len(zstandard.ZstdCompressor(level=3).compress(data))
    assert ratio > 3.0  # compressible as asked (about 4:1)
    blocks = {data[i : i + 2**20] for i in range(0, len(data), 2**20)}
    assert len(blocks) == 1  # 3 blocks with dedup 3: one distinct block
    again = f"file://{tmp_path}/again/"
    s3dlio.put(
        again,
        1,
        template="blob-{}.bin",
        size="3MiB",
        compress_factor=4,
        dedup_factor=3,
        data_gen_mode=mode,
        seed=5,
    )
    assert bytes(s3dlio.get(again + "blob-0.bin")) == data  # seeded: reproducible


def test_npz_objects(store_root: str) -> None:
    prefix = store_root + "npz/"
    s3dlio.put(prefix, 2, template="s{}.npz", size=SIZE, object_type="npz")
    for uri in s3dlio.list(prefix):
        archive = np.load(io.BytesIO(bytes(s3dlio.get(uri))))
        assert archive["x"].shape == (SIZE,) and archive["x"].dtype == np.uint8
        assert np.array_equal(s3dlio.read_npz(uri, "x"), archive["x"])


def test_tfrecord_objects(store_root: str, tmp_path: Path) -> None:
    prefix = store_root + "tfr/"
    s3dlio.put(prefix, 2, size=SIZE, object_type="tfrecord", record_size=40_000)
    for n, uri in enumerate(sorted(s3dlio.list(prefix))):
        local = tmp_path / f"{n}.tfrecord"
        local.write_bytes(bytes(s3dlio.get(uri)))
        rows = list(tfrecord_loader(str(local), None, {"data": "byte", "label": "int"}))
        assert [len(r["data"]) for r in rows] == [40_000] * 3 + [SIZE - 120_000]
        assert [int(r["label"][0]) for r in rows] == [0, 1, 2, 3]
        assert s3dlio.create_tfrecord_index(uri) == 4


def test_hdf5_objects(store_root: str) -> None:
    prefix = store_root + "h5/"
    s3dlio.put(prefix, 2, size=SIZE, object_type="hdf5", seed=1)
    for uri in s3dlio.list(prefix):
        with h5py.File(io.BytesIO(bytes(s3dlio.get(uri))), "r") as f:
            assert f["data"].shape == (SIZE,) and f["data"].dtype == np.uint8
            assert f["data"][:].any()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="object_type"):
        s3dlio.put(f"file://{tmp_path}/", 1, size=10, object_type="orc")
    with pytest.raises(InvalidArgumentError, match="data_gen_mode"):
        s3dlio.put(f"file://{tmp_path}/", 1, size=10, data_gen_mode="lazy")
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(BatchError):  # the "directory" is a file: every object fails
        s3dlio.put(f"file://{blocker}/", 2, size=10)


def test_create_bucket_flag(store_root: str) -> None:
    # the bucket exists already: creating it again is not an error
    assert s3dlio.put(store_root + "cb/", 1, size=100, should_create_bucket=True) == 1
