"""Synthetic data: sizes, reproducibility, dedup and compression ratios."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import zstandard

import s3dlio
from s3dlio.io.datagen import BLOCK_SIZE


def _unique_blocks(data: bytes) -> int:
    return len(
        {hashlib.sha1(data[i : i + BLOCK_SIZE]).digest() for i in range(0, len(data), BLOCK_SIZE)}
    )


@pytest.mark.parametrize("size", [0, 1, 4095, BLOCK_SIZE, 3 * BLOCK_SIZE + 17])
def test_sizes(size: int) -> None:
    assert len(s3dlio.generate_data(size)) == size


def test_seed_reproducible() -> None:
    assert s3dlio.generate_data(3 * BLOCK_SIZE, seed=7) == s3dlio.generate_data(
        3 * BLOCK_SIZE, seed=7
    )
    assert s3dlio.generate_data(BLOCK_SIZE, seed=7) != s3dlio.generate_data(BLOCK_SIZE, seed=8)
    assert s3dlio.generate_data(BLOCK_SIZE) != s3dlio.generate_data(BLOCK_SIZE)


@pytest.mark.parametrize("dedup", [1, 2, 3, 8])
def test_dedup(dedup: int) -> None:
    blocks = 8
    data = bytes(s3dlio.generate_data(blocks * BLOCK_SIZE, dedup=dedup, seed=1))
    assert _unique_blocks(data) == -(-blocks // dedup)


@pytest.mark.parametrize("compress", [1, 2, 4, 8])
def test_compression_ratio(compress: int) -> None:
    data = bytes(s3dlio.generate_data(8 * BLOCK_SIZE, compress=compress, seed=2))
    ratio = len(data) / len(zstandard.ZstdCompressor(level=3).compress(data))
    assert compress * 0.8 <= ratio <= compress * 1.25, ratio


def test_streaming_generator_matches_one_shot() -> None:
    size = 5 * BLOCK_SIZE + 1234
    whole = s3dlio.generate_data(size, dedup=2, compress=2, seed=11)
    gen = s3dlio.Generator(size, dedup=2, compress=2, seed=11)
    buf = bytearray(777_777)
    parts = []
    while not gen.is_complete():
        n = gen.fill_chunk(buf)
        parts.append(bytes(buf[:n]))
    assert gen.fill_chunk(buf) == 0
    assert b"".join(parts) == whole
    gen.reset()
    assert b"".join(bytes(c) for c in gen) == whole


def test_generate_into_numpy() -> None:
    arr = np.zeros(10_000, dtype=np.float64)
    assert s3dlio.generate_into_buffer(arr, seed=1) == 80_000
    assert np.count_nonzero(arr) > 9000


def test_bad_factors() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            s3dlio.generate_data(10, dedup=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            s3dlio.generate_data(10, compress=bad)  # type: ignore[arg-type]
