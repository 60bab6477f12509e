"""The format registry: one entry per data format, consulted by everything that dispatches on a
format name (``put(object_type=...)``, ``s3-cli put -o``, ``create_async_loader(..., {"format":
...})``, the map-style datasets, the streaming dataset).

An entry names its pieces as ``"module:attribute"`` strings, imported on first use, so that
``import s3dlio`` imports no format code (and no h5py or pyarrow). A new format is one
:func:`register_format` call::

    register_format(FormatSpec(
        name="csv", aliases=("txt",), extra=None,
        generate="mypkg.csvfmt:generate_csv",        # (size, *, dedup, compress, seed, record_size)
        dataset="mypkg.csvfmt:CSVDataset",           # map-style torch dataset over URIs
        stream="mypkg.csvfmt:iter_csv_records",      # records of one shard, for StreamingDataset
    ))
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["FormatSpec", "format_names", "format_spec", "register_format"]


@dataclass(frozen=True, kw_only=True)
class FormatSpec:
    """What s3dlio knows how to do with one format.

    Attributes:
        name: The canonical name (``"tfrecord"``).
        aliases: Other spellings accepted wherever a format is named (``"tfrecords"``).
        extra: The pip extra its code needs (``"hdf5"``, ``"parquet"``), for error messages.
        generate: ``"module:function"`` making one synthetic object: called as
            ``fn(size, *, dedup, compress, seed, record_size)`` and returning a buffer.
        dataset: ``"module:Class"`` of the map-style PyTorch dataset over objects of this
            format (``Class(uris, ..., client=...)``).
        loader: ``"module:function"`` building the async loader of this format:
            ``fn(uri, opts, cancellation_token=..., client=...)``; ``None``: the generic
            whole-object loader.
        stream: ``"module:function"`` yielding the records of one shard for the streaming
            dataset (``shard_records(fmt, windows, ...)``); ``None``: not streamable.
    """

    name: str
    aliases: tuple[str, ...] = ()
    extra: str | None = None
    generate: str | None = None
    dataset: str | None = None
    loader: str | None = None
    stream: str | None = None

    def load(self, part: str) -> Callable[..., Any]:
        """Import and return the piece ``part`` (``"generate"``, ``"dataset"``, ...).

        Raises:
            InvalidArgumentError: this format has no such piece.
            ImportError: its code needs an extra that is not installed (named).
        """
        target = getattr(self, part)
        if target is None:
            raise InvalidArgumentError(f"format {self.name!r} has no {part}", op="FORMAT")
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if self.extra is None:
                raise
            raise ImportError(
                f"format {self.name!r} needs {exc.name or exc}; install it with: "
                f"pip install 's3dlio[{self.extra}]'",
                name=exc.name,
            ) from exc
        return getattr(module, attribute)


_FORMATS: dict[str, FormatSpec] = {}
_NAMES: dict[str, str] = {}
_lock = threading.Lock()


def register_format(spec: FormatSpec) -> None:
    """Add (or replace) a format; its name and aliases resolve to it from then on."""
    with _lock:
        _FORMATS[spec.name] = spec
        for name in (spec.name, *spec.aliases):
            _NAMES[name.lower()] = spec.name


def format_spec(name: str) -> FormatSpec:
    """The format called ``name`` (or one of its aliases, any case).

    Raises:
        InvalidArgumentError: no such format (the known ones are listed).
    """
    canonical = _NAMES.get(str(name).lower())
    if canonical is None:
        raise InvalidArgumentError(
            f"unknown format {name!r} (known: {', '.join(format_names())})", op="FORMAT"
        )
    return _FORMATS[canonical]


def format_names(part: str | None = None) -> tuple[str, ...]:
    """Canonical names of the registered formats, in registration order; with ``part``, only
    those that have that piece (``format_names("generate")``: what ``put`` can make)."""
    return tuple(n for n, s in _FORMATS.items() if part is None or getattr(s, part) is not None)


_GEN = "s3dlio.formats.generate"
_STREAM = "s3dlio.datasets.shardformats:shard_records"
for _spec in (
    FormatSpec(
        name="raw",
        aliases=("zeros", "bin", "binary"),
        generate=f"{_GEN}:generate_raw",
        dataset="s3dlio.datasets.torch:S3MapDataset",
        stream=_STREAM,
    ),
    FormatSpec(
        name="npz",
        generate=f"{_GEN}:generate_npz",
        dataset="s3dlio.datasets.records:NPZDataset",
        stream=_STREAM,
    ),
    FormatSpec(
        name="tfrecord",
        aliases=("tfrecords",),
        generate=f"{_GEN}:generate_tfrecord",
        dataset="s3dlio.datasets.records:TFRecordDataset",
        stream=_STREAM,
    ),
    FormatSpec(
        name="hdf5",
        aliases=("h5",),
        extra="hdf5",
        generate=f"{_GEN}:generate_hdf5",
        dataset="s3dlio.datasets.records:HDF5Dataset",
    ),
    FormatSpec(
        name="parquet",
        aliases=("pq",),
        extra="parquet",
        generate=f"{_GEN}:generate_parquet",
        dataset="s3dlio.datasets.parquet_torch:ParquetDataset",
        loader="s3dlio.datasets.parquet_loader:create_parquet_loader",
        stream=_STREAM,
    ),
    FormatSpec(name="npy", stream=_STREAM),
    FormatSpec(name="webdataset", aliases=("wds", "tar"), stream=_STREAM),
):
    register_format(_spec)
del _spec
