"""s3torchconnector's datasets and ``S3Checkpoint`` over s3dlio's datasets and writers.

The objects are a raw key prefix, as S3 lists it (``s3://b/img`` also matches ``img-2/x``),
or exact objects; an empty selection is an empty dataset. The map-style dataset lists once
and builds a reader per ``ds[i]``; the iterable one lists again on every pass (objects added
meanwhile appear), as s3torchconnector's. With the default (sequential) reader the iterable
dataset streams whole objects through s3dlio's async loader (many GETs in flight, in key
order) and hands each one over as a :class:`SequentialS3Reader`; with
``S3ReaderConstructor.range_based()`` items are lazy :class:`RangedS3Reader` s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.utils.data

from ...datasets.dataset import ObjectDataset
from ...datasets.options import LoaderOptions
from ...datasets.torch import S3IterableDataset as _LoaderDataset
from ...errors import InvalidArgumentError
from ...io.listing import select
from ...io.store import HasStores
from ...io.uri import parse_uri
from ...io.writer import ObjectWriter, WriterOptions
from ._io import (
    LazyClient,
    S3ClientConfig,
    S3Reader,
    S3ReaderConstructor,
    S3Writer,
    SequentialS3Reader,
)

__all__ = ["S3Checkpoint", "S3IterableDataset", "S3MapDataset"]


def identity(obj: Any) -> Any:
    """The default transform: the reader itself."""
    return obj


#: One dataset object: its URI and its size (``None``: not listed, ``from_objects``).
Entry = tuple[str, int | None]


def _list(source: tuple[str, Any], client: HasStores | None) -> list[Entry]:
    """``("prefix", uri)``: the objects whose key starts with ``uri``'s (S3 prefix semantics,
    any scheme), in key order; ``("objects", uris)``: exactly those. Either may be empty."""
    kind, what = source
    if kind == "objects":
        return [(str(parse_uri(u, allow_bare=True)), None) for u in what]
    parsed = parse_uri(what, allow_bare=True)
    cut = parsed.key.rfind("/") + 1
    directory, tail = parsed.with_key(parsed.key[:cut]), parsed.key[cut:]
    pattern = f"^{re.escape(tail)}" if tail else None
    return [
        (str(meta.uri), meta.size)
        for meta in select(directory, recursive=True, pattern=pattern, client=client)
        if not meta.is_prefix
    ]


class _Base:
    def __init__(
        self,
        region: str | None,
        source: tuple[str, Any],
        endpoint: str | None = None,
        transform: Callable[[S3Reader], Any] = identity,
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: Any = None,
    ) -> None:
        self._region = region
        self._endpoint = endpoint
        self._transform = transform
        self._s3client_config = s3client_config
        self._lazy = LazyClient(region, endpoint, s3client_config)
        self._source = source
        self._reader_constructor = reader_constructor or S3ReaderConstructor.default()

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def endpoint(self) -> str | None:
        return self._endpoint

    @property
    def _client(self) -> HasStores | None:
        return self._lazy.get()

    def _reader(self, entry: Entry) -> Any:
        uri, size = entry
        return self._transform(self._reader_constructor(uri, self._client, size=size))

    @classmethod
    def from_prefix(
        cls,
        s3_uri: str,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        transform: Callable[[S3Reader], Any] = identity,
        s3client_config: S3ClientConfig | None = None,
        enable_sharding: bool = False,
        reader_constructor: Any = None,
    ) -> Any:
        """The objects whose key starts with ``s3_uri``'s (any scheme: ``file://``, ``az://``...)."""
        return cls._make(
            region,
            ("prefix", s3_uri),
            endpoint,
            transform,
            s3client_config,
            enable_sharding,
            reader_constructor,
        )

    @classmethod
    def from_objects(
        cls,
        object_uris: str | Iterable[str],
        *,
        region: str | None = None,
        endpoint: str | None = None,
        transform: Callable[[S3Reader], Any] = identity,
        s3client_config: S3ClientConfig | None = None,
        enable_sharding: bool = False,
        reader_constructor: Any = None,
    ) -> Any:
        """Exactly these objects, in this order."""
        return cls._make(
            region,
            ("objects", [object_uris] if isinstance(object_uris, str) else list(object_uris)),
            endpoint,
            transform,
            s3client_config,
            enable_sharding,
            reader_constructor,
        )

    @classmethod
    def _make(
        cls,
        region: Any,
        source: Any,
        endpoint: Any,
        transform: Any,
        config: Any,
        enable_sharding: bool,
        reader_constructor: Any,
    ) -> Any:
        raise NotImplementedError


