"""Synthetic Parquet files: the original's generators, written with pyarrow.

Columns are ``float32`` and never null, uncompressed and without dictionaries or statistics
(as the original writes them): ``generate_parquet_bytes(num_cols, ...)`` names them ``col0``,
``col1``...; ``generate_parquet_bytes_schema(columns, ...)`` takes ``(name, n)`` pairs, ``n == 1``
a scalar column, ``n > 1`` a ``FixedSizeList<float32>[n]`` (an embedding). Values are uniform
in ``[0, 1)`` (seeded by ``seed``, else fresh).

``generate_and_write_parquet_streaming`` (and the original's
``generate_and_write_parquet_schema_streaming``) writes through :func:`s3dlio.open_writer`
(multipart / staged blocks / resumable upload / temp file) while a helper thread generates
the next row group, so memory stays at a few row groups whatever the file size.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InvalidArgumentError
from ..io import ops
from ..io.buffers import BytesView
from ..io.store import HasStores
from ..io.uri import ObjectURI, parse_uri
from ..io.writer import WriterOptions, open_writer

__all__ = [
    "generate_and_write_parquet",
    "generate_and_write_parquet_schema",
    "generate_and_write_parquet_schema_streaming",
    "generate_and_write_parquet_streaming",
    "generate_parquet_bytes",
    "generate_parquet_bytes_schema",
    "parquet_for_size",
]

URI = str | ObjectURI | os.PathLike[str]
Columns = Sequence[tuple[str, int]]
#: pyarrow writer settings matching the original's files.
_WRITE = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def _columns(columns: Columns) -> list[tuple[str, int]]:
    out = []
    for entry in columns:
        try:
            name, n = entry
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"a column is (name, n), not {entry!r}") from None
        if not isinstance(name, str) or not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidArgumentError(f"a column is (name: str, n >= 1), not {entry!r}")
        out.append((name, n))
    if not out:
        raise InvalidArgumentError("at least one column is needed")
    if len({name for name, _ in out}) != len(out):
        raise InvalidArgumentError(f"duplicate column names in {[n for n, _ in out]}")
    return out


def _check_sizes(rows_per_rg: int, num_row_groups: int) -> None:
    for name, value in (("rows_per_rg", rows_per_rg), ("num_row_groups", num_row_groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}")


def _schema(columns: list[tuple[str, int]]) -> Any:
    f32 = pa.float32()
    return pa.schema(
        [
            pa.field(
                name,
                f32 if n == 1 else pa.list_(pa.field("element", f32, nullable=False), n),
                nullable=False,
            )
            for name, n in columns
        ]
    )


def _row_groups(
    columns: list[tuple[str, int]], rows: int, count: int, seed: int | None
) -> Iterator[Any]:
    """``count`` tables of ``rows`` rows each."""
    schema = _schema(columns)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        arrays = []
        for (_, n), field in zip(columns, schema, strict=True):
            values = pa.array(rng.random(rows * n, dtype=np.float32))
            if n == 1:
                arrays.append(values)
            else:
                arrays.append(pa.FixedSizeListArray.from_arrays(values, type=field.type))
        yield pa.Table.from_arrays(arrays, schema=schema)


def generate_parquet_bytes_schema(
    columns: Columns, rows_per_rg: int, num_row_groups: int, *, seed: int | None = None
) -> BytesView:
    """A Parquet file in memory with named columns (see the module docstring).

    Args:
        columns: ``[(name, n), ...]``: ``n == 1`` a ``float32`` column, ``n > 1`` a
            ``FixedSizeList<float32>[n]`` column.
        rows_per_rg: Rows per row group.
        num_row_groups: Row groups.
        seed: Make the values reproducible.

    Returns:
        The file's bytes as a :class:`~s3dlio.BytesView`.
    """
    cols = _columns(columns)
    _check_sizes(rows_per_rg, num_row_groups)
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, _schema(cols), **_WRITE) as writer:
        for table in _row_groups(cols, rows_per_rg, num_row_groups, seed):
            writer.write_table(table, row_group_size=rows_per_rg)
    buf = sink.getvalue()
    out = BytesView.allocate(buf.size)
    memoryview(out)[:] = memoryview(buf).cast("B")
    return out


def generate_parquet_bytes(
    num_cols: int, rows_per_rg: int, num_row_groups: int, *, seed: int | None = None
) -> BytesView:
    """A Parquet file in memory of ``num_cols`` ``float32`` columns ``col0``, ``col1``...

    Returns:
        The file's bytes as a :class:`~s3dlio.BytesView`.
    """
    if not isinstance(num_cols, int) or isinstance(num_cols, bool) or num_cols < 1:
        raise InvalidArgumentError(f"num_cols must be an int >= 1, got {num_cols!r}")
    cols = [(f"col{i}", 1) for i in range(num_cols)]
    return generate_parquet_bytes_schema(cols, rows_per_rg, num_row_groups, seed=seed)


def generate_and_write_parquet_schema(
    uri: URI,
    columns: Columns,
    rows_per_rg: int,
    num_row_groups: int,
    *,
    seed: int | None = None,
    client: HasStores | None = None,
) -> None:
    """Generate a named-schema Parquet file and store it at ``uri`` (any backend), in one PUT."""
    data = generate_parquet_bytes_schema(columns, rows_per_rg, num_row_groups, seed=seed)
    ops.put(parse_uri(uri, allow_bare=True), memoryview(data), client=client)


def generate_and_write_parquet(
    uri: URI,
    num_cols: int,
    rows_per_rg: int,
    num_row_groups: int,
    *,
    seed: int | None = None,
    client: HasStores | None = None,
) -> None:
    """Generate a Parquet file of ``num_cols`` ``float32`` columns and store it at ``uri``."""
    data = generate_parquet_bytes(num_cols, rows_per_rg, num_row_groups, seed=seed)
    ops.put(parse_uri(uri, allow_bare=True), memoryview(data), client=client)


_DONE = object()


def generate_and_write_parquet_schema_streaming(
    uri: URI,
    columns: Columns,
    rows_per_rg: int,
    num_row_groups: int,
    *,
    seed: int | None = None,
    client: HasStores | None = None,
    options: WriterOptions | None = None,
) -> int:
    """Generate a named-schema Parquet file and stream it to ``uri``, one row group at a time.

    A helper thread generates row group ``k + 1`` while row group ``k`` is encoded and sent
    through a streaming writer (parts upload as they fill), so memory holds about two row
    groups and the writer's parts in flight, not the file. Works on every backend. Nothing
    is visible at ``uri`` until the file is complete; an error leaves no object.

    Returns:
        The file's size in bytes.
    """
    cols = _columns(columns)
    _check_sizes(rows_per_rg, num_row_groups)
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for table in _row_groups(cols, rows_per_rg, num_row_groups, seed):
                while not stop.is_set():
                    try:
                        ready.put(table, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
            ready.put(exc)

    producer = threading.Thread(target=produce, name="s3dlio-parquet-gen", daemon=True)
    writer = open_writer(parse_uri(uri, allow_bare=True), options, client=client)
    producer.start()
    try:
        sink = pa.PythonFile(writer, mode="w")
        with pq.ParquetWriter(sink, _schema(cols), **_WRITE) as pwriter:
            while (table := ready.get()) is not _DONE:
                if isinstance(table, BaseException):
                    raise table
                pwriter.write_table(table, row_group_size=rows_per_rg)
                del table
        written, _ = writer.finalize()
        return written
    except BaseException:
        writer.abort()
        raise
    finally:
        stop.set()
        producer.join(timeout=10)


def generate_and_write_parquet_streaming(
    uri: URI,
    num_cols: int,
    rows_per_rg: int,
    num_row_groups: int,
    *,
    seed: int | None = None,
    client: HasStores | None = None,
    options: WriterOptions | None = None,
) -> int:
    """:func:`generate_and_write_parquet_schema_streaming` with ``num_cols`` ``float32``
    columns ``col0``, ``col1``...; returns the file's size."""
    if not isinstance(num_cols, int) or isinstance(num_cols, bool) or num_cols < 1:
        raise InvalidArgumentError(f"num_cols must be an int >= 1, got {num_cols!r}")
    return generate_and_write_parquet_schema_streaming(
        uri,
        [(f"col{i}", 1) for i in range(num_cols)],
        rows_per_rg,
        num_row_groups,
        seed=seed,
        client=client,
        options=options,
    )


def parquet_for_size(size: int, *, num_cols: int = 8, seed: int | None = None) -> BytesView:
    """A Parquet file of ``num_cols`` ``float32`` columns holding about ``size`` bytes of
    values, in row groups of about 1 MiB (what ``put(object_type="parquet")`` stores)."""
    rows = max(1, size // (4 * num_cols))
    per_rg = min(rows, max(1, (1 << 20) // (4 * num_cols)))
    return generate_parquet_bytes(num_cols, per_rg, -(-rows // per_rg), seed=seed)
