"""PyTorch datasets over Parquet objects on any backend (re-exported by :mod:`s3dlio.torch`).

``ParquetDataset(uris, columns=None, mode="rows")`` is map-style: ``len`` = rows of all files,
``ds[i]`` = row ``i`` as ``{column: value}`` (NumPy scalars and arrays; ``FixedSizeList``
columns as 1-D arrays). Each process (each DataLoader worker) keeps the few row groups it
read last, decoded, so neighbouring rows cost no request; the cache is dropped in a forked
child and never pickled. Shuffle rows with :meth:`ParquetRowDataset.sampler` (or row groups
first: ``shuffle=True`` in ``mode="row_groups"``).

``ParquetDataset(uris, mode="row_groups")`` is iterable: one ``pyarrow.Table`` (or
``transform(table)``) per row group, sharded across ranks and DataLoader workers, shuffled
per epoch (``set_epoch``) and resumable (``state_dict``), fetched ``prefetch`` ahead. Use
``DataLoader(ds, batch_size=None)``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset

from ..errors import InvalidArgumentError
from ..formats.parquet import DEFAULT_FOOTER_CAP, expand_parquet_uris
from ..io.config import parse_size
from ..io.executor import bounded_map
from ..io.store import HasStores
from .parquet_loader import fetch_row_group, index_row_groups, table_to_numpy
from .sampling import EpochSampler, Resumable

__all__ = ["ParquetDataset", "ParquetRowDataset", "ParquetRowGroupDataset"]

MODES = ("rows", "row_groups")


class ParquetDataset:
    """Rows (map-style) or row groups (iterable) of Parquet objects on any backend.

    ``ParquetDataset(...)`` builds a :class:`ParquetRowDataset` (``mode="rows"``) or a
    :class:`ParquetRowGroupDataset` (``mode="row_groups"``); both are ``ParquetDataset``.

    Args:
        uris: One object, a prefix or glob (``.parquet``/``.parq``/``.pq`` keys), or a list.
        columns: Top-level columns to read (names or indices); ``None`` = all.
        mode: ``"rows"`` or ``"row_groups"``.
        transform: Called on each item (a row dict, or a row group table) before it is
            returned.
        client: The :class:`s3dlio.Client` to read through (default: the default client).
        footer_cap: The largest footer accepted.
        cache_row_groups: (rows) Decoded row groups kept per process.
        shuffle: (row_groups) Shuffle row groups each epoch (a pure function of seed, epoch).
        seed: (row_groups) Shuffle seed.
        rank: (row_groups) This rank (``None``: detected, see ``detect_rank_world``).
        world_size: (row_groups) Number of ranks.
        prefetch: (row_groups) Row groups fetched ahead of the consumer.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is ParquetDataset:
            mode = kwargs.get("mode", args[2] if len(args) > 2 else "rows")
            if mode not in MODES:
                raise InvalidArgumentError(f"mode must be one of {MODES}, got {mode!r}")
            cls = ParquetRowDataset if mode == "rows" else ParquetRowGroupDataset
        return object.__new__(cls)

    def _setup(
        self,
        uris: Any,
        columns: Sequence[int | str] | None,
        transform: Callable[[Any], Any] | None,
        client: HasStores | None,
        footer_cap: int | str,
    ) -> None:
        self.client = client
        self.columns = None if columns is None else list(columns)
        self.transform = transform
        self.footer_cap = parse_size(footer_cap)
        self.uris = expand_parquet_uris(uris, client)
        self.units, self.rows = index_row_groups(
            self.uris, footer_cap=self.footer_cap, client=client
        )

    def _fetch(self, unit: int, decode: str) -> Any:
        uri, rg = self.units[unit]
        return fetch_row_group(
            uri,
            rg,
            decode=decode,
            columns=self.columns,
            footer_cap=self.footer_cap,
            client=self.client,
        )

    @property
    def num_row_groups(self) -> int:
        """Row groups of all files."""
        return len(self.units)

    @property
    def num_rows(self) -> int:
        """Rows of all files."""
        return int(sum(self.rows))


