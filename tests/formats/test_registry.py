"""The format registry: names and aliases, what consults it, and a format added from outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import s3dlio
from s3dlio.errors import InvalidArgumentError
from s3dlio.formats.generate import object_types
from s3dlio.formats.registry import FormatSpec, format_names, format_spec, register_format


def generate_reversed(
    size: int, *, dedup: int, compress: int, seed: int | None, record_size: int
) -> bytes:
    """A toy format for the test: the bytes 0..size-1 (mod 256), reversed."""
    return bytes((np.arange(size, dtype=np.uint64) % 256).astype(np.uint8)[::-1])


def test_names_and_aliases_resolve_to_one_entry() -> None:
    assert format_spec("TFRecords") is format_spec("tfrecord")
    assert format_spec("h5").name == "hdf5"
    assert {"raw", "npz", "tfrecord", "hdf5", "parquet"} <= set(object_types())
    assert "webdataset" in format_names("stream") and "webdataset" not in object_types()
    with pytest.raises(InvalidArgumentError, match="known: raw"):
        format_spec("orc")


def test_put_and_the_loader_consult_the_registry(tmp_path: Path) -> None:
    register_format(
        FormatSpec(name="reversed", aliases=("rev",), generate=f"{__name__}:generate_reversed")
    )
    prefix = tmp_path.as_uri() + "/rev/"
    assert s3dlio.put(prefix, 2, size=300, object_type="rev") == 2
    stored = sorted(s3dlio.list(prefix))
    assert len(stored) == 2
    assert bytes(s3dlio.get(stored[0])) == generate_reversed(
        300, dedup=1, compress=1, seed=None, record_size=0
    )
    assert "reversed" in object_types()
    # a format without a loader of its own: the whole-object loader, format key consumed
    with s3dlio.create_async_loader(prefix, {"format": "reversed", "batch_size": 2}) as loader:
        assert sorted(len(x) for x in loader) == [300, 300]
    with pytest.raises(InvalidArgumentError, match="unknown format"):
        s3dlio.create_async_loader(prefix, {"format": "orc"})
    with pytest.raises(InvalidArgumentError, match="object_type"):
        s3dlio.put(prefix, 1, size=10, object_type="webdataset")  # streamable, not generated


def test_a_missing_extra_is_named() -> None:
    spec = FormatSpec(name="needs-extra", extra="fancy", dataset="no_such_module_xyz:Dataset")
    with pytest.raises(ImportError, match=r"pip install 's3dlio\[fancy\]'"):
        spec.load("dataset")
    with pytest.raises(InvalidArgumentError, match="has no generate"):
        spec.load("generate")


def test_the_cli_offers_the_registered_types() -> None:
    from s3dlio.cli.app import build_parser

    parser = build_parser()
    args = parser.parse_args(["put", "file:///tmp/x/", "-o", "parquet"])
    assert args.object_type == "parquet"
