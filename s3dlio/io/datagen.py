"""Synthetic data with a chosen deduplication and compression ratio.

Data is made of 1 MiB blocks. ``dedup=N`` leaves ``ceil(blocks / N)`` distinct blocks (block
``i`` repeats distinct block ``i % unique``); ``compress=N`` makes each block compress about N:1
with zstd (in every 4 KiB, ``4096 / N`` bytes are random and the rest a repeating fill). A seed
makes the output reproducible; without one every call differs.

Fast by construction: one random base block per generator, and each distinct block is that base
XOR-ed with its own 64-bit key, a vectorised NumPy pass that releases the GIL, so the blocks of a
large request are filled in parallel straight into the output buffer.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, InvalidArgumentError
from .buffers import BytesView, as_readonly_view
from .config import MiB, parse_size
from .executor import run_claimed

__all__ = ["BLOCK_SIZE", "Generator", "generate_data", "generate_into_buffer"]

BLOCK_SIZE = MiB
_PAGE = 4096


def _check(dedup: int, compress: int) -> None:
    for name, value in (("dedup", dedup), ("compress", compress)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")


class _Blocks:
    """The distinct-block recipe shared by :func:`generate_data` and :class:`Generator`."""

    def __init__(self, size: int, dedup: int, compress: int, seed: int | None) -> None:
        _check(dedup, compress)
        self.size = size
        self.blocks = max(1, -(-size // BLOCK_SIZE))
        self.unique = -(-self.blocks // dedup)
        seed = int.from_bytes(os.urandom(8), "little") if seed is None else seed
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, BLOCK_SIZE, dtype=np.uint8)
        if compress > 1:
            pages = base.reshape(-1, _PAGE)
            pages[:, max(1, _PAGE // compress) :] = 0
        self.base = base.view(np.uint64)
        self.keys = rng.integers(1, 2**63, self.unique, dtype=np.uint64)

    def fill(self, out: np.ndarray, start: int) -> None:
        """Write bytes ``[start, start + len(out))`` of the stream into ``out`` (uint8)."""
        length = len(out)
        first = start // BLOCK_SIZE
        last = (start + length - 1) // BLOCK_SIZE if length else first - 1
        count = last - first + 1
        scratch: dict[int, np.ndarray] = {}

        def one(i: int) -> None:
            block = first + i
            key = self.keys[block % self.unique]
            lo = max(start, block * BLOCK_SIZE)
            hi = min(start + length, (block + 1) * BLOCK_SIZE)
            dst = out[lo - start : hi - start]
            if hi - lo == BLOCK_SIZE:
                np.bitwise_xor(self.base, key, out=dst.view(np.uint64))
            else:  # a partial block: build it whole, copy the slice
                tmp = scratch.setdefault(i, np.empty(BLOCK_SIZE // 8, np.uint64))
                np.bitwise_xor(self.base, key, out=tmp)
                offset = lo - block * BLOCK_SIZE
                dst[:] = tmp.view(np.uint8)[offset : offset + (hi - lo)]

        aligned = (out.ctypes.data % 8) == 0
        if not aligned:  # uint64 views need 8-byte alignment: go through a bounce array
            bounce = np.empty(length, np.uint8)
            self.fill(bounce, start)
            out[:] = bounce
            return
        run_claimed(count, one, min(count, os.cpu_count() or 2))


def generate_data(
    size: int | str, dedup: int = 1, compress: int = 1, seed: int | None = None
) -> BytesView:
    """``size`` bytes of synthetic data (see the module notes for ``dedup`` and ``compress``)."""
    nbytes = parse_size(size)
    out = BytesView.allocate(nbytes)
    if nbytes:
        _Blocks(nbytes, dedup, compress, seed).fill(np.frombuffer(out, np.uint8), 0)
    return out


def generate_into_buffer(
    buffer: Any, dedup: int = 1, compress: int = 1, seed: int | None = None
) -> int:
    """Fill a writable buffer with synthetic data; returns its length."""
    view = memoryview(buffer).cast("B") if memoryview(buffer).format != "B" else memoryview(buffer)
    if view.readonly:
        raise ArgumentTypeError("buffer must be writable")
    if len(view):
        _Blocks(len(view), dedup, compress, seed).fill(np.frombuffer(view, np.uint8), 0)
    return len(view)


class Generator:
    """A stream of synthetic data produced chunk by chunk into reusable buffers.

    Args:
        size: Total bytes (``"16GiB"`` accepted).
        dedup: Deduplication factor.
        compress: Compression factor.
        seed: Seed for reproducible output.
        chunk_size: Default chunk for :meth:`get_chunk` and iteration (default 32 MiB).
    """

    def __init__(
        self,
        size: int | str,
        dedup: int = 1,
        compress: int = 1,
        seed: int | None = None,
        chunk_size: int | str | None = None,
        threads: int | None = None,
    ) -> None:
        self.size = parse_size(size)
        self._recipe = _Blocks(self.size, dedup, compress, seed)
        self.chunk_size = parse_size(chunk_size) if chunk_size else 32 * MiB
        self.position = 0

    def fill_chunk(self, buffer: Any) -> int:
        """Fill ``buffer`` with the next bytes; returns how many (0 once complete)."""
        view = as_readonly_view(buffer, what="buffer")
        if view.readonly:
            raise ArgumentTypeError("buffer must be writable")
        n = min(len(view), self.size - self.position)
        if n <= 0:
            return 0
        self._recipe.fill(np.frombuffer(view, np.uint8)[:n], self.position)
        self.position += n
        return n

    def get_chunk(self, size: int | None = None) -> BytesView:
        """The next ``size`` bytes (default :attr:`chunk_size`) in a new buffer."""
        n = min(size or self.chunk_size, self.size - self.position)
        out = BytesView.allocate(max(0, n))
        if n > 0:
            self.fill_chunk(out)
        return out

    def is_complete(self) -> bool:
        """Whether all ``size`` bytes have been produced."""
        return self.position >= self.size

    def reset(self) -> None:
        """Start again from the first byte (same data)."""
        self.position = 0

    def __iter__(self) -> Generator:
        return self

    def __next__(self) -> BytesView:
        if self.is_complete():
            raise StopIteration
        return self.get_chunk()