class ParquetRowDataset(ParquetDataset, Dataset):  # type: ignore[type-arg,misc,unused-ignore]
    """Map-style rows of Parquet objects (``ParquetDataset(..., mode="rows")``)."""

    def __init__(
        self,
        uris: Any,
        columns: Sequence[int | str] | None = None,
        mode: str = "rows",
        transform: Callable[[Any], Any] | None = None,
        client: HasStores | None = None,
        *,
        footer_cap: int | str = DEFAULT_FOOTER_CAP,
        cache_row_groups: int = 4,
    ) -> None:
        if mode != "rows":
            raise InvalidArgumentError(f"ParquetRowDataset is mode='rows', not {mode!r}")
        if cache_row_groups < 1:
            raise InvalidArgumentError(f"cache_row_groups must be >= 1, got {cache_row_groups}")
        self._setup(uris, columns, transform, client, footer_cap)
        self.cache_row_groups = cache_row_groups
        self._starts = np.concatenate([[0], np.cumsum(self.rows, dtype=np.int64)])
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_cache", "_lock", "_pid"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[str, int, int]:
        """``(uri, row group, row within it)`` of row ``index``."""
        unit, row = self._locate(index)
        uri, rg = self.units[unit]
        return uri, rg, row

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"row {index} out of range for {n} rows")
        index %= n
        unit = int(np.searchsorted(self._starts, index, side="right")) - 1
        return unit, index - int(self._starts[unit])

    def row_group(self, unit: int) -> dict[str, np.ndarray]:
        """The decoded columns of row group ``unit`` (dataset order), from this process's
        cache or fetched now."""
        if self._pid != os.getpid():  # a forked DataLoader worker: nothing inherited
            self._reset()
        with self._lock:
            cols = self._cache.get(unit)
            if cols is not None:
                self._cache.move_to_end(unit)
                return cols
        cols = self._fetch(unit, "numpy")
        with self._lock:
            self._cache[unit] = cols
            while len(self._cache) > self.cache_row_groups:
                self._cache.popitem(last=False)
        return cols

    def __getitem__(self, index: int) -> Any:
        unit, row = self._locate(index)
        cols = self.row_group(unit)
        item = {name: values[row] for name, values in cols.items()}
        return self.transform(item) if self.transform is not None else item

    def sampler(
        self,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> Any:
        """A :class:`~s3dlio.torch.ShardedSampler` over the rows (rank-sharded, resumable)."""
        from .torch_base import ShardedSampler

        return ShardedSampler(self, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)

    def __repr__(self) -> str:
        return f"ParquetDataset({len(self.uris)} files, {len(self)} rows, mode='rows')"


class ParquetRowGroupDataset(ParquetDataset, Resumable, IterableDataset):  # type: ignore[type-arg,misc,unused-ignore]
    """Iterable row groups of Parquet objects (``ParquetDataset(..., mode="row_groups")``)."""

    def __init__(
        self,
        uris: Any,
        columns: Sequence[int | str] | None = None,
        mode: str = "row_groups",
        transform: Callable[[Any], Any] | None = None,
        client: HasStores | None = None,
        *,
        footer_cap: int | str = DEFAULT_FOOTER_CAP,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        prefetch: int = 4,
    ) -> None:
        if mode != "row_groups":
            raise InvalidArgumentError(f"ParquetRowGroupDataset is mode='row_groups', not {mode!r}")
        if prefetch < 1:
            raise InvalidArgumentError(f"prefetch must be >= 1, got {prefetch}")
        self._setup(uris, columns, transform, client, footer_cap)
        self.prefetch = prefetch
        self.sampler = EpochSampler(
            len(self.units), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size
        )

    def _epoch_sampler(self) -> EpochSampler:
        return self.sampler

    def __iter__(self) -> Iterator[Any]:
        indices = self.sampler.begin().tolist()
        results = bounded_map(lambda unit: self._fetch(unit, "table"), indices, self.prefetch)
        try:
            for _, outcome in results:
                table = outcome.result()
                self.sampler.advance()
                yield self.transform(table) if self.transform is not None else table
        finally:
            results.close()  # type: ignore[attr-defined]

    def __len__(self) -> int:
        """Row groups this rank visits per epoch."""
        return len(self.sampler)

    def __repr__(self) -> str:
        return f"ParquetDataset({len(self.uris)} files, {len(self.units)} row groups, mode='row_groups')"


#: Re-exported helper: a row group table as ``{column: numpy array}``.
to_numpy = table_to_numpy
