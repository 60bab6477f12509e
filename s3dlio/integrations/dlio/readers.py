"""DLIO's format readers for npz, npy, hdf5 and tfrecord, reading through s3dlio.

Each reader is DLIO's own (its sample maps, batching, ``read_index`` and profiling stay
DLIO's) with the file access replaced: a file name from DLIO's maps (a URI, a local path, or
DLIO 2.0.0's ``os.path.abspath`` of a URI, see :func:`~s3dlio.integrations.dlio.paths.unmangle`)
is opened through the storage layer:

* npz: :class:`~s3dlio.formats.npz.NpzFile` reads the central directory and the ``x`` member
  (range requests; a stored member becomes the array without a copy);
* npy: one GET, the array is a view of the received buffer (no copy);
* hdf5: :func:`~s3dlio.formats.hdf5.open_hdf5` (h5py over range reads);
* tfrecord: :class:`~s3dlio.formats.tfrecord.TFRecordReader`, record ``i`` by one range request
  through DLIO's index (``<data_folder>/index/<train|valid>/<file>.idx``, scanned once when
  missing); with DLIO's TensorFlow loader, files are streamed record by record instead.

Importing this module imports DLIO.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np
from dlio_benchmark.common.constants import MODULE_DATA_READER
from dlio_benchmark.common.enumerations import DatasetType
from dlio_benchmark.reader.hdf5_reader import HDF5Reader
from dlio_benchmark.reader.npy_reader import NPYReader
from dlio_benchmark.reader.npz_reader import NPZReader
from dlio_benchmark.reader.reader_handler import FormatReader
from dlio_benchmark.utils.utility import Profile

from ...client import Client, default_client
from ...errors import IntegrityError, NotFoundError
from ...formats.hdf5 import open_hdf5
from ...formats.npz import NpzFile
from ...formats.tfrecord import TFRecordReader
from ...formats.tfrecord_index import load_index, scan_index
from .paths import unmangle
from .storage import context, io_uri, resolve

__all__ = [
    "S3dlioHDF5Reader",
    "S3dlioNPYReader",
    "S3dlioNPZReader",
    "S3dlioTFRecordReader",
    "reader_class",
]

dlp = Profile(MODULE_DATA_READER)


class _Through:
    """How a reader reaches a file: the URI of a name from DLIO's maps, and the client."""

    _args: Any

    def _uri(self, filename: str) -> str:
        return io_uri(unmangle(str(filename)))

    def _client(self) -> Client:
        return context(self._args)[0] or default_client()


class S3dlioNPZReader(_Through, NPZReader):
    """DLIO's NPZ reader; the ``x`` array is read with range requests."""

    @dlp.log
    def open(self, filename: str) -> Any:
        """The archive's ``x`` array."""
        return NpzFile(self._uri(filename), client=self._client()).read("x")


def _npy_array(data: Any, uri: str) -> np.ndarray:
    """The array of an ``.npy`` file held in ``data``, as a view of it."""
    view = memoryview(data).cast("B")
    head = io.BytesIO(view[:16].tobytes())
    try:
        major, _ = np.lib.format.read_magic(head)
        size_bytes = 2 if major == 1 else 4
        header_len = int.from_bytes(view[8 : 8 + size_bytes], "little")
        start = 8 + size_bytes
        header = io.BytesIO(view[: start + header_len].tobytes())
        np.lib.format.read_magic(header)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(header)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(header)
    except ValueError as exc:
        raise IntegrityError(f"not an .npy file: {exc}", uri=uri, op="GET") from None
    count = math.prod(shape)
    array = np.frombuffer(view, dtype=dtype, count=count, offset=start + header_len)
    return array.reshape(shape, order="F" if fortran else "C")


class S3dlioNPYReader(_Through, NPYReader):
    """DLIO's NPY reader; the file is one GET and the array a view of the buffer."""

    @dlp.log
    def open(self, filename: str) -> Any:
        """The file's array."""
        uri = self._uri(filename)
        return _npy_array(self._client().get(uri), uri)


