"""Raw objects: whole, or as fixed-size records read by index or in sequence.

::

    from s3dlio.formats.raw import RawRecords, read_raw
    data = read_raw("s3://bucket/blob.bin")                 # the whole object, zero-copy buffer
    recs = RawRecords("s3://bucket/samples.bin", record_size=4096, header=64)
    len(recs), recs[10]                                     # record 10: one range request
    batch = recs.read_range(100, 132)                       # 32 records, one request
    for rec in recs: ...                                    # sequential, large blocks
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import IntegrityError, InvalidArgumentError
from ..io import ops
from ..io.buffers import BytesView
from ..io.config import MiB
from ..io.range_engine import fetch
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from .blocks import BlockSource, FetchStats

__all__ = ["RawRecords", "read_raw"]

URI = str | ObjectURI | os.PathLike[str]


def read_raw(uri: URI, *, client: HasStores | None = None) -> BytesView:
    """The whole object as a zero-copy :class:`~s3dlio.io.buffers.BytesView`."""
    return ops.get(parse_uri(uri, allow_bare=True), client)


class RawRecords:
    """An object read as fixed-size records (after an optional header).

    Args:
        uri: The object (any URI or a bare local path).
        record_size: Bytes per record.
        header: Bytes to skip at the start of the object.
        dtype: If given, records are returned as NumPy arrays of this dtype (zero-copy).
        strict: Refuse an object whose data is not a whole number of records (default: a short
            tail is ignored).

    Attributes:
        size: The object's size.
        stats: Requests made and bytes received.
    """

    def __init__(
        self,
        uri: URI,
        record_size: int,
        *,
        header: int = 0,
        dtype: Any = None,
        strict: bool = False,
        client: HasStores | None = None,
    ) -> None:
        if record_size < 1 or header < 0:
            raise InvalidArgumentError(
                "record_size must be >= 1 and header >= 0", uri=str(uri), op="GET"
            )
        self.uri = parse_uri(uri, allow_bare=True)
        self.record_size = record_size
        self.header = header
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and record_size % self.dtype.itemsize:
            raise InvalidArgumentError(
                f"record_size {record_size} is not a multiple of {self.dtype} items",
                uri=str(self.uri),
                op="GET",
            )
        meta = ops.stat(self.uri, client)
        self.size = meta.size
        self.etag = meta.etag
        self.stats = FetchStats()
        self._backend = backend_for(self.uri, client)
        body = max(0, self.size - header)
        if strict and body % record_size:
            raise IntegrityError(
                f"{body} data bytes are not a whole number of {record_size}-byte records",
                uri=str(self.uri),
                op="GET",
            )
        self._count = body // record_size

    def __len__(self) -> int:
        return self._count

    def _wrap(self, view: memoryview) -> Any:
        return view if self.dtype is None else np.frombuffer(view, self.dtype)

    def read_range(self, start: int, stop: int) -> Any:
        """Records ``start`` to ``stop - 1`` as one buffer (one range request)."""
        begin, end, _ = slice(start, stop).indices(self._count)
        count = max(0, end - begin)
        buf = BytesView.allocate(count * self.record_size)
        if count:
            offset = self.header + begin * self.record_size
            result = fetch(
                self._backend,
                self.uri,
                offset,
                len(buf),
                into=memoryview(buf),
                if_match=self.etag,
                op="GET_RANGE",
            )
            self.stats.add(result.requests, result.nbytes)
            if result.nbytes != len(buf):
                raise IntegrityError(
                    "object shrank while open",
                    uri=str(self.uri),
                    op="GET_RANGE",
                    byte_range=(offset, len(buf)),
                )
        return self._wrap(memoryview(buf))

    def read_record(self, i: int) -> Any:
        """Record ``i`` (negative counts from the end), with one range request."""
        if not -self._count <= i < self._count:
            raise IndexError(f"record {i} out of range ({self._count} records)")
        i %= self._count
        return self.read_range(i, i + 1)

    __getitem__ = read_record

    def __iter__(self) -> Iterator[Any]:
        """Every record in order, read in large blocks (zero-copy views of the blocks)."""
        size = self.record_size
        end = self.header + self._count * size
        block = max(size, (8 * MiB // size) * size)  # whole records per block
        source = BlockSource(
            self.uri,
            start=self.header,
            end=end,
            block_size=block,
            headroom=0,
            etag=self.etag,
            stats=self.stats,
        )
        for buf, lo, hi in source:
            win = memoryview(buf)
            for at in range(lo, hi - size + 1, size):
                yield self._wrap(win[at : at + size])
            del win
