"""The original's ``PyParquetIndex``: row-group byte ranges of many Parquet files, per epoch.

It maps ``(file, row group)`` to the byte range of that row group's selected column chunks
(what ``s3dlio.get_range`` or ``parquet_get_rg(..., decode="raw")`` fetches) and a sample
(row) number to its row group, and remembers which row groups were fetched in which epoch::

    idx = s3dlio.PyParquetIndex()                 # all columns, footer_cap 4 MiB
    idx.ensure_indexed(uris, epoch=1, batch_size=16)
    rg, offset, length = idx.rg_lookup(uri, sample_idx=42)
    if not idx.check_and_mark(uri, rg, epoch=1):
        data = s3dlio.get_range(uri, offset, length)

Footers are read concurrently (``batch_size`` at a time) through the footer cache of
:mod:`s3dlio.formats.parquet`; only the ranges and row offsets are kept here.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidArgumentError
from ..io.executor import bounded_map
from ..io.store import HasStores
from ..io.uri import parse_uri
from .parquet import DEFAULT_FOOTER_CAP, ParquetObject, RowGroupIndexError

__all__ = ["ParquetIndex"]


@dataclass
class _File:
    ranges: list[tuple[int, int]]
    offsets: list[int]  # cumulative rows, len = row groups + 1
    last_epoch: list[int | None] = field(default_factory=list)


class ParquetIndex:
    """Row-group byte ranges and per-epoch fetch marks for many Parquet files.

    Args:
        col_indices: Top-level columns whose chunks make up each row group's range
            (``None`` = all; the range then spans the whole row group).
        footer_cap: The largest footer accepted.
        client: The :class:`s3dlio.Client` to read footers with (default: the default client).

    Methods raise :class:`~s3dlio.errors.InvalidArgumentError` (naming the URI) for a file
    that is not indexed, and :class:`~s3dlio.formats.parquet.RowGroupIndexError` for a row
    group it does not have.
    """

    def __init__(
        self,
        col_indices: Sequence[int] | None = None,
        footer_cap: int = DEFAULT_FOOTER_CAP,
        *,
        client: HasStores | None = None,
    ) -> None:
        self.col_indices = None if col_indices is None else list(col_indices)
        self.footer_cap = footer_cap
        self.client = client
        self._files: dict[str, _File] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(uri: str) -> str:
        return str(parse_uri(uri, allow_bare=True))

    def _index_one(self, uri: str) -> _File:
        footer = ParquetObject(uri, footer_cap=self.footer_cap, client=self.client).footer
        roots = footer.resolve_columns(self.col_indices)
        ranges = [footer.span(rg, roots) for rg in range(footer.num_row_groups)]
        return _File(ranges, list(footer.row_offsets), [None] * len(ranges))

    def ensure_indexed(self, uris: Iterable[str], epoch: int = 1, batch_size: int = 16) -> None:
        """Index the files of ``uris`` not indexed yet, reading ``batch_size`` footers at once.

        ``epoch`` is accepted for compatibility: a new file starts with no row group fetched.
        """
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
        todo = [k for k in dict.fromkeys(self._key(u) for u in uris) if k not in self._files]
        for uri, outcome in bounded_map(self._index_one, todo, batch_size):
            entry = outcome.result()
            with self._lock:
                self._files.setdefault(uri, entry)

    def _file(self, uri: str) -> _File:
        key = self._key(uri)
        entry = self._files.get(key)
        if entry is None:
            raise InvalidArgumentError("URI not indexed (call ensure_indexed first)", uri=key)
        return entry

    def _rg(self, uri: str, entry: _File, rg_idx: int) -> int:
        if not isinstance(rg_idx, int) or not 0 <= rg_idx < len(entry.ranges):
            raise RowGroupIndexError(
                f"row group {rg_idx} not in the index ({len(entry.ranges)} row groups)",
                uri=self._key(uri),
            )
        return rg_idx

    def is_indexed(self, uri: str) -> bool:
        """Whether ``uri`` is indexed."""
        return self._key(uri) in self._files

    def file_count(self) -> int:
        """Files indexed."""
        return len(self._files)

    def file_rg_count(self, uri: str) -> int | None:
        """Row groups of ``uri``, or ``None`` when it is not indexed."""
        entry = self._files.get(self._key(uri))
        return None if entry is None else len(entry.ranges)

    def rg_for_sample(self, uri: str, sample_idx: int) -> int:
        """The row group holding row ``sample_idx`` of ``uri`` (rows past the end map to the
        last row group, as in the original)."""
        entry = self._file(uri)
        if sample_idx < 0:
            raise InvalidArgumentError(f"sample index {sample_idx} is negative", uri=self._key(uri))
        rg = bisect.bisect_right(entry.offsets, sample_idx) - 1
        return max(0, min(rg, len(entry.ranges) - 1))

    def rg_range(self, uri: str, rg_idx: int) -> tuple[int, int]:
        """``(byte_offset, byte_length)`` of row group ``rg_idx`` of ``uri``."""
        entry = self._file(uri)
        return entry.ranges[self._rg(uri, entry, rg_idx)]

    def rg_lookup(self, uri: str, sample_idx: int) -> tuple[int, int, int]:
        """``(rg_idx, byte_offset, byte_length)`` for row ``sample_idx`` of ``uri``."""
        rg = self.rg_for_sample(uri, sample_idx)
        offset, length = self._file(uri).ranges[rg]
        return rg, offset, length

    def mark_fetched(self, uri: str, rg_idx: int, epoch: int) -> None:
        """Record that row group ``rg_idx`` of ``uri`` was fetched in ``epoch``."""
        entry = self._file(uri)
        entry.last_epoch[self._rg(uri, entry, rg_idx)] = epoch

    def was_fetched(self, uri: str, rg_idx: int, epoch: int) -> bool:
        """Whether row group ``rg_idx`` of ``uri`` was fetched in ``epoch``."""
        entry = self._file(uri)
        return entry.last_epoch[self._rg(uri, entry, rg_idx)] == epoch

    def check_and_mark(self, uri: str, rg_idx: int, epoch: int) -> bool:
        """``True`` if already fetched in ``epoch``; otherwise mark it and return ``False``
        (atomically: of several threads asking, exactly one gets ``False``)."""
        entry = self._file(uri)
        rg = self._rg(uri, entry, rg_idx)
        with self._lock:
            if entry.last_epoch[rg] == epoch:
                return True
            entry.last_epoch[rg] = epoch
            return False

    def invalidate_uri(self, uri: str) -> None:
        """Forget ``uri`` (after it was rewritten); the next ``ensure_indexed`` reads it again."""
        with self._lock:
            self._files.pop(self._key(uri), None)

    def clear(self) -> None:
        """Forget every file."""
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"PyParquetIndex({len(self._files)} files)"
