"""The parsed Parquet footer, the byte ranges of column chunks, and the footer cache.

:class:`ParquetFooter` holds one version's ``pyarrow.parquet.FileMetaData`` and answers what
:mod:`s3dlio.formats.parquet` needs to fetch: the byte range of each column chunk (as pyarrow
will read it), the leaf columns of each top-level column, cumulative row counts. Footers are
kept in one bounded, process-wide LRU keyed by URI; each entry carries the etag and size it
was read from.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..errors import IntegrityError, InvalidArgumentError
from ..io.uri import ObjectURI, parse_uri

__all__ = [
    "FooterTooLargeError",
    "ParquetFooter",
    "ParquetFormatError",
    "RowGroupIndexError",
    "parquet_cache_clear",
    "parquet_cache_invalidate",
    "parquet_cache_len",
    "set_parquet_cache_capacity",
]

URI = str | ObjectURI | os.PathLike[str]

#: parquet-mr before 1.2.9 understated column chunk lengths (PARQUET-816); pyarrow pads them.
_PARQUET_816_PAD = 100


class ParquetFormatError(IntegrityError):
    """The object is not a (readable) Parquet file: bad magic, a truncated or corrupt footer,
    column chunks outside the file. Names the URI and what was wrong."""


class FooterTooLargeError(ParquetFormatError):
    """The footer is larger than ``footer_cap`` (nothing past its length was read)."""


class RowGroupIndexError(InvalidArgumentError, IndexError):
    """A row group index outside the file's ``range(num_row_groups)``."""


# -- the footer ---------------------------------------------------------------------------------


class ParquetFooter:
    """The parsed footer of one version of one Parquet object, and the byte ranges it implies.

    Attributes:
        uri: The object.
        size: Its size in bytes.
        etag: Its version token (``None`` when the backend has none; ``size`` then checks).
        metadata: The ``pyarrow.parquet.FileMetaData``.
        footer_length: Bytes of the footer, its length field and the closing magic.
        names: Top-level column names, in file order.
    """

    def __init__(
        self, uri: str, size: int, etag: str | None, metadata: Any, footer_length: int
    ) -> None:
        self.uri = uri
        self.size = size
        self.etag = etag
        self.metadata = metadata
        self.footer_length = footer_length
        self.schema = metadata.schema.to_arrow_schema()
        self.names: list[str] = list(self.schema.names)
        self._leaves = _leaf_groups(metadata, self.schema)
        self._offsets: list[int] | None = None
        self._chunks: dict[int, list[tuple[int, int]]] = {}
        self._decoded: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self._pad = _needs_parquet_816_pad(metadata.created_by or "")

    @property
    def num_row_groups(self) -> int:
        """Row groups in the file."""
        return int(self.metadata.num_row_groups)

    @property
    def num_rows(self) -> int:
        """Rows in the file."""
        return int(self.metadata.num_rows)

    @property
    def row_offsets(self) -> list[int]:
        """Cumulative rows: ``[0, rows(rg0), rows(rg0..1), ..., num_rows]``."""
        if self._offsets is None:
            offsets = [0]
            md = self.metadata
            for i in range(md.num_row_groups):
                offsets.append(offsets[-1] + md.row_group(i).num_rows)
            self._offsets = offsets
        return self._offsets

    def check_row_group(self, index: int) -> int:
        """``index`` if the file has that row group, else :class:`RowGroupIndexError`."""
        if not isinstance(index, int) or not 0 <= index < self.num_row_groups:
            raise RowGroupIndexError(
                f"row group {index} out of range: the file has {self.num_row_groups} row groups",
                uri=self.uri,
                op="GET",
            )
        return index

    def resolve_columns(self, columns: Sequence[int | str] | None) -> list[int]:
        """Top-level column indices (sorted, unique) for names or indices; ``None`` = all.

        A dotted name (``"struct.field"``) selects its top-level column.

        Raises:
            InvalidArgumentError: an unknown name or an index out of range.
        """
        if columns is None:
            return list(range(len(self.names)))
        if isinstance(columns, (str, int)):
            columns = [columns]
        chosen: set[int] = set()
        for col in columns:
            if isinstance(col, bool) or not isinstance(col, (int, str)):
                raise InvalidArgumentError(
                    f"columns are names or indices, not {col!r}", uri=self.uri, op="GET"
                )
            if isinstance(col, int):
                if not 0 <= col < len(self.names):
                    raise InvalidArgumentError(
                        f"column index {col} out of range: the file has {len(self.names)} columns",
                        uri=self.uri,
                        op="GET",
                    )
                chosen.add(col)
                continue
            root = col if col in self.names else col.split(".", 1)[0]
            if root not in self.names:
                raise InvalidArgumentError(
                    f"no column {col!r} in the file (it has {self.names})", uri=self.uri, op="GET"
                )
            chosen.add(self.names.index(root))
        return sorted(chosen)

    def leaves(self, roots: Sequence[int]) -> list[int]:
        """The leaf column (column chunk) indices of top-level columns ``roots``."""
        return [leaf for r in roots for leaf in self._leaves[r]]

    def chunk_ranges(self, rg: int) -> list[tuple[int, int]]:
        """``(offset, length)`` of every column chunk of row group ``rg`` (leaf order), as
        pyarrow will read them."""
        found = self._chunks.get(rg)
        if found is not None:
            return found
        row_group = self.metadata.row_group(rg)
        data_end = self.size - self.footer_length
        ranges = []
        for j in range(row_group.num_columns):
            col = row_group.column(j)
            start = col.data_page_offset
            dict_at = col.dictionary_page_offset
            if col.has_dictionary_page and dict_at is not None and 0 < dict_at < start:
                start = dict_at
            length = col.total_compressed_size
            if self._pad:
                length += max(0, min(_PARQUET_816_PAD, data_end - (start + length)))
            if start < 0 or length < 0 or start + length > data_end:
                raise ParquetFormatError(
                    f"row group {rg} column {j}: chunk [{start}, {start + length}) lies outside "
                    f"the data section (ends at {data_end})",
                    uri=self.uri,
                    op="GET",
                )
            ranges.append((start, length))
        with self._lock:
            self._chunks[rg] = ranges
        return ranges

    def ranges(self, row_groups: Sequence[int], roots: Sequence[int]) -> list[tuple[int, int]]:
        """The chunk ranges of ``roots`` in ``row_groups``, sorted by offset."""
        leaves = self.leaves(roots)
        out: list[tuple[int, int]] = []
        for rg in row_groups:
            chunks = self.chunk_ranges(rg)
            out.extend(chunks[leaf] for leaf in leaves)
        out.sort()
        return out

    def decoded_size(self, rg: int, roots: Sequence[int]) -> int:
        """Bytes the chunks of ``roots`` in row group ``rg`` hold once decompressed."""
        sizes = self._decoded.get(rg)
        if sizes is None:
            row_group = self.metadata.row_group(rg)
            sizes = [
                row_group.column(j).total_uncompressed_size for j in range(row_group.num_columns)
            ]
            with self._lock:
                self._decoded[rg] = sizes
        return sum(sizes[leaf] for leaf in self.leaves(roots))

    def span(self, rg: int, roots: Sequence[int]) -> tuple[int, int]:
        """``(offset, length)`` from the first to the end of the last chunk of ``roots`` in
        row group ``rg`` (the original's "raw" row group bytes)."""
        ranges = self.ranges([rg], roots)
        if not ranges:
            return 0, 0
        start = ranges[0][0]
        return start, max(off + n for off, n in ranges) - start

    def __repr__(self) -> str:
        return (
            f"ParquetFooter({self.uri!r}, {self.num_row_groups} row groups, "
            f"{self.num_rows} rows, {len(self.names)} columns)"
        )


