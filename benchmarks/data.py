"""Test data for the suites, written fast (a random block reused, stamped per file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["random_block", "read_back", "write_files", "write_tfrecord"]

MiB = 1 << 20
KiB = 1 << 10


def random_block(size: int, seed: int = 0) -> np.ndarray:
    """``size`` random bytes (incompressible), reproducible by ``seed``."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def write_files(directory: Path, count: int, size: int, *, prefix: str = "obj") -> list[Path]:
    """``count`` files of ``size`` bytes in ``directory``; each differs in its first 8 bytes.

    Everything is flushed to disk at the end (``sync``), so direct reads see it and no dirty
    pages are left to be written back during a measurement.
    """
    directory.mkdir(parents=True, exist_ok=True)
    block = random_block(size)
    paths = []
    width = len(str(count - 1))
    for i in range(count):
        block[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
        path = directory / f"{prefix}_{i:0{width}d}.bin"
        with open(path, "wb") as f:
            f.write(block.data)
        paths.append(path)
    os.sync()
    return paths


def _masked_crc(data: bytes | memoryview) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: Path, payloads) -> tuple[int, int]:
    """Frame ``payloads`` as TFRecords (masked CRC32C of length and data); ``(records, bytes)``.

    ``bytes`` counts payload bytes, the figure the TFRecord cases report.
    """
    import struct

    records = size = 0
    with open(path, "wb") as f:
        for payload in payloads:
            length = struct.pack("<Q", len(payload))
            f.write(length + struct.pack("<I", _masked_crc(length)))
            f.write(payload)
            f.write(struct.pack("<I", _masked_crc(payload)))
            records += 1
            size += len(payload)
    os.sync()
    read_back(path)
    return records, size


def read_back(path: Path) -> None:
    """Drop ``path`` from the page cache and read it once, as a dataset read before (an earlier
    epoch) is cached: pages a program wrote stay cached in the sizes of its writes (4 KiB pages
    for a file written record by record, costly to copy and to map), pages read from disk come
    in readahead's large folios."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages after the sync
        while os.read(fd, 8 * MiB):
            pass
    finally:
        os.close(fd)


def example_payloads(count: int, image_bytes: int, seed: int = 0):
    """``tf.train.Example`` protos: an ``image`` bytes feature and an int64 ``label``."""
    from tfrecord import example_pb2

    image = random_block(image_bytes, seed).tobytes()
    for i in range(count):
        example = example_pb2.Example()
        features = example.features.feature
        features["image"].bytes_list.value.append(image)
        features["label"].int64_list.value.append(i % 1000)
        yield example.SerializeToString()


def raw_payloads(count: int, size: int, seed: int = 0):
    """``count`` random payloads of ``size`` bytes (the same block, stamped per record)."""
    block = random_block(size, seed)
    for i in range(count):
        block[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
        yield block.tobytes()
