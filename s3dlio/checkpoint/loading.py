"""Loading a shard: tensor bytes go straight into each tensor's own memory, CRC32C in order.

A tree shard is read in three steps: its 40-byte prefix, then the rest of its header, then the
tensor bytes. Every tensor of at least :data:`SMALL` bytes is read by one request (split by
the RangeEngine when large) directly into a freshly allocated tensor; smaller tensors and the
padding between tensors are read in groups of up to :data:`GROUP` bytes and copied out. The
reads run concurrently, all pinned to the version (etag) seen first, while the CRC32C of the
whole shard is computed in order as they complete. A compressed shard is decompressed as one
stream into the same destinations.

Each tensor owns its memory, as after ``torch.load``: dropping one frees it, and memory the
allocator recycles is reused by the next load.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import crc32c
import zstandard

from ..errors import IntegrityError
from ..io import ops
from ..io.buffers import BytesView
from ..io.config import KiB, MiB
from ..io.executor import bounded_map
from ..io.range_engine import fetch
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI
from . import serializers
from .manifest import ShardMeta
from .shards import decompress, verify_checksum

__all__ = ["GROUP", "SMALL", "load_shard"]

#: Tensors smaller than this are read in groups and copied out.
SMALL = 256 * KiB
#: Largest grouped read.
GROUP = 8 * MiB
_PREFIX_LEN = 40


@dataclass
class _Read:
    """One contiguous byte range of the shard and where it lands."""

    start: int
    dest: memoryview
    copies: list[tuple[int, memoryview]] = field(default_factory=list)  # (offset in dest, target)


class _Ranged:
    """An uncompressed shard: any range, concurrently, every request pinned to one version."""

    concurrent = True

    def __init__(self, uri: ObjectURI, size: int, client: HasStores | None) -> None:
        self.uri = uri
        self.size = self.limit = size
        self.backend = backend_for(uri, client)
        self.etag: str | None = None

    def read(self, start: int, dest: memoryview) -> int:
        result = fetch(self.backend, self.uri, start, len(dest), into=dest, if_match=self.etag)
        if self.etag is None:
            self.etag = result.etag
        if result.size != self.size:
            raise IntegrityError(
                f"shard is {result.size} bytes, the manifest says {self.size}",
                uri=str(self.uri),
                op="GET",
            )
        return result.nbytes

    def rest(self, head: memoryview) -> BytesView:
        """The whole shard: ``head`` (its first bytes, read already) and the rest, read with
        one request pinned to the same version."""
        data = BytesView.allocate(self.size)
        done = len(head)
        data[:done] = head
        if done < self.size:
            self.read(done, memoryview(data)[done:])
        return data

    def check_end(self, end: int) -> None:
        if end != self.size:
            raise IntegrityError(
                f"tree ends at byte {end} but the shard has {self.size}",
                uri=str(self.uri),
                op="GET",
            )


class _Stream:
    """A zstd shard, decompressed in order."""

    concurrent = False
    limit = 1 << 30  # a sane bound for a header whose size cannot be checked up front

    def __init__(self, uri: ObjectURI, stored: BytesView) -> None:
        self.uri = uri
        self.stored = stored
        self.reader = zstandard.ZstdDecompressor().stream_reader(stored, read_across_frames=True)

    def read(self, start: int, dest: memoryview) -> int:
        filled = 0
        try:
            while filled < len(dest):
                got = self.reader.readinto(dest[filled:])
                if not got:
                    break
                filled += got
        except zstandard.ZstdError as exc:
            raise IntegrityError(
                f"corrupt zstd shard: {exc}", uri=str(self.uri), op="GET"
            ) from None
        return filled

    def rest(self, head: memoryview) -> BytesView:
        return decompress(self.stored, self.uri)

    def check_end(self, end: int) -> None:
        extra = bytearray(1)
        if self.read(end, memoryview(extra)):
            raise IntegrityError("data after the end of the tree", uri=str(self.uri), op="GET")


def _plan(header: serializers.Header) -> tuple[list[_Read], list[tuple[Any, memoryview]]]:
    """Cut ``[data_start, end)`` into reads; allocate every tensor."""
    leaves = [t.empty() for t in header.tensors]
    reads: list[_Read] = []
    group_start = header.data_start
    group_parts: list[tuple[int, memoryview]] = []
    pos = header.data_start

    def flush(upto: int) -> None:
        nonlocal group_start, group_parts
        if upto > group_start:
            reads.append(_Read(group_start, memoryview(bytearray(upto - group_start)), group_parts))
        group_start, group_parts = upto, []

    for tensor in sorted(header.tensors, key=lambda t: t.start):
        if tensor.start < pos:
            raise IntegrityError(f"checkpoint tree: tensor {tensor.index} overlaps another")
        view = leaves[tensor.index][1]
        if tensor.nbytes >= SMALL:
            flush(tensor.start)
            reads.append(_Read(tensor.start, view))
            group_start = pos = tensor.start + tensor.nbytes
            continue
        group_parts.append((tensor.start - group_start, view))
        pos = tensor.start + tensor.nbytes
        if pos - group_start >= GROUP:
            flush(pos)
    flush(max(pos, header.end))
    return reads, leaves


def _run(source: _Ranged | _Stream, reads: list[_Read], crc: int | None) -> int | None:
    """Fill every read (concurrently when the source allows), CRC in order, copy groups out."""

    def one(read: _Read) -> int:
        return source.read(read.start, read.dest)

    def finished() -> Iterator[tuple[_Read, int]]:
        if source.concurrent and len(reads) > 1:
            for read, fut in bounded_map(one, reads, 8):
                yield read, fut.result()
        else:
            for read in reads:
                yield read, one(read)

    for read, got in finished():
        if got != len(read.dest):
            raise IntegrityError(
                f"shard ended early: {got} of {len(read.dest)} bytes at byte {read.start}",
                uri=str(source.uri),
                op="GET",
            )
        if crc is not None:
            crc = crc32c.crc32c(read.dest, crc)
        for offset, target in read.copies:
            target[:] = read.dest[offset : offset + len(target)]
    return crc


def load_shard(
    base: ObjectURI,
    meta: ShardMeta,
    *,
    verify: bool = True,
    weights_only: bool = True,
    client: HasStores | None = None,
) -> Any:
    """What a shard holds: its tensor tree, or (for a bytes shard) a ``BytesView``.

    Raises:
        NotFoundError: the shard is missing.
        IntegrityError: it fails the size or CRC32C check (with ``verify``), or is malformed.
        pickle.UnpicklingError: the tree holds an object ``weights_only`` refuses.
    """
    uri = base.join(meta.key)
    source: _Ranged | _Stream
    if meta.key.endswith(".zst"):
        stored = ops.get(uri, client)
        if verify and len(stored) != meta.size:
            raise IntegrityError(
                f"shard is {len(stored)} bytes, the manifest says {meta.size}",
                uri=str(uri),
                op="GET",
            )
        source = _Stream(uri, stored)
    else:
        source = _Ranged(uri, meta.size, client)
    prefix = memoryview(bytearray(_PREFIX_LEN))
    got = source.read(0, prefix)
    data_start = serializers.header_size(prefix[:got])
    if data_start is None:  # bytes saved as they are
        data = source.rest(prefix[:got])
        if verify:
            verify_checksum(crc32c.crc32c(data), meta, uri)
        return data
    if data_start > source.limit:
        raise IntegrityError(
            f"tree header of {data_start} bytes is larger than the shard", uri=str(uri), op="GET"
        )
    head = bytearray(data_start)
    head[:_PREFIX_LEN] = prefix
    if source.read(_PREFIX_LEN, memoryview(head)[_PREFIX_LEN:]) != data_start - _PREFIX_LEN:
        raise IntegrityError("shard ended inside the tree header", uri=str(uri), op="GET")
    header = serializers.parse_header(head)
    reads, leaves = _plan(header)
    crc = _run(source, reads, crc32c.crc32c(head) if verify else None)
    source.check_end(header.end)
    if crc is not None:
        verify_checksum(crc, meta, uri)
    values = [t.finish(obj) for t, (obj, _) in zip(header.tensors, leaves, strict=True)]
    return serializers.build(header, values, weights_only=weights_only)
