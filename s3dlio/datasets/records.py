"""Format-aware PyTorch datasets: TFRecord records, HDF5 rows and NPZ arrays (map-style).

Each dataset spans one or more objects (a URI naming one file, a prefix or glob selecting
several, or a list of URIs). ``len(ds)`` is the total number of items and ``ds[i]`` reads
item ``i`` with range requests through :mod:`s3dlio.formats`, on any backend:

* :class:`TFRecordDataset`: item = one record, found through the file's index (``uri +
  ".idx"`` by default, or scanned), fetched with one range GET and CRC-checked; optionally
  decoded as a ``tf.train.Example`` into ``{name: numpy array}``.
* :class:`HDF5Dataset`: item = one row (index along the first axis) of an HDF5 dataset, or
  a dict of rows of several datasets; only the chunks a row needs are fetched.
* :class:`NPZDataset`: item = one ``.npz`` object's array (or all of its arrays).

Readers and open files are created lazily in each process (never inherited through
``fork``), so the datasets work with DataLoader workers under every start method. Use
:meth:`sampler` (a :class:`~s3dlio.torch.ShardedSampler`) for rank sharding, per-epoch shuffle
and exact resume.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, NotFoundError
from ..io.listing import select
from ..io.store import HasStores
from ..io.uri import ObjectURI, parse_uri
from .torch_base import Dataset, ShardedSampler, as_tensor

__all__ = ["HDF5Dataset", "NPZDataset", "TFRecordDataset", "expand_uris"]

URIs = str | ObjectURI | Sequence[str | ObjectURI]


def expand_uris(
    uris: URIs,
    *,
    suffix: str | None = None,
    exclude_suffix: str | None = None,
    client: HasStores | None = None,
) -> list[str]:
    """The object URIs ``uris`` names: a list as given, or what one URI selects (key order).

    A URI naming one object exactly is that object; a prefix (ending in ``/``) or a glob
    selects recursively, keeping keys that end in ``suffix`` (if given) and dropping keys that
    end in ``exclude_suffix``.

    Raises:
        NotFoundError: nothing is selected.
    """
    if not isinstance(uris, (str, ObjectURI)):
        found = [str(parse_uri(u, allow_bare=True)) for u in uris]
    else:
        parsed = parse_uri(uris, allow_bare=True)
        found = []
        for meta in select(parsed, recursive=True, client=client):
            if meta.is_prefix:
                continue
            key = meta.key
            if suffix is not None and not key.endswith(suffix) and key != parsed.key:
                continue
            if exclude_suffix is not None and key.endswith(exclude_suffix):
                continue
            found.append(str(meta.uri))
        if not found:
            raise NotFoundError("selects no objects", uri=str(parsed), op="LIST")
    return found


class _MultiFileDataset(Dataset):  # type: ignore[type-arg,unused-ignore]
    """Items numbered across several files; per-process readers; a transform per item.

    Each process keeps the readers of the :attr:`max_open_files` files it used last (a reader
    of a local file holds its descriptor open); older ones are dropped, and closed once no
    read still uses them.
    """

    #: Readers kept open per process (set it on the class or on one dataset).
    max_open_files: int = 64

    def __init__(
        self,
        uris: list[str],
        counts: Sequence[int],
        transform: Callable[[Any], Any] | None,
        client: HasStores | None,
    ) -> None:
        self.uris = uris
        self.client = client
        self.counts = np.asarray(counts, dtype=np.int64)
        self._starts = [0, *np.cumsum(self.counts).tolist()]
        self.transform = transform
        self._readers: OrderedDict[int, Any] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(file number, item within that file)`` of global item ``index``."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        file = bisect.bisect_right(self._starts, index) - 1
        return file, index - self._starts[file]

    def reader(self, file: int) -> Any:
        """The open reader of file number ``file`` in this process."""
        readers = self._readers
        if self._pid != os.getpid():
            readers = self._readers = OrderedDict()
            self._pid = os.getpid()
        reader = readers.get(file)
        if reader is not None:
            readers.move_to_end(file)
            return reader
        reader = readers[file] = self._open(file)
        while len(readers) > max(1, self.max_open_files):
            readers.popitem(last=False)  # closed by its finaliser when no read holds it
        return reader

    def _open(self, file: int) -> Any:
        raise NotImplementedError

    def _read(self, reader: Any, local: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        file, local = self.locate(index)
        item = self._read(self.reader(file), local)
        return self.transform(item) if self.transform is not None else item

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Items ``indices`` (a DataLoader batch), each file's share read concurrently."""
        by_file: dict[int, list[tuple[int, int]]] = {}
        for position, index in enumerate(indices):
            file, local = self.locate(index)
            by_file.setdefault(file, []).append((position, local))
        out: list[Any] = [None] * len(indices)
        for file, wanted in by_file.items():
            items = self._read_many(self.reader(file), [local for _, local in wanted])
            for (position, _), item in zip(wanted, items, strict=True):
                out[position] = self.transform(item) if self.transform is not None else item
        return out

    def _read_many(self, reader: Any, locals_: list[int]) -> list[Any]:
        return [self._read(reader, local) for local in locals_]

    def sampler(
        self,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> Any:
        """A :class:`~s3dlio.torch.ShardedSampler` over this dataset's items."""
        return ShardedSampler(
            len(self), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_readers"] = {}  # open files stay in their process
        return state


class TFRecordDataset(_MultiFileDataset):
    """Map-style records of one or more TFRecord objects: ``len`` = records, any by index.

    Args:
        uris: A TFRecord object, a prefix/glob selecting several (``.idx`` objects are
            skipped), or a list of URIs.
        index: Where record offsets come from: ``None`` = each file's ``uri + ".idx"``;
            ``"scan"`` = read each file once to find its records; for a single file, also an
            index URI or ``(offset, size)`` pairs.
        verify: Check each record's CRC32C.
        decode: ``True`` decodes each record as a ``tf.train.Example`` into
            ``{feature name: numpy array}``; ``False`` yields the payload as a zero-copy
            ``uint8`` tensor.
        transform: Called on each item.
        mmap: Map local (``file://``) files and copy each record out of the mapping instead
            of making a read per record (see ``TFRecordReader(mmap=True)``: for files not
            modified while they are read).

    Raises:
        NotFoundError: no TFRecord objects, or a missing index (create one with
            ``s3dlio.create_tfrecord_index(uri)`` or pass ``index="scan"``).
    """

    def __init__(
        self,
        uris: URIs,
        *,
        index: Any = None,
        verify: bool = True,
        decode: bool = False,
        transform: Callable[[Any], Any] | None = None,
        mmap: bool = False,
        client: HasStores | None = None,
    ) -> None:
        from ..formats.mapped import mappable
        from ..formats.tfrecord import TFRecordReader
        from ..formats.tfrecord_index import scan_index

        files = expand_uris(uris, exclude_suffix=".idx", client=client)
        if mmap:  # before any index is read
            for uri in files:
                mappable(parse_uri(uri, allow_bare=True), client)
        if index is not None and index != "scan" and len(files) > 1:
            raise InvalidArgumentError(
                "an explicit index applies to a single TFRecord file", uri=files[0], op="GET"
            )
        self.entries: list[np.ndarray] = []
        for uri in files:
            if index == "scan":
                entries = scan_index(uri, client=client)
            else:
                reader = TFRecordReader(uri, index=index, verify=verify, client=client)
                entries = reader.entries
            self.entries.append(np.asarray(entries, dtype=np.int64))
        self.verify = verify
        self.decode = decode
        self.mmap = mmap
        super().__init__(files, [len(e) for e in self.entries], transform, client)

    def _open(self, file: int) -> Any:
        from ..formats.tfrecord import TFRecordReader

        return TFRecordReader(
            self.uris[file],
            index=self.entries[file],
            verify=self.verify,
            mmap=self.mmap,
            client=self.client,
        )

    def _read(self, reader: Any, local: int) -> Any:
        payload = reader.read_record(local)
        if self.decode:
            from ..formats.example import decode_example

            return decode_example(payload)
        return as_tensor(payload)

    def _read_many(self, reader: Any, locals_: list[int]) -> list[Any]:
        payloads = reader.read_records(locals_, max_in_flight=16)
        if self.decode:
            from ..formats.example import decode_example

            return [decode_example(p) for p in payloads]
        return [as_tensor(p) for p in payloads]

    def record_bytes(self, index: int) -> memoryview:
        """The raw payload of record ``index`` (no decoding, no transform)."""
        file, local = self.locate(index)
        return self.reader(file).read_record(local)  # type: ignore[no-any-return,unused-ignore]


class HDF5Dataset(_MultiFileDataset):
    """Rows of HDF5 datasets in one or more objects: item ``i`` is row ``i`` (first axis).

    Args:
        uris: An HDF5 object, a prefix/glob selecting several, or a list of URIs.
        dataset: The HDF5 dataset name (``"data"``), or several names: then each item is a
            dict ``{name: row}`` (the datasets must have the same number of rows).
        transform: Called on each item.
        block_size: Range-read block size (a row read fetches whole blocks).
    """

    def __init__(
        self,
        uris: URIs,
        dataset: str | Sequence[str] = "data",
        *,
        transform: Callable[[Any], Any] | None = None,
        block_size: int | str = 64 * 1024,
        client: HasStores | None = None,
    ) -> None:
        from ..formats.hdf5 import open_hdf5

        files = expand_uris(uris, client=client)
        self.names = [dataset] if isinstance(dataset, str) else list(dataset)
        self.single = isinstance(dataset, str)
        self.block_size = block_size
        counts = []
        for uri in files:
            with open_hdf5(uri, block_size=block_size, client=client) as h5:
                rows = {len(h5[name]) for name in self.names}
            if len(rows) != 1:
                raise InvalidArgumentError(
                    f"datasets {self.names} have different row counts {rows}", uri=uri, op="GET"
                )
            counts.append(rows.pop())
        super().__init__(files, counts, transform, client)

    def _open(self, file: int) -> Any:
        from ..formats.hdf5 import open_hdf5

        return open_hdf5(self.uris[file], block_size=self.block_size, client=self.client)

    def _read(self, reader: Any, local: int) -> Any:
        if self.single:
            return reader[self.names[0]][local]
        return {name: reader[name][local] for name in self.names}


class NPZDataset(_MultiFileDataset):
    """One item per ``.npz`` object: its array ``array_name`` (or all arrays as a dict).

    Args:
        uris: A prefix/glob selecting ``.npz`` objects, one object, or a list of URIs.
        array_name: The array to load (``"x"``); ``None`` = the first; ``"*"`` = every array
            as ``{name: array}``.
        transform: Called on each item.
    """

    def __init__(
        self,
        uris: URIs,
        array_name: str | None = None,
        *,
        transform: Callable[[Any], Any] | None = None,
        client: HasStores | None = None,
    ) -> None:
        files = expand_uris(uris, suffix=".npz", client=client)
        self.array_name = array_name
        super().__init__(files, [1] * len(files), transform, client)

    def _open(self, file: int) -> Any:
        from ..formats.npz import NpzFile

        return NpzFile(self.uris[file], client=self.client)

    def _read(self, reader: Any, local: int) -> Any:
        if self.array_name == "*":
            return reader.load()
        return reader.read(self.array_name if self.array_name is not None else reader.names[0])
