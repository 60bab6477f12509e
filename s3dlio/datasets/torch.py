"""PyTorch datasets over any storage URI (re-exported as :mod:`s3dlio.torch`).

* :class:`S3IterableDataset` (alias ``ObjectStoreIterableDataset``): streams objects through
  the async loader, sharded across ``torch.distributed`` ranks and ``DataLoader`` workers so
  every object is seen exactly once per epoch; ``set_epoch``, ``state_dict`` and
  ``load_state_dict`` for exact mid-epoch resume.
* :class:`S3MapDataset` (alias ``ObjectStoreMapDataset``): ``ds[i]`` fetches object ``i``; use
  :class:`ShardedSampler` (or :meth:`S3MapDataset.sampler`) for sharding, shuffle and resume.
* :class:`ResumableDataLoader`: a ``DataLoader`` that counts what the training loop consumed,
  so that ``state_dict()`` is exact even when workers run in other processes.

Items are 1-D ``uint8`` tensors sharing the fetched buffer (``torch.frombuffer``: no copy),
or what ``transform`` makes of them. Storage clients are created per process, so the datasets
work with ``DataLoader(num_workers>0)`` under ``fork``, ``spawn`` and ``forkserver``.
The format-aware datasets (:class:`TFRecordDataset`, :class:`HDF5Dataset`,
:class:`NPZDataset`) are in :mod:`s3dlio.datasets.records` and re-exported here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import ArgumentTypeError, InvalidArgumentError
from ..io.buffers import BytesView
from ..io.store import HasStores
from ..io.uri import ObjectURI
from .dataset import ObjectDataset, create_dataset, fetch_object
from .loader import AsyncLoader
from .options import LoaderOptions, PyLoaderOptions, coerce_options
from .records import HDF5Dataset, NPZDataset, TFRecordDataset
from .sampling import EpochSampler, Resumable
from .torch_base import DataLoader, Dataset, IterableDataset, ShardedSampler, as_tensor

__all__ = [
    "BufferReader",
    "HDF5Dataset",
    "NPZDataset",
    "ObjectStoreIterableDataset",
    "ObjectStoreMapDataset",
    "ResumableDataLoader",
    "S3IterableDataset",
    "S3MapDataset",
    "ShardedSampler",
    "TFRecordDataset",
    "as_tensor",
]

Options = LoaderOptions | PyLoaderOptions | Mapping[str, Any] | None
RETURN_TYPES = ("tensor", "bytes", "reader", "view")


class BufferReader(io.RawIOBase):
    """A read-only, seekable file object over an object's bytes (``return_type="reader"``)."""

    def __init__(self, data: Any) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        chunk = self._view[self._pos : self._pos + len(out)]
        out[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read_all(self) -> bytes:
        """The rest of the bytes (the original's spelling of ``readall``)."""
        return self.readall()

    def __len__(self) -> int:
        return len(self._view)


def _converter(return_type: str, writable: bool) -> Callable[[BytesView], Any]:
    kind = str(return_type).lower()
    if kind not in RETURN_TYPES:
        raise InvalidArgumentError(
            f"return_type must be one of {RETURN_TYPES}, got {return_type!r}"
        )
    if kind == "bytes":
        return bytes
    if kind == "reader":
        return BufferReader
    if kind == "view":
        return lambda view: view
    return as_tensor  # a BytesView is writable already: ``writable`` needs no copy


class S3IterableDataset(Resumable, IterableDataset):  # type: ignore[type-arg,unused-ignore]
    """Streams the objects a URI selects, sharded, shuffled per epoch and resumable.

    Args:
        uri: Prefix, exact object or glob, on any backend.
        loader_opts: :class:`~s3dlio.LoaderOptions` (or dict): ``shuffle``, ``seed``,
            ``prefetch``, ``num_workers`` (concurrent requests per process), ``reader_mode``,
            ``rank``/``world_size``, ``batch_size`` (set it to the DataLoader's), ...
        transform: Called on each item before it is yielded.
        enable_sharding: Split items across ranks and workers (``False``: every worker of
            every rank reads everything, as the original did by default).
        return_type: ``"tensor"`` (zero-copy uint8), ``"bytes"``, ``"reader"`` or ``"view"``
            (the :class:`~s3dlio.BytesView`).
        writable: Accepted for compatibility; tensors are always writable (no copy needed).
        suppress_nonwritable_warning: Accepted for compatibility.
        dataset: Use these objects instead of listing ``uri``.
        client: The :class:`s3dlio.Client` to read through (default: the default client).
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        *,
        loader_opts: Options = None,
        transform: Callable[[Any], Any] | None = None,
        enable_sharding: bool = True,
        return_type: str = "tensor",
        writable: bool = False,
        suppress_nonwritable_warning: bool = True,
        dataset: ObjectDataset | None = None,
        client: HasStores | None = None,
    ) -> None:
        self.options = opts = coerce_options(loader_opts)
        self.dataset = dataset if dataset is not None else create_dataset(uri, opts, client=client)
        self.sampler = EpochSampler(
            len(self.dataset),
            shuffle=opts.shuffle,
            seed=opts.seed,
            rank=opts.rank,
            world_size=opts.world_size,
            block_size=opts.batch_size,
            shard=enable_sharding,
        )
        self.transform = transform
        self.return_type = return_type
        self._convert = _converter(return_type, writable)
        self._loader: tuple[int, AsyncLoader] | None = None

    @classmethod
    def from_prefix(
        cls,
        uri: str | ObjectURI,
        *,
        batch_size: int = 1,
        drop_last: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        prefetch: int = 8,
        auto_tune: bool = False,
        reader_mode: str = "sequential",
        part_size: int | str = 8 << 20,
        max_inflight_parts: int = 4,
        enable_sharding: bool = True,
        writable: bool = False,
        suppress_nonwritable_warning: bool = True,
        return_type: str = "tensor",
        transform: Callable[[Any], Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        ordered: bool = True,
        timeout: float | None = None,
        cancellation_token: Any = None,
        client: HasStores | None = None,
    ) -> S3IterableDataset:
        """The original's constructor: loader options as keywords.

        ``drop_last`` is accepted for compatibility; batching belongs to the ``DataLoader``.
        """
        opts = LoaderOptions(
            batch_size=batch_size,
            drop_last=drop_last,
            shuffle=shuffle,
            seed=seed,
            num_workers=num_workers,
            prefetch=prefetch,
            auto_tune=auto_tune,
            reader_mode=reader_mode,
            part_size=part_size,  # type: ignore[arg-type]
            max_inflight_parts=max_inflight_parts,
            rank=rank,
            world_size=world_size,
            ordered=ordered,
            timeout=timeout,
            cancellation_token=cancellation_token,
        )
        return cls(
            uri,
            loader_opts=opts,
            transform=transform,
            enable_sharding=enable_sharding,
            return_type=return_type,
            writable=writable,
            suppress_nonwritable_warning=suppress_nonwritable_warning,
            client=client,
        )

    def loader(self) -> AsyncLoader:
        """This process's loader (created on first use in each process; keeps its tuning)."""
        if self._loader is None or self._loader[0] != os.getpid():
            loader = AsyncLoader(self.dataset, self.options, sampler=self.sampler)
            self._loader = (os.getpid(), loader)
        return self._loader[1]

    def __iter__(self) -> Iterator[Any]:
        passage = iter(self.loader())
        try:
            for view in passage:
                item = self._convert(view)
                yield self.transform(item) if self.transform is not None else item
        finally:
            passage.close()

    def __len__(self) -> int:
        """Items this rank visits per epoch."""
        return len(self.sampler)

    def _epoch_sampler(self) -> EpochSampler:
        return self.sampler

    @property
    def tuning(self) -> Any:
        """The tuning state of this process's loader."""
        return self.loader().tuning

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loader"] = None  # threads and locks stay in their process
        return state


class S3MapDataset(Dataset):  # type: ignore[type-arg,unused-ignore]
    """``ds[i]`` is the ``i``-th object (key order) a URI selects, fetched on demand.

    Args:
        uri: Prefix, exact object or glob, on any backend.
        reader_mode: ``"sequential"`` (default) or ``"range"`` (``part_size`` ranges,
            ``max_inflight_parts`` at a time).
        part_size: Range size in ``"range"`` mode (default 8 MiB).
        max_inflight_parts: Concurrent ranges of one object (default 4).
        transform: Called on each item.
        return_type: ``"tensor"``, ``"bytes"``, ``"reader"`` or ``"view"``.
        writable: Accepted for compatibility (tensors are writable).
        suppress_nonwritable_warning: Accepted for compatibility.
        loader_opts: Full options; the keywords above, when given, override them.
        dataset: Use these objects instead of listing ``uri``.
        client: The :class:`s3dlio.Client` to read through (default: the default client).
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        *,
        reader_mode: str | None = None,
        part_size: int | str | None = None,
        max_inflight_parts: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        return_type: str = "tensor",
        writable: bool = False,
        suppress_nonwritable_warning: bool = True,
        loader_opts: Options = None,
        dataset: ObjectDataset | None = None,
        client: HasStores | None = None,
    ) -> None:
        self.options = coerce_options(
            loader_opts,
            reader_mode=reader_mode,
            part_size=part_size,
            max_inflight_parts=max_inflight_parts,
        )
        self.dataset = (
            dataset if dataset is not None else create_dataset(uri, self.options, client=client)
        )
        self.transform = transform
        self._convert = _converter(return_type, writable)

    @classmethod
    def from_prefix(cls, uri: str | ObjectURI, **kwargs: Any) -> S3MapDataset:
        """The original's constructor (same keywords as the class)."""
        return cls(uri, **kwargs)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self.dataset):
            raise IndexError(index)
        uri = self.dataset.uri_of(index)
        item = self._convert(fetch_object(uri, self.options, client=self.dataset.client))
        return self.transform(item) if self.transform is not None else item

    def keys(self) -> list[str]:
        """Keys relative to the dataset URI, in index order."""
        return self.dataset.keys()

    def uris(self) -> list[str]:
        """Full URIs, in index order."""
        return self.dataset.uris()

    def sampler(
        self,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> ShardedSampler:
        """A :class:`ShardedSampler` over this dataset (pass it to the DataLoader)."""
        return ShardedSampler(
            len(self), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size
        )


class ResumableDataLoader(Resumable, DataLoader):  # type: ignore[type-arg,unused-ignore]
    """A ``DataLoader`` whose ``state_dict()`` is exact: it counts what the loop consumed.

    Works with :class:`S3IterableDataset` (and the other datasets here that have an
    ``EpochSampler``) or any dataset with a :class:`ShardedSampler`, with any number of
    workers. Batches reach the loop in the sampler's order (the iterable dataset hands
    workers blocks of ``batch_size`` items; this class sets that block size), so the items
    consumed are always a prefix of the rank's sequence, and a count is the whole state.
    Call ``set_epoch`` on it (or on the dataset/sampler) before each epoch.
    """

    def __init__(self, dataset: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        target = self._epoch_sampler()
        if isinstance(dataset, IterableDataset):
            target.block_size = self.batch_size or 1

    def _epoch_sampler(self) -> EpochSampler:
        owners = (
            getattr(self.dataset, "sampler", None),
            self.sampler,
            getattr(self.batch_sampler, "sampler", None),
        )
        for owner in owners:
            if isinstance(owner, EpochSampler):
                return owner
            inner = getattr(owner, "epoch_sampler", None)
            if isinstance(inner, EpochSampler):
                return inner
        raise ArgumentTypeError(
            "ResumableDataLoader needs a dataset with an EpochSampler (S3IterableDataset, ...) "
            "or a ShardedSampler"
        )

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        target = self._epoch_sampler()
        offset, seen = target.next_start()
        total = target.sequence_length(offset)
        per_batch = self.batch_size or 1
        batches = super().__iter__()  # workers get the resume point before it is used up here
        target.set_position(offset, seen)
        for batch in batches:
            seen = min(total, seen + per_batch)
            target.set_position(offset, seen)
            yield batch


ObjectStoreIterableDataset = S3IterableDataset
ObjectStoreMapDataset = S3MapDataset
