"""One rank's shard: written as a stream (checksummed, optionally zstd), read back verified.

A shard holds either bytes exactly as given (what the original s3dlio stores) or a tensor tree
in the :mod:`~s3dlio.checkpoint.serializers` format, recognised by its magic on load.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import crc32c
import zstandard

from ..errors import ArgumentTypeError, IntegrityError, InvalidArgumentError
from ..io import ops
from ..io.buffers import BytesView
from ..io.config import MiB
from ..io.store import HasStores
from ..io.uri import ObjectURI
from ..io.writer import ObjectWriter, WriterOptions
from . import serializers
from .manifest import ShardMeta

__all__ = [
    "ShardStream",
    "decompress",
    "read_shard",
    "verify_checksum",
    "verify_shard",
    "write_shard",
]


class ShardStream(io.RawIOBase):
    """A writable file object for one rank's shard: ``torch.save(obj, stream)`` works.

    Bytes stream through a :class:`~s3dlio.io.writer.ObjectWriter` (bounded memory, CRC32C,
    optional zstd). Nothing is visible until :meth:`finalize`; leaving a ``with`` block by an
    exception, or :meth:`cancel`, discards everything.

    Attributes:
        key: The shard's key relative to the checkpoint base (``.zst`` added when compressed).
        step, epoch, rank, timestamp: Where the shard belongs.
        manifest_key: Set when finalizing also committed a checkpoint (``save_stream``).
    """

    def __init__(
        self,
        base: ObjectURI,
        key: str,
        options: WriterOptions,
        *,
        step: int,
        epoch: int,
        rank: int,
        timestamp: str,
        on_finalize: Callable[[ShardMeta], str | None] | None = None,
        client: HasStores | None = None,
    ) -> None:
        super().__init__()
        self._writer = ObjectWriter(base.join(key), options, client=client)
        self._base_key = base.join("").key
        self.key = self._writer.uri.key[len(self._base_key) :]
        self.step, self.epoch, self.rank, self.timestamp = step, epoch, rank, timestamp
        self._on_finalize = on_finalize
        self._meta: ShardMeta | None = None
        self._cancelled = False
        self.manifest_key: str | None = None

    # -- file object -------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Append ``data`` (any buffer); returns its length."""
        return self._writer.write(data)

    def write_chunk(self, data: Any) -> None:
        """Append ``data`` (the original's name)."""
        self._writer.write(data)

    def write_borrowed(self, data: Any) -> int:
        """Append ``data`` without copying it; it must stay unchanged until finalized."""
        return self._writer.write_borrowed(data)

    def tell(self) -> int:
        """Bytes written so far (uncompressed)."""
        return self._writer.tell()

    def flush(self) -> None:
        """Nothing to do: parts leave when full; :meth:`finalize` sends the rest."""

    @property
    def bytes_written(self) -> int:
        """Bytes written so far (uncompressed)."""
        return self._writer.bytes_written

    # -- finishing ---------------------------------------------------------------------------
    @property
    def meta(self) -> ShardMeta:
        """The manifest entry of the finalized shard."""
        if self._meta is None:
            raise InvalidArgumentError("the shard is not finalized yet")
        return self._meta

    def finalize(self) -> dict[str, Any]:
        """Store the shard; returns its metadata dict (pass these to the committing rank).

        The dict has the manifest entry's fields (``rank, key, size, etag, checksum``) plus
        ``step``, ``epoch`` and ``timestamp``.
        """
        if self._meta is None:
            writer = self._writer
            _, stored = writer.finalize()
            self._meta = ShardMeta(self.rank, self.key, stored, writer.etag, writer.checksum())
            if self._on_finalize is not None:
                self.manifest_key = self._on_finalize(self._meta)
        return self.meta_dict()

    def meta_dict(self) -> dict[str, Any]:
        """The finalized shard's metadata dict (see :meth:`finalize`)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "timestamp": self.timestamp,
            **self.meta.to_dict(),
        }

    def cancel(self) -> None:
        """Discard the shard: nothing is stored (idempotent)."""
        self._cancelled = True
        self._writer.abort()

    abort = cancel

    def close(self) -> None:
        """Finalize if still open (file-object protocol)."""
        if not self.closed and self._meta is None and not self._cancelled:
            self.finalize()
        super().close()

    def __enter__(self) -> ShardStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.cancel()
            super().close()
        else:
            self.close()

    def __del__(self) -> None:
        # Dropped unfinished: discard, never commit (IOBase.__del__ would call close()).
        if getattr(self, "_meta", True) is None:
            self.cancel()

    def __repr__(self) -> str:
        return f"<ShardStream {self.key} rank={self.rank} {self.bytes_written} bytes>"


def write_shard(stream: ShardStream, data: Any) -> ShardMeta:
    """Write ``data`` (bytes-like, or a tensor tree) through ``stream`` and finalize it.

    Raises:
        TypeError: ``data`` is a ``str`` (encode it, or wrap it in a tree).
    """
    if isinstance(data, str):
        stream.cancel()
        raise ArgumentTypeError("checkpoint data must be bytes-like or a tensor tree, not str")
    with stream:
        if serializers.is_bytes_like(data):
            stream.write_borrowed(data)
        else:
            serializers.dump(data, stream.write_borrowed)
        stream.finalize()
    return stream.meta


def decompress(stored: BytesView, uri: ObjectURI) -> BytesView:
    """Decode a zstd shard into a new ``BytesView``.

    Raises:
        IntegrityError: the data is not valid zstd.
    """
    reader = zstandard.ZstdDecompressor().stream_reader(stored, read_across_frames=True)
    out = BytesView.allocate(max(4 * len(stored), MiB))
    filled = 0
    try:
        while True:
            if filled == len(out):
                grown = BytesView.allocate(2 * len(out))
                memoryview(grown)[:filled] = memoryview(out)[:filled]
                out = grown
            with memoryview(out) as view:
                got = reader.readinto(view[filled:])
            if not got:
                break
            filled += got
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"corrupt zstd shard: {exc}", uri=str(uri), op="GET") from None
    del out[filled:]
    return out


def verify_checksum(crc: int, meta: ShardMeta, uri: ObjectURI) -> None:
    """Check a computed CRC32C of the uncompressed bytes against the manifest's ``checksum``.

    Raises:
        IntegrityError: a mismatch, or no (or an unknown kind of) checksum recorded: the check
            is never skipped silently.
    """
    algo, _, want = (meta.checksum or "").partition(":")
    if algo != "crc32c" or not want:
        raise IntegrityError(
            f"the manifest records no CRC32C checksum for this shard ({meta.checksum!r})",
            uri=str(uri),
            op="GET",
        )
    got = f"{crc:08x}"
    if got != want.lower():
        raise IntegrityError(
            f"shard checksum mismatch: manifest says crc32c:{want}, data is crc32c:{got}",
            uri=str(uri),
            op="GET",
        )


def verify_shard(data: Any, meta: ShardMeta, uri: ObjectURI) -> None:
    """Check ``data`` (uncompressed) against the manifest's ``checksum`` (see above)."""
    verify_checksum(crc32c.crc32c(data), meta, uri)


def read_shard(
    base: ObjectURI, meta: ShardMeta, *, verify: bool = True, client: HasStores | None = None
) -> BytesView:
    """The shard's bytes (decompressed when ``.zst``), checked against ``meta`` if ``verify``.

    Raises:
        NotFoundError: the shard is missing.
        IntegrityError: wrong size or checksum (with ``verify``), or corrupt zstd data.
    """
    uri = base.join(meta.key)
    stored = ops.get(uri, client)
    if verify and len(stored) != meta.size:
        raise IntegrityError(
            f"shard is {len(stored)} bytes, the manifest says {meta.size}", uri=str(uri), op="GET"
        )
    data = decompress(stored, uri) if meta.key.endswith(".zst") else stored
    if verify:
        verify_shard(data, meta, uri)
    return data
