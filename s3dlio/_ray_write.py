"""``write_objects``'s Ray Data ``Datasink``: each block becomes one object, written atomically
through ``client.open_writer`` in the write task.

Objects are named ``<write id>_<task>_<block>.<ext>`` below the destination prefix, so a task
that Ray retries writes the same names again (no duplicates), and a write that fails in the end
deletes what it had written: the prefix then holds no object of that write, and never a part
of one (a writer left by an exception is aborted: no object appears).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from ray.data.block import BlockAccessor
from ray.data.datasource import Datasink

from ._ray_common import URI, resolve_client, worker_client
from .client import Client
from .errors import InvalidArgumentError, S3DlioError
from .io.uri import ObjectURI, parse_uri

__all__ = ["WRITE_FORMATS", "ObjectsDatasink"]

log = logging.getLogger("s3dlio.ray")

#: Formats ``write_objects`` writes, and their object name suffixes.
WRITE_FORMATS = {"parquet": ".parquet", "tfrecord": ".tfrecord", "binary": ""}


class ObjectsDatasink(Datasink):
    """A Ray Data ``Datasink`` writing each block as one object below a prefix (see
    :func:`s3dlio.ray.write_objects`).

    Attributes:
        written: After a successful write, the URIs written, sorted.
        write_id: The id in this write's object names.
    """

    def __init__(
        self,
        uri: URI,
        fmt: str,
        *,
        client: Client | None = None,
        compression: str | None = None,
        name_column: str = "path",
    ) -> None:
        if fmt not in WRITE_FORMATS:
            raise InvalidArgumentError(
                f"format must be one of {sorted(WRITE_FORMATS)}, got {fmt!r}",
                uri=str(uri),
                op="RAY",
            )
        prefix = parse_uri(uri, allow_bare=True)
        if prefix.key and not prefix.key.endswith("/"):
            prefix = prefix.with_key(prefix.key + "/")
        self.prefix = prefix
        self.fmt = fmt
        self.client = resolve_client(client)
        self.compression = compression
        self.name_column = name_column
        self.write_id = uuid.uuid4().hex[:12]
        self.written: list[str] = []

    def get_name(self) -> str:
        """The name Ray shows for the write operator."""
        return f"S3dlio[{self.fmt}]"

    def write(self, blocks: Iterable[Any], ctx: Any) -> list[str]:
        """Write each non-empty block of one task as one object; return their URIs."""
        client = worker_client(self.client)
        out: list[str] = []
        for index, block in enumerate(blocks):
            table = BlockAccessor.for_block(block).to_arrow()
            if table.num_rows == 0:
                continue
            if self.fmt == "binary":
                out += self._write_rows(table, client, ctx.task_idx, index)
                continue
            target = self.prefix.join(
                f"{self.write_id}_{ctx.task_idx:06d}_{index:06d}{WRITE_FORMATS[self.fmt]}"
            )
            if self.fmt == "parquet":
                _write_parquet(table, target, client, self.compression)
            else:
                _write_tfrecord(table, target, client, self.compression)
            out.append(str(target))
        return out

    def _write_rows(self, table: pa.Table, client: Client, task: int, block: int) -> list[str]:
        if "bytes" not in table.column_names:
            raise InvalidArgumentError(
                "format='binary' writes the 'bytes' column of each row, and there is none",
                uri=str(self.prefix),
                op="PUT",
            )
        data = table.column("bytes").to_pylist()
        names = (
            table.column(self.name_column).to_pylist()
            if self.name_column in table.column_names
            else [None] * len(data)
        )
        out = []
        for row, (payload, name) in enumerate(zip(data, names, strict=True)):
            leaf = str(name).rstrip("/").rsplit("/", 1)[-1] if name else ""
            target = self.prefix.join(leaf or f"{self.write_id}_{task:06d}_{block:06d}_{row:06d}")
            client.put_bytes(target, payload)
            out.append(str(target))
        return out

    def on_write_complete(self, write_result: Any) -> None:
        """Keep the URIs written (driver)."""
        self.written = sorted(uri for urls in write_result.write_returns for uri in urls)

    def on_write_failed(self, error: Exception) -> None:
        """Delete the objects this write made (best effort, driver): a failed write leaves no
        object of its own at the destination."""
        try:
            doomed = [
                uri
                for uri in self.client.list(self.prefix, recursive=True)
                if parse_uri(uri).name.startswith(self.write_id + "_")
            ]
            for uri in doomed:
                self.client.delete(uri, missing_ok=True)
        except S3DlioError as exc:  # the original error matters more
            log.warning("could not remove the objects of failed write %s: %s", self.write_id, exc)


def _write_parquet(
    table: pa.Table, target: ObjectURI, client: Client, compression: str | None
) -> None:
    import pyarrow.parquet as pq

    with client.open_writer(target) as writer:
        pq.write_table(table, writer, compression=compression or "snappy")
        writer.finalize()


def _write_tfrecord(
    table: pa.Table, target: ObjectURI, client: Client, compression: str | None
) -> None:
    """One record per row: the row's ``bytes`` column (binary) as is when there is one, else
    the row's columns as a ``tf.train.Example`` (``None`` values left out)."""
    from .formats.tfrecord import TFRecordWriter

    raw = "bytes" in table.column_names and (
        pa.types.is_binary(table.schema.field("bytes").type)
        or pa.types.is_large_binary(table.schema.field("bytes").type)
    )
    with TFRecordWriter(target, compression, client=client) as writer:
        if raw:
            for value in table.column("bytes").to_pylist():
                writer.write(value)
        else:
            for row in table.to_pylist():
                writer.write_example({k: v for k, v in row.items() if v is not None})
