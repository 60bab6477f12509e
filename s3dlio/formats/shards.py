"""Write datasets as shards of a target size: WebDataset tar shards or TFRecord shards.

::

    from s3dlio.formats.shards import ShardWriter

    with ShardWriter("s3://bucket/train/shard-%06d.tar", max_size="256MiB") as sink:
        for i, (jpeg, label) in enumerate(samples):
            sink.write({"__key__": f"sample{i:08d}", "jpg": jpeg, "cls": label})
    sink.shards  # ['s3://bucket/train/shard-000000.tar', ...]

    with ShardWriter("gs://bucket/train/part-{:05d}.tfrecord", format="tfrecord") as sink:
        sink.write(example_bytes)          # or a {name: value} dict: a tf.train.Example

Each shard is streamed to its object through :func:`s3dlio.open_writer` (multipart uploads,
atomic: a shard appears whole or not at all), so any backend works. A new shard starts before a
sample that would take the current one past ``max_size`` bytes or ``max_count`` samples.
:class:`TarShardWriter` writes one tar shard; :class:`TFRecordShardWriter` one TFRecord shard.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..io.buffers import as_readonly_view
from ..io.config import MiB, parse_size
from ..io.store import HasStores
from ..io.writer import ObjectWriter, WriterOptions, open_writer
from .example import encode_example
from .framing import FOOTER, frame_header, masked_crc
from .tar import END_OF_ARCHIVE, member_header, padding

__all__ = ["FORMATS", "ShardWriter", "TFRecordShardWriter", "TarShardWriter", "encode_value"]

#: Shard formats :class:`ShardWriter` writes.
FORMATS = ("tar", "webdataset", "tfrecord")


def encode_value(ext: str, value: Any) -> bytes:
    """The bytes stored for one file of a WebDataset sample.

    Buffers are stored as they are; ``str`` as UTF-8; ``int``/``float`` as their decimal text
    (``"cls"`` files); a NumPy array as ``.npy`` bytes; a ``dict``/``list`` as JSON.

    Raises:
        InvalidArgumentError: a value of another type.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return str(value).encode("ascii")
    if isinstance(value, np.ndarray):
        out = io.BytesIO()
        np.save(out, value, allow_pickle=False)
        return out.getvalue()
    if isinstance(value, (dict, list)):
        return json.dumps(value).encode("utf-8")
    raise InvalidArgumentError(
        f"cannot store a {type(value).__name__} as the {ext!r} file of a sample "
        "(give bytes, str, a number, a NumPy array or a dict/list)"
    )


class TarShardWriter:
    """One tar shard (POSIX ustar, readable by ``tarfile``, ``tar`` and ``webdataset``).

    Args:
        uri: Destination object.
        client: The :class:`s3dlio.Client` to write through (default: the default client).
        options: Writer options (part size, parts in flight).

    Attributes:
        uri: The destination.
        count: Samples written.
        size: Bytes written so far (the final size once closed, end marker included).
    """

    def __init__(
        self,
        uri: str,
        *,
        client: HasStores | None = None,
        options: WriterOptions | None = None,
    ) -> None:
        self.uri = uri
        self._writer: ObjectWriter = open_writer(uri, options, client=client)
        self.count = 0
        self.size = 0

    @staticmethod
    def sample_size(sample: dict[str, Any]) -> int:
        """Bytes a sample adds to a shard (headers and padding included)."""
        key = str(sample["__key__"])
        total = 0
        for ext, value in sample.items():
            if ext.startswith("__"):
                continue
            n = len(encode_value(ext, value))
            total += len(member_header(f"{key}.{ext}", n)) + n + len(padding(n))
        return total

    def add(self, name: str, data: Any) -> None:
        """Append one file ``name`` with ``data`` (any buffer)."""
        view = as_readonly_view(data, what="data")
        n = len(view)
        header = member_header(name, n)
        self._writer.write(header)
        self._writer.write(view)
        self._writer.write(padding(n))
        self.size += len(header) + n + len(padding(n))

    def write(self, sample: dict[str, Any]) -> None:
        """Append one sample: ``{"__key__": key, ext: value, ...}`` as files ``key.ext``.

        Raises:
            InvalidArgumentError: no ``__key__``, a key with a dot in its base name (the
                ``webdataset`` reader would split it elsewhere), or a value of an unknown type.
        """
        if "__key__" not in sample:
            raise InvalidArgumentError("a sample needs a '__key__'", uri=self.uri)
        key = str(sample["__key__"])
        if "." in key.rsplit("/", 1)[-1]:
            raise InvalidArgumentError(
                f"sample key {key!r} has a dot in its base name: readers would split it there",
                uri=self.uri,
            )
        for ext, value in sample.items():
            if ext.startswith("__"):
                continue
            self.add(f"{key}.{ext}", encode_value(ext, value))
        self.count += 1

    def close(self) -> None:
        """Write the end-of-archive marker and commit the object."""
        self._writer.write(END_OF_ARCHIVE)
        self.size += len(END_OF_ARCHIVE)
        self._writer.finalize()

    def abort(self) -> None:
        """Discard the shard (nothing is stored)."""
        self._writer.abort()


