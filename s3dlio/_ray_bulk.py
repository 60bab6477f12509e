"""``copy_prefix`` and ``put_prefix``: bulk copies and data generation spread over Ray tasks.

The driver lists (or counts) the objects and cuts them into contiguous groups of about
``target_bytes``; each group is one Ray task that copies or generates its objects through s3dlio
(``max_in_flight`` at a time, with the task's pickled :class:`s3dlio.Client`). A task reports
per object: the objects that failed are sent again in new tasks, up to ``max_retries`` rounds,
and Ray itself retries a task whose worker or node died (``max_retries`` too). Each object is
written atomically (one PUT, or a streaming writer that aborts on error), so a destination never
holds part of an object. Failures left at the end raise one ``BatchError`` naming each object.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from ._ray_common import URI, budget_for, group_by_bytes, list_objects, resolve_client
from ._ray_common import worker_client as _worker_client
from .client import Client
from .errors import BatchError, InvalidArgumentError, S3DlioError
from .io import ops
from .io.executor import bounded_map
from .io.transfer import copy_object
from .io.uri import ObjectURI, parse_uri

__all__ = ["BulkReport", "copy_prefix_tasks", "put_prefix_tasks"]

#: ``progress(nbytes, objects)``: increments, called in the driver as tasks finish.
Progress = Callable[[int, int], None]
#: How long the driver waits for one task result before it checks again (no deadline overall:
#: Ray's own timeouts and retries govern the tasks).
_POLL_SECONDS = 5.0


@dataclass
class BulkReport:
    """What a :func:`~s3dlio.ray.copy_prefix` or :func:`~s3dlio.ray.put_prefix` run did.

    Attributes:
        uris: The destination URIs written, in source (or index) order.
        nbytes: Bytes written.
        tasks: Ray tasks run (retries included).
        retried: Objects sent again after a failure.
        nodes: ``{Ray node id: objects written there}``.
        seconds: Wall time of the run.
    """

    uris: list[str] = field(default_factory=list)
    nbytes: int = 0
    tasks: int = 0
    retried: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.uris)


@dataclass(frozen=True)
class _Item:
    """One object of a job: its name (URI for errors), the bytes expected, what to do."""

    name: str
    nbytes: int
    work: Any


@dataclass
class _TaskResult:
    node: str
    done: list[tuple[int, int]]  # (item position, bytes)
    failed: list[tuple[int, BaseException]]


def _run_items(
    kind: str, client: Client, items: list[tuple[int, Any]], max_in_flight: int, options: Any
) -> _TaskResult:
    """Body of one Ray task: do every item, collecting per-item outcomes."""
    client = _worker_client(client)
    node = ray.get_runtime_context().get_node_id()
    act = _copy_one if kind == "copy" else _put_one
    done: list[tuple[int, int]] = []
    failed: list[tuple[int, BaseException]] = []

    def one(item: tuple[int, Any]) -> int:
        return act(client, item[1], options)

    for (pos, _), outcome in bounded_map(one, items, max_in_flight):
        exc = outcome.exception()
        if exc is None:
            done.append((pos, outcome.result()))
        elif isinstance(exc, (S3DlioError, OSError, ValueError)):
            failed.append((pos, exc))
        else:
            raise exc
    return _TaskResult(node, done, failed)


_remote_run_items = ray.remote(_run_items)


def _copy_one(client: Client, work: tuple[str, str, int], options: Any) -> int:
    src, dst, size = work
    return copy_object(parse_uri(src), parse_uri(dst), size=size, client=client)


def _put_one(client: Client, work: tuple[str, int], options: dict[str, Any]) -> int:
    from .formats.generate import _stream_raw, generate_object

    uri, index = work
    seed = options["seed"]
    obj_seed = None if seed is None else seed + index
    nbytes = options["size"]
    if options["stream"]:
        _stream_raw(
            parse_uri(uri),
            nbytes,
            options["dedup"],
            options["compress"],
            obj_seed,
            options["chunk"],
            client,
        )
        return int(nbytes)
    data = generate_object(
        options["kind"],
        nbytes,
        dedup=options["dedup"],
        compress=options["compress"],
        seed=obj_seed,
        record_size=options["record_size"],
    )
    client.put_bytes(uri, memoryview(data))
    return len(data)


def _run(
    kind: str,
    items: Sequence[_Item],
    client: Client,
    *,
    target_bytes: int,
    max_objects_per_task: int,
    max_in_flight: int,
    max_retries: int,
    progress: Progress | None,
    options: Any = None,
    num_cpus: float = 1.0,
) -> BulkReport:
    """Run ``items`` as Ray tasks; retry failed objects; report or raise ``BatchError``."""
    started = time.monotonic()
    report = BulkReport()
    sizes = [0] * len(items)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    remote = _remote_run_items.options(
        num_cpus=num_cpus, max_retries=max_retries, scheduling_strategy="SPREAD"
    )
    errors: dict[int, BaseException] = {}
    todo = list(range(len(items)))
    for round_no in range(max_retries + 1):
        if not todo:
            break
        if round_no:
            report.retried += len(todo)
        total = sum(items[i].nbytes for i in todo)
        tasks = max(math.ceil(total / target_bytes), min(len(todo), 4 * cpus))
        budget = budget_for(total, tasks, target_bytes)
        pending: dict[Any, list[int]] = {}
        for group in group_by_bytes([items[i].nbytes for i in todo], budget, max_objects_per_task):
            chosen = todo[group.start : group.stop]
            payload = [(i, items[i].work) for i in chosen]
            pending[remote.remote(kind, client, payload, max_in_flight, options)] = chosen
        report.tasks += len(pending)
        todo = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_SECONDS)
            for ref in ready:
                chosen = pending.pop(ref)
                try:
                    result: _TaskResult = ray.get(ref, timeout=_POLL_SECONDS)
                except Exception as exc:  # the task itself died after Ray's own retries
                    cause = getattr(exc, "cause", None) or exc
                    for i in chosen:
                        errors[i] = cause
                    todo += chosen
                    continue
                nbytes = 0
                for i, n in result.done:
                    sizes[i] = n
                    nbytes += sizes[i]
                    errors.pop(i, None)
                for i, err in result.failed:
                    errors[i] = err
                    todo.append(i)
                if result.done:
                    report.nodes[result.node] = report.nodes.get(result.node, 0) + len(result.done)
                if progress is not None:
                    progress(nbytes, len(result.done))
        todo.sort()
    report.seconds = time.monotonic() - started
    failed = sorted(errors)
    bad = set(failed)
    report.uris = [items[i].name for i in range(len(items)) if i not in bad]
    report.nbytes = sum(sizes[i] for i in range(len(items)) if i not in bad)
    if failed:
        raise BatchError(
            kind.upper(),
            failures=[(items[i].name, errors[i]) for i in failed],
            succeeded=len(report.uris),
        )
    return report


def copy_prefix_tasks(
    src: URI,
    dst: URI,
    *,
    client: Client | None,
    pattern: str | None,
    target_bytes: int,
    max_objects_per_task: int,
    max_in_flight: int,
    max_retries: int,
    progress: Progress | None,
    num_cpus: float,
) -> BulkReport:
    """See :func:`s3dlio.ray.copy_prefix`."""
    client = resolve_client(client)
    target = parse_uri(dst, allow_bare=True)
    if target.key and not target.key.endswith("/"):
        target = target.with_key(target.key + "/")
    objects = list_objects(src, client, pattern=pattern)
    items = [
        _Item(str(target.join(o.relative)), o.size, (o.uri, str(target.join(o.relative)), o.size))
        for o in objects
    ]
    return _run(
        "copy",
        items,
        client,
        target_bytes=target_bytes,
        max_objects_per_task=max_objects_per_task,
        max_in_flight=max_in_flight,
        max_retries=max_retries,
        progress=progress,
        num_cpus=num_cpus,
    )


def put_prefix_tasks(
    prefix: URI,
    num: int,
    size: int,
    *,
    client: Client | None,
    object_type: str,
    template: str,
    seed: int | None,
    dedup_factor: int,
    compress_factor: int,
    record_size: int,
    chunk_size: int,
    data_gen_mode: str,
    should_create_bucket: bool,
    target_bytes: int,
    max_objects_per_task: int,
    max_in_flight: int,
    max_retries: int,
    progress: Progress | None,
    num_cpus: float,
) -> BulkReport:
    """See :func:`s3dlio.ray.put_prefix`."""
    from .formats.generate import DATA_GEN_MODES, _spec

    client = resolve_client(client)
    kind = _spec(object_type).name
    mode = data_gen_mode.lower().replace("_", "-")
    if mode not in DATA_GEN_MODES:
        raise InvalidArgumentError(
            f"data_gen_mode must be one of {DATA_GEN_MODES}, got {data_gen_mode!r}", op="PUT"
        )
    if num < 0:
        raise InvalidArgumentError(f"num must be >= 0, got {num}", op="PUT")
    root = parse_uri(prefix, allow_bare=True)
    if root.key and not root.key.endswith("/"):
        root = root.with_key(root.key + "/")
    if should_create_bucket:
        _create_bucket(root, client)
    options = {
        "kind": kind,
        "size": size,
        "seed": seed,
        "dedup": dedup_factor,
        "compress": compress_factor,
        "record_size": record_size,
        "chunk": max(chunk_size, 1 << 20),
        "stream": kind == "raw" and mode == "streaming" and size > chunk_size,
    }
    items = []
    for index in range(num):
        uri = str(root.join(template.format(index, num)))
        items.append(_Item(uri, size, (uri, index)))
    return _run(
        "put",
        items,
        client,
        target_bytes=target_bytes,
        max_objects_per_task=max_objects_per_task,
        max_in_flight=max_in_flight,
        max_retries=max_retries,
        progress=progress,
        options=options,
        num_cpus=num_cpus,
    )


def _create_bucket(root: ObjectURI, client: Client) -> None:
    backend = client.backend(root)
    if not backend.bucket_exists(root):
        ops.call("CREATE_BUCKET", backend, root, lambda: backend.create_bucket(root))