class S3IterableDataset(_Base, torch.utils.data.IterableDataset):
    """Iterates over readers of the objects (or what ``transform`` makes of them).

    Create with :meth:`from_prefix` or :meth:`from_objects`. With ``enable_sharding=True``
    each object goes to one rank and one ``DataLoader`` worker (objects dealt over ranks,
    then each rank's over its workers); otherwise every worker of every rank sees every
    object (s3torchconnector's default).
    """

    def __init__(
        self,
        region: str | None,
        source: tuple[str, Any],
        endpoint: str | None = None,
        transform: Callable[[S3Reader], Any] = identity,
        s3client_config: S3ClientConfig | None = None,
        enable_sharding: bool = False,
        reader_constructor: Any = None,
    ) -> None:
        _Base.__init__(
            self, region, source, endpoint, transform, s3client_config, reader_constructor
        )
        self._enable_sharding = enable_sharding

    @classmethod
    def _make(
        cls,
        region: Any,
        source: Any,
        endpoint: Any,
        transform: Any,
        config: Any,
        enable_sharding: bool,
        reader_constructor: Any,
    ) -> Any:
        return cls(region, source, endpoint, transform, config, enable_sharding, reader_constructor)

    def _mine(self, entries: list[Entry]) -> list[Entry]:
        """The entries of this rank and worker (all of them without sharding)."""
        if not self._enable_sharding:
            return entries
        rank, world, worker, workers = 0, 1, 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = torch.utils.data.get_worker_info()
        if info is not None:
            worker, workers = info.id, info.num_workers
        return entries[rank::world][worker::workers]

    def __iter__(self) -> Iterator[Any]:
        entries = self._mine(_list(self._source, self._client))
        if not entries:
            return
        kind = S3ReaderConstructor.get_reader_type_string(self._reader_constructor)
        if kind != "sequential":
            for entry in entries:
                yield self._reader(entry)
            return
        client = self._client
        ds = ObjectDataset.from_uris([uri for uri, _ in entries], client=client)
        loader = _LoaderDataset(
            ds.uri, dataset=ds, enable_sharding=False, loader_opts=LoaderOptions(prefetch=8)
        ).loader()
        passage = loader.items()
        try:
            for item in passage:
                yield self._transform(SequentialS3Reader(item.uri, client, data=item.data))
        finally:
            passage.close()


class S3MapDataset(_Base, torch.utils.data.Dataset):
    """``ds[i]``: a reader of the ``i``-th object in key order (or what ``transform`` makes)."""

    #: The listing, made on first use (see :attr:`_objects`).
    _entries: list[Entry] | None = None

    @property
    def _objects(self) -> list[Entry]:
        """The objects (listed on first use, then kept)."""
        if self._entries is None:
            self._entries = _list(self._source, self._client)
        return self._entries

    @classmethod
    def _make(
        cls,
        region: Any,
        source: Any,
        endpoint: Any,
        transform: Any,
        config: Any,
        enable_sharding: bool,
        reader_constructor: Any,
    ) -> Any:
        return cls(region, source, endpoint, transform, config, reader_constructor)

    @classmethod
    def from_prefix(cls, s3_uri: str, **kwargs: Any) -> Any:
        """The objects whose key starts with ``s3_uri``'s."""
        if "enable_sharding" in kwargs:
            raise InvalidArgumentError("S3MapDataset takes no enable_sharding (use a sampler)")
        return super().from_prefix(s3_uri, **kwargs)

    @classmethod
    def from_objects(cls, object_uris: str | Iterable[str], **kwargs: Any) -> Any:
        """Exactly these objects, in this order."""
        if "enable_sharding" in kwargs:
            raise InvalidArgumentError("S3MapDataset takes no enable_sharding (use a sampler)")
        return super().from_objects(object_uris, **kwargs)

    def __len__(self) -> int:
        return len(self._objects)

    def __getitem__(self, i: int) -> Any:
        return self._reader(self._objects[i])


class S3Checkpoint:
    """File objects for ``torch.save`` / ``torch.load`` on any URI.

    Args:
        region: Signing region (default: the environment's).
        endpoint: An S3-compatible endpoint URL (default: the environment's).
        s3client_config: :class:`S3ClientConfig` (its ``part_size`` sizes upload parts).
    """

    def __init__(
        self,
        region: str | None = None,
        endpoint: str | None = None,
        s3client_config: S3ClientConfig | None = None,
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self._config = s3client_config or S3ClientConfig()
        self._lazy = LazyClient(region, endpoint, s3client_config)

    @property
    def _client(self) -> HasStores | None:
        return self._lazy.get()

    def reader(self, s3_uri: str) -> S3Reader:
        """A reader of the whole object (fetched on first read)."""
        return SequentialS3Reader(s3_uri, self._client)

    def writer(self, s3_uri: str) -> S3Writer:
        """A writer; the object appears, whole, on ``close()`` (a ``with`` block's end)."""
        options = WriterOptions(part_size=self._config.part_size)
        uri = parse_uri(s3_uri, allow_bare=True)
        return S3Writer(ObjectWriter(uri, options, client=self._client))
