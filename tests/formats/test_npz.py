"""NPZ archives read through the zip central directory, checked against ``numpy.load``."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

import s3dlio
from s3dlio.errors import IntegrityError, NotFoundError
from s3dlio.formats import npz as npz_module
from s3dlio.formats.npz import NpzFile, list_npz, read_npz


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "images": rng.random((16, 32, 32), dtype=np.float32),
        "labels": rng.integers(0, 10, 16),
        "mask": rng.random((7, 3)) > 0.5,
        "half": rng.random(33).astype(np.float16),
        "text": np.array(["alpha", "b", "ccc"]),
        "fortran": np.asfortranarray(rng.random((5, 4))),
        "scalar": np.array(3.5),
        "empty": np.empty((0, 4), np.int32),
    }


def _savez(compressed: bool, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_read_npz_matches_np_load(store_root: str, compressed: bool) -> None:
    arrays = _arrays()
    data = _savez(compressed, **arrays)
    uri = store_root + "arrays.npz"
    s3dlio.put_bytes(uri, data)
    reference = np.load(io.BytesIO(data))
    archive = NpzFile(uri)
    assert archive.names == reference.files == list_npz(uri)
    for name in reference.files:
        before = archive.stats.requests
        got = archive[name]
        assert archive.stats.requests == before + 1  # header + data in one range GET
        want = reference[name]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
        assert got.flags.writeable
        assert got.flags.f_contiguous == want.flags.f_contiguous
    assert np.array_equal(read_npz(uri), reference.files and reference[reference.files[0]])
    assert np.array_equal(s3dlio.read_npz(uri, "labels"), arrays["labels"])
    assert np.array_equal(read_npz(uri, "mask.npy"), arrays["mask"])
    loaded = archive.load()
    assert set(loaded) == set(arrays)


def test_only_the_member_is_fetched(store_root: str) -> None:
    big = np.arange(300_000, dtype=np.float64)  # 2.4 MB
    small = np.arange(10)
    uri = store_root + "two.npz"
    s3dlio.put_bytes(uri, _savez(False, big=big, small=small))
    archive = NpzFile(uri)
    opened = archive.stats.bytes_fetched
    assert opened < 70_000  # the tail only
    assert np.array_equal(archive["small"], small)
    assert archive.stats.bytes_fetched - opened < 1000
    assert np.array_equal(archive["big"], big)


def test_stored_arrays_are_aligned(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(1000, dtype=np.float64), y=np.arange(7, dtype=np.int16))
    archive = NpzFile(str(path))
    for name in ("x", "y"):
        assert archive[name].flags.aligned
    ours = tmp_path / "ours.npz"
    ours.write_bytes(bytes(s3dlio.generate_npz_bytes([100], "<f8", 9)))
    archive = NpzFile(str(ours))
    for name in ("x", "y"):  # our archives put array data on 64-byte boundaries
        assert archive[name].ctypes.data % 64 == 0


def test_zip64_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Force zip64 records (the EOCD64 and zip64 extra fields) on small files.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    path = tmp_path / "z64.npz"
    arrays = {"a": np.arange(1000), "b": np.ones((3, 3))}
    np.savez(path, **arrays)
    monkeypatch.undo()
    archive = NpzFile(f"file://{path}")
    for name, want in arrays.items():
        assert np.array_equal(archive[name], want)
    # and our own writer's zip64 layout, read by numpy and by us
    monkeypatch.setattr(npz_module, "_ZIP64_LIMIT", 64)
    data = npz_module.generate_npz_bytes([10, 10], "<f8", 3, seed=1)
    monkeypatch.undo()
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).testzip() is None
    reference = np.load(io.BytesIO(bytes(data)))
    ours_path = tmp_path / "ours64.npz"
    ours_path.write_bytes(bytes(data))
    assert np.array_equal(NpzFile(str(ours_path))["x"], reference["x"], equal_nan=True)
    assert np.array_equal(NpzFile(str(ours_path))["y"], reference["y"])


def test_generate_npz_bytes(store_root: str) -> None:
    data = s3dlio.generate_npz_bytes([64, 48, 1], "<f4", 5)
    reference = np.load(io.BytesIO(bytes(data)))
    assert reference.files == ["x", "y"]
    assert reference["x"].shape == (64, 48, 1) and reference["x"].dtype == np.float32
    assert reference["y"].tolist() == [0] * 5
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).testzip() is None
    uri = store_root + "gen.npz"
    s3dlio.put_bytes(uri, data)
    assert read_npz(uri).tobytes() == reference["x"].tobytes()
    a = s3dlio.generate_npz_bytes([1000], "|u1", 1, seed=3)
    b = s3dlio.generate_npz_bytes([1000], "|u1", 1, seed=3)
    assert bytes(a) == bytes(b)


def test_errors(store_root: str) -> None:
    uri = store_root + "a.npz"
    s3dlio.put_bytes(uri, _savez(False, x=np.arange(3)))
    with pytest.raises(NotFoundError, match="'nope'"):
        read_npz(uri, "nope")
    s3dlio.put_bytes(uri, b"not a zip file at all, just some bytes" * 3)
    with pytest.raises(IntegrityError, match="end-of-central-directory"):
        read_npz(uri)
    with pytest.raises(NotFoundError):
        read_npz(store_root + "missing.npz")
    data = bytearray(_savez(False, x=np.arange(100)))
    data[200] ^= 0xFF  # inside the stored array
    s3dlio.put_bytes(uri, bytes(data))
    with pytest.raises(IntegrityError, match="CRC"):
        read_npz(uri, "x")
