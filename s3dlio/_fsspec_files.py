"""The file objects :meth:`s3dlio.fsspec.S3dlioFileSystem.open` returns.

Reads are a :class:`~s3dlio.io.rangefile.RangeFile` (seekable, block cache, sequential
read-ahead, version-pinned range requests) with the attributes fsspec code looks for (``fs``,
``path``, ``size``, ``details``) and a zero-copy ``read_buffer`` that pyarrow's ``PythonFile``
uses instead of ``read``. Writes are an :class:`~s3dlio.io.writer.ObjectWriter` (streaming
multipart / blocks / temp file, atomic): nothing is visible before ``close()``, an exception in
a ``with`` block discards everything, and inside an fsspec transaction (``autocommit=False``)
the object appears at ``commit()`` and never after ``discard()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .io.buffers import BytesView
from .io.rangefile import RangeFile
from .io.uri import ObjectURI
from .io.writer import ObjectWriter, WriterOptions

if TYPE_CHECKING:
    from .fsspec import S3dlioFileSystem

__all__ = ["S3dlioReadFile", "S3dlioWriteFile"]


class S3dlioReadFile(RangeFile):
    """A read-only, seekable file over one object, opened by the fsspec filesystem.

    Attributes:
        fs: The filesystem that opened it.
        path: The path it was opened with (a full URI).
        details: The object's ``info()`` dictionary.
    """

    def __init__(
        self,
        fs: S3dlioFileSystem,
        path: str,
        uri: ObjectURI,
        details: dict[str, Any],
        **options: Any,
    ) -> None:
        super().__init__(
            uri, size=details["size"], etag=details.get("etag"), client=fs.client, **options
        )
        self.fs = fs
        self.path = path
        self.details = details

    @property
    def loc(self) -> int:
        """The current position (fsspec's name for :meth:`tell`)."""
        return self.tell()

    def read_buffer(self, size: int = -1) -> BytesView:
        """Like :meth:`read`, but return the freshly filled buffer itself, without the copy
        into ``bytes`` (pyarrow's ``PythonFile`` calls this when it exists)."""
        self._check_closed()
        with self._lock:
            remaining = max(0, self.size - self._pos)
            n = remaining if size is None or size < 0 else min(size, remaining)
            out = BytesView.allocate(n)
            got = self._read_at(self._pos, memoryview(out))
            self._pos += got
        if got != n:  # pragma: no cover - _read_at fills n bytes or raises
            del out[got:]
        return out

    def __repr__(self) -> str:
        return f"<S3dlioReadFile {self.path} size={self.size}>"


class S3dlioWriteFile(ObjectWriter):
    """A streaming, atomic writer opened by the fsspec filesystem.

    With ``autocommit=True`` (the default outside transactions) ``close()`` commits the
    object; with ``autocommit=False`` ``close()`` only stops writing and the transaction calls
    :meth:`commit` or :meth:`discard`. An exception in a ``with`` block discards the object.

    Attributes:
        fs: The filesystem that opened it.
        path: The path it was opened with (a full URI).
        autocommit: Whether ``close()`` commits.
    """

    def __init__(
        self,
        fs: S3dlioFileSystem,
        path: str,
        uri: ObjectURI,
        *,
        autocommit: bool = True,
        options: WriterOptions | None = None,
    ) -> None:
        super().__init__(uri, options, client=fs.client)
        self.fs = fs
        self.path = path
        self.autocommit = autocommit

    @property
    def loc(self) -> int:
        """Bytes written so far (fsspec's name for :meth:`tell`)."""
        return self.tell()

    def close(self) -> None:
        """Commit (when ``autocommit``) and close; without ``autocommit`` wait for
        :meth:`commit` or :meth:`discard`."""
        if self.autocommit:
            super().close()
        elif not self.closed:
            ObjectWriter.flush(self)
            super(ObjectWriter, self).close()  # io.RawIOBase.close: no finalize

    def finalize(self) -> tuple[int, int]:
        """Commit the object (see :meth:`ObjectWriter.finalize`) and forget the filesystem's
        cached listings of its directory."""
        result = super().finalize()
        self.fs.invalidate_cache(self.path)
        return result

    def commit(self) -> None:
        """Make the object visible (end of an fsspec transaction)."""
        self.finalize()

    def discard(self) -> None:
        """Throw the object away: nothing becomes visible."""
        self.abort()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
            super(ObjectWriter, self).close()
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<S3dlioWriteFile {self.path} {self._state} {self.tell()} bytes>"
