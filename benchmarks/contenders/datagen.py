"""Synthetic data generation: ``generate_data`` and ``generate_into_buffer`` (ours or the
original's, by venv), and the machine's memory write rate as a limit."""

from __future__ import annotations

from _common import result


def generate_data(params: dict) -> object:
    """``calls`` x ``generate_data(size, dedup, compress)``, a new buffer each time."""
    import s3dlio

    size, calls = params["size"], params["calls"]
    dedup, compress = params.get("dedup", 1), params.get("compress", 1)

    def run() -> dict:
        moved = 0
        for _ in range(calls):
            moved += len(memoryview(s3dlio.generate_data(size, dedup, compress)))
        return result(moved, calls)

    return run


def generate_into_buffer(params: dict) -> object:
    """``calls`` x ``generate_into_buffer(buf)`` into one reused buffer."""
    import s3dlio

    buf = bytearray(params["size"])
    calls = params["calls"]
    dedup, compress = params.get("dedup", 1), params.get("compress", 1)

    def run() -> dict:
        moved = sum(s3dlio.generate_into_buffer(buf, dedup, compress) for _ in range(calls))
        return result(moved, calls)

    return run


def memory_fill(params: dict) -> object:
    """NumPy writing a constant over the same reused buffer: the memory write bandwidth."""
    import numpy as np

    buf = np.empty(params["size"], np.uint8)
    calls = params["calls"]

    def run() -> dict:
        for i in range(calls):
            buf.fill(i & 0xFF)
        return result(buf.nbytes * calls, calls)

    return run
