"""Single-object operations, the same on every backend."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import s3dlio
from s3dlio import BytesView, InvalidArgumentError, IsDirectoryError, NotFoundError


def test_put_get_roundtrip(store_root: str) -> None:
    uri = store_root + "a/hello.bin"
    s3dlio.put_bytes(uri, b"hello world")
    data = s3dlio.get(uri)
    assert isinstance(data, BytesView)
    assert data == b"hello world"
    assert bytes(data) == b"hello world"
    assert len(data) == 11


@pytest.mark.parametrize(
    "payload",
    [
        bytearray(b"bytearray payload"),
        memoryview(b"memoryview payload"),
        np.arange(1000, dtype=np.float32),
        np.arange(12, dtype=np.int16).reshape(3, 4),
    ],
    ids=["bytearray", "memoryview", "numpy-f32", "numpy-2d"],
)
def test_put_accepts_any_buffer(store_root: str, payload: object) -> None:
    uri = store_root + "buf.bin"
    s3dlio.put_bytes(uri, payload)
    assert bytes(s3dlio.get(uri)) == memoryview(payload).tobytes()  # type: ignore[arg-type]


def test_bytesview_is_zero_copy(store_root: str) -> None:
    uri = store_root + "arr.bin"
    values = np.arange(4096, dtype=np.int64)
    s3dlio.put_bytes(uri, values)
    data = s3dlio.get(uri)
    arr = np.frombuffer(data, dtype=np.int64)
    assert np.array_equal(arr, values)
    assert np.shares_memory(arr, np.frombuffer(data.memoryview(), dtype=np.int64))
    assert data.memoryview().nbytes == values.nbytes
    assert data.to_bytes() == values.tobytes()


def test_empty_object(store_root: str) -> None:
    uri = store_root + "empty"
    s3dlio.put_bytes(uri, b"")
    assert s3dlio.get(uri) == b""
    assert s3dlio.stat(uri)["size"] == 0
    assert s3dlio.get_range(uri, 0) == b""
    assert s3dlio.get_range(uri, 10, 5) == b""


def test_unicode_and_space_keys(store_root: str) -> None:
    uri = store_root + "dir with space/naïve ü €.txt"
    s3dlio.put_bytes(uri, "ünïcode".encode())
    assert s3dlio.get(uri) == "ünïcode".encode()
    assert uri in s3dlio.list(store_root, recursive=True)
    assert s3dlio.exists(uri)


def test_get_range(store_root: str) -> None:
    uri = store_root + "range.bin"
    payload = bytes(range(256)) * 40
    s3dlio.put_bytes(uri, payload)
    assert s3dlio.get_range(uri, 0, 10) == payload[:10]
    assert s3dlio.get_range(uri, 1000, 500) == payload[1000:1500]
    assert s3dlio.get_range(uri, 5000) == payload[5000:]
    assert s3dlio.get_range(uri, len(payload) - 3, 100) == payload[-3:]
    assert s3dlio.get_range(uri, len(payload)) == b""
    assert s3dlio.get_range(uri, len(payload) + 100, 10) == b""
    assert s3dlio.get_range(uri, 7, 0) == b""


def test_get_into(store_root: str) -> None:
    uri = store_root + "into.bin"
    payload = np.random.default_rng(1).integers(0, 255, 100_000, dtype=np.uint8)
    s3dlio.put_bytes(uri, payload)
    target = np.zeros(120_000, dtype=np.uint8)
    assert s3dlio.get_into(uri, target) == 100_000
    assert np.array_equal(target[:100_000], payload)
    small = bytearray(10)
    with pytest.raises(InvalidArgumentError):
        s3dlio.get_into(uri, small)
    with pytest.raises(s3dlio.errors.ArgumentTypeError):
        s3dlio.get_into(uri, b"readonly")


def test_get_many_and_put_many(store_root: str) -> None:
    items = [(f"{store_root}many/{i:03d}.bin", f"payload {i}".encode()) for i in range(40)]
    s3dlio.put_many(items, max_in_flight=8)
    got = s3dlio.get_many([u for u, _ in items], max_in_flight=8)
    assert [u for u, _ in got] == [u for u, _ in items]
    assert [bytes(d) for _, d in got] == [d for _, d in items]


def test_get_many_reports_missing(store_root: str) -> None:
    s3dlio.put_bytes(store_root + "x", b"1")
    with pytest.raises(s3dlio.BatchError) as info:
        s3dlio.get_many([store_root + "x", store_root + "missing"])
    assert info.value.succeeded == 1
    assert info.value.failures[0][0] == store_root + "missing"
    assert isinstance(info.value.failures[0][1], NotFoundError)


def test_stat_and_exists(store_root: str) -> None:
    uri = store_root + "s/t.bin"
    s3dlio.put_bytes(uri, b"12345")
    info = s3dlio.stat(uri)
    assert info["size"] == 5
    assert info["etag"]
    assert info["last_modified"].endswith("Z")
    assert s3dlio.exists(uri)
    assert not s3dlio.exists(store_root + "s/t.bi")
    assert s3dlio.exists(store_root + "s/")
    assert not s3dlio.exists(store_root + "nothing/")


def test_overwrite_replaces(store_root: str) -> None:
    uri = store_root + "o.bin"
    s3dlio.put_bytes(uri, b"first version")
    s3dlio.put_bytes(uri, b"2nd")
    assert s3dlio.get(uri) == b"2nd"


def test_delete_exact(store_root: str) -> None:
    s3dlio.put_bytes(store_root + "d/file.txt", b"a")
    s3dlio.put_bytes(store_root + "d/file.txt.bak", b"b")
    assert s3dlio.delete(store_root + "d/file.txt") == 1
    assert s3dlio.list(store_root + "d/") == [store_root + "d/file.txt.bak"]
    with pytest.raises(NotFoundError):
        s3dlio.delete(store_root + "d/file.txt")
    assert s3dlio.delete(store_root + "d/file.txt", missing_ok=True) == 0


def test_delete_directory_refused(store_root: str) -> None:
    s3dlio.put_bytes(store_root + "dir/a", b"a")
    s3dlio.put_bytes(store_root + "dir/b/c", b"c")
    for target in (store_root + "dir", store_root + "dir/"):
        with pytest.raises(IsDirectoryError):
            s3dlio.delete(target)
    assert len(s3dlio.list(store_root + "dir/", recursive=True)) == 2


def test_delete_recursive(store_root: str) -> None:
    for key in ("r/a", "r/b/c", "r/b/d/e", "rr/keep"):
        s3dlio.put_bytes(store_root + key, b"x")
    assert s3dlio.delete(store_root + "r", recursive=True) == 3
    assert s3dlio.list(store_root, recursive=True) == [store_root + "rr/keep"]


def test_delete_recursive_pattern(store_root: str) -> None:
    for key in ("p/a.log", "p/b.txt", "p/c/d.log"):
        s3dlio.put_bytes(store_root + key, b"x")
    assert s3dlio.delete(store_root + "p/", recursive=True, pattern=r"\.log$") == 2
    assert s3dlio.list(store_root + "p/", recursive=True) == [store_root + "p/b.txt"]


def test_async_variants(store_root: str) -> None:
    async def main() -> None:
        await s3dlio.put_bytes_async(store_root + "as/x", b"async!")
        assert await s3dlio.get_async(store_root + "as/x") == b"async!"
        assert await s3dlio.get_range_async(store_root + "as/x", 1, 3) == b"syn"
        assert (await s3dlio.stat_async(store_root + "as/x"))["size"] == 6
        assert await s3dlio.exists_async(store_root + "as/x")
        await s3dlio.put_many_async([(store_root + f"as/{i}", b"%d" % i) for i in range(5)])
        got = await s3dlio.get_many_async([store_root + f"as/{i}" for i in range(5)])
        assert [bytes(d) for _, d in got] == [b"%d" % i for i in range(5)]
        assert len(await s3dlio.list_async(store_root + "as/")) == 6
        buf = bytearray(6)
        assert await s3dlio.get_into_async(store_root + "as/x", buf) == 6
        await s3dlio.delete_async(store_root + "as/", recursive=True)
        assert not await s3dlio.exists_async(store_root + "as/x")

    asyncio.run(main())


def test_missing_object_errors(store_root: str) -> None:
    missing = store_root + "no/such/object"
    for call in (s3dlio.get, s3dlio.stat, lambda u: s3dlio.get_range(u, 0, 10)):
        with pytest.raises(NotFoundError) as info:
            call(missing)
        assert missing in str(info.value)
        assert isinstance(info.value, FileNotFoundError)


def test_bad_payload_type(store_root: str) -> None:
    with pytest.raises(s3dlio.errors.ArgumentTypeError):
        s3dlio.put_bytes(store_root + "bad", "a str is not bytes")
    with pytest.raises(s3dlio.errors.ArgumentTypeError):
        s3dlio.put_bytes(store_root + "bad", [1, 2, 3])
    assert not s3dlio.exists(store_root + "bad")


def test_bad_uris() -> None:
    for bad in ("", "nobucket", "ftp://x/y", "s3://", "s3:///key"):
        with pytest.raises(InvalidArgumentError):
            s3dlio.get(bad)
