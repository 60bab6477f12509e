"""TFRecord files on any backend: a fast verified reader, random access by index, a writer.

Reading::

    from s3dlio.formats.tfrecord import TFRecordReader, decode_example
    for record in TFRecordReader("s3://bucket/train-0.tfrecord"):     # CRC32C checked
        features = decode_example(record)                               # {name: np.ndarray}

    reader = TFRecordReader("gs://bucket/train-0.tfrecord", index=True)   # uses uri + ".idx"
    len(reader), reader.read_record(123)                                  # one range GET

Records are zero-copy ``memoryview`` slices of block buffers (1 MiB for local files; 8 MiB
over a network, where the next block is fetched in the background). A view stays valid as long
as you hold it: a block buffer is reused only once no record of it is referenced (keeping a
small record alive pins its whole block, so copy it with ``bytes(record)`` if you keep many).

Gzip-compressed files (``compression="gzip"``) are read and written sequentially; random access
needs an uncompressed file. Index files follow DALI's ``tfrecord2idx`` format
(:mod:`~s3dlio.formats.tfrecord_index`).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import (
    ArgumentTypeError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    UnsupportedOperationError,
)
from ..io import ops
from ..io.buffers import BytesView, as_readonly_view
from ..io.config import MiB
from ..io.executor import bounded_map
from ..io.range_engine import fetch
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from ..io.writer import ObjectWriter, WriterOptions
from .blocks import BlockSource, FetchStats, GzipBlockSource, Window, default_block_size
from .example import decode_example, encode_example
from .framing import HEADER, OVERHEAD, iter_payloads, masked_crc
from .mapped import MappedFile, MappedSource, mappable
from .tfrecord_index import (
    create_tfrecord_index,
    default_index_uri,
    format_index,
    get_tfrecord_index_entries,
    index_tfrecord_bytes,
    load_index,
    parse_index,
    read_tfrecord_index,
)

__all__ = [
    "TFRecordReader",
    "TFRecordWriter",
    "create_tfrecord_index",
    "decode_example",
    "default_index_uri",
    "encode_example",
    "format_index",
    "get_tfrecord_index_entries",
    "index_tfrecord_bytes",
    "iter_records",
    "load_index",
    "parse_index",
    "read_tfrecord_index",
]

URI = str | ObjectURI | os.PathLike[str]
_HDR = struct.Struct("<QI")
_U32 = struct.Struct("<I")


def _compression(value: str | None) -> str | None:
    codec = (value or "").lower()
    if codec in ("", "none"):
        return None
    if codec in ("gzip", "gz"):
        return "gzip"
    raise InvalidArgumentError(f"unknown TFRecord compression {value!r} (use None or 'gzip')")


def iter_records(buffer: Any, *, verify: bool = True) -> Iterator[memoryview]:
    """The record payloads of an in-memory TFRecord file, as zero-copy views.

    Raises:
        IntegrityError: a CRC mismatch (with ``verify``), or the data ends inside a record.
    """
    view = as_readonly_view(buffer, what="buffer")
    window: Window = (view, 0, len(view))  # type: ignore[assignment]
    return iter_payloads([window], uri="<buffer>", verify=verify, limit=lambda: len(view))


class TFRecordReader:
    """Read a TFRecord object: iterate its records, or fetch any one by index.

    Args:
        uri: The TFRecord object (any URI, or a bare local path).
        index: Where the record offsets come from, for ``len()`` and :meth:`read_record`:
            ``None`` (default) or ``True`` = the index object ``uri + ".idx"`` (read when first
            needed), a URI/path of an index file, or a sequence of ``(offset, size)`` pairs.
        verify: Check every record's length and data CRC32C (a mismatch raises
            :class:`~s3dlio.errors.IntegrityError` naming the URI and record offset).
        compression: ``None`` or ``"gzip"`` (gzip files are sequential only).
        block_size: Bytes fetched per request when iterating (default 1 MiB for local files,
            8 MiB over a network; grown to fit large records; with ``mmap``, the bytes parsed
            at a time, default 16 MiB).
        prefetch: Fetch the next block in the background while records are consumed (default:
            over a network only; a local read is a memory copy best done in place).
        mmap: Iterate a ``file://`` object through a (copy-on-write) memory map instead of reading
            it into buffers: no copy, so a verified iteration reads each byte once (about twice
            as fast for large records). The records then stay backed by the file: fine for
            data that is not modified while read, but a file truncated in place kills the
            process with ``SIGBUS`` when a record beyond its new end is touched (see
            :mod:`~s3dlio.formats.mapped`). :meth:`read_record` then copies the record out of
            the mapped file (mapped at first use, until :meth:`close`) instead of making a
            range request.
        client: The :class:`s3dlio.Client` to read through (default: the default client).

    Attributes:
        uri: The parsed URI.
        stats: Requests made and bytes received (``stats.requests``, ``stats.bytes_fetched``).
    """

    def __init__(
        self,
        uri: URI,
        index: bool | URI | Sequence[tuple[int, int]] | np.ndarray | None = None,
        verify: bool = True,
        compression: str | None = None,
        *,
        block_size: int | None = None,
        prefetch: bool | None = None,
        mmap: bool = False,
        client: HasStores | None = None,
    ) -> None:
        self.uri = parse_uri(uri, allow_bare=True)
        if block_size is not None and block_size < 1:
            raise InvalidArgumentError(
                f"block_size must be at least 1 byte, not {block_size}", uri=str(self.uri)
            )
        self.client = client
        self.verify = verify
        self.compression = _compression(compression)
        self.block_size = block_size
        self.prefetch = prefetch
        self.mmap = mmap
        self.stats = FetchStats()
        self._index_source = index
        self._entries: np.ndarray | None = None
        self._etag: str | None = None
        self._mapped: MappedFile | None = None
        self._lock = threading.Lock()
        self._backend = mappable(self.uri, client) if mmap else backend_for(self.uri, client)
        if index is not None and not isinstance(index, (bool, str, ObjectURI, os.PathLike)):
            self._entries = _as_entries(index, str(self.uri))

    # -- sequential --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[memoryview]:
        """Every record payload, in file order (CRC-checked when ``verify``)."""
        if self.compression == "gzip":
            raw = MappedSource(self.uri, stats=self.stats) if self.mmap else None
            gz = GzipBlockSource(
                self.uri,
                block_size=self.block_size,
                stats=self.stats,
                raw=raw,
                backend=self._backend,
            )
            return self._records(gz, 0, lambda: None, gz.expect)
        source = self._source()
        return self._records(source, 0, lambda: source.size, source.expect)

    def iter_records(self, start: int = 0, stop: int | None = None) -> Iterator[memoryview]:
        """Records ``start`` to ``stop - 1`` (by index), read sequentially in large blocks.

        Use it to read one shard of a file: only the bytes of those records are fetched.
        """
        self._check_random_access()
        entries = self.entries
        begin, end, _ = slice(start, stop).indices(len(entries))
        if begin >= end:
            return iter(())
        first = int(entries[begin, 0])
        last = int(entries[end - 1, 0] + entries[end - 1, 1])
        source = self._source(first, last)
        return self._records(source, first, lambda: last, source.expect)

    def _source(self, start: int = 0, end: int | None = None) -> BlockSource | MappedSource:
        if self.mmap:
            return MappedSource(
                self.uri,
                start=start,
                end=end,
                block_size=self.block_size,
                etag=self._etag,
                stats=self.stats,
            )
        block = self.block_size or default_block_size(self._backend)
        if end is not None:
            block = min(block, max(1, end - start))
        return BlockSource(
            self.uri,
            start=start,
            end=end,
            block_size=block,
            prefetch=self.prefetch,
            etag=self._etag,
            stats=self.stats,
            announced=True,
            backend=self._backend,
        )

    def _records(self, windows: Any, base: int, limit: Any, expect: Any) -> Iterator[memoryview]:
        return iter_payloads(
            windows, uri=str(self.uri), verify=self.verify, base=base, limit=limit, expect=expect
        )

    # -- random access -----------------------------------------------------------------------
    @property
    def entries(self) -> np.ndarray:
        """The index as an ``(n, 2)`` int64 array of ``(offset, size)``."""
        if self._entries is None:
            self._check_random_access()
            source = self._index_source
            target = default_index_uri(self.uri) if source in (None, True) else source
            try:
                self._entries = load_index(target, client=self.client)  # type: ignore[arg-type]
            except NotFoundError as exc:
                raise NotFoundError(
                    f"no TFRecord index at {exc.uri}; create one with "
                    "s3dlio.create_tfrecord_index(uri) or pass index=",
                    uri=str(self.uri),
                    op="GET",
                ) from None
        return self._entries

    def __len__(self) -> int:
        """The number of records (from the index).

        Raises:
            TypeError: there is no index (a gzip file, or no index object), as ``len()`` of an
                object without a length does; ``list(reader)`` then simply reads the records.
        """
        try:
            return len(self.entries)
        except (NotFoundError, UnsupportedOperationError) as exc:
            raise ArgumentTypeError(f"len() of a TFRecordReader without an index: {exc}") from exc

    def read_record(self, i: int) -> memoryview:
        """Record ``i`` (negative counts from the end), fetched with one range request.

        Raises:
            IndexError: ``i`` is out of range.
            IntegrityError: the record fails its CRC checks, or does not match the index.
        """
        entries = self.entries
        n = len(entries)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range (file has {n})")
        offset, size = (int(v) for v in entries[i])
        if self.mmap:
            return self._mapped_record(offset, size)
        buf = BytesView.allocate(size)
        result = fetch(
            self._backend,
            self.uri,
            offset,
            size,
            into=memoryview(buf),
            if_match=self._etag,
            op="GET_RANGE",
        )
        self._etag = self._etag or result.etag
        self.stats.add(result.requests, result.nbytes)
        return self._check_record(buf, result.nbytes, offset, size)

    __getitem__ = read_record

    def read_records(self, indices: Iterable[int], max_in_flight: int = 16) -> list[memoryview]:
        """Several records by index, fetched concurrently (one range request each; with
        ``mmap``, copied from the mapping one after the other)."""
        if self.mmap:
            return [self.read_record(i) for i in indices]
        return [fut.result() for _, fut in bounded_map(self.read_record, indices, max_in_flight)]

    def _mapped_record(self, offset: int, size: int) -> memoryview:
        """The record at ``offset``, copied out of the mapped file (mapped at first use).

        A copy, not a view: the mapping outlives the record, and a consumer writing into a
        record it was handed (an in-place transform) must not change the next read of it.
        """
        with self._lock:
            mapped = self._mapped
            if mapped is None:
                mapped = self._mapped = MappedFile(self.uri, etag=self._etag)
                self._etag = mapped.etag
        mapped.check(offset, size)
        data = memoryview(mapped.buffer or b"")[offset : offset + size]
        buf = BytesView.allocate(len(data))
        buf[:] = data
        del data
        self.stats.add(1, len(buf))
        return self._check_record(buf, len(buf), offset, size)

    def _check_record(
        self, buf: bytearray | memoryview, got: int, offset: int, size: int
    ) -> memoryview:
        uri = str(self.uri)
        if got != size or size < OVERHEAD:
            raise IntegrityError(
                f"index entry ({offset}, {size}) runs past the end of the object",
                uri=uri,
                op="GET_RANGE",
                byte_range=(offset, size),
            )
        length, hcrc = _HDR.unpack_from(buf)
        if length + OVERHEAD != size:
            raise IntegrityError(
                f"index entry ({offset}, {size}) does not match the record there "
                f"({length} data bytes): stale index?",
                uri=uri,
                op="GET_RANGE",
                byte_range=(offset, size),
            )
        view = memoryview(buf)
        payload = view[HEADER : HEADER + length]
        if self.verify and (
            hcrc != masked_crc(view[:8])
            or _U32.unpack_from(buf, HEADER + length)[0] != masked_crc(payload)
        ):
            raise IntegrityError(
                f"record at offset {offset} failed its CRC32C check",
                uri=uri,
                op="GET_RANGE",
                byte_range=(offset, size),
            )
        return payload

    def _check_random_access(self) -> None:
        if self.compression == "gzip":
            raise UnsupportedOperationError(
                "gzip-compressed TFRecord files can only be read sequentially",
                uri=str(self.uri),
                op="GET_RANGE",
            )

    # -- misc --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file mapped for :meth:`read_record` with ``mmap`` (records already handed
        out stay valid); otherwise nothing to release."""
        with self._lock:
            mapped, self._mapped = self._mapped, None
        if mapped is not None:
            mapped.close()

    def __enter__(self) -> TFRecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mapped = ", mmap=True" if self.mmap else ""
        return f"TFRecordReader({str(self.uri)!r}, verify={self.verify}{mapped})"


