"""The original's functions on every backend: MultipartUploadWriter, head_async, get_many_stats,
mp_get, put_async; and the cancellation of a loader nobody holds."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

import s3dlio
from s3dlio.io.config import MiB


def test_multipart_upload_writer_on_every_backend(store_root: str) -> None:
    uri = store_root + "mp/big.bin"
    part = 5 * MiB
    with s3dlio.MultipartUploadWriter.from_uri(uri, part_size=part) as writer:
        view = writer.reserve(part * 2)
        assert isinstance(view, memoryview) and not view.readonly
        assert isinstance(view.obj, s3dlio.ReservedBuffer)
        view[:] = b"a" * (part * 2)  # filled in place
        writer.commit(part * 2)
        writer.write(b"tail" * 10)
        tail = writer.reserve(100)
        tail[:3] = b"xyz"
        writer.commit(3)
        assert writer.bytes_written == part * 2 + 43
    info = writer.close()
    assert info["total_bytes"] == part * 2 + 43
    assert info["parts"] >= 2
    data = bytes(s3dlio.get(uri))
    assert data == b"a" * (part * 2) + b"tail" * 10 + b"xyz"

    with pytest.raises(RuntimeError, match="boom"):
        with s3dlio.MultipartUploadWriter.from_uri(store_root + "mp/aborted.bin") as w:
            w.write(b"never")
            raise RuntimeError("boom")
    assert not s3dlio.exists(store_root + "mp/aborted.bin")
    small = s3dlio.MultipartUploadWriter.from_uri(store_root + "mp/small.bin")
    small.write(b"12345")
    assert small.close() == {**small.close(), "total_bytes": 5, "parts": 1}
    with pytest.raises(s3dlio.InvalidArgumentError):
        s3dlio.MultipartUploadWriter.from_uri(store_root + "mp/x").commit(1)


def test_multipart_upload_writer_bucket_key(moto_s3: object, s3_root: str) -> None:
    bucket, key = s3_root[len("s3://") :].split("/", 1)
    with s3dlio.MultipartUploadWriter(bucket, key + "bk.bin", content_type="text/plain") as w:
        w.write(b"hello")
    assert bytes(s3dlio.get(s3_root + "bk.bin")) == b"hello"
    assert s3dlio.stat(s3_root + "bk.bin")["content_type"] == "text/plain"


def test_head_async_and_stats_on_every_backend(store_root: str) -> None:
    s3dlio.put_bytes(store_root + "h/one", b"x" * 123)
    meta = asyncio.run(s3dlio.head_async(store_root + "h/one"))
    assert isinstance(meta, s3dlio.ObjectMetadata)
    assert meta.size == 123 and meta == asyncio.run(s3dlio.head_async(store_root + "h/one"))
    assert asyncio.run(s3dlio.head_async(store_root + "h/missing")) is None
    uris = [store_root + "h/one"] * 3
    assert s3dlio.get_many_stats(uris, max_in_flight=2) == (3, 369)
    assert asyncio.run(s3dlio.get_many_stats_async(uris)) == (3, 369)
    assert asyncio.run(s3dlio.put_async(store_root + "p/", 3, size=64)) == 3
    assert len(s3dlio.list(store_root + "p/")) == 3


@pytest.mark.parametrize("root_fixture", ["file_root", "s3_root"])
def test_mp_get(root_fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(root_fixture)
    for i in range(6):
        s3dlio.put_bytes(root + f"object_{i}.dat", bytes(100 + i))
    result = s3dlio.mp_get(root, procs=2, jobs=4, num=6)
    assert set(result) == {"total_objects", "total_bytes", "duration_seconds", "throughput_mb_s"}
    assert result["total_objects"] == 6
    assert result["total_bytes"] == sum(100 + i for i in range(6))
    assert result["duration_seconds"] > 0 and result["throughput_mb_s"] > 0
    with pytest.raises(s3dlio.BatchError):
        s3dlio.mp_get(root, procs=2, num=7)
    with pytest.raises(ValueError, match="procs"):
        s3dlio.mp_get(root, procs=0)


def test_a_token_cancels_a_loader_nobody_holds(file_root: str) -> None:
    """Regression: ``for x in create_async_loader(..., cancellation_token=tok)`` kept no
    reference to the loader, so ``tok.cancel()`` reached nothing and the pass ran on."""
    for i in range(50):
        s3dlio.put_bytes(file_root + f"c/{i:03d}", bytes(10))
    token = s3dlio.CancellationToken()
    seen = 0
    with pytest.raises(s3dlio.CancelledError):
        for _ in s3dlio.create_async_loader(
            file_root + "c/", {"prefetch": 2}, cancellation_token=token
        ):
            seen += 1
            gc.collect()  # the loader object is unreachable but for the pass
            if seen == 3:
                threading.Thread(target=token.cancel).start()
    assert seen < 50

    token2 = s3dlio.CancellationToken()

    async def run() -> int:
        n = 0
        async for _ in s3dlio.create_async_loader(
            file_root + "c/", {"batch_size": 2, "prefetch": 2}, cancellation_token=token2
        ):
            n += 1
            gc.collect()
            if n == 2:
                token2.cancel()
        return n

    with pytest.raises(s3dlio.CancelledError):
        asyncio.run(run())
