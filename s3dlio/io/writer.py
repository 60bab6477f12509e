"""Streaming writers: bounded memory, optional zstd, atomic on every backend.

An :class:`ObjectWriter` accepts chunks of any size, CRC32C-checksums the uncompressed stream,
optionally compresses it with zstd, and cuts the result into parts sent concurrently (at most
``max_in_flight`` at a time) through the backend's multi-part upload: S3 multipart, Azure staged
blocks, GCS resumable upload, a temp file + rename locally. Memory is bounded by
``part_size * (max_in_flight + 1)`` whatever the object size. An object smaller than one part
is sent with a single PUT.

Nothing is visible until :meth:`ObjectWriter.finalize`. An exception inside ``with writer:``,
an explicit :meth:`~ObjectWriter.abort`, or a writer dropped unfinished leaves no object and no
pending upload behind.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import Future
from typing import Any

import crc32c
import zstandard

from ..errors import InvalidArgumentError, InvalidURIError, S3DlioError
from . import oplog, ops, retry
from .buffers import as_readonly_view
from .config import MiB, parse_size
from .executor import get_executor
from .store import HasStores, ObjectStore, Upload, backend_for
from .uri import ObjectURI, parse_uri

__all__ = [
    "ObjectWriter",
    "WriterOptions",
    "open_writer",
]

_COMPRESSIONS = (None, "none", "zstd")


class WriterOptions:
    """Options of a streaming writer (mutable, as users of the original write them).

    Attributes:
        compression: ``None``/``"none"`` or ``"zstd"`` (appends ``.zst`` to the key).
        compression_level: zstd level, 1-22.
        part_size: Bytes per uploaded part (``"16MiB"`` accepted); at least 5 MiB on S3.
        max_in_flight: Parts uploading at once.
        content_type: Stored content type, if the backend keeps one.
        metadata: User metadata, if the backend keeps it.
    """

    def __init__(
        self,
        compression: str | None = None,
        compression_level: int = 3,
        part_size: int | str = 16 * MiB,
        max_in_flight: int = 4,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.compression = compression
        self.compression_level = compression_level
        self.part_size = part_size
        self.max_in_flight = max_in_flight
        self.content_type = content_type
        self.metadata = dict(metadata or {})

    def with_compression(self, compression: str | None, level: int | None = None) -> WriterOptions:
        """Set compression (``"zstd"`` or ``None``) and level; returns ``self`` for chaining."""
        self.compression = compression
        if level is not None:
            self.compression_level = level
        return self

    def with_part_size(self, size: int | str) -> WriterOptions:
        """Set the part size; returns ``self``."""
        self.part_size = size
        return self

    with_buffer_size = with_part_size

    def validated(self) -> WriterOptions:
        """A checked copy (raises ``InvalidArgumentError``, a ``ValueError``, on bad values)."""
        codec = (self.compression or "none").lower()
        if codec not in ("none", "zstd"):
            raise InvalidArgumentError(f"unknown compression {self.compression!r} (use 'zstd')")
        if not 1 <= int(self.compression_level) <= 22:
            raise InvalidArgumentError(
                f"compression_level must be 1-22, got {self.compression_level}"
            )
        if int(self.max_in_flight) < 1:
            raise InvalidArgumentError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        part = parse_size(self.part_size)
        if part < 1:
            raise InvalidArgumentError("part_size must be > 0")
        return WriterOptions(
            None if codec == "none" else codec,
            int(self.compression_level),
            part,
            int(self.max_in_flight),
            self.content_type,
            self.metadata,
        )

    def __repr__(self) -> str:
        return (
            f"WriterOptions(compression={self.compression!r}, "
            f"compression_level={self.compression_level}, part_size={self.part_size!r}, "
            f"max_in_flight={self.max_in_flight})"
        )


class ObjectWriter(io.RawIOBase):
    """A write-only, streaming file object for one object on any backend.

    Use :func:`open_writer` (or the ``create_*_writer`` functions) to make one.
    ``write``/``write_chunk`` accept any buffer; ``finalize()`` commits and returns
    ``(bytes_written, compressed_bytes)``: uncompressed bytes in, and bytes stored.
    """

    def __init__(
        self,
        uri: ObjectURI,
        options: WriterOptions | None = None,
        *,
        client: HasStores | None = None,
    ) -> None:
        super().__init__()
        opts = (options or WriterOptions()).validated()
        if opts.compression == "zstd" and not uri.key.endswith(".zst"):
            uri = uri.with_key(uri.key + ".zst")
        if not uri.key or uri.key.endswith("/"):
            raise InvalidURIError("a writer needs an object key", uri=str(uri), op="PUT")
        self.uri = uri
        self.options = opts
        self.backend: ObjectStore = backend_for(uri, client)
        self._client = client
        b = self.backend
        part = max(int(opts.part_size), b.min_part_size)  # validated(): bytes
        self.part_size = -(-part // b.part_multiple) * b.part_multiple
        self.max_in_flight = max(1, min(opts.max_in_flight, b.max_parallel_parts))
        self._crc = 0
        self._in = 0
        self._out = 0
        self._compressor = (
            zstandard.ZstdCompressor(level=opts.compression_level).compressobj()
            if opts.compression == "zstd"
            else None
        )
        self._buf = bytearray(self.part_size)
        self._fill = 0
        self._part_no = 0
        self._upload: Upload | None = None
        self._inflight: list[Future[None]] = []
        self._free: list[bytearray] = []
        self._slots = threading.Semaphore(self.max_in_flight)
        self._error: BaseException | None = None
        self._state = "open"
        self._started = time.time_ns()
        self._result: tuple[int, int] | None = None
        #: The stored object's version token once finalized (``None`` if the store gives none).
        self.etag: str | None = None

    # -- io.RawIOBase ------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Append ``data`` (any buffer); returns its length."""
        view = as_readonly_view(data)
        self._check_open()
        self._crc = crc32c.crc32c(view, self._crc)
        self._in += len(view)
        if self._compressor is not None:
            compressed = self._compressor.compress(view)
            if compressed:
                self._append(memoryview(compressed))
        else:
            self._append(view)
        return len(view)

    def write_chunk(self, data: Any) -> None:
        """Append ``data`` (the original's name for :meth:`write`)."""
        self.write(data)

    def write_borrowed(self, data: Any) -> int:
        """Append ``data`` like :meth:`write`, uploading its bulk without copying it.

        The caller must leave ``data`` unchanged until :meth:`finalize` returns (parts upload
        in the background straight from its memory). Buffered bytes are first topped up to
        the smallest part the backend accepts and sent, so parts may differ in size.
        Compressed writers copy as usual.
        """
        view = as_readonly_view(data)
        if self._compressor is not None or len(view) < self.part_size:
            return self.write(view)
        self._check_open()
        self._crc = crc32c.crc32c(view, self._crc)
        self._in += len(view)
        rest = view
        if self._fill:
            b = self.backend
            target = max(self._fill, b.min_part_size)
            target = min(-(-target // b.part_multiple) * b.part_multiple, self.part_size)
            head = target - self._fill
            self._buf[self._fill : target] = rest[:head]
            self._fill = target
            rest = rest[head:]
            self._send_part(last=False)
        whole = len(rest) - len(rest) % self.part_size
        for start in range(0, whole, self.part_size):
            self._send_part(last=False, borrowed=rest[start : start + self.part_size])
        self._append(rest[whole:])
        return len(view)

    def write_owned_bytes(self, data: Any, *, copy: bool = False) -> None:
        """The original's name: :meth:`write_borrowed` (``copy=True``: :meth:`write`)."""
        if copy:
            self.write(data)
        else:
            self.write_borrowed(data)

    @property
    def parts_sent(self) -> int:
        """Parts handed to a multi-part upload so far (0 while everything fits one PUT)."""
        return self._part_no

    def tell(self) -> int:
        """Uncompressed bytes written so far."""
        return self._in

    def flush(self) -> None:
        """Nothing to do: data leaves in whole parts; :meth:`finalize` sends the rest."""

    def close(self) -> None:
        """Finalize if still open (file-object protocol), then close."""
        if self._state == "open":
            self.finalize()
        super().close()

    # -- checksums and results ---------------------------------------------------------------
    def checksum(self) -> str:
        """``"crc32c:%08x"`` of the uncompressed bytes written so far."""
        return f"crc32c:{self._crc:08x}"

    @property
    def bytes_written(self) -> int:
        """Uncompressed bytes accepted."""
        return self._in

    @property
    def compressed_bytes(self) -> int:
        """Bytes stored (equals :attr:`bytes_written` without compression)."""
        return self._out + self._fill

    # -- parts -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._wrap(self._error)
        if self._state != "open":
            raise InvalidArgumentError(f"writer for {self.uri} is {self._state}")

    def _append(self, view: memoryview) -> None:
        while len(view):
            room = self.part_size - self._fill
            n = min(room, len(view))
            self._buf[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == self.part_size:
                self._send_part(last=False)

    def _send_part(self, last: bool, borrowed: memoryview | None = None) -> None:
        if self._upload is None:
            b = self.backend
            o = self.options
            self._upload = ops.call(
                "PUT_START",
                b,
                self.uri,
                lambda: b.begin_upload(self.uri, content_type=o.content_type, metadata=o.metadata),
            )
        buf: bytearray | memoryview = self._buf if borrowed is None else borrowed
        size = self._fill if borrowed is None else len(borrowed)
        number, offset = self._part_no, self._out
        self._part_no += 1
        self._out += size
        self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            self._check_open()
        if borrowed is None:
            self._buf = self._free.pop() if self._free else bytearray(self.part_size)
            self._fill = 0
        self._inflight = [f for f in self._inflight if not f.done()]
        self._inflight.append(
            get_executor("parts").submit(self._upload_part, number, offset, buf, size, last)
        )

    def _upload_part(
        self, number: int, offset: int, buf: bytearray | memoryview, size: int, last: bool
    ) -> None:
        upload = self._upload
        assert upload is not None
        try:
            with memoryview(buf) as view:
                part = view[:size]
                retry.call(
                    lambda: upload.write_part(number, offset, part, last),
                    op="PUT_PART",
                    uri=str(self.uri),
                    byte_range=(offset, size),
                    config=self.backend.retry_config,
                )
                part.release()
        except BaseException as exc:  # noqa: BLE001 - surfaced on the next write/finalize
            if self._error is None:
                self._error = exc
        finally:
            if isinstance(buf, bytearray):  # ours, not a caller's borrowed memory
                self._free.append(buf)
            self._slots.release()

    def _drain(self) -> None:
        for fut in self._inflight:
            fut.result()
        self._inflight = []

    def _wrap(self, exc: BaseException) -> BaseException:
        if isinstance(exc, S3DlioError):
            return exc.with_context(uri=str(self.uri), op="PUT")
        return exc

    # -- finish ------------------------------------------------------------------------------
    def finalize(self) -> tuple[int, int]:
        """Send what is buffered and commit the object.

        Returns:
            ``(bytes_written, compressed_bytes)``: uncompressed bytes in, bytes stored.
        """
        if self._result is not None:
            return self._result
        self._check_open()
        try:
            if self._compressor is not None:
                tail = self._compressor.flush()
                self._compressor = None
                self._append(memoryview(tail))
            self._state = "finalizing"
            if self._upload is None:
                data = memoryview(self._buf)[: self._fill]
                o = self.options
                self.etag = ops.put(
                    self.uri,
                    data,
                    content_type=o.content_type,
                    metadata=o.metadata,
                    client=self._client,
                )
                self._out = self._fill
                self._fill = 0
            else:
                self._send_part(last=True)
                self._drain()
                if self._error is not None:
                    raise self._wrap(self._error)
                upload = self._upload
                self.etag = ops.call(
                    "PUT_COMPLETE", self.backend, self.uri, upload.commit, retries=False
                )
                self._log_put()
        except BaseException:
            self.abort()
            raise
        self._state = "finalized"
        self._result = (self._in, self._out)
        return self._result

    def _log_put(self) -> None:
        if oplog.is_op_log_active():
            oplog.record(
                "PUT",
                self.uri.key,
                endpoint=self.backend.endpoint(self.uri),
                nbytes=self._out,
                start_ns=self._started,
                end_ns=time.time_ns(),
            )

    def abort(self) -> None:
        """Discard everything: no object, no pending upload (idempotent)."""
        if self._state in ("aborted", "finalized"):
            return
        self._state = "aborted"
        for fut in self._inflight:
            fut.cancel()
        for fut in self._inflight:
            try:
                fut.result()
            except BaseException:  # noqa: BLE001, S110 - aborting anyway
                pass
        self._inflight = []
        if self._upload is not None:
            upload = self._upload
            try:
                ops.call("PUT_ABORT", self.backend, self.uri, upload.abort)
            except S3DlioError:
                pass

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.finalize()
        super().close()

    def __del__(self) -> None:
        if getattr(self, "_state", "aborted") == "open":
            self.abort()

    def __repr__(self) -> str:
        return f"<ObjectWriter {self.uri} {self._state} {self._in} bytes>"


def open_writer(
    uri: str | ObjectURI,
    options: WriterOptions | None = None,
    *,
    client: HasStores | None = None,
) -> ObjectWriter:
    """A streaming writer for ``uri`` on any backend (see :class:`ObjectWriter`), through
    ``client`` (default: the default client)."""
    return ObjectWriter(parse_uri(uri), options, client=client)


def _writer_for(scheme: str) -> Any:
    def create(
        uri: str, options: WriterOptions | None = None, *, client: HasStores | None = None
    ) -> ObjectWriter:
        parsed = parse_uri(uri, allow_bare=scheme in ("file", "direct"))
        if scheme == "direct" and parsed.scheme == "file" and "://" not in str(uri):
            parsed = ObjectURI("direct", "", parsed.key)
        if parsed.scheme != scheme:
            raise InvalidURIError(f"expected a {scheme}:// URI", uri=str(uri), op="PUT")
        return ObjectWriter(parsed, options, client=client)

    create.__name__ = f"create_{scheme}_writer"
    create.__doc__ = f"A streaming writer for a ``{scheme}://`` URI (see :func:`open_writer`)."
    return create


create_s3_writer = _writer_for("s3")
create_azure_writer = _writer_for("az")
create_gcs_writer = _writer_for("gs")
create_filesystem_writer = _writer_for("file")
create_direct_filesystem_writer = _writer_for("direct")

__all__ += [
    "create_azure_writer",
    "create_direct_filesystem_writer",
    "create_filesystem_writer",
    "create_gcs_writer",
    "create_s3_writer",
]
