"""DLIO's data generation for npz, npy, hdf5 and tfrecord, written through s3dlio's writers.

Each generator is DLIO's own (file names, sub-folders, sizes, seed and record contents as DLIO
makes them) with the output going through the storage layer: npz and npy stream into a
multipart writer (:meth:`s3dlio.Client.open_writer`, atomic, aborted on an exception), hdf5
goes through :func:`~s3dlio.formats.hdf5.open_hdf5` in write mode, tfrecord through
:class:`~s3dlio.formats.tfrecord.TFRecordWriter`, which also writes DLIO's index file
(``<data_folder>/index/<train|valid>/<file>.idx``, the same text as DALI's ``tfrecord2idx``).

DLIO's other generators (jpeg, png, csv, indexed_binary, synthetic) are left in place; in DLIO
2.0.0 they write local files only, so a remote data folder with them is refused up front.

Importing this module imports DLIO.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from dlio_benchmark.common.enumerations import Compression
from dlio_benchmark.data_generator.data_generator import DataGenerator
from dlio_benchmark.utils.utility import progress

from ...client import Client, default_client
from ...formats.hdf5 import open_hdf5
from ...formats.tfrecord import TFRecordWriter
from .storage import context, io_uri

__all__ = ["S3dlioDataGenerator", "generator_class"]


class S3dlioDataGenerator(DataGenerator):
    """DLIO's generator for ``args.format`` (npz, npy, hdf5, tfrecord) writing through s3dlio."""

    def _client(self) -> Client:
        return context(self._args)[0] or default_client()

    def _uri(self, i: int) -> str:
        return io_uri(self.storage.get_uri(self._file_list[i]))

    def _shape(self, dim: Any, i: int) -> tuple[int, ...]:
        """The shape of file ``i``'s ``(d1, d2[, ...])`` record, as DLIO draws it."""
        first = dim[2 * i]
        if isinstance(first, (list, tuple)):
            return tuple(int(d) for d in first)
        return int(first), int(dim[2 * i + 1])

    def _records(self, shape: tuple[int, ...]) -> np.ndarray:
        dtype = np.dtype(getattr(self._args, "record_element_dtype", None) or np.uint8)
        if dtype.kind in "iu":
            return np.random.randint(255, size=shape, dtype=dtype)
        return np.random.random(size=shape).astype(dtype)

    def generate(self) -> None:
        """Generate this rank's share of the dataset."""
        super().generate()  # DLIO's base: folders and file names
        fmt = str(getattr(self.format, "value", self.format)).lower()
        write = {
            "npz": self._npz,
            "npy": self._npy,
            "hdf5": self._hdf5,
            "tfrecord": self._tfrecord,
        }[fmt]
        np.random.seed(10)
        dim = self.get_dimension(self.total_files_to_generate)
        total = int(self.total_files_to_generate)
        for i in range(self.my_rank, total, self.comm_size):
            progress(i + 1, total, f"Generating {fmt.upper()} Data")
            write(i, self._shape(dim, i))
        np.random.seed()

    def _npz(self, i: int, shape: tuple[int, ...]) -> None:
        records = self._records((*shape, self.num_samples))
        labels = [0] * self.num_samples
        save = np.savez_compressed if self.compression == Compression.ZIP else np.savez
        with self._client().open_writer(self._uri(i)) as writer:
            save(writer, x=records, y=labels)

    def _npy(self, i: int, shape: tuple[int, ...]) -> None:
        records = self._records((*shape, self.num_samples))
        with self._client().open_writer(self._uri(i)) as writer:
            np.save(writer, records)

    def _hdf5(self, i: int, shape: tuple[int, ...]) -> None:
        args = self._args
        chunks = None
        if getattr(args, "enable_chunking", False):
            side = min(int(math.ceil(math.sqrt(args.chunk_size))), int(shape[0]))
            chunks = (1, side, side)
        compression = None
        level = None
        if self.compression != Compression.NONE:
            compression = str(self.compression)
            if self.compression == Compression.GZIP:
                level = self.compression_level
        per_iter = max(1, int(args.generation_buffer_size / max(1, args.record_length)))
        per_iter = min(per_iter, self.num_samples)
        records = self._records((per_iter, *shape))
        with open_hdf5(self._uri(i), "w", client=self._client()) as hf:
            dset = hf.create_dataset(
                "records",
                (self.num_samples, *shape),
                chunks=chunks,
                compression=compression,
                compression_opts=level,
                dtype=records.dtype,
            )
            written = 0
            while written < self.num_samples:
                n = min(per_iter, self.num_samples - written)
                dset[written : written + n] = records[:n]
                written += n
            hf.create_dataset("labels", data=[0] * self.num_samples)

    def _tfrecord(self, i: int, shape: tuple[int, ...]) -> None:
        uri = self._uri(i)
        folder = "valid" if "/valid/" in uri else "train"
        index_folder = f"{self._args.data_folder}/index/{folder}"
        self.storage.create_node(index_folder, exist_ok=True)
        index = io_uri(self.storage.get_uri(f"{index_folder}/{os.path.basename(uri)}.idx"))
        with TFRecordWriter(uri, index=index, client=self._client()) as writer:
            for _ in range(self.num_samples):
                record = self._records(shape)
                writer.write_example({"image": record.tobytes(), "size": [int(shape[0])]})


def generator_class(format_type: Any) -> type | None:
    """The s3dlio generator for DLIO's format, or ``None`` (DLIO's own is kept)."""
    name = str(getattr(format_type, "value", format_type)).lower()
    return S3dlioDataGenerator if name in ("npz", "npy", "hdf5", "tfrecord") else None