class TFRecordShardWriter:
    """One TFRecord shard (framed with masked CRC32C, as TensorFlow writes).

    Args:
        uri: Destination object.
        client: The :class:`s3dlio.Client` to write through (default: the default client).
        options: Writer options.

    Attributes:
        uri: The destination.
        count: Records written.
        size: Bytes written so far.
    """

    def __init__(
        self,
        uri: str,
        *,
        client: HasStores | None = None,
        options: WriterOptions | None = None,
    ) -> None:
        self.uri = uri
        self._writer: ObjectWriter = open_writer(uri, options, client=client)
        self.count = 0
        self.size = 0

    @staticmethod
    def sample_size(sample: Any) -> int:
        """Bytes a record adds to a shard (framing included)."""
        return len(_payload(sample)) + 16

    def write(self, sample: Any) -> None:
        """Append one record: a buffer, or a ``{name: value}`` dict (a ``tf.train.Example``)."""
        data = _payload(sample)
        self._writer.write(frame_header(len(data)))
        self._writer.write(data)
        self._writer.write(masked_crc(data).to_bytes(FOOTER, "little"))
        self.size += len(data) + 16
        self.count += 1

    def close(self) -> None:
        """Commit the object."""
        self._writer.finalize()

    def abort(self) -> None:
        """Discard the shard (nothing is stored)."""
        self._writer.abort()


def _payload(sample: Any) -> memoryview:
    if isinstance(sample, dict):
        return memoryview(encode_example(sample))
    return as_readonly_view(sample, what="record")


class ShardWriter:
    """Samples into numbered shards of a target size, on any backend.

    Args:
        pattern: The shards' URIs, with the shard number as ``%d``-style (``"s3://b/s-%06d.tar"``)
            or ``{}``-style (``"s3://b/s-{:06d}.tfrecord"``) placeholder.
        format: ``"tar"`` (alias ``"webdataset"``: samples are dicts) or ``"tfrecord"``
            (samples are buffers or ``tf.train.Example`` dicts).
        max_size: Target shard size in bytes (``"256MiB"`` accepted): a new shard starts
            before a sample that would take the current one past it (a single larger sample
            gets a shard of its own).
        max_count: Most samples per shard (``None``: no limit).
        start: Number of the first shard.
        client: The :class:`s3dlio.Client` to write through (default: the default client).
        options: Writer options for each shard.

    Attributes:
        shards: URIs of the shards written so far (the current one once closed).
        count: Samples written in all.

    Use it as a context manager: an exception inside the block discards the shard being
    written (shards already closed stay).
    """

    def __init__(
        self,
        pattern: str,
        *,
        format: str = "tar",
        max_size: int | str = 256 * MiB,
        max_count: int | None = None,
        start: int = 0,
        client: HasStores | None = None,
        options: WriterOptions | None = None,
    ) -> None:
        if format not in FORMATS:
            raise InvalidArgumentError(f"format must be one of {FORMATS}, got {format!r}")
        if "%" not in pattern and "{" not in pattern:
            raise InvalidArgumentError(
                f"pattern {pattern!r} has no place for the shard number ('%06d' or '{{:06d}}')"
            )
        self.pattern = pattern
        self.format = "tfrecord" if format == "tfrecord" else "tar"
        self.max_size = parse_size(max_size)
        if self.max_size < 1:
            raise InvalidArgumentError(f"max_size must be >= 1 byte, got {max_size!r}")
        if max_count is not None and max_count < 1:
            raise InvalidArgumentError(f"max_count must be >= 1, got {max_count}")
        self.max_count = max_count
        self._next = start
        self._client = client
        self._options = options
        self._current: TarShardWriter | TFRecordShardWriter | None = None
        self.shards: list[str] = []
        self.count = 0

    def _name(self, number: int) -> str:
        if "%" in self.pattern:
            return self.pattern % number
        return self.pattern.format(number)

    def _open(self) -> TarShardWriter | TFRecordShardWriter:
        uri = self._name(self._next)
        self._next += 1
        kind = TFRecordShardWriter if self.format == "tfrecord" else TarShardWriter
        return kind(uri, client=self._client, options=self._options)

    def write(self, sample: Any) -> None:
        """Append one sample, starting a new shard first when the current one is full."""
        current = self._current
        if current is not None:
            grows = current.sample_size(sample)
            full = self.max_count is not None and current.count >= self.max_count
            if full or (current.count and current.size + grows > self.max_size):
                self._finish()
                current = None
        if current is None:
            current = self._current = self._open()
        current.write(sample)
        self.count += 1

    def _finish(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.close()
            self.shards.append(current.uri)

    def close(self) -> list[str]:
        """Commit the current shard; return the URIs of every shard written."""
        self._finish()
        return list(self.shards)

    def abort(self) -> None:
        """Discard the shard being written (closed shards stay)."""
        current, self._current = self._current, None
        if current is not None:
            current.abort()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
