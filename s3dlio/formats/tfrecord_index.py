"""TFRecord index files, byte-identical to DALI's and the ``tfrecord`` package's ``tfrecord2idx``.

An index is text, one line per record: ``"{offset} {size}\\n"``, where ``offset`` is where the
record's frame starts and ``size`` is the whole frame (16 bytes of framing plus the data). With
it, record *i* is one range request. The functions here work on any URI (and bare local paths);
the default index of ``uri`` is ``uri + ".idx"`` on the same backend.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..io import ops
from ..io.buffers import as_readonly_view
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from .blocks import BlockSource, FetchStats, Window
from .framing import HEADER, OVERHEAD, scan_windows

__all__ = [
    "create_tfrecord_index",
    "default_index_uri",
    "format_index",
    "get_tfrecord_index_entries",
    "index_tfrecord_bytes",
    "load_index",
    "parse_index",
    "read_tfrecord_index",
]

URI = str | ObjectURI | os.PathLike[str]


def default_index_uri(uri: URI) -> ObjectURI:
    """``uri + ".idx"`` on the same backend."""
    parsed = parse_uri(uri, allow_bare=True)
    return parsed.with_key(parsed.key + ".idx")


def _entries(windows: Any, uri: str, limit: Any = None, expect: Any = None) -> np.ndarray:
    """``(n, 2)`` int64 array of ``(offset, size)`` of every record of a stream of windows."""
    chunks = []
    for _, segments, delta in scan_windows(
        windows, uri=uri, check_header=True, limit=limit, expect=expect
    ):
        table = np.array(segments, dtype=np.int64).reshape(-1, 3)
        counts, sizes = table[:, 1], table[:, 2] + OVERHEAD
        run_of = np.repeat(np.arange(len(table)), counts)
        step = np.arange(int(counts.sum())) - (np.cumsum(counts) - counts)[run_of]
        block = np.empty((len(run_of), 2), np.int64)
        block[:, 0] = table[run_of, 0] + delta - HEADER + step * sizes[run_of]
        block[:, 1] = sizes[run_of]
        chunks.append(block)
    if not chunks:
        return np.empty((0, 2), np.int64)
    return np.concatenate(chunks)


def _buffer_entries(buffer: Any, uri: str = "<buffer>") -> np.ndarray:
    view = as_readonly_view(buffer, what="tfrecord_bytes")
    window: Window = (view, 0, len(view))  # type: ignore[assignment]
    return _entries([window], uri, limit=lambda: len(view))


def format_index(entries: Any) -> str:
    """Index text (``"{offset} {size}\\n"`` lines) for ``(offset, size)`` pairs."""
    return "".join(f"{offset} {size}\n" for offset, size in np.asarray(entries).tolist())


def parse_index(text: str | bytes, *, uri: str = "<index>") -> np.ndarray:
    """The ``(n, 2)`` int64 array of ``(offset, size)`` in index text.

    Lines may hold more columns (only the first two are used, as the ``tfrecord`` package does).

    Raises:
        InvalidArgumentError: the text is not an index.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("ascii", errors="replace")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    try:
        out = np.array([(int(r[0]), int(r[1])) for r in rows], dtype=np.int64).reshape(-1, 2)
    except (ValueError, IndexError):
        raise InvalidArgumentError(
            "not a TFRecord index (expected 'offset size' lines)", uri=uri
        ) from None
    if len(out) and ((out < 0).any() or (out[:, 1] < OVERHEAD).any()):
        raise InvalidArgumentError(
            "not a TFRecord index (negative offset or short record)", uri=uri
        )
    return out


def load_index(index_uri: URI, *, client: HasStores | None = None) -> np.ndarray:
    """Read an index object (any URI or local path) as an ``(n, 2)`` int64 array."""
    parsed = parse_uri(index_uri, allow_bare=True)
    return parse_index(bytes(ops.get(parsed, client)), uri=str(parsed))


def read_tfrecord_index(index_path: URI) -> list[tuple[int, int]]:
    """Read an index file (any URI or local path) as ``[(offset, size), ...]``."""
    return [(int(o), int(s)) for o, s in load_index(index_path).tolist()]


def get_tfrecord_index_entries(tfrecord_bytes: Any) -> list[tuple[int, int]]:
    """``[(offset, size), ...]`` of the records in an in-memory TFRecord file.

    Raises:
        IntegrityError: a corrupt length field, or the data ends inside a record.
    """
    return [(int(o), int(s)) for o, s in _buffer_entries(tfrecord_bytes).tolist()]


def index_tfrecord_bytes(tfrecord_bytes: Any) -> str:
    """Index text for an in-memory TFRecord file (identical to ``tfrecord2idx`` output)."""
    return format_index(_buffer_entries(tfrecord_bytes))


def scan_index(
    uri: URI,
    *,
    block_size: int | None = None,
    stats: FetchStats | None = None,
    client: HasStores | None = None,
) -> np.ndarray:
    """Build the ``(n, 2)`` index array of a TFRecord object by streaming through it once."""
    parsed = parse_uri(uri, allow_bare=True)
    source = BlockSource(
        parsed,
        block_size=block_size,
        stats=stats,
        announced=True,
        backend=backend_for(parsed, client),
    )
    return _entries(source, str(parsed), limit=lambda: source.size, expect=source.expect)


def create_tfrecord_index(
    tfrecord_path: URI, index_path: URI | None = None, *, client: HasStores | None = None
) -> int:
    """Write the index of a TFRecord object (any URI or local path); return the record count.

    Args:
        tfrecord_path: The TFRecord object.
        index_path: Where to write the index; default ``tfrecord_path + ".idx"``.
        client: The :class:`s3dlio.Client` to go through (default: the default client).

    Raises:
        IntegrityError: a corrupt length field, or the object ends inside a record.
    """
    entries = scan_index(tfrecord_path, client=client)
    target = (
        parse_uri(index_path, allow_bare=True) if index_path else default_index_uri(tfrecord_path)
    )
    ops.put(target, memoryview(format_index(entries).encode("ascii")), client=client)
    return len(entries)