class S3dlioHDF5Reader(_Through, HDF5Reader):
    """DLIO's HDF5 reader over h5py on range reads."""

    @dlp.log
    def open(self, filename: str) -> Any:
        """The file as an ``h5py.File``."""
        return open_hdf5(self._uri(filename), client=self._client())


class S3dlioTFRecordReader(_Through, FormatReader):
    """DLIO's TFRecord workload, read through s3dlio's TFRecord reader (no TensorFlow I/O)."""

    @dlp.log_init
    def __init__(self, dataset_type: Any, thread_index: int, epoch: int) -> None:
        super().__init__(dataset_type, thread_index)

    def _index(self, uri: str) -> Any:
        folder = "train" if self.dataset_type is DatasetType.TRAIN else "valid"
        name = os.path.basename(uri)
        where = io_uri(resolve(self._args, f"{self._args.data_folder}/index/{folder}/{name}.idx"))
        client = self._client()
        try:
            return load_index(where, client=client)
        except NotFoundError:
            return scan_index(uri, client=client)

    @dlp.log
    def open(self, filename: str) -> Any:
        """A reader of the file, with its record index."""
        uri = self._uri(filename)
        return TFRecordReader(uri, index=self._index(uri), client=self._client())

    @dlp.log
    def close(self, filename: str) -> None:
        """Close the file's reader."""
        reader = self.open_file_map.get(filename)
        if reader is not None:
            reader.close()

    @dlp.log
    def get_sample(self, filename: str, sample_index: int) -> None:
        """Read record ``sample_index`` (one range request)."""
        record = self.open_file_map[filename].read_record(sample_index)
        dlp.update(image_size=len(record))

    def next(self) -> Any:
        """Batches for DLIO's loaders (all epochs at once for its TensorFlow loader)."""
        if self.thread_index == -1:
            yield from self._stream()
            return
        yield from super().next()

    def _stream(self) -> Any:
        """Every epoch's batches, files streamed record by record (DLIO's TFReader's shape)."""
        args = self._args
        files = list(self._file_list)[args.my_rank :: max(1, args.comm_size)]
        per_epoch = math.floor(
            len(self._file_list) / args.comm_size / self.batch_size * args.num_samples_per_file
        )
        client = self._client()
        for _ in range(args.epochs):
            produced = 0
            batch: list[Any] = []
            while produced < per_epoch:
                before = produced
                for name in files:
                    with TFRecordReader(self._uri(name), client=client) as reader:
                        for record in reader:
                            dlp.update(image_size=len(record))
                            batch.append(args.resized_image)
                            if len(batch) == self.batch_size:
                                yield np.array(batch)
                                batch = []
                                produced += 1
                                if produced >= per_epoch:
                                    break
                    if produced >= per_epoch:
                        break
                if produced == before:  # a whole pass gave no batch: nothing more to read
                    return

    @dlp.log
    def read_index(self, image_idx: int, step: int) -> Any:
        """One sample by its global index."""
        return super().read_index(image_idx, step)

    @dlp.log
    def finalize(self) -> Any:
        """Close what is open."""
        return super().finalize()

    def is_index_based(self) -> bool:
        """Samples can be read by index."""
        return True

    def is_iterator_based(self) -> bool:
        """Samples can be iterated."""
        return True


def reader_class(format_type: Any, data_loader: Any = None) -> type | None:
    """The s3dlio reader for DLIO's format, or ``None`` (DLIO's own reader is kept)."""
    name = str(getattr(format_type, "value", format_type)).lower()
    loader = str(getattr(data_loader, "value", data_loader)).lower()
    if "dali" in loader:
        return None
    return {
        "npz": S3dlioNPZReader,
        "npy": S3dlioNPYReader,
        "hdf5": S3dlioHDF5Reader,
        "tfrecord": S3dlioTFRecordReader,
    }.get(name)
