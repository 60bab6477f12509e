"""HDF5 files on any backend, through h5py.

Reading hands h5py a :class:`~s3dlio.io.rangefile.RangeFile`: h5py reads metadata and chunks
through it, so a slice of a chunked dataset fetches only the chunks it touches (plus metadata),
each miss one range request. Block size and cache are tuned for HDF5: small blocks (64 KiB) so
that a chunk read fetches little beyond the chunk, a cache large enough for the B-tree and
object headers, and a read-ahead window for sequential scans.

Writing goes to a local temporary file (h5py needs random-access writes), which is uploaded
through the streaming writer when the file is closed; leaving a ``with`` block by an exception
uploads nothing.

::

    from s3dlio.formats.hdf5 import open_hdf5
    with open_hdf5("s3://bucket/data.h5") as f:
        part = f["images"][1000:1016]          # fetches only those chunks
    with open_hdf5("gs://bucket/new.h5", "w") as f:
        f.create_dataset("x", data=array, chunks=True)
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from typing import Any

from ..errors import InvalidArgumentError, NotFoundError
from ..io import ops
from ..io.config import KiB, MiB
from ..io.rangefile import RangeFile
from ..io.store import HasStores
from ..io.uri import ObjectURI, parse_uri
from ..io.writer import ObjectWriter, WriterOptions

__all__ = ["HDF5_BLOCK_SIZE", "open_hdf5"]

URI = str | ObjectURI | os.PathLike[str]

#: RangeFile block size used for HDF5 (a chunk read fetches at most this much extra).
HDF5_BLOCK_SIZE = 64 * KiB
_COPY_CHUNK = 8 * MiB


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a test dependency
        raise ImportError("HDF5 support needs h5py: pip install 's3dlio[hdf5]'") from exc
    return h5py


def open_hdf5(
    uri: URI,
    mode: str = "r",
    *,
    block_size: int | str = HDF5_BLOCK_SIZE,
    cache_size: int | str = 32 * MiB,
    options: WriterOptions | None = None,
    client: HasStores | None = None,
    **h5py_kwargs: Any,
) -> Any:
    """Open an HDF5 object on any backend as an ``h5py.File``.

    Args:
        uri: The object (any URI or a bare local path).
        mode: ``"r"`` (range reads), ``"w"`` (create or replace), ``"w-"``/``"x"`` (create,
            fail if it exists), ``"a"``/``"r+"`` (modify: the object is downloaded first).
        block_size: RangeFile block size for reading.
        cache_size: RangeFile cache size for reading.
        options: Writer options for the upload in write modes.
        client: The :class:`s3dlio.Client` to go through (default: the default client).
        **h5py_kwargs: Passed to ``h5py.File`` (``rdcc_nbytes``, ``libver``, ...).

    Returns:
        An ``h5py.File``. In read mode its ``rangefile`` attribute is the
        :class:`~s3dlio.io.rangefile.RangeFile` (``requests``, ``bytes_fetched``). In write
        modes closing it uploads the file.
    """
    reader_cls, writer_cls = _file_classes()
    parsed = parse_uri(uri, allow_bare=True)
    if mode == "r":
        return reader_cls(
            RangeFile(parsed, block_size=block_size, cache_size=cache_size, client=client),
            **h5py_kwargs,
        )
    if mode not in ("w", "w-", "x", "a", "r+"):
        raise InvalidArgumentError(f"unsupported HDF5 mode {mode!r}", uri=str(parsed), op="PUT")
    if mode in ("w-", "x") and _exists(parsed, client):
        raise FileExistsError(f"{parsed} already exists")
    spool = tempfile.TemporaryFile(prefix="s3dlio-h5-")  # noqa: SIM115 - lives with the file
    if mode in ("a", "r+"):
        if _exists(parsed, client):
            _download(parsed, spool, client)
        elif mode == "r+":
            spool.close()
            ops.stat(parsed, client)  # raises NotFoundError naming the URI
    file_mode = "r+" if mode in ("a", "r+") and spool.tell() else "w"
    spool.seek(0)
    return writer_cls(spool, file_mode, parsed, options, client, **h5py_kwargs)


def _exists(uri: ObjectURI, client: HasStores | None) -> bool:
    try:
        ops.stat(uri, client)
    except NotFoundError:
        return False
    return True


def _download(uri: ObjectURI, spool: Any, client: HasStores | None) -> None:
    with RangeFile(uri, max_readahead=0, client=client) as source:
        buf = bytearray(_COPY_CHUNK)
        view = memoryview(buf)
        while True:
            n = source.readinto(view)
            if not n:
                break
            spool.write(view[:n])


@functools.cache
def _file_classes() -> tuple[type, type]:
    """The two ``h5py.File`` subclasses (built once, on first use, so h5py loads lazily)."""
    h5py = _h5py()

    class RangeHDF5File(h5py.File):  # type: ignore[name-defined]
        """A read-only ``h5py.File`` over a RangeFile (``.rangefile`` holds the counters)."""

        def __init__(self, source: RangeFile, **kwargs: Any) -> None:
            super().__init__(source, "r", **kwargs)
            self.rangefile = source

    class UploadingHDF5File(h5py.File):  # type: ignore[name-defined]
        """An ``h5py.File`` on a local temp file, uploaded to ``uri`` by :meth:`close`."""

        def __init__(
            self,
            spool: Any,
            mode: str,
            uri: ObjectURI,
            options: WriterOptions | None,
            client: HasStores | None,
            **kwargs: Any,
        ) -> None:
            super().__init__(spool, mode, **kwargs)
            self.uri = uri
            self._spool = spool
            self._options = options
            self._client = client

        def close(self) -> None:
            """Close the HDF5 file and upload it (once)."""
            super().close()
            if not self._spool.closed:
                try:
                    _upload(self._spool, self.uri, self._options, self._client)
                finally:
                    self._spool.close()

        def discard(self) -> None:
            """Close without uploading anything."""
            super().close()
            self._spool.close()

        def __exit__(self, exc_type: object, *rest: object) -> None:
            if exc_type is None:
                self.close()
            else:
                self.discard()

    return RangeHDF5File, UploadingHDF5File


def _upload(
    spool: Any, uri: ObjectURI, options: WriterOptions | None, client: HasStores | None
) -> None:
    spool.flush()
    spool.seek(0)
    with ObjectWriter(uri, options, client=client) as writer:
        shutil.copyfileobj(spool, writer, _COPY_CHUNK)
        writer.finalize()
