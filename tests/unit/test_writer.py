"""Streaming writers over every backend in the contract fixtures: parts, zstd, checksums, abort."""

from __future__ import annotations

import crc32c
import numpy as np
import pytest
import zstandard

import s3dlio
from s3dlio import WriterOptions


def _chunks(total: int, step: int, seed: int = 0) -> list[bytes]:
    data = bytes(s3dlio.generate_data(total, compress=3, seed=seed))
    return [data[i : i + step] for i in range(0, total, step)]


def test_multi_part_write(store_root: str) -> None:
    chunks = _chunks(13 * 2**20 + 123, 1_000_003)
    opts = WriterOptions(part_size="5MiB", max_in_flight=2)
    with s3dlio.open_writer(store_root + "w/big.bin", opts) as writer:
        for chunk in chunks:
            writer.write_chunk(chunk)
    whole = b"".join(chunks)
    assert writer.finalize() == (len(whole), len(whole))
    assert writer.checksum() == f"crc32c:{crc32c.crc32c(whole):08x}"
    assert s3dlio.get(store_root + "w/big.bin") == whole


def test_small_object_single_put(store_root: str) -> None:
    writer = s3dlio.open_writer(store_root + "w/small.bin")
    writer.write(b"abc")
    writer.write(memoryview(b"def"))
    writer.write(np.array([1], dtype=np.uint8))
    assert writer.finalize() == (7, 7)
    assert s3dlio.get(store_root + "w/small.bin") == b"abcdef\x01"
    assert writer.finalize() == (7, 7)  # idempotent


def test_zstd_writer(store_root: str) -> None:
    opts = WriterOptions()
    opts.compression = "zstd"
    opts.compression_level = 3
    opts.part_size = "5MiB"
    chunks = _chunks(12 * 2**20, 2**20)
    writer = s3dlio.open_writer(store_root + "w/data.bin", opts)
    for chunk in chunks:
        writer.write_chunk(chunk)
    written, stored = writer.finalize()
    assert writer.uri.key.endswith("data.bin.zst")
    assert s3dlio.list(store_root + "w/") == [store_root + "w/data.bin.zst"]
    raw = s3dlio.get(store_root + "w/data.bin.zst")
    assert written == 12 * 2**20 and stored == len(raw) < written
    assert zstandard.ZstdDecompressor().decompressobj().decompress(bytes(raw)) == b"".join(chunks)
    assert writer.checksum() == f"crc32c:{crc32c.crc32c(b''.join(chunks)):08x}"


def test_with_compression_builder(store_root: str) -> None:
    opts = s3dlio.PyWriterOptions().with_compression("zstd", 5)
    assert (opts.compression, opts.compression_level) == ("zstd", 5)
    with s3dlio.open_writer(store_root + "w/already.zst", opts) as writer:
        writer.write(b"x" * 1000)
    assert s3dlio.list(store_root + "w/") == [store_root + "w/already.zst"]


def test_exception_in_with_leaves_nothing(store_root: str) -> None:
    target = store_root + "w/failed.bin"
    with pytest.raises(RuntimeError, match="boom"):
        with s3dlio.open_writer(target, WriterOptions(part_size="5MiB")) as writer:
            for chunk in _chunks(12 * 2**20, 2**20):
                writer.write(chunk)
            raise RuntimeError("boom")
    assert not s3dlio.exists(target)
    assert s3dlio.list(store_root, recursive=True) == []


def test_abort_leaves_nothing(store_root: str) -> None:
    writer = s3dlio.open_writer(store_root + "w/aborted.bin", WriterOptions(part_size="5MiB"))
    for chunk in _chunks(11 * 2**20, 2**20):
        writer.write(chunk)
    writer.abort()
    writer.abort()
    assert s3dlio.list(store_root, recursive=True) == []
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_overwrite_is_atomic(store_root: str) -> None:
    target = store_root + "w/atomic.bin"
    s3dlio.put_bytes(target, b"old contents")
    writer = s3dlio.open_writer(target, WriterOptions(part_size="5MiB"))
    for chunk in _chunks(11 * 2**20, 2**20):
        writer.write(chunk)
        assert s3dlio.get(target) == b"old contents"
    writer.finalize()
    assert len(s3dlio.get(target)) == 11 * 2**20


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        s3dlio.open_writer("file:///tmp/x", WriterOptions(compression="lz4"))
    with pytest.raises(ValueError):
        s3dlio.open_writer("file:///tmp/x", WriterOptions(compression_level=99))
    with pytest.raises(ValueError):
        s3dlio.open_writer("file:///tmp/dir/")


def test_create_writer_functions(disk_dir) -> None:  # type: ignore[no-untyped-def]
    with s3dlio.create_filesystem_writer(f"file://{disk_dir}/a.bin") as w:
        w.write(b"file")
    with s3dlio.create_direct_filesystem_writer(f"direct://{disk_dir}/b.bin") as w:
        w.write(b"direct" * 1000)
    assert s3dlio.get(f"file://{disk_dir}/a.bin") == b"file"
    assert s3dlio.get(f"file://{disk_dir}/b.bin") == b"direct" * 1000
    with pytest.raises(ValueError):
        s3dlio.create_s3_writer(f"file://{disk_dir}/c.bin")


def test_torch_save_into_writer(store_root: str) -> None:
    torch = pytest.importorskip("torch")
    tensors = {"w": torch.arange(10_000, dtype=torch.float32)}
    with s3dlio.open_writer(store_root + "w/model.pt") as writer:
        torch.save(tensors, writer)
    import io

    loaded = torch.load(io.BytesIO(bytes(s3dlio.get(store_root + "w/model.pt"))))
    assert torch.equal(loaded["w"], tensors["w"])
