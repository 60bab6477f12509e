"""``read_objects``'s Ray Data ``Datasource``: objects, record ranges and row groups fetched by
s3dlio in Ray read tasks sized by bytes.

Planning runs in the driver: the listing (with sizes) when the datasource is made, Parquet
footers and TFRecord indexes when Ray asks for read tasks. Each read task gets a contiguous
group of *units* (whole objects, TFRecord record ranges, fixed-size record ranges or Parquet
row groups) of about the task budget in bytes, and a pickled :class:`s3dlio.Client`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from ray.data.block import BlockAccessor, BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ._ray_common import (
    URI,
    Listed,
    budget_for,
    group_by_bytes,
    list_objects,
    resolve_client,
    worker_client,
)
from .client import Client
from .errors import InvalidArgumentError, NotFoundError
from .io.config import MiB
from .io.executor import bounded_map

__all__ = ["FORMATS", "ObjectsDatasource"]

#: What ``read_objects`` reads, and whether rows carry the object's URI by default.
FORMATS = {"binary": True, "raw": True, "npz": True, "tfrecord": False, "parquet": False}
#: Auto-sized tasks are not made smaller than this (explicit ``override_num_blocks`` may).
MIN_TASK_BYTES = 1 * MiB
#: A read task yields a block at least this often (bytes of objects fetched).
BLOCK_BYTES = 32 * MiB
_PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


@dataclass(frozen=True)
class Unit:
    """A piece of work of one read task: ``[start, stop)`` of one object's records or row
    groups (``stop == -1``: the whole object)."""

    uri: str
    nbytes: int
    rows: int | None = None
    start: int = 0
    stop: int = -1


@dataclass(frozen=True)
class ReadSpec:
    """What a read task needs besides its units (pickled with it)."""

    fmt: str
    client: Client
    include_paths: bool
    columns: tuple[str, ...] | None = None
    record_size: int = 0
    header: int = 0
    decode: bool = True
    max_in_flight: int = 16


class ObjectsDatasource(Datasource):
    """A Ray Data ``Datasource`` over the objects a URI selects, read through s3dlio.

    Made by :func:`s3dlio.ray.read_objects` (see it for the arguments). The listing runs when it
    is made, so a prefix selecting nothing fails at once with ``NotFoundError``.
    """

    def __init__(
        self,
        uri: URI | Sequence[URI],
        fmt: str,
        *,
        client: Client | None = None,
        target_bytes: int = 64 * MiB,
        explicit_blocks: bool = False,
        include_paths: bool | None = None,
        columns: Sequence[str] | None = None,
        record_size: int | None = None,
        header: int = 0,
        decode: bool = True,
        pattern: str | None = None,
        max_in_flight: int = 16,
    ) -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise InvalidArgumentError(
                f"format must be one of {sorted(FORMATS)}, got {fmt!r}", uri=str(uri), op="RAY"
            )
        if fmt == "raw" and not record_size:
            raise InvalidArgumentError(
                "format='raw' needs record_size (bytes per record)", uri=str(uri), op="RAY"
            )
        if columns is not None and fmt != "parquet":
            raise InvalidArgumentError("columns= is for format='parquet'", uri=str(uri), op="RAY")
        client = resolve_client(client)
        self._spec = ReadSpec(
            fmt=fmt,
            client=client,
            include_paths=FORMATS[fmt] if include_paths is None else include_paths,
            columns=None if columns is None else tuple(columns),
            record_size=record_size or 0,
            header=header,
            decode=decode,
            max_in_flight=max_in_flight,
        )
        self._target = target_bytes
        self._explicit = explicit_blocks
        self._objects = list_objects(
            uri,
            client,
            pattern=pattern,
            skip_suffixes=(".idx",) if fmt == "tfrecord" else (),
            keep_suffixes=_PARQUET_SUFFIXES if fmt == "parquet" and _is_many(uri) else (),
        )
        self._row_groups: list[Unit] | None = None

    # -- planning (driver) -----------------------------------------------------------------
    def get_name(self) -> str:
        """The name Ray shows for the read operator."""
        return f"S3dlio[{self._spec.fmt}]"

    def estimate_inmemory_data_size(self) -> int | None:
        """Bytes of the selected objects (Parquet: the row groups' uncompressed bytes)."""
        if self._spec.fmt == "parquet":
            return sum(u.nbytes for u in self._parquet_units())
        return sum(o.size for o in self._objects)

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: Any = None,
    ) -> list[ReadTask]:
        """Read tasks of about ``total / parallelism`` bytes each (auto-sized tasks stay within
        ``[1 MiB, target_bytes]``; an explicit ``override_num_blocks`` is followed)."""
        total = self.estimate_inmemory_data_size() or 0
        if self._explicit:
            budget = max(1, math.ceil(total / max(1, parallelism)))
        else:
            budget = budget_for(total, parallelism, self._target, min(MIN_TASK_BYTES, self._target))
        units = self._units(budget)
        tasks = []
        for group in group_by_bytes([u.nbytes for u in units], budget):
            chosen = units[group.start : group.stop]
            rows = [u.rows for u in chosen]
            meta = BlockMetadata(
                num_rows=None if None in rows else sum(rows),  # type: ignore[arg-type]
                size_bytes=sum(u.nbytes for u in chosen),
                input_files=list(dict.fromkeys(u.uri for u in chosen)),
                exec_stats=None,
            )
            read = partial(read_units, self._spec, chosen)
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks

    def _units(self, budget: int) -> list[Unit]:
        fmt = self._spec.fmt
        if fmt == "parquet":
            return self._parquet_units()
        if fmt == "raw":
            return [u for o in self._objects for u in self._raw_units(o, budget)]
        if fmt == "tfrecord":
            return self._tfrecord_units(budget)
        return [Unit(o.uri, o.size, 1) for o in self._objects]

    def _raw_units(self, obj: Listed, budget: int) -> Iterator[Unit]:
        size = self._spec.record_size
        count = max(0, obj.size - self._spec.header) // size
        step = max(1, budget // size)
        for start in range(0, count, step):
            stop = min(count, start + step)
            yield Unit(obj.uri, (stop - start) * size, stop - start, start, stop)

    def _tfrecord_units(self, budget: int) -> list[Unit]:
        from .formats.tfrecord_index import default_index_uri, load_index

        client = self._spec.client
        big = [o for o in self._objects if o.size > budget]

        def index_of(obj: Listed) -> np.ndarray | None:
            try:
                return load_index(default_index_uri(obj.uri), client=client)
            except NotFoundError:
                return None

        indexes = {o.uri: out.result() for o, out in bounded_map(index_of, big, 16)}
        units: list[Unit] = []
        for obj in self._objects:
            entries = indexes.get(obj.uri)
            if entries is None:
                units.append(Unit(obj.uri, obj.size))
                continue
            pieces = max(1, round(obj.size / budget))
            share = math.ceil(int(entries[:, 1].sum()) / pieces)
            for part in group_by_bytes(entries[:, 1].tolist(), share):
                nbytes = int(entries[part.start : part.stop, 1].sum())
                units.append(Unit(obj.uri, nbytes, len(part), part.start, part.stop))
        return units

    def _parquet_units(self) -> list[Unit]:
        if self._row_groups is None:
            from .formats.parquet import ParquetObject

            client = self._spec.client

            def footer(obj: Listed) -> Any:
                return ParquetObject(obj.uri, client=client).footer.metadata

            units = []
            for obj, out in bounded_map(footer, self._objects, 16):
                meta = out.result()
                for i in range(meta.num_row_groups):
                    rg = meta.row_group(i)
                    units.append(Unit(obj.uri, int(rg.total_byte_size), rg.num_rows, i, i + 1))
            self._row_groups = units
        return self._row_groups


def _is_many(uri: Any) -> bool:
    from .io.listing import has_glob
    from .io.uri import ObjectURI, parse_uri

    if not isinstance(uri, (str, ObjectURI)):
        return False
    key = parse_uri(uri, allow_bare=True).key
    return key == "" or key.endswith("/") or has_glob(key)


# -- reading (in the Ray task) ---------------------------------------------------------------


def read_units(spec: ReadSpec, units: Sequence[Unit]) -> Iterator[Any]:
    """The blocks (``pyarrow.Table``) of one read task."""
    client = worker_client(spec.client)
    reader: Callable[[ReadSpec, Client, Sequence[Unit]], Iterator[Any]] = _READERS[spec.fmt]
    for chunk in group_by_bytes([u.nbytes for u in units], BLOCK_BYTES, max_items=1024):
        yield from reader(spec, client, units[chunk.start : chunk.stop])


def _binary_array(views: Sequence[Any]) -> pa.Array:
    """A ``binary`` array of the buffers, copied once into one data buffer."""
    lengths = np.fromiter((len(v) for v in views), np.int64, len(views))
    offsets = np.zeros(len(views) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    large = offsets[-1] >= 2**31 - 1
    data = np.empty(int(offsets[-1]), np.uint8)
    for view, at, n in zip(views, offsets[:-1].tolist(), lengths.tolist(), strict=True):
        data[at : at + n] = np.frombuffer(view, np.uint8)
    kind = pa.large_binary() if large else pa.binary()
    offs = offsets if large else offsets.astype(np.int32)
    return pa.Array.from_buffers(kind, len(views), [None, pa.py_buffer(offs), pa.py_buffer(data)])


def _with_paths(spec: ReadSpec, paths: list[str], columns: dict[str, Any]) -> pa.Table:
    if spec.include_paths:
        columns = {"path": pa.array(paths, pa.string()), **columns}
    return pa.table(columns)


def _read_binary(spec: ReadSpec, client: Client, units: Sequence[Unit]) -> Iterator[Any]:
    got = client.get_many([u.uri for u in units], spec.max_in_flight)
    yield _with_paths(spec, [u for u, _ in got], {"bytes": _binary_array([d for _, d in got])})


def _read_raw(spec: ReadSpec, client: Client, units: Sequence[Unit]) -> Iterator[Any]:
    size = spec.record_size

    def fetch(unit: Unit) -> Any:
        return client.get_range(unit.uri, spec.header + unit.start * size, unit.nbytes)

    for unit, out in bounded_map(fetch, units, spec.max_in_flight):
        data = np.frombuffer(out.result(), np.uint8)
        count = len(data) // size
        offsets = pa.py_buffer((np.arange(count + 1, dtype=np.int64) * size).astype(np.int32))
        records = pa.Array.from_buffers(
            pa.binary(), count, [None, offsets, pa.py_buffer(data[: count * size])]
        )
        index = pa.array(np.arange(unit.start, unit.start + count, dtype=np.int64))
        yield _with_paths(spec, [unit.uri] * count, {"index": index, "bytes": records})


def _read_npz(spec: ReadSpec, client: Client, units: Sequence[Unit]) -> Iterator[Any]:
    from .formats.npz import NpzFile

    def load(unit: Unit) -> dict[str, np.ndarray]:
        return NpzFile(unit.uri, client=client).load()

    loaded = [(u.uri, out.result()) for u, out in bounded_map(load, units, spec.max_in_flight)]
    names = list(dict.fromkeys(name for _, arrays in loaded for name in arrays))
    batch: dict[str, Any] = {}
    if spec.include_paths:
        batch["path"] = np.array([uri for uri, _ in loaded], dtype=object)
    for name in names:
        batch[name] = _tensor_column([arrays.get(name) for _, arrays in loaded], name)
    yield BlockAccessor.batch_to_block(batch)


def _tensor_column(values: list[np.ndarray | None], name: str) -> np.ndarray:
    """One column of arrays: stacked when they all have one shape and dtype, else ragged."""
    if any(v is None for v in values):
        raise InvalidArgumentError(f"array {name!r} is missing from some NPZ objects", op="GET")
    first = values[0]
    assert first is not None
    if all(v.shape == first.shape and v.dtype == first.dtype for v in values):  # type: ignore[union-attr]
        return np.stack(values)  # type: ignore[arg-type]
    ragged = np.empty(len(values), dtype=object)
    ragged[:] = values
    return ragged


def _read_tfrecord(spec: ReadSpec, client: Client, units: Sequence[Unit]) -> Iterator[Any]:
    from .formats.tfrecord import TFRecordReader

    for unit in units:
        ranged = unit.stop >= 0  # a record range: the reader takes offsets from uri + ".idx"
        reader = TFRecordReader(unit.uri, index=True if ranged else None, client=client)
        records = reader.iter_records(unit.start, unit.stop) if ranged else iter(reader)
        batch: list[bytes] = []
        held = 0
        for record in records:
            batch.append(bytes(record))
            held += len(record)
            if held >= BLOCK_BYTES:
                yield _tfrecord_block(spec, unit.uri, batch)
                batch, held = [], 0
        if batch:
            yield _tfrecord_block(spec, unit.uri, batch)


def _tfrecord_block(spec: ReadSpec, uri: str, records: list[bytes]) -> pa.Table:
    if not spec.decode:
        return _with_paths(spec, [uri] * len(records), {"bytes": pa.array(records, pa.binary())})
    from .formats.example import decode_example

    examples = [decode_example(r) for r in records]
    names = list(dict.fromkeys(name for ex in examples for name in ex))
    columns = {name: _feature_column([ex.get(name) for ex in examples]) for name in names}
    return _with_paths(spec, [uri] * len(records), columns)


def _feature_column(values: list[np.ndarray | None]) -> pa.Array:
    """A feature as a column: scalars when every record has exactly one value, else lists."""
    if all(v is not None and len(v) == 1 for v in values):
        return pa.array([v[0].item() if v.dtype != object else v[0] for v in values])  # type: ignore[index,union-attr]
    return pa.array([None if v is None else v.tolist() for v in values])


def _read_parquet(spec: ReadSpec, client: Client, units: Sequence[Unit]) -> Iterator[Any]:
    from .formats.parquet import read_row_group

    def one(unit: Unit) -> Any:
        cols = None if spec.columns is None else list(spec.columns)
        return read_row_group(unit.uri, unit.start, cols, client=client)

    for unit, out in bounded_map(one, units, min(4, spec.max_in_flight)):
        table = out.result()
        if spec.include_paths:
            table = table.add_column(0, "path", pa.array([unit.uri] * table.num_rows, pa.string()))
        yield table


_READERS: dict[str, Callable[[ReadSpec, Client, Sequence[Unit]], Iterator[Any]]] = {
    "binary": _read_binary,
    "raw": _read_raw,
    "npz": _read_npz,
    "tfrecord": _read_tfrecord,
    "parquet": _read_parquet,
}
