"""The original's ``MultipartUploadWriter``, on every backend, over :class:`~s3dlio.ObjectWriter`.

``reserve(size)`` hands out a writable memoryview of a fresh :class:`ReservedBuffer`; the caller
fills it in place and ``commit(n)`` passes its first ``n`` bytes to
:meth:`~s3dlio.ObjectWriter.write_borrowed`, which uploads whole parts straight from that memory
(no copy); only a tail shorter than a part is copied into the writer's part buffer.
"""

from __future__ import annotations

from typing import Any

from ..client import Client
from ..errors import InvalidArgumentError
from ..io.uri import parse_uri
from ..io.writer import ObjectWriter, WriterOptions

__all__ = ["MultipartUploadWriter", "ReservedBuffer"]


class ReservedBuffer(bytearray):
    """The memory behind the memoryview :meth:`MultipartUploadWriter.reserve` returns
    (``mv.obj``): writable, never moved, kept alive until its bytes are uploaded."""


class MultipartUploadWriter:
    """Streaming multi-part upload of one object (the original's class; any backend).

    Args:
        bucket: The S3 bucket (use :meth:`from_uri` for any URI).
        key: The object key.
        part_size: Bytes per part (default 16 MiB; at least the backend's minimum).
        max_in_flight: Parts uploading at once.
        content_type: Stored content type.
        abort_on_drop: Abort the upload when the writer is garbage-collected unclosed
            (default ``True``).
        client: The :class:`s3dlio.Client` to write through (default: the default client).

    Nothing is visible until :meth:`close`; an exception inside ``with`` aborts.
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        part_size: int | str | None = None,
        max_in_flight: int | None = None,
        content_type: str | None = None,
        abort_on_drop: bool | None = None,
        *,
        client: Client | None = None,
    ) -> None:
        self._open(
            f"s3://{bucket}/{key}", part_size, max_in_flight, content_type, abort_on_drop, client
        )

    def _open(
        self,
        uri: str,
        part_size: int | str | None,
        max_in_flight: int | None,
        content_type: str | None,
        abort_on_drop: bool | None,
        client: Client | None,
    ) -> None:
        opts = WriterOptions(content_type=content_type)
        if part_size is not None:
            opts.part_size = part_size
        if max_in_flight is not None:
            opts.max_in_flight = max_in_flight
        self._writer = ObjectWriter(parse_uri(uri), opts, client=client)
        self.uri = str(self._writer.uri)
        self._abort_on_drop = True if abort_on_drop is None else bool(abort_on_drop)
        self._reserved: ReservedBuffer | None = None
        self._result: dict[str, Any] | None = None

    @classmethod
    def from_uri(
        cls,
        uri: str,
        part_size: int | str | None = None,
        max_in_flight: int | None = None,
        content_type: str | None = None,
        abort_on_drop: bool | None = None,
        *,
        client: Client | None = None,
    ) -> MultipartUploadWriter:
        """A writer for ``uri`` on any backend (``s3://``, ``az://``, ``gs://``, ``file://``,
        ``direct://``)."""
        writer = cls.__new__(cls)
        writer._open(uri, part_size, max_in_flight, content_type, abort_on_drop, client)
        return writer

    # -- writing -----------------------------------------------------------------------------
    def write(self, data: Any, *, copy: bool = False) -> None:
        """Append any bytes-like object (copied into part buffers, so ``data`` may be reused
        at once; ``copy`` is accepted for the original's signature)."""
        self._writer.write(data)

    def reserve(self, size: int) -> memoryview:
        """A writable memoryview of ``size`` bytes to fill in place, then :meth:`commit`."""
        if not isinstance(size, int) or size < 0:
            raise InvalidArgumentError(
                f"reserve size must be an int >= 0, got {size!r}", uri=self.uri, op="PUT"
            )
        if self._reserved is not None:
            raise InvalidArgumentError(
                "commit() the previous reserve() first", uri=self.uri, op="PUT"
            )
        self._reserved = ReservedBuffer(size)
        return memoryview(self._reserved)

    def commit(self, nbytes: int) -> None:
        """Send the first ``nbytes`` of the reserved buffer (whole parts without a copy)."""
        buf = self._reserved
        if buf is None:
            raise InvalidArgumentError("commit() without reserve()", uri=self.uri, op="PUT")
        if not 0 <= nbytes <= len(buf):
            raise InvalidArgumentError(
                f"commit({nbytes}) outside the reserved {len(buf)} bytes", uri=self.uri, op="PUT"
            )
        self._reserved = None
        self._writer.write_borrowed(memoryview(buf)[:nbytes])

    def flush(self) -> None:
        """Nothing to do: bytes leave in whole parts as they fill; :meth:`close` sends the rest."""

    # -- finishing ---------------------------------------------------------------------------
    @property
    def bytes_written(self) -> int:
        """Bytes accepted so far."""
        return self._writer.bytes_written

    def close(self) -> dict[str, Any]:
        """Complete the upload; returns ``{"total_bytes", "parts", "uri", "etag"}``."""
        if self._result is None:
            total, _ = self._writer.finalize()
            self._result = {
                "total_bytes": total,
                "parts": max(1, self._writer.parts_sent),
                "uri": self.uri,
                "etag": self._writer.etag,
            }
        return dict(self._result)

    def abort(self) -> None:
        """Discard the upload: nothing is stored (idempotent)."""
        self._writer.abort()

    def __enter__(self) -> MultipartUploadWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None and self._result is None and self._abort_on_drop:
            writer.abort()

    def __repr__(self) -> str:
        return f"<MultipartUploadWriter {self.uri} {self._writer.bytes_written} bytes>"