def _as_entries(index: Any, uri: str) -> np.ndarray:
    arr = np.asarray(index, dtype=np.int64)
    if arr.size == 0:
        return np.empty((0, 2), np.int64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise InvalidArgumentError("index must be a sequence of (offset, size) pairs", uri=uri)
    return np.ascontiguousarray(arr[:, :2])


class TFRecordWriter:
    """Write TFRecord records to an object on any backend (streamed, atomic on close).

    Args:
        uri: Destination (any URI, or a bare local path).
        compression: ``None`` or ``"gzip"``.
        index: Also write the index: ``True`` for ``uri + ".idx"``, or its URI. Not with gzip.
        options: Writer options (part size, parts in flight, ...).
        compression_level: gzip level (1-9).
        client: The :class:`s3dlio.Client` to write through (default: the default client).

    Use it as a context manager: leaving the block by an exception discards the object.
    """

    def __init__(
        self,
        uri: URI,
        compression: str | None = None,
        *,
        index: bool | URI = False,
        options: WriterOptions | None = None,
        compression_level: int = 6,
        client: HasStores | None = None,
    ) -> None:
        self.uri = parse_uri(uri, allow_bare=True)
        self.client = client
        self.compression = _compression(compression)
        if index and self.compression:
            raise InvalidArgumentError(
                "an index of a gzip-compressed file is not usable (no random access)",
                uri=str(self.uri),
            )
        self._index_uri = (
            None if not index else default_index_uri(self.uri) if index is True else index
        )
        self._writer = ObjectWriter(self.uri, options, client=client)
        self._deflate = (
            zlib.compressobj(compression_level, zlib.DEFLATED, 31) if self.compression else None
        )
        self._stage = bytearray(MiB)
        self._fill = 0
        self._offsets: list[int] = []
        self._sizes: list[int] = []
        self.records = 0
        self.offset = 0  #: bytes of (uncompressed) TFRecord data written so far
        self._closed = False

    def write(self, payload: Any) -> None:
        """Append one record (any buffer)."""
        if self._closed:
            raise InvalidArgumentError("write to a closed TFRecordWriter")
        data = as_readonly_view(payload, what="payload")
        n = len(data)
        size = n + OVERHEAD
        if self._index_uri is not None:
            self._offsets.append(self.offset)
            self._sizes.append(size)
        self.records += 1
        self.offset += size
        if self._fill + size > len(self._stage):
            self._flush_stage()
        stage = self._stage
        if size <= len(stage):
            at = self._fill
            struct.pack_into("<Q", stage, at, n)
            struct.pack_into("<I", stage, at + 8, masked_crc(memoryview(stage)[at : at + 8]))
            stage[at + HEADER : at + HEADER + n] = data
            struct.pack_into("<I", stage, at + HEADER + n, masked_crc(data))
            self._fill = at + size
        else:  # a large record goes straight through
            header = struct.pack("<Q", n)
            self._emit(header + struct.pack("<I", masked_crc(header)))
            self._emit(data)
            self._emit(struct.pack("<I", masked_crc(data)))

    def write_example(self, features: dict[str, Any]) -> None:
        """Append one ``tf.train.Example`` built from ``{name: value}`` (see ``encode_example``)."""
        self.write(encode_example(features))

    def _flush_stage(self) -> None:
        if self._fill:
            self._emit(memoryview(self._stage)[: self._fill])
            self._fill = 0

    def _emit(self, data: Any) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data)
            if not data:
                return
        self._writer.write(data)

    def flush(self) -> None:
        """Hand buffered records to the object writer (nothing is visible before close)."""
        self._flush_stage()

    def close(self) -> int:
        """Finish the object (and its index); return the number of records written."""
        if self._closed:
            return self.records
        self._closed = True
        try:
            self._flush_stage()
            if self._deflate is not None:
                self._writer.write(self._deflate.flush())
            self._writer.finalize()
        except BaseException:
            self._writer.abort()
            raise
        if self._index_uri is not None:
            entries = np.column_stack([self._offsets, self._sizes]).reshape(-1, 2)
            target = parse_uri(self._index_uri, allow_bare=True)
            ops.put(target, memoryview(format_index(entries).encode("ascii")), client=self.client)
        return self.records

    def abort(self) -> None:
        """Discard everything written; no object is created."""
        self._closed = True
        self._writer.abort()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"TFRecordWriter({str(self.uri)!r}, records={self.records})"
