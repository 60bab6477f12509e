"""Test data for the suites, written fast (a random block reused, stamped per file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["random_block", "write_files"]

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
