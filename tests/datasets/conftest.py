"""Fixtures for the dataset and loader tests: populated prefixes and a slow local backend."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from slowstore import SlowFileStore

import s3dlio
from s3dlio.io.store import backend_for, register_backend

N_OBJECTS = 24


def payload(index: int, size: int | None = None) -> bytes:
    """Object ``index``: its number in 8 bytes, then filler (sizes differ per object)."""
    size = 100 + 37 * index if size is None else size
    return struct.pack("<Q", index) + bytes([index % 251]) * (size - 8)


def ident(buf: object) -> int:
    """The number written by :func:`payload` (from bytes, a BytesView, an array or a tensor)."""
    if hasattr(buf, "numpy"):
        buf = buf.numpy()  # type: ignore[union-attr]
    return struct.unpack_from("<Q", memoryview(buf).cast("B")[:8])[0]  # type: ignore[arg-type]


def populate(prefix: str, count: int, size: int | None = None) -> str:
    """Write ``count`` objects below ``prefix`` + ``"d/"``; return that prefix."""
    root = prefix + "d/"
    s3dlio.put_many({f"{root}obj-{i:05d}.bin": payload(i, size) for i in range(count)})
    return root


def write_files(directory: Path, count: int, size: int | None = None) -> str:
    """Write ``count`` objects as plain files into ``directory`` (quicker for many small
    ones); return the directory as a ``slowfile://`` prefix."""
    for i in range(count):
        (directory / f"obj-{i:05d}.bin").write_bytes(payload(i, size))
    return f"slowfile://{directory}/"


@pytest.fixture
def objects(store_root: str) -> tuple[str, int]:
    """``(prefix, count)``: :data:`N_OBJECTS` objects of different sizes on each backend."""
    return populate(store_root, N_OBJECTS), N_OBJECTS


@pytest.fixture
def local_objects(file_root: str) -> tuple[str, int]:
    """``(prefix, count)``: 40 objects on ``file://``."""
    return populate(file_root, 40), 40


@pytest.fixture
def slow_store() -> Iterator[SlowFileStore]:
    """The ``slowfile://`` backend (the file backend with per-request latency), reset after."""
    register_backend("slowfile", SlowFileStore)
    store = backend_for("slowfile:///")
    assert isinstance(store, SlowFileStore)
    yield store
    store.configure(latency=0.0, capacity=None)


@pytest.fixture
def loader_threads() -> Iterator[set[threading.Thread]]:
    """The loader threads alive before the test (to tell new ones apart)."""
    yield {t for t in threading.enumerate() if t.name.startswith("s3dlio-loader")}


def new_loader_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Loader threads started since ``before`` that are still alive."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("s3dlio-loader") and t not in before and t.is_alive()
    ]


def join_all(threads: list[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join ``threads`` within ``timeout`` seconds in total; return those still alive."""
    import time

    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threads if t.is_alive()]
