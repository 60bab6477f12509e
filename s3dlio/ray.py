"""Scale-out on Ray: Ray Data reading and writing through s3dlio, bulk copies and generation
spread over a Ray cluster.

::

    import ray, s3dlio
    from s3dlio.ray import copy_prefix, put_prefix, read_objects, write_objects

    ray.init(address="auto")                                    # an existing cluster
    client = s3dlio.Client(endpoint_url="http://10.0.0.5:9000")  # pickled to every task
    put_prefix("s3://bucket/raw/", 10_000, "1MiB", object_type="tfrecord", client=client)
    ds = read_objects("s3://bucket/raw/", format="tfrecord", client=client)
    write_objects(ds, "s3://bucket/parquet/", format="parquet", client=client)
    copy_prefix("s3://bucket/parquet/", "gs://other/parquet/")

``read_objects`` is a Ray Data ``Datasource``: the driver lists the objects (and reads Parquet
footers or TFRecord indexes), and each read task fetches a contiguous group of objects, record
ranges or row groups of about ``target_bytes`` through s3dlio. ``write_objects`` is a
``Datasink``: each block becomes one object, written atomically. ``copy_prefix`` and
``put_prefix`` run groups of objects as Ray tasks, report progress as tasks finish, send the
objects that failed again and name each one still failing in a ``BatchError``.

Clients travel to the tasks by pickling: an :class:`s3dlio.Client` pickles as its options and
builds its own connections in the worker (one per set of options per worker process). With
``client=None`` the driver's default client is sent: what :func:`s3dlio.configure` set in the
driver applies everywhere, and the options left unset come from each worker's environment
(pass them in Ray's ``runtime_env={"env_vars": ...}``, or set them where ``ray start`` runs).

Needs the ``ray`` extra: ``pip install 's3dlio[ray]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
import ray.data

from ._ray_bulk import BulkReport, Progress, copy_prefix_tasks, put_prefix_tasks
from ._ray_common import URI, size_arg
from ._ray_read import FORMATS, ObjectsDatasource
from ._ray_write import WRITE_FORMATS, ObjectsDatasink
from .client import Client
from .errors import InvalidArgumentError
from .io.config import KiB, parse_size

__all__ = [
    "FORMATS",
    "WRITE_FORMATS",
    "BulkReport",
    "ObjectsDatasink",
    "ObjectsDatasource",
    "copy_prefix",
    "put_prefix",
    "read_objects",
    "write_objects",
]


def read_objects(
    uri: URI | Sequence[URI],
    format: str = "binary",
    *,
    client: Client | None = None,
    target_bytes: int | str = "64MiB",
    override_num_blocks: int | None = None,
    include_paths: bool | None = None,
    columns: Sequence[str] | None = None,
    record_size: int | str | None = None,
    header: int | str = 0,
    decode: bool = True,
    pattern: str | None = None,
    max_in_flight: int = 16,
    ray_remote_args: dict[str, Any] | None = None,
    concurrency: int | None = None,
) -> Any:
    """A ``ray.data.Dataset`` of the objects ``uri`` selects, fetched by s3dlio in Ray tasks.

    Args:
        uri: One object, a prefix ending in ``/`` or a glob (everything below, recursively, in
            key order), or a list of object URIs; any backend.
        format: What one row is:

            - ``"binary"``: one object: ``path``, ``bytes``.
            - ``"raw"``: one fixed-size record (``record_size`` bytes, after ``header`` bytes):
              ``path``, ``index`` (record number in its object), ``bytes``.
            - ``"npz"``: one NPZ object: ``path`` and one column per array (tensor columns).
            - ``"tfrecord"``: one record: its ``tf.train.Example`` features as columns (a
              feature holding one value in every record is a scalar column, else a list
              column), or ``bytes`` with ``decode=False``. Files larger than a task's share
              are split into record ranges when an index (``uri + ".idx"``) exists.
            - ``"parquet"``: the rows of the files; read tasks take row groups.

        client: The :class:`s3dlio.Client` the tasks read through (pickled; default: the
            driver's default client).
        target_bytes: Largest share of one read task when Ray picks the number of tasks (tasks
            are cut by bytes between 1 MiB and this).
        override_num_blocks: Make about this many read tasks instead.
        include_paths: Add a ``path`` column (default: yes for binary, raw and npz).
        columns: Parquet columns to read (only their chunks are fetched).
        record_size: Bytes per record for ``"raw"``.
        header: Bytes to skip at the start of each object for ``"raw"``.
        decode: Decode TFRecord records as ``tf.train.Example`` (default) or keep ``bytes``.
        pattern: A regex that the keys below a prefix must match.
        max_in_flight: Requests in flight at once inside one task.
        ray_remote_args: Passed to Ray for the read tasks (``num_cpus``, ``memory``, ...).
        concurrency: Most read tasks running at once.

    Returns:
        A lazy ``ray.data.Dataset``.

    Raises:
        NotFoundError: ``uri`` selects nothing (raised here, in the driver).
        InvalidArgumentError: an unknown format or a bad option.
    """
    record = None if record_size is None else size_arg("record_size", record_size)
    source = ObjectsDatasource(
        uri,
        format,
        client=client,
        target_bytes=size_arg("target_bytes", target_bytes),
        explicit_blocks=override_num_blocks is not None,
        include_paths=include_paths,
        columns=columns,
        record_size=record,
        header=parse_size(header),
        decode=decode,
        pattern=pattern,
        max_in_flight=_positive("max_in_flight", max_in_flight),
    )
    return ray.data.read_datasource(
        source,
        override_num_blocks=override_num_blocks,
        ray_remote_args=ray_remote_args,
        concurrency=concurrency,
    )


def write_objects(
    ds: Any,
    uri: URI,
    format: str = "parquet",
    *,
    client: Client | None = None,
    compression: str | None = None,
    name_column: str = "path",
    ray_remote_args: dict[str, Any] | None = None,
    concurrency: int | None = None,
) -> list[str]:
    """Write a ``ray.data.Dataset`` below ``uri``; return the URIs written (sorted).

    Each block becomes one object ``<write id>_<task>_<block>.parquet`` (or ``.tfrecord``),
    written through ``client.open_writer`` in the write task: atomic, so a task that fails
    leaves no part of an object, and a retried task writes the same names again. If the write
    fails in the end, the objects it had written are deleted.

    Args:
        ds: The dataset.
        uri: Destination prefix (any backend).
        format: ``"parquet"`` (the block's columns); ``"tfrecord"`` (one record per row: the
            ``bytes`` column if there is one, else the row as a ``tf.train.Example``);
            ``"binary"`` (one object per row holding its ``bytes``, named after the last part
            of its ``name_column`` value, e.g. the ``path`` of :func:`read_objects`).
        client: The :class:`s3dlio.Client` the tasks write through (pickled).
        compression: Parquet codec (default ``"snappy"``) or TFRecord ``"gzip"``.
        name_column: For ``"binary"``: the column that names each object.
        ray_remote_args: Passed to Ray for the write tasks.
        concurrency: Most write tasks running at once.

    Raises:
        InvalidArgumentError: an unknown format.
    """
    sink = ObjectsDatasink(
        uri, format, client=client, compression=compression, name_column=name_column
    )
    ds.write_datasink(sink, ray_remote_args=ray_remote_args, concurrency=concurrency)
    return sink.written


def copy_prefix(
    src: URI,
    dst: URI,
    *,
    client: Client | None = None,
    pattern: str | None = None,
    target_bytes: int | str = "256MiB",
    max_objects_per_task: int = 200,
    max_in_flight: int = 16,
    max_retries: int = 3,
    progress: Progress | None = None,
    num_cpus: float = 1.0,
) -> BulkReport:
    """Copy every object ``src`` selects to ``dst`` (keeping keys relative to ``src``'s
    directory, as ``s3dlio.copy(..., recursive=True)``), spread over the Ray cluster.

    The driver lists ``src``; each Ray task copies a contiguous group of objects (about
    ``target_bytes``, at most ``max_objects_per_task``) between any two backends, streamed, with
    ``max_in_flight`` copies at once. Objects that fail are sent again in new tasks, up to
    ``max_retries`` rounds (Ray also retries a task whose worker died). Every object is written
    atomically: the destination holds whole objects only.

    Args:
        src: Prefix ending in ``/``, glob, one object, or a list of URIs.
        dst: Destination prefix.
        client: The :class:`s3dlio.Client` of both sides (pickled to the tasks).
        pattern: A regex the keys below ``src`` must match.
        target_bytes: Bytes per task (the run still makes at least 4 tasks per cluster CPU
            when there are that many objects).
        max_objects_per_task: Objects per task at most.
        max_in_flight: Copies at once inside one task.
        max_retries: Rounds of retries of failed objects (and Ray's retries of dead tasks).
        progress: ``progress(nbytes, objects)``, called in the driver as tasks finish.
        num_cpus: CPUs Ray reserves for each task.

    Returns:
        A :class:`BulkReport` (destination URIs, bytes, tasks, objects per node).

    Raises:
        BatchError: some objects still failed (each named with its error); the others were
            copied.
        NotFoundError: ``src`` selects nothing.
    """
    return copy_prefix_tasks(
        src,
        dst,
        client=client,
        pattern=pattern,
        target_bytes=size_arg("target_bytes", target_bytes),
        max_objects_per_task=_positive("max_objects_per_task", max_objects_per_task),
        max_in_flight=_positive("max_in_flight", max_in_flight),
        max_retries=_retries(max_retries),
        progress=progress,
        num_cpus=num_cpus,
    )


def put_prefix(
    prefix: URI,
    num: int,
    size: int | str,
    *,
    object_type: str = "raw",
    template: str = "object_{}_of_{}.dat",
    seed: int | None = None,
    dedup_factor: int = 1,
    compress_factor: int = 1,
    record_size: int | str = 64 * KiB,
    chunk_size: int | str = 256 * KiB,
    data_gen_mode: str = "streaming",
    should_create_bucket: bool = False,
    client: Client | None = None,
    target_bytes: int | str = "256MiB",
    max_objects_per_task: int = 200,
    max_in_flight: int = 16,
    max_retries: int = 3,
    progress: Progress | None = None,
    num_cpus: float = 1.0,
) -> BulkReport:
    """Generate ``num`` synthetic objects below ``prefix`` (as :func:`s3dlio.put`), spread
    over the Ray cluster.

    Object ``i`` is named ``template.format(i, num)`` and, with ``seed``, holds exactly what
    ``s3dlio.put(..., seed=seed)`` writes for it, whichever task makes it. Each task makes a
    contiguous range of indices; retries and errors are as in :func:`copy_prefix`.

    Args:
        prefix: Where the objects go.
        num: How many objects.
        size: Bytes of data per object (``"4MiB"`` accepted).
        object_type: ``"raw"``, ``"npz"``, ``"tfrecord"``, ``"hdf5"`` or ``"parquet"``.
        template: Object names, formatted with ``(index, num)``.
        seed: Make the data reproducible (object ``i`` uses ``seed + i``).
        dedup_factor: Deduplication factor of the data.
        compress_factor: Compression factor of the data.
        record_size: TFRecord payload bytes per record.
        chunk_size: Generation chunk of streamed raw objects.
        data_gen_mode: ``"streaming"`` or ``"single-pass"`` (see :func:`s3dlio.put`).
        should_create_bucket: Create the bucket first (in the driver).
        client: The :class:`s3dlio.Client` to write through (pickled to the tasks).
        target_bytes: Bytes per task (at least 4 tasks per cluster CPU when possible).
        max_objects_per_task: Objects per task at most.
        max_in_flight: Objects generated and uploaded at once inside one task.
        max_retries: Rounds of retries of failed objects.
        progress: ``progress(nbytes, objects)``, called in the driver as tasks finish.
        num_cpus: CPUs Ray reserves for each task.

    Returns:
        A :class:`BulkReport`.

    Raises:
        BatchError: some objects still failed (each named by URI).
        InvalidArgumentError: a bad format, mode, count or size.
    """
    return put_prefix_tasks(
        prefix,
        num,
        _size(size),
        client=client,
        object_type=object_type,
        template=template,
        seed=seed,
        dedup_factor=dedup_factor,
        compress_factor=compress_factor,
        record_size=size_arg("record_size", record_size),
        chunk_size=size_arg("chunk_size", chunk_size),
        data_gen_mode=data_gen_mode,
        should_create_bucket=should_create_bucket,
        target_bytes=size_arg("target_bytes", target_bytes),
        max_objects_per_task=_positive("max_objects_per_task", max_objects_per_task),
        max_in_flight=_positive("max_in_flight", max_in_flight),
        max_retries=_retries(max_retries),
        progress=progress,
        num_cpus=num_cpus,
    )


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}", op="RAY")
    return value


def _size(value: int | str) -> int:
    size = parse_size(value)
    if size < 0:
        raise InvalidArgumentError(f"size must be >= 0, got {value!r}", op="PUT")
    return size


def _retries(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"max_retries must be an int >= 0, got {value!r}", op="RAY")
    return value
