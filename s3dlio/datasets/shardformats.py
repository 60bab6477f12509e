"""Records of one shard, parsed from its bytes as they stream in (for ``StreamingDataset``).

Each reader takes a shard's windows (:data:`~s3dlio.formats.blocks.Window`) and yields its
records in file order, as they come:

- ``tfrecord``: each record's payload as ``bytes``, framing from
  :mod:`~s3dlio.formats.framing` with both CRC32C checks;
- ``raw``: consecutive ``record_size``-byte records as ``bytes``;
- ``webdataset``: POSIX tar members grouped into samples (:mod:`~s3dlio.formats.tar`);
- ``npy``: the object as one NumPy array; ``npz``: one array per member, in archive order;
- ``parquet``: one ``pyarrow.Table`` per row group (needs :mod:`s3dlio.formats.parquet`).

Bad data calls ``fail(error)``, which raises (``on_error="raise"``) or counts the error and
returns (``"skip"``). A record whose data CRC fails is skipped alone; a corrupt TFRecord length
field, a corrupt tar header, a truncated record or member, or an unreadable npz/npy/Parquet
object ends that shard (nothing after it can be located reliably).
"""

from __future__ import annotations

import importlib.util
import io
import json
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import crc32c
import numpy as np

from ..errors import IntegrityError, InvalidArgumentError, S3DlioError
from ..formats.blocks import Window
from ..formats.example import decode_example
from ..formats.framing import HEADER, OVERHEAD, scan_windows
from ..formats.tar import WindowReader, iter_samples

__all__ = ["FORMATS", "ReadFailure", "decode_record", "parquet_available", "shard_records"]

#: Formats :class:`~s3dlio.datasets.streaming.StreamingDataset` reads.
FORMATS = ("tfrecord", "raw", "npz", "npy", "parquet", "webdataset")

Fail = Callable[[S3DlioError], None]
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


class ReadFailure(Exception):
    """Carries an error of the storage layer through a parser (never skipped by ``on_error``).

    Attributes:
        error: The storage layer's error.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def guarded(windows: Iterable[Window]) -> Iterator[Window]:
    """``windows``, with errors of the reads wrapped in :class:`ReadFailure`."""
    it = iter(windows)
    while True:
        try:
            window = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - re-raised unwrapped by the dataset
            raise ReadFailure(exc) from exc
        yield window


def parquet_available() -> bool:
    """Whether :mod:`s3dlio.formats.parquet` exists in this installation."""
    return importlib.util.find_spec("s3dlio.formats.parquet") is not None


def shard_records(
    fmt: str,
    windows: Iterable[Window],
    *,
    uri: str,
    size: int,
    fail: Fail,
    record_size: int | None = None,
    expect: Callable[[int, int], None] | None = None,
) -> Iterator[Any]:
    """The records of one shard (see the module docs)."""
    source = guarded(windows)
    if fmt == "tfrecord":
        return _tfrecord(source, uri, size, fail, expect)
    if fmt == "raw":
        assert record_size is not None
        return _raw(source, uri, record_size, fail)
    if fmt == "webdataset":
        return _webdataset(source, uri, fail, expect)
    if fmt in ("npy", "npz"):
        return _numpy(fmt, source, uri, size, fail)
    if fmt == "parquet":
        return _parquet(source, uri, size, fail)
    raise InvalidArgumentError(f"unknown format {fmt!r}")


def _tfrecord(
    windows: Iterable[Window],
    uri: str,
    size: int,
    fail: Fail,
    expect: Callable[[int, int], None] | None,
) -> Iterator[bytes]:
    crc = crc32c.crc32c
    unpack = _FOOTER.unpack_from
    try:
        for win, segments, delta in scan_windows(
            windows, uri=uri, limit=lambda: size, expect=expect
        ):
            for first, count, length in segments:
                stride = length + OVERHEAD
                for start in range(first, first + count * stride, stride):
                    view = win[start : start + length]
                    x = (unpack(win, start + length)[0] - _MASK_DELTA) & 0xFFFFFFFF
                    if crc(view) != ((x << 15) | (x >> 17)) & 0xFFFFFFFF:
                        offset = start - HEADER + delta
                        fail(
                            IntegrityError(
                                f"record at offset {offset} failed its data CRC32C check",
                                uri=uri,
                                op="GET",
                                byte_range=(offset, stride),
                            )
                        )
                        continue
                    yield bytes(view)
            del win
    except IntegrityError as exc:
        fail(exc)


def _raw(windows: Iterable[Window], uri: str, record_size: int, fail: Fail) -> Iterator[bytes]:
    reader = WindowReader(windows)
    while True:
        at = reader.pos
        view = reader.read(record_size)
        if len(view) == record_size:
            yield bytes(view)
            continue
        if len(view):
            fail(
                IntegrityError(
                    f"truncated record at offset {at}: {len(view)} of {record_size} bytes",
                    uri=uri,
                    op="GET",
                    byte_range=(at, record_size),
                )
            )
        return


def _webdataset(
    windows: Iterable[Window],
    uri: str,
    fail: Fail,
    expect: Callable[[int, int], None] | None,
) -> Iterator[dict[str, Any]]:
    try:
        yield from iter_samples(windows, uri=uri, expect=expect)
    except IntegrityError as exc:
        fail(exc)


def _whole(windows: Iterable[Window], size: int) -> bytearray:
    out = bytearray(size)
    at = 0
    for buf, lo, hi in windows:
        out[at : at + hi - lo] = memoryview(buf)[lo:hi]
        at += hi - lo
    return out


def _numpy(fmt: str, windows: Iterable[Window], uri: str, size: int, fail: Fail) -> Iterator[Any]:
    data = _whole(windows, size)
    try:
        if fmt == "npy":
            arrays = [np.load(io.BytesIO(data), allow_pickle=False)]
        else:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = [npz[name] for name in npz.files]
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many kinds
        fail(IntegrityError(f"not a valid {fmt} object: {exc}", uri=uri, op="GET"))
        return
    yield from arrays


def _parquet(windows: Iterable[Window], uri: str, size: int, fail: Fail) -> Iterator[Any]:
    if not parquet_available():  # pragma: no cover - checked when the dataset is built
        raise InvalidArgumentError("format='parquet' needs s3dlio.formats.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = _whole(windows, size)
    try:
        reader = pq.ParquetFile(pa.BufferReader(pa.py_buffer(data)))
        groups = reader.num_row_groups
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        fail(IntegrityError(f"not a valid Parquet object: {exc}", uri=uri, op="GET"))
        return
    for i in range(groups):
        yield reader.read_row_group(i)


_TEXT = ("txt", "text", "transcript")
_INTS = ("cls", "cls2", "class", "count", "index", "inx", "id")


def _decode_file(ext: str, value: Any) -> Any:
    last = ext.rsplit(".", 1)[-1]
    if last in _TEXT:
        return bytes(value).decode("utf-8")
    if last in _INTS:
        return int(bytes(value))
    if last in ("json", "jsn"):
        return json.loads(bytes(value))
    if last == "npy":
        return np.load(io.BytesIO(value), allow_pickle=False)
    return value


def decode_record(fmt: str, record: Any) -> Any:
    """A record with ``decode=True``: a ``tf.train.Example`` as ``{name: np.ndarray}``; a
    WebDataset sample's text, class, JSON and ``.npy`` files as ``str``, ``int``, objects and
    arrays (other files stay ``bytes``); other formats unchanged."""
    if fmt == "tfrecord":
        return decode_example(record)
    if fmt == "webdataset":
        return {k: v if k.startswith("__") else _decode_file(k, v) for k, v in record.items()}
    return record