def _needs_parquet_816_pad(created_by: str) -> bool:
    if not created_by.startswith("parquet-mr"):
        return False
    parts = created_by.split()
    version = parts[2] if len(parts) > 2 and parts[1] == "version" else ""
    try:
        nums = tuple(int(p) for p in version.split("-")[0].split(".")[:3])
    except ValueError:
        return False
    return nums < (1, 2, 9)


def _leaf_count(t: Any) -> int:
    types = pa.types
    if types.is_struct(t):
        return sum(_leaf_count(t.field(i).type) for i in range(t.num_fields))
    if types.is_map(t):
        return _leaf_count(t.key_type) + _leaf_count(t.item_type)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return _leaf_count(t.value_type)
    if hasattr(types, "is_list_view") and (types.is_list_view(t) or types.is_large_list_view(t)):
        return _leaf_count(t.value_type)
    return 1


def _leaf_groups(metadata: Any, schema: Any) -> list[range]:
    """The leaf columns of each top-level column."""
    groups, at = [], 0
    for field in schema:
        n = _leaf_count(field.type)
        groups.append(range(at, at + n))
        at += n
    if at == metadata.num_columns:
        return groups
    # Types we do not count right: group leaves by the first element of their path.
    paths = [metadata.schema.column(j).path.split(".", 1)[0] for j in range(metadata.num_columns)]
    out: list[range] = []
    for name in schema.names:
        idx = [j for j, p in enumerate(paths) if p == name]
        out.append(range(min(idx), max(idx) + 1) if idx else range(0))
    return out


# -- the footer cache ---------------------------------------------------------------------------


class _FooterCache:
    """A bounded LRU of footers keyed by URI (each entry knows its etag and size)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, ParquetFooter] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> ParquetFooter | None:
        with self._lock:
            footer = self._entries.get(key)
            if footer is not None:
                self._entries.move_to_end(key)
            return footer

    def put(self, key: str, footer: ParquetFooter) -> None:
        with self._lock:
            self._entries[key] = footer
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def drop(self, key: str, footer: ParquetFooter | None = None) -> bool:
        """Remove ``key`` (only if it still holds ``footer``, when given)."""
        with self._lock:
            current = self._entries.get(key)
            if current is None or (footer is not None and current is not footer):
                return False
            del self._entries[key]
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_CACHE = _FooterCache()


def _key(uri: ObjectURI) -> str:
    return str(uri)


def parquet_cache_len() -> int:
    """Footers held in the process-wide Parquet footer cache."""
    return len(_CACHE)


def parquet_cache_clear() -> None:
    """Empty the process-wide Parquet footer cache."""
    _CACHE.clear()


def parquet_cache_invalidate(uri: URI) -> None:
    """Drop ``uri``'s footer from the cache (not needed after a rewrite: a changed etag or
    size is noticed anyway; this only frees the entry)."""
    _CACHE.drop(_key(parse_uri(uri, allow_bare=True)))


def set_parquet_cache_capacity(entries: int) -> None:
    """Keep at most ``entries`` footers (least recently used dropped first)."""
    if entries < 0:
        raise InvalidArgumentError(f"cache capacity must be >= 0, got {entries}")
    _CACHE.capacity = entries
    with _CACHE._lock:
        while len(_CACHE._entries) > entries:
            _CACHE._entries.popitem(last=False)
