"""s3torchconnector's datasets and ``S3Checkpoint`` over s3dlio's datasets and writers.

The object list is an :class:`~s3dlio.datasets.dataset.ObjectDataset` (a raw key prefix, as S3
lists it, or exact objects). The iterable dataset with the default (sequential) reader streams
whole objects through s3dlio's async loader (many GETs in flight, in key order) and hands each
one over as a :class:`SequentialS3Reader`; with ``S3ReaderConstructor.range_based()`` items are
lazy :class:`RangedS3Reader` s. The map-style dataset builds a reader per ``ds[i]``.
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
from ...io.store import HasStores
from ...io.uri import parse_uri
from ...io.writer import ObjectWriter, WriterOptions
from ._io import (
    S3ClientConfig,
    S3Reader,
    S3ReaderConstructor,
    S3Writer,
    SequentialS3Reader,
    client_for,
)

__all__ = ["S3Checkpoint", "S3IterableDataset", "S3MapDataset"]


def identity(obj: Any) -> Any:
    """The default transform: the reader itself."""
    return obj


def _list(source: tuple[str, Any], client: HasStores | None) -> ObjectDataset:
    """``("prefix", uri)``: keys starting with ``uri``'s key (S3 prefix semantics, any scheme);
    ``("objects", uris)``: exactly those."""
    kind, what = source
    if kind == "objects":
        return ObjectDataset.from_uris(
            [what] if isinstance(what, str) else list(what), client=client
        )
    parsed = parse_uri(what, allow_bare=True)
    cut = parsed.key.rfind("/") + 1
    directory, tail = parsed.with_key(parsed.key[:cut]), parsed.key[cut:]
    pattern = f"^{re.escape(tail)}" if tail else None
    return ObjectDataset(directory, recursive=True, pattern=pattern, client=client)


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
        self._client = client_for(region, endpoint, s3client_config)
        self._source = source
        self._dataset: ObjectDataset | None = None
        self._reader_constructor = reader_constructor or S3ReaderConstructor.default()

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def endpoint(self) -> str | None:
        return self._endpoint

    @property
    def dataset(self) -> ObjectDataset:
        """The objects (listed on first use)."""
        if self._dataset is None:
            self._dataset = _list(self._source, self._client)
        return self._dataset

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
            ("objects", object_uris if isinstance(object_uris, str) else list(object_uris)),
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
    each object goes to one rank and one ``DataLoader`` worker; otherwise every worker of
    every rank sees every object (s3torchconnector's default).
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

    def __iter__(self) -> Iterator[Any]:
        ds = self.dataset
        if S3ReaderConstructor.get_reader_type_string(self._reader_constructor) == "sequential":
            loader = _LoaderDataset(
                ds.uri,
                dataset=ds,
                enable_sharding=self._enable_sharding,
                loader_opts=LoaderOptions(prefetch=8),
            ).loader()
            passage = loader.items()
            try:
                for item in passage:
                    yield self._transform(
                        SequentialS3Reader(item.uri, self._client, data=item.data)
                    )
            finally:
                passage.close()
            return
        rank, world, worker, workers = 0, 1, 0, 1
        if self._enable_sharding:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            info = torch.utils.data.get_worker_info()
            if info is not None:
                worker, workers = info.id, info.num_workers
        for n, i in enumerate(range(rank, len(ds), world)):
            if n % workers == worker:
                yield self._transform(self._reader_constructor(ds.uri_of(i), self._client))


class S3MapDataset(_Base, torch.utils.data.Dataset):
    """``ds[i]``: a reader of the ``i``-th object in key order (or what ``transform`` makes)."""

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
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        ds = self.dataset
        if not -len(ds) <= i < len(ds):
            raise IndexError(i)
        return self._transform(self._reader_constructor(ds.uri_of(i % len(ds)), self._client))


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
        self._client = client_for(region, endpoint, s3client_config)

    def reader(self, s3_uri: str) -> S3Reader:
        """A reader of the whole object (fetched on first read)."""
        return SequentialS3Reader(s3_uri, self._client)

    def writer(self, s3_uri: str) -> S3Writer:
        """A writer; the object appears, whole, on ``close()`` (a ``with`` block's end)."""
        options = WriterOptions(part_size=self._config.part_size)
        uri = parse_uri(s3_uri, allow_bare=True)
        return S3Writer(ObjectWriter(uri, options, client=self._client))
