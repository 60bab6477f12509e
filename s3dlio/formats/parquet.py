"""Parquet on any backend, read through range requests and decoded by pyarrow.

A Parquet file ends with its footer (the Thrift ``FileMetaData``), the footer's length and
``PAR1``. :class:`ParquetObject` reads it the way pyarrow does, with one suffix read of 64 KiB
(a second read only when the footer is larger; ``footer_cap``, default 4 MiB, is the largest
footer accepted), then fetches only the column chunks of the row groups and columns asked
for: adjacent chunks coalesced into one range, the ranges fetched concurrently through the
RangeEngine (retried, op-logged, pinned to the object's version with ``if_match``). pyarrow
decodes them from those buffers without copying them again (a :class:`pyarrow.PythonFile`
over our memoryviews).

Footers are kept in a bounded, process-wide cache keyed by URI and checked against the
object's etag and size: data reads carry the cached etag (``If-Match``), so a rewritten file
fails the read, drops the entry and is read again with its new footer; metadata-only calls
(:func:`parquet_rg_row_offsets`, :func:`open_parquet`) check the version with a ``stat``.

Names: :func:`open_parquet`, :func:`read_row_group`, :func:`read_parquet`, and the original's
:func:`parquet_get_rg`, :func:`parquet_rg_row_offsets`, :func:`parquet_cache_len`,
:func:`parquet_cache_clear`, :func:`parquet_cache_invalidate`. Generators are in
:mod:`s3dlio.formats.parquet_gen`, the original's ``PyParquetIndex`` in
:mod:`s3dlio.formats.parquet_index`.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "s3dlio.formats.parquet needs pyarrow; install it with: pip install 's3dlio[parquet]'",
        name="pyarrow",
    ) from exc

from ..errors import IntegrityError, InvalidArgumentError, NotFoundError
from ..io import ops
from ..io.buffers import BytesView
from ..io.config import KiB, MiB, parse_size
from ..io.executor import bounded_map
from ..io.listing import has_glob, select
from ..io.range_engine import fetch, fetch_ranges
from ..io.store import HasStores, ObjectStore, backend_for
from ..io.uri import ObjectURI, parse_uri
from .blocks import FetchStats
from .parquet_footer import (
    _CACHE,
    FooterTooLargeError,
    ParquetFooter,
    ParquetFormatError,
    RowGroupIndexError,
    _key,
    parquet_cache_clear,
    parquet_cache_invalidate,
    parquet_cache_len,
    set_parquet_cache_capacity,
)

__all__ = [
    "DEFAULT_FOOTER_CAP",
    "FooterTooLargeError",
    "ParquetFooter",
    "ParquetFormatError",
    "ParquetObject",
    "RowGroupIndexError",
    "expand_parquet_uris",
    "open_parquet",
    "parquet_cache_clear",
    "parquet_cache_invalidate",
    "parquet_cache_len",
    "parquet_get_rg",
    "parquet_rg_row_offsets",
    "read_parquet",
    "read_row_group",
    "set_parquet_cache_capacity",
    "table_to_ipc",
]

URI = str | ObjectURI | os.PathLike[str]
Client = HasStores | None
T = TypeVar("T")

#: The first read of a file: its last 64 KiB (as pyarrow reads), which usually hold the footer.
SUFFIX = 64 * KiB
#: The largest footer accepted unless ``footer_cap`` says otherwise.
DEFAULT_FOOTER_CAP = 4 * MiB
#: Gaps up to this many bytes between wanted chunks are read through (one request, not two),
#: as long as the gaps stay under :data:`_HOLE_SHARE` of the bytes wanted.
_HOLE = 8 * KiB
_HOLE_SHARE = 0.05
#: Ranges of one read in flight at once.
_CONCURRENCY = 16
#: A row group whose selected chunks decode to at least this many bytes is decoded on
#: pyarrow's thread pool (``use_threads=None``).
_THREADS_FROM = 8 * MiB
_MAGIC = b"PAR1"
_TAIL = struct.Struct("<I4s")  # footer length, magic
#: Suffixes a prefix or glob selects.
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


# -- one object ---------------------------------------------------------------------------------


class ParquetObject:
    """One Parquet object on any backend: its footer, and row groups read by range requests.

    Args:
        uri: The object (any URI or a bare local path).
        footer_cap: The largest footer accepted (int or ``"4MiB"``).
        client: The :class:`s3dlio.Client` to use (default: the default client).
        validate: Check a cached footer against the object's current etag and size with a
            ``stat`` before using it. Without it, a cached footer is used as is and the data
            reads, which carry its etag, notice a rewrite (then the footer is read again).

    Attributes:
        stats: Requests made and bytes received (footer and data), for this object.
    """

    def __init__(
        self,
        uri: URI,
        *,
        footer_cap: int | str = DEFAULT_FOOTER_CAP,
        client: Client = None,
        validate: bool = False,
    ) -> None:
        self.uri = parse_uri(uri, allow_bare=True)
        self.footer_cap = parse_size(footer_cap)
        if self.footer_cap < 8:
            raise InvalidArgumentError(
                f"footer_cap must be >= 8 bytes, got {footer_cap!r}", uri=str(self.uri)
            )
        self.client = client
        self.backend: ObjectStore = backend_for(self.uri, client)
        self.stats = FetchStats()
        self._validate = validate
        self._footer: ParquetFooter | None = None
        self._from_cache = False

    # -- footer ------------------------------------------------------------------------------
    @property
    def footer(self) -> ParquetFooter:
        """The footer (from the cache when it holds this version, else read and cached)."""
        if self._footer is None:
            key = _key(self.uri)
            cached = _CACHE.get(key)
            meta = None
            if cached is not None and self._validate:
                meta = ops.stat(self.uri, self.client)
                if meta.size != cached.size or (meta.etag or None) != cached.etag:
                    _CACHE.drop(key, cached)
                    cached = None
            if cached is not None:
                self._check_cap(cached.footer_length - 8)
                self._footer, self._from_cache = cached, True
            else:
                self._footer, self._from_cache = self._read_footer(meta), False
                _CACHE.put(key, self._footer)
        return self._footer

    def _read_footer(self, meta: Any = None) -> ParquetFooter:
        meta = meta or ops.stat(self.uri, self.client)
        size, etag = meta.size, meta.etag or None
        if size < 12:
            raise self._bad(f"{size} bytes is too short for a Parquet file")
        tail_len = min(size, SUFFIX)
        tail = self._get(size - tail_len, tail_len, etag, size)
        length, magic = _TAIL.unpack_from(tail, tail_len - 8)
        if magic != _MAGIC:
            if magic == b"PARE":
                raise self._bad("the file is encrypted (PARE); encrypted footers are unsupported")
            raise self._bad(f"no Parquet magic at the end (found {bytes(magic)!r})")
        self._check_cap(length)
        if length + 12 > size:
            raise self._bad(f"footer length {length} does not fit in a {size}-byte file")
        total = length + 8
        if total <= tail_len:
            raw = tail[tail_len - total :]
        else:  # a footer larger than the first read: fetch what is missing, once
            buf = BytesView.allocate(total)
            raw = memoryview(buf)
            missing = total - tail_len
            self._get(size - total, missing, etag, size, into=raw[:missing])
            raw[missing:] = tail
        try:
            metadata = pq.read_metadata(pa.BufferReader(pa.py_buffer(raw)))
        except (OSError, pa.ArrowException) as exc:
            raise self._bad(f"corrupt footer ({exc})") from None
        return ParquetFooter(str(self.uri), size, etag, metadata, total)

    def _check_cap(self, length: int) -> None:
        if length + 8 > self.footer_cap:
            raise FooterTooLargeError(
                f"footer of {length} bytes is larger than footer_cap ({self.footer_cap} bytes)",
                uri=str(self.uri),
                op="GET",
            )

    def _bad(self, why: str) -> ParquetFormatError:
        return ParquetFormatError(f"not a valid Parquet file: {why}", uri=str(self.uri), op="GET")

    def _get(
        self,
        offset: int,
        length: int,
        etag: str | None,
        size: int,
        into: memoryview | None = None,
    ) -> memoryview:
        """Bytes ``[offset, offset + length)`` of the version ``etag``/``size``."""
        view = into if into is not None else memoryview(self.backend.allocate(length))
        result = fetch(
            self.backend, self.uri, offset, length, into=view, if_match=etag, op="GET_RANGE"
        )
        self.stats.add(result.requests, result.nbytes)
        self._check(result.size, result.nbytes, size, length, offset)
        return view

    def _check(self, size: int, nbytes: int, want_size: int, length: int, offset: int) -> None:
        """An :class:`IntegrityError` unless a read of ``length`` bytes at ``offset`` got them
        all from an object of the expected size (else it is another version)."""
        if size != want_size or nbytes != length:
            raise IntegrityError(
                f"object changed during the read: {size} bytes, expected {want_size}",
                uri=str(self.uri),
                op="GET_RANGE",
                byte_range=(offset, length),
            )

    def _retrying(self, work: Callable[[ParquetFooter], T]) -> T:
        """Run ``work(footer)``; when a cached footer turns out stale (a data read finds
        another version), read the footer again and run it once more."""
        footer = self.footer
        try:
            return work(footer)
        except ParquetFormatError:
            raise
        except IntegrityError:
            if not self._from_cache:
                raise
        _CACHE.drop(_key(self.uri), footer)
        self._footer = None
        self._validate = True
        return work(self.footer)

    # -- data --------------------------------------------------------------------------------
    def fetch_ranges(self, footer: ParquetFooter, ranges: Sequence[tuple[int, int]]) -> _Source:
        """Fetch ``ranges`` (sorted; coalesced here), concurrently; a source pyarrow reads."""
        spans = coalesce(ranges)
        views = [memoryview(self.backend.allocate(n)) for _, n in spans]
        results = fetch_ranges(
            self.backend, self.uri, spans, views, if_match=footer.etag, width=_CONCURRENCY
        )
        for (off, n), result in zip(spans, results, strict=True):
            self.stats.add(result.requests, result.nbytes)
            self._check(result.size, result.nbytes, footer.size, n, off)
        return _Source(self, footer, [off for off, _ in spans], views)

    def read_row_group(
        self,
        index: int,
        columns: Sequence[int | str] | None = None,
        *,
        use_threads: bool | None = None,
    ) -> Any:
        """Row group ``index`` (only ``columns``: names or indices) as a ``pyarrow.Table``.

        ``use_threads``: decode the columns on pyarrow's thread pool. ``None`` (default) does
        so only when the selected chunks hold at least 8 MiB once decompressed: below that,
        the hand-offs to pyarrow's threads cost more than they save (measured in
        ``docs/performance.md``, "Parquet").
        """

        def work(footer: ParquetFooter) -> Any:
            footer.check_row_group(index)
            roots = footer.resolve_columns(columns)
            source = self.fetch_ranges(footer, footer.ranges([index], roots))
            threads = use_threads
            if threads is None:
                threads = footer.decoded_size(index, roots) >= _THREADS_FROM
            # decoded in this thread: no pre-buffering (see _Source.parquet_file)
            return source.parquet_file(pre_buffer=threads).read_row_group(
                index, columns=_names(footer, roots, columns), use_threads=threads
            )

        return self._retrying(work)

    def read_row_groups(
        self,
        indices: Sequence[int] | None = None,
        columns: Sequence[int | str] | None = None,
        *,
        use_threads: bool = True,
    ) -> Any:
        """Row groups ``indices`` (default all) of ``columns`` as one ``pyarrow.Table``."""

        def work(footer: ParquetFooter) -> Any:
            groups = list(range(footer.num_row_groups)) if indices is None else list(indices)
            for rg in groups:
                footer.check_row_group(rg)
            roots = footer.resolve_columns(columns)
            source = self.fetch_ranges(footer, footer.ranges(groups, roots))
            names = _names(footer, roots, columns)
            pfile = source.parquet_file()
            if indices is None:
                return pfile.read(columns=names, use_threads=use_threads)
            return pfile.read_row_groups(groups, columns=names, use_threads=use_threads)

        return self._retrying(work)

    def get_row_group(
        self, index: int, col_indices: Sequence[int | str] | None = None, decode: str = "arrow"
    ) -> BytesView:
        """The original's ``parquet_get_rg``: Arrow IPC stream bytes or the raw chunk bytes."""
        if decode not in ("arrow", "raw"):
            raise InvalidArgumentError(
                f"decode must be 'arrow' or 'raw', got {decode!r}", uri=str(self.uri), op="GET"
            )

        def raw(footer: ParquetFooter) -> BytesView:
            footer.check_row_group(index)
            off, n = footer.span(index, footer.resolve_columns(col_indices))
            buf = self.backend.allocate(n)
            if n:
                self._get(off, n, footer.etag, footer.size, into=memoryview(buf))
            return buf

        if decode == "raw":
            return self._retrying(raw)
        roots = None if col_indices is None else self.footer.resolve_columns(col_indices)
        return table_to_ipc(self.read_row_group(index, roots, use_threads=False))

    def parquet_file(self) -> Any:
        """A ``pyarrow.parquet.ParquetFile`` reading this object through range requests.

        Its footer comes from the cache; each read pyarrow makes is one range request pinned
        to this version.
        """
        return _Source(self, self.footer, [], []).parquet_file()

    def __repr__(self) -> str:
        return f"ParquetObject({str(self.uri)!r})"


