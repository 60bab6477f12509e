"""The Parquet loader: one item per row group, sharded, shuffled and resumable like every loader.

``create_async_loader(prefix, {"format": "parquet", ...})`` comes here::

    opts = {"format": "parquet", "decode": "raw", "columns": ["x", "y"], "shuffle": True}
    with s3dlio.create_async_loader("s3://bucket/train/", opts) as loader:
        for item in loader:            # PyParquetItem: file_uri, rg_idx, byte_count, data
            table = item.table()       # (decode="arrow"/"table") the row group as pyarrow

The row groups of every Parquet object the URI selects (footers read concurrently through the
footer cache) form the dataset; one :class:`~s3dlio.datasets.sampling.EpochSampler` orders and
shards them, so ranks and DataLoader workers see each row group once per epoch and
``state_dict`` / ``load_state_dict`` resume exactly. Row groups are fetched ``prefetch`` ahead,
each with the coalesced range requests of :mod:`s3dlio.formats.parquet`.

``decode``: ``"raw"`` (default, as the original): the bytes from the first to the end of the
last selected column chunk; ``"arrow"``: Arrow IPC stream bytes; ``"table"``: a
``pyarrow.Table``; ``"numpy"``: ``{column: numpy array}`` (see :func:`table_to_numpy`; what
JAX takes: ``jax.tree_util.tree_map(jnp.asarray, item.data)``).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InvalidArgumentError
from ..formats.parquet import DEFAULT_FOOTER_CAP, ParquetObject, expand_parquet_uris
from ..io.config import parse_size
from ..io.executor import bounded_map
from ..io.store import HasStores
from .cancel import CancellationToken
from .options import LoaderOptions, PyLoaderOptions, coerce_options
from .sampling import EpochSampler, Resumable

__all__ = [
    "DECODES",
    "ParquetLoader",
    "ParquetStreamIter",
    "PyParquetItem",
    "create_parquet_loader",
    "index_row_groups",
    "fetch_row_group",
    "split_format_options",
    "table_to_numpy",
]

#: What an item's ``data`` holds.
DECODES = ("raw", "arrow", "table", "numpy")
#: Loader option keys of the Parquet format (beside :class:`LoaderOptions`' own).
FORMAT_KEYS = ("format", "decode", "columns", "footer_cap")


class PyParquetItem:
    """One row group from the Parquet loader (the original's ``PyParquetItem``).

    Attributes:
        file_uri: The Parquet object's full URI.
        rg_idx: The row group's index in that file.
        data: Its bytes (:class:`~s3dlio.BytesView`: raw chunks or Arrow IPC), or a
            ``pyarrow.Table`` with ``decode="table"``.
    """

    __slots__ = ("data", "file_uri", "rg_idx")

    def __init__(self, file_uri: str, rg_idx: int, data: Any) -> None:
        self.file_uri = file_uri
        self.rg_idx = rg_idx
        self.data = data

    @property
    def byte_count(self) -> int:
        """Bytes of ``data`` (``len(item)``; a table's or the arrays' buffer size)."""
        if isinstance(self.data, pa.Table):
            return int(self.data.nbytes)
        if isinstance(self.data, dict):
            return sum(int(getattr(a, "nbytes", 0)) for a in self.data.values())
        return len(self.data)

    def __len__(self) -> int:
        return self.byte_count

    def __bytes__(self) -> bytes:
        if isinstance(self.data, (pa.Table, dict)):
            raise TypeError("decoded row groups have no bytes; use item.data")
        return bytes(self.data)

    def memoryview(self) -> memoryview:
        """The bytes without a copy (``raw``/``arrow``)."""
        return memoryview(self.data)

    def table(self) -> Any:
        """The row group as a ``pyarrow.Table`` (``arrow`` or ``table`` items)."""
        if isinstance(self.data, pa.Table):
            return self.data
        if isinstance(self.data, dict):
            raise TypeError("a numpy-decoded row group is no table; use item.data")
        return pa.ipc.open_stream(self.data).read_all()

    def __repr__(self) -> str:
        return f"PyParquetItem({self.file_uri!r}, rg_idx={self.rg_idx}, {self.byte_count} bytes)"


def table_to_numpy(table: Any) -> dict[str, np.ndarray]:
    """``{column: array}`` of a table, one row per table row: scalars as 1-D arrays,
    ``FixedSizeList<T>[n]`` as ``[rows, n]`` arrays, anything else as pyarrow's ``to_numpy``
    gives it (object arrays for strings and variable lists). The arrays are writable (their
    own memory: PyTorch and in-place transforms need that; Arrow's buffers are immutable)."""
    out: dict[str, np.ndarray] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        arr = column.combine_chunks()
        kind = arr.type
        if pa.types.is_fixed_size_list(kind) and arr.null_count == 0:
            values = arr.flatten().to_numpy(zero_copy_only=False, writable=True)
            out[name] = values.reshape(len(arr), kind.list_size)
        else:
            out[name] = arr.to_numpy(zero_copy_only=False, writable=True)
    return out


def fetch_row_group(
    uri: str,
    rg: int,
    *,
    decode: str = "raw",
    columns: Sequence[int | str] | None = None,
    footer_cap: int = DEFAULT_FOOTER_CAP,
    client: HasStores | None = None,
) -> Any:
    """Row group ``rg`` of ``uri`` as ``decode`` says (see the module docstring)."""
    obj = ParquetObject(uri, footer_cap=footer_cap, client=client)
    if decode in ("raw", "arrow"):
        return obj.get_row_group(rg, columns, decode)
    table = obj.read_row_group(rg, columns, use_threads=False)
    return table_to_numpy(table) if decode == "numpy" else table


def split_format_options(
    opts: LoaderOptions | PyLoaderOptions | Mapping[str, Any] | None,
) -> tuple[dict[str, Any], LoaderOptions]:
    """``(format keys, LoaderOptions)`` from an options dict that may carry ``"format"``."""
    if not isinstance(opts, Mapping):
        return {}, coerce_options(opts)
    fmt = {k: opts[k] for k in FORMAT_KEYS if k in opts}
    rest = {k: v for k, v in opts.items() if k not in FORMAT_KEYS}
    return fmt, coerce_options(rest)


def index_row_groups(
    uris: Sequence[str],
    *,
    footer_cap: int = DEFAULT_FOOTER_CAP,
    client: HasStores | None = None,
    max_in_flight: int = 16,
) -> tuple[list[tuple[str, int]], list[int]]:
    """Every ``(uri, row group)`` of ``uris`` in file order, and each one's row count;
    footers read ``max_in_flight`` at a time (and kept in the footer cache)."""

    def footer(uri: str) -> Any:
        return ParquetObject(uri, footer_cap=footer_cap, client=client).footer

    units: list[tuple[str, int]] = []
    rows: list[int] = []
    for uri, outcome in bounded_map(footer, list(uris), max_in_flight):
        offsets = outcome.result().row_offsets
        for rg in range(len(offsets) - 1):
            units.append((uri, rg))
            rows.append(offsets[rg + 1] - offsets[rg])
    return units, rows


class ParquetLoader(Resumable):
    """Row groups of Parquet objects with bounded prefetch, sharding, shuffle and resume.

    Use :func:`create_async_loader` with ``{"format": "parquet"}`` (or build one directly).

    Args:
        uris: The Parquet objects (see :func:`~s3dlio.formats.parquet.expand_parquet_uris`
            for what a prefix selects).
        opts: Loader options (``prefetch``: row groups in flight or ready; ``batch_size``:
            items per ``async for`` batch and the worker block size).
        decode: ``"raw"``, ``"arrow"`` or ``"table"`` (see the module docstring).
        columns: Top-level columns (names or indices) to fetch; ``None`` = all.
        footer_cap: The largest footer accepted.
        client: The :class:`s3dlio.Client` to read with (default: the default client).
        cancellation_token: Stops the loader when cancelled (may be shared).
    """

    def __init__(
        self,
        uris: str | Sequence[str],
        opts: LoaderOptions | PyLoaderOptions | Mapping[str, Any] | None = None,
        *,
        decode: str = "raw",
        columns: Sequence[int | str] | None = None,
        footer_cap: int | str = DEFAULT_FOOTER_CAP,
        client: HasStores | None = None,
        cancellation_token: CancellationToken | None = None,
    ) -> None:
        if decode not in DECODES:
            raise InvalidArgumentError(f"decode must be one of {DECODES}, got {decode!r}")
        self.options = options = coerce_options(opts)
        self.decode = decode
        self.columns = None if columns is None else list(columns)
        self.footer_cap = parse_size(footer_cap)
        self.client = client
        self.uris = expand_parquet_uris(uris, client)
        self.units, self.rows = index_row_groups(
            self.uris, footer_cap=self.footer_cap, client=client
        )
        self.sampler = EpochSampler(
            len(self.units),
            shuffle=options.shuffle,
            seed=options.seed,
            rank=options.rank,
            world_size=options.world_size,
            block_size=options.batch_size,
        )
        self._token = CancellationToken()
        self._lock = threading.Lock()
        self._passes: weakref.WeakSet[_Pass] = weakref.WeakSet()
        self._unsubscribe = [
            t.on_cancel(self._token.cancel)
            for t in (cancellation_token, options.cancellation_token)
            if t is not None
        ]

    def fetch(self, index: int) -> PyParquetItem:
        """Row group ``index`` of the dataset (in file order), fetched now."""
        self._token.raise_if_cancelled("parquet loader")
        uri, rg = self.units[index]
        data = fetch_row_group(
            uri,
            rg,
            decode=self.decode,
            columns=self.columns,
            footer_cap=self.footer_cap,
            client=self.client,
        )
        return PyParquetItem(uri, rg, data)

    def _start(self) -> _Pass:
        self._token.raise_if_cancelled("parquet loader")
        p = _Pass(self, self.sampler.begin().tolist())
        with self._lock:
            for old in list(self._passes):
                old.close()
            self._passes.add(p)
        return p

    def __iter__(self) -> _Pass:
        """A pass over this rank's (and worker's) row groups, yielding :class:`PyParquetItem`."""
        return self._start()

    def items(self) -> _Pass:
        """Same as ``iter(loader)``."""
        return self._start()

    async def _batches(self) -> Any:
        it = self._start()
        size, drop_last = self.options.batch_size, self.options.drop_last
        batch: list[PyParquetItem] = []
        try:
            while True:
                item = await asyncio.to_thread(next, it, None)
                if item is None:
                    break
                batch.append(item)
                if len(batch) == size:
                    yield batch
                    batch = []
            if batch and not drop_last:
                yield batch
        finally:
            it.close()

    def __aiter__(self) -> Any:
        """An ``async for`` pass yielding lists of ``batch_size`` items."""
        return self._batches()

    def __len__(self) -> int:
        """Row groups this rank visits per epoch."""
        return len(self.sampler)

    @property
    def num_row_groups(self) -> int:
        """Row groups in the whole dataset (all ranks)."""
        return len(self.units)

    def _epoch_sampler(self) -> EpochSampler:
        return self.sampler

    @property
    def cancelled(self) -> bool:
        """Whether this loader was cancelled."""
        return self._token.cancelled

    def cancel(self, reason: str = "") -> None:
        """Stop: no new requests; iterators raise :class:`~s3dlio.CancelledError`."""
        self._token.cancel(reason)

    def close(self) -> None:
        """End every pass of this loader and detach from shared tokens."""
        with self._lock:
            passes = list(self._passes)
        for p in passes:
            p.close()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def __enter__(self) -> ParquetLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ParquetLoader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParquetLoader({len(self.uris)} files, {len(self.units)} row groups)"


class _Pass:
    """One pass: ``prefetch`` row groups fetched ahead (in sampler order unless
    ``ordered=False``), each counted as delivered when it is handed out."""

    def __init__(self, loader: ParquetLoader, indices: list[int]) -> None:
        self._loader = loader
        window = max(1, loader.options.prefetch)
        self._results: Iterator[Any] = bounded_map(
            loader.fetch, indices, window, ordered=loader.options.ordered
        )
        self._closed = False

    def __iter__(self) -> _Pass:
        return self

    def __next__(self) -> PyParquetItem:
        if self._closed:
            raise StopIteration
        self._loader._token.raise_if_cancelled("parquet loader")
        try:
            _, outcome = next(self._results)
        except StopIteration:
            self._closed = True
            raise
        item: PyParquetItem = outcome.result()
        self._loader.sampler.advance()
        return item

    def close(self) -> None:
        """Stop fetching (requests running finish in the background)."""
        self._closed = True
        close = getattr(self._results, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _Pass:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_parquet_loader(
    uri: Any,
    opts: Mapping[str, Any] | LoaderOptions | PyLoaderOptions | None = None,
    *,
    cancellation_token: CancellationToken | None = None,
    client: HasStores | None = None,
) -> ParquetLoader:
    """A :class:`ParquetLoader` from ``create_async_loader``'s arguments: the dict may hold
    ``"format": "parquet"``, ``"decode"``, ``"columns"`` and ``"footer_cap"`` beside the
    usual loader options. ``uri``: a URI, a list of URIs, or an
    :class:`~s3dlio.datasets.ObjectDataset` (its objects)."""
    if hasattr(uri, "uris") and callable(uri.uris):
        uri = uri.uris()
    fmt, options = split_format_options(opts)
    if fmt.get("format", "parquet") != "parquet":
        raise InvalidArgumentError(f"not a Parquet loader format: {fmt['format']!r}")
    return ParquetLoader(
        uri,
        options,
        decode=fmt.get("decode") or "raw",
        columns=fmt.get("columns"),
        footer_cap=fmt.get("footer_cap") or DEFAULT_FOOTER_CAP,
        client=client,
        cancellation_token=cancellation_token,
    )


#: The original's names.
ParquetStreamIter = _Pass
