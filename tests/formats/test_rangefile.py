"""RangeFile: a seekable read-only file over any backend, checked against an in-memory file."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

import s3dlio
from s3dlio.errors import IntegrityError, NotFoundError
from s3dlio.io.rangefile import RangeFile

SIZE = 200_003


@pytest.fixture
def blob(store_root: str) -> tuple[str, bytes]:
    data = np.random.default_rng(0).bytes(SIZE)
    uri = store_root + "blob.bin"
    s3dlio.put_bytes(uri, data)
    return uri, data


def test_random_reads_match_bytesio(blob: tuple[str, bytes]) -> None:
    uri, data = blob
    rng = np.random.default_rng(1)
    ours = RangeFile(uri, block_size=4096, cache_size=64 * 1024)
    ref = io.BytesIO(data)
    assert ours.size == SIZE and ours.readable() and ours.seekable() and not ours.writable()
    for _ in range(300):
        op = rng.integers(0, 4)
        if op == 0:
            target = int(rng.integers(0, SIZE + 100))
            assert ours.seek(target) == ref.seek(target)
        elif op == 1:
            delta = int(rng.integers(-5000, 5000))
            delta = max(delta, -ref.tell())
            assert ours.seek(delta, io.SEEK_CUR) == ref.seek(delta, io.SEEK_CUR)
        elif op == 2:
            n = int(rng.integers(0, 40_000))
            assert ours.read(n) == ref.read(n)
        else:
            n = int(rng.integers(0, 40_000))
            a, b = bytearray(n), bytearray(n)
            assert ours.readinto(a) == ref.readinto(b)
            assert a == b
        assert ours.tell() == ref.tell()
    ours.seek(-10, io.SEEK_END)
    assert ours.read() == data[-10:]
    assert ours.read(5) == b""
    ours.seek(SIZE + 50)
    assert ours.read(5) == b""
    assert ours.read_at(1000, 50) == data[1000:1050]


def test_requests_are_coalesced_and_read_ahead(blob: tuple[str, bytes]) -> None:
    uri, data = blob
    f = RangeFile(uri, block_size=4096, max_readahead=64 * 1024)
    f.seek(10_000)
    assert f.read(100) == data[10_000:10_100]
    assert f.requests == 1 and f.bytes_fetched == 4096
    f.seek(10_200)  # same block: no request
    assert f.read(100) == data[10_200:10_300]
    assert f.requests == 1
    f.seek(100_000)  # 3 missing blocks, one request
    assert f.read(9000) == data[100_000:109_000]
    assert f.requests == 2 and f.bytes_fetched == 4096 + 3 * 4096
    f.seek(0)  # a sequential scan in small reads becomes a few growing requests
    before = f.requests
    out = bytearray()
    while chunk := f.read(500):
        out += chunk
    assert out == data
    assert f.requests - before < 15
    assert f.bytes_fetched < 2 * SIZE


def test_large_reads_go_straight_to_the_buffer(blob: tuple[str, bytes]) -> None:
    uri, data = blob
    f = RangeFile(uri, block_size=4096)
    target = np.zeros(150_000, np.uint8)
    f.seek(7)
    assert f.readinto(target) == 150_000
    assert target.tobytes() == data[7:150_007]
    assert f.requests == 1 and f.bytes_fetched == 150_000


def test_works_with_zipfile_numpy_and_pickle(store_root: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
        z.writestr("b.bin", bytes(range(256)) * 100)
    s3dlio.put_bytes(store_root + "z.zip", buf.getvalue())
    with zipfile.ZipFile(RangeFile(store_root + "z.zip")) as z:
        assert z.read("a.txt") == b"hello" and len(z.read("b.bin")) == 25_600
    arr = np.arange(5000, dtype=np.float32).reshape(50, 100)
    npy = io.BytesIO()
    np.save(npy, arr)
    s3dlio.put_bytes(store_root + "a.npy", npy.getvalue())
    assert np.array_equal(np.load(RangeFile(store_root + "a.npy")), arr)
    s3dlio.put_bytes(store_root + "p.pkl", pickle.dumps({"k": list(range(100))}))
    with RangeFile(store_root + "p.pkl") as f:
        assert pickle.load(f) == {"k": list(range(100))}
    assert f.closed
    with pytest.raises(ValueError):
        f.read(1)


def test_replaced_object_fails_loudly(blob: tuple[str, bytes]) -> None:
    uri, data = blob
    f = RangeFile(uri, block_size=4096)
    assert f.read(10) == data[:10]
    s3dlio.put_bytes(uri, b"x" * SIZE)
    f.seek(150_000)
    with pytest.raises(IntegrityError):
        f.read(10)


def test_missing_object(store_root: str) -> None:
    with pytest.raises(NotFoundError):
        RangeFile(store_root + "nope.bin")


def test_empty_object(store_root: str) -> None:
    s3dlio.put_bytes(store_root + "empty", b"")
    f = RangeFile(store_root + "empty")
    assert f.size == 0 and f.read() == b"" and f.read(10) == b"" and f.requests == 0