def _names(
    footer: ParquetFooter, roots: Sequence[int], asked: Sequence[int | str] | None
) -> list[str] | None:
    """The ``columns=`` argument for pyarrow: dotted names as asked, else top-level names."""
    if asked is None:
        return None
    if isinstance(asked, (str, int)):
        asked = [asked]
    if all(isinstance(c, str) for c in asked):
        return [str(c) for c in asked]
    return [footer.names[r] for r in roots]


def coalesce(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge sorted ``(offset, length)`` ranges that touch or overlap, and those separated by
    small gaps (up to 8 KiB, and 5 % of the bytes wanted in all), into fewer ranges."""
    if not ranges:
        return []
    wanted = sum(n for _, n in ranges)
    budget = int(wanted * _HOLE_SHARE)
    out: list[list[int]] = []
    for off, n in sorted(ranges):
        if out:
            last = out[-1]
            end = last[0] + last[1]
            gap = off - end
            if gap <= 0 or (gap <= _HOLE and gap <= budget):
                budget -= max(gap, 0)
                last[1] = max(end, off + n) - last[0]
                continue
        out.append([off, n])
    return [(a, b) for a, b in out]


class _Source:
    """A read-only file object over fetched ranges of one version of an object, for
    ``pyarrow.PythonFile``: reads inside a fetched range are memoryview slices (pyarrow wraps
    them without a copy); any other read is one range request of its own."""

    closed = False

    def __init__(
        self,
        obj: ParquetObject,
        footer: ParquetFooter,
        starts: list[int],
        views: list[memoryview],
    ) -> None:
        self._obj = obj
        self._footer = footer
        self._starts = starts
        self._views = views
        self._pos = 0
        self.misses = 0

    def parquet_file(self, pre_buffer: bool = True) -> Any:
        """A ``pyarrow.parquet.ParquetFile`` reading this source.

        ``pre_buffer``: let pyarrow coalesce its reads and run them on its I/O threads. For
        one row group whose chunks are fetched already, that only moves each read to an I/O
        thread and back into Python (``False`` halves the decode time); for many row groups
        it turns a read per chunk into a few large ones (``True`` is faster); without fetched
        ranges it overlaps the requests.
        """
        return pq.ParquetFile(
            pa.PythonFile(self, mode="r"),
            metadata=self._footer.metadata,
            pre_buffer=pre_buffer,
        )

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._footer.size)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def size(self) -> int:
        return self._footer.size

    def read_buffer(self, nbytes: int = -1) -> memoryview:
        pos, size = self._pos, self._footer.size
        n = size - pos if nbytes is None or nbytes < 0 else min(nbytes, max(0, size - pos))
        self._pos = pos + n
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos + n <= self._starts[i] + len(self._views[i]):
            start = pos - self._starts[i]
            return self._views[i][start : start + n]
        self.misses += 1
        if n == 0:
            return memoryview(b"")
        return self._obj._get(pos, n, self._footer.etag, size)

    def read(self, nbytes: int = -1) -> bytes:
        return bytes(self.read_buffer(nbytes))

    def close(self) -> None:
        self.closed = True


def table_to_ipc(table: Any) -> BytesView:
    """``table`` as Arrow IPC stream bytes (``pyarrow.ipc.open_stream`` reads them), written
    once straight into the returned buffer."""
    counter = pa.MockOutputStream()
    with pa.ipc.new_stream(counter, table.schema) as writer:
        writer.write_table(table)
    out = BytesView.allocate(counter.size())
    sink = pa.FixedSizeBufferWriter(pa.py_buffer(out))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return out


# -- module functions ---------------------------------------------------------------------------


def open_parquet(
    uri: URI, *, footer_cap: int | str = DEFAULT_FOOTER_CAP, client: Client = None
) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` over ``uri`` (any backend), reading by range requests.

    The footer is read once (or taken from the cache after a ``stat`` confirms the version).
    Use :func:`read_row_group` / :func:`read_parquet` for concurrent, coalesced reads.
    """
    return ParquetObject(uri, footer_cap=footer_cap, client=client, validate=True).parquet_file()


def read_row_group(
    uri: URI,
    i: int,
    columns: Sequence[int | str] | None = None,
    *,
    footer_cap: int | str = DEFAULT_FOOTER_CAP,
    client: Client = None,
) -> Any:
    """Row group ``i`` of ``uri`` as a ``pyarrow.Table``, fetching only its ``columns``'
    chunks (names or top-level indices; ``None`` = all).

    Raises:
        RowGroupIndexError: ``i`` is not a row group of the file.
        InvalidArgumentError: an unknown column.
        ParquetFormatError: not a Parquet file (``FooterTooLargeError``: footer over the cap).
    """
    return ParquetObject(uri, footer_cap=footer_cap, client=client).read_row_group(i, columns)


def expand_parquet_uris(uri_or_prefix: URI | Sequence[URI], client: Client = None) -> list[str]:
    """The Parquet objects a URI names: itself when it names one object (a key without a
    trailing ``/`` or glob: nothing is listed), else the objects a prefix (``.../``) or glob
    selects whose keys end in ``.parquet``/``.parq``/``.pq``, in key order; a list is taken
    as given.

    Raises:
        NotFoundError: nothing is selected.
    """
    if not isinstance(uri_or_prefix, (str, ObjectURI, os.PathLike)):
        return [str(parse_uri(u, allow_bare=True)) for u in uri_or_prefix]
    parsed = parse_uri(uri_or_prefix, allow_bare=True)
    if parsed.key and not parsed.key.endswith("/") and not has_glob(parsed.key):
        return [str(parsed)]  # one object: no listing (a directory needs its trailing "/")
    found = []
    for meta in select(parsed, recursive=True, client=client):
        if meta.is_prefix:
            continue
        if meta.key == parsed.key or meta.key.lower().endswith(PARQUET_SUFFIXES):
            found.append(str(meta.uri))
    if not found:
        raise NotFoundError("selects no Parquet objects", uri=str(parsed), op="LIST")
    return found


def read_parquet(
    uri_or_prefix: URI | Sequence[URI],
    columns: Sequence[int | str] | None = None,
    *,
    footer_cap: int | str = DEFAULT_FOOTER_CAP,
    client: Client = None,
    max_in_flight: int = 4,
) -> Any:
    """Every row of one Parquet object, or of all those a prefix/glob selects (key order),
    as one ``pyarrow.Table``; only ``columns``' chunks are fetched.

    Files are read ``max_in_flight`` at a time; each one's chunks are coalesced and fetched
    concurrently (large ranges split by the RangeEngine).
    """
    uris = expand_parquet_uris(uri_or_prefix, client)

    def one(uri: str) -> Any:
        return ParquetObject(uri, footer_cap=footer_cap, client=client).read_row_groups(
            None, columns
        )

    if len(uris) == 1:
        return one(uris[0])
    tables = [outcome.result() for _, outcome in bounded_map(one, uris, max(1, max_in_flight))]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise InvalidArgumentError(
            f"the selected Parquet objects have different schemas ({exc})",
            uri=str(uri_or_prefix),
            op="GET",
        ) from None


def parquet_get_rg(
    uri: URI,
    rg_idx: int,
    col_indices: Sequence[int | str] | None = None,
    footer_cap: int | str = DEFAULT_FOOTER_CAP,
    decode: str = "arrow",
    *,
    client: Client = None,
) -> BytesView:
    """One row group, as the original's ``parquet_get_rg``.

    Args:
        uri: The Parquet object (any backend).
        rg_idx: The row group (0-based).
        col_indices: Top-level columns (indices, or names); ``None`` = all.
        footer_cap: The largest footer accepted.
        decode: ``"arrow"``: Arrow IPC stream bytes (``pyarrow.ipc.open_stream``), columns in
            file order; ``"raw"``: the bytes from the first selected column chunk to the end
            of the last (compressed Parquet pages), one range request.
        client: The :class:`s3dlio.Client` (default: the default client).

    Returns:
        A :class:`~s3dlio.BytesView`.
    """
    obj = ParquetObject(uri, footer_cap=footer_cap, client=client)
    return obj.get_row_group(rg_idx, col_indices, decode)


def parquet_rg_row_offsets(
    uri: URI, *, footer_cap: int | str = DEFAULT_FOOTER_CAP, client: Client = None
) -> list[int]:
    """Cumulative row counts of ``uri``'s row groups: ``[0, ..., num_rows]`` (length = row
    groups + 1). The footer comes from the cache when a ``stat`` shows the same version."""
    obj = ParquetObject(uri, footer_cap=footer_cap, client=client, validate=True)
    return list(obj.footer.row_offsets)
