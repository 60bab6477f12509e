"""Helpers shared by contender files (stdlib only: both venvs import this)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def files_in(directory: str) -> list[str]:
    """Regular files directly in ``directory``, sorted, as absolute paths."""
    return sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if os.path.isfile(os.path.join(directory, name)) and not name.startswith(".")
    )


def uris(directory: str, scheme: str) -> list[str]:
    """``scheme://`` URIs of the files in ``directory``."""
    return [f"{scheme}://{path}" for path in files_in(directory)]


def nbytes(item: Any) -> int:
    """Bytes in a fetched item: a buffer, a ``(uri, buffer)`` pair, or a list of those."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        item = item[1]
    if isinstance(item, list):
        return sum(nbytes(x) for x in item)
    try:
        return memoryview(item).nbytes
    except TypeError:
        return len(item)


def total(items: Iterable[Any]) -> tuple[int, int]:
    """``(bytes, count)`` over fetched items."""
    size = count = 0
    for item in items:
        size += nbytes(item)
        count += len(item) if isinstance(item, list) else 1
    return size, count


def result(size: int, count: int, **extra: Any) -> dict[str, Any]:
    """A round's answer."""
    return {"bytes": size, "objects": count, **extra}


def check(got: int, expected: int, what: str) -> None:
    """Fail the round if a contender moved the wrong amount (bytes, records, samples)."""
    if expected and got != expected:
        raise RuntimeError(f"{what}: got {got}, expected {expected}")
