"""Many-object transfers: ``get_many``, ``put_many``, ``copy`` (any backend to any), ``upload``,
``download`` and recursive delete.

Work runs on the shared pool with a bounded number of objects in flight, pulling from streamed
listings, so memory does not grow with the number of objects. A failure of one object does not
stop the others; the call then raises :class:`~s3dlio.errors.BatchError` naming each failed
object and the ones that succeeded.
"""

from __future__ import annotations

import glob as globlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import BatchError, InvalidArgumentError, InvalidURIError, NotFoundError, S3DlioError
from . import oplog, ops
from .backends.file import FileStore
from .buffers import BytesView, as_readonly_view
from .config import MiB
from .executor import bounded_map
from .listing import Selection, has_glob, select
from .range_engine import FetchResult, fetch, fetch_many
from .store import HasStores, ObjectMeta, ObjectStore, backend_for
from .uri import ObjectURI, parse_uri
from .writer import ObjectWriter, WriterOptions

__all__ = [
    "Progress",
    "copy_object",
    "copy_reporting",
    "delete_recursive",
    "download",
    "expand_local_sources",
    "get_many",
    "put_many",
    "run_batch",
    "upload",
]

T = TypeVar("T")
R = TypeVar("R")

#: ``progress(nbytes, objects)``: increments of bytes moved and objects finished (see
#: :func:`upload`). Called from worker threads; it may raise (e.g. ``CancelledError``) to stop.
Progress = Callable[[int, int], None]

#: Objects up to this size are copied with one GET and one PUT; larger ones are streamed.
STREAM_COPY_ABOVE = 16 * MiB


def run_batch(
    fn: Callable[[T], R],
    items: Iterable[T],
    max_in_flight: int,
    *,
    what: str,
    name: Callable[[T], str] = str,
    ordered: bool = True,
) -> list[R]:
    """Apply ``fn`` to every item concurrently; raise ``BatchError`` if any failed."""
    results: list[R] = []
    failures: list[tuple[str, BaseException]] = []
    for item, fut in bounded_map(fn, items, max_in_flight, ordered=ordered):
        exc = fut.exception()
        if exc is None:
            results.append(fut.result())
        elif isinstance(exc, (S3DlioError, OSError, ValueError)):
            failures.append((name(item), exc))
        else:
            raise exc
    if failures:
        raise BatchError(what, failures=failures, succeeded=len(results))
    return results


def get_many(
    uris: Iterable[str | ObjectURI], max_in_flight: int = 64, *, client: HasStores | None = None
) -> list[tuple[str, BytesView]]:
    """Fetch many objects concurrently; ``[(uri, data), ...]`` in input order.

    Objects of a backend that multiplexes reads (``s3://``) are read from the calling thread,
    up to ``max_in_flight`` requests (at most one per kept connection,
    ``S3DLIO_MAX_HTTP_CONNECTIONS``) in flight at once: see
    :func:`~s3dlio.io.range_engine.fetch_many`. Others run on the shared pool, ``max_in_flight``
    at a time.
    """
    if max_in_flight < 1:
        raise InvalidArgumentError(f"max_in_flight must be >= 1, got {max_in_flight}", op="GET")
    items = list(uris)
    outcomes: list[Any] = [None] * len(items)
    parsed: list[Any] = [None] * len(items)
    multiplexed: dict[ObjectStore, list[int]] = {}
    paged: dict[FileStore, list[int]] = {}
    threaded: list[int] = []
    for index, item in enumerate(items):
        try:
            parsed[index] = uri = parse_uri(item)
            backend = backend_for(uri, client)
        except (S3DlioError, ValueError) as exc:
            outcomes[index] = exc
            continue
        if backend.multiplexed:
            multiplexed.setdefault(backend, []).append(index)
        elif isinstance(backend, FileStore) and backend.scheme == "file":
            paged.setdefault(backend, []).append(index)
        else:
            threaded.append(index)
    for backend, indices in multiplexed.items():
        width = min(max_in_flight, backend.network.connections)
        for at, outcome in fetch_many(backend, [parsed[i] for i in indices], width):
            outcomes[indices[at]] = outcome.data if isinstance(outcome, FetchResult) else outcome
    for backend, indices in paged.items():
        _get_local(backend, indices, parsed, outcomes, max_in_flight, client)
    if threaded:
        for index, done in bounded_map(
            lambda i: ops.get(parsed[i], client), threaded, max_in_flight
        ):
            outcomes[index] = done.exception() or done.result()
    results: list[tuple[str, BytesView]] = []
    failures: list[tuple[str, BaseException]] = []
    for item, outcome in zip(items, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            results.append((str(item), outcome))
        elif isinstance(outcome, (S3DlioError, OSError, ValueError)):
            failures.append((str(item), outcome))
        else:
            raise outcome
    if failures:
        raise BatchError("GET", failures=failures, succeeded=len(results))
    return results


def _get_local(
    backend: FileStore,
    indices: list[int],
    parsed: list[Any],
    outcomes: list[Any],
    max_in_flight: int,
    client: HasStores | None,
) -> None:
    """``get_many`` of ``file://`` objects: each worker reads its share of the files in turn.

    Reading from the page cache is a memory copy, bound by memory bandwidth: more threads only
    share it (8 threads on 2 cores took 4x the CPU time of one for the same bytes, 2 threads
    1.25-1.6x), and handing each file to a worker costs more than reading a small one. So one
    worker per two CPUs (the calling thread alone on 2) reads its share of the files, each
    opened, read into its new buffer and closed with nothing in between
    (:meth:`FileStore.read_whole`: no range splitting, which only helps remote reads). Whatever
    does not go that way (an error, an open op-log) is read by :func:`ops.get`, with its
    retries, error mapping and logging.
    """
    width = max(1, min(max_in_flight, (os.cpu_count() or 2) // 2, len(indices)))
    runs = [indices[k::width] for k in range(width)] if width > 1 else [indices]
    logged = oplog.is_op_log_active()
    read_whole = backend.read_whole

    def read_run(run: list[int]) -> None:
        for i in run:
            uri = parsed[i]
            try:
                if logged:
                    raise _Slow
                outcomes[i] = read_whole(uri.key)
            except Exception:  # noqa: BLE001 - the general path retries, maps and logs it
                try:
                    outcomes[i] = ops.get(uri, client)
                except Exception as exc:  # noqa: BLE001 - reported per object
                    outcomes[i] = exc

    for _, done in bounded_map(read_run, runs, width):
        exc = done.exception()
        if exc is not None:
            raise exc


class _Slow(Exception):
    """Take the general path for this object."""


def put_many(
    items: Iterable[tuple[str | ObjectURI, Any]],
    max_in_flight: int = 64,
    *,
    client: HasStores | None = None,
) -> None:
    """Store many ``(uri, data)`` pairs concurrently (data: any buffer)."""

    def one(item: tuple[str | ObjectURI, Any]) -> None:
        uri, data = item
        ops.put(parse_uri(uri), as_readonly_view(data), client=client)

    run_batch(one, _pairs(items), max_in_flight, what="PUT", name=lambda item: str(item[0]))


def _pairs(items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    source = items.items() if isinstance(items, dict) else items
    for item in source:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidArgumentError(
                f"put_many wants (uri, data) pairs, got {type(item).__name__}"
            )
        yield item


def copy_object(
    src: ObjectURI,
    dst: ObjectURI,
    *,
    part_size: int = 16 * MiB,
    size: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
    client: HasStores | None = None,
) -> int:
    """Copy one object between any two backends; returns the bytes copied.

    A backend that can copy inside the service (``s3://`` to ``s3://`` on one endpoint) does so,
    without moving the bytes through this process. Otherwise objects up to
    :data:`STREAM_COPY_ABOVE` bytes take one GET and one PUT, and larger ones stream through a
    writer part by part, each part read with a version-checked range GET, so memory stays at a
    few parts and a source replaced mid-copy fails instead of mixing versions.
    ``on_bytes(n)`` is told of the bytes copied after each piece; if it raises, a streamed copy
    is aborted (no partial object) and the exception propagates.
    """
    backend = backend_for(src, client)
    report = on_bytes or _ignore
    if backend is backend_for(dst, client) and backend.can_copy_within(src, dst):
        copied = ops.call("COPY", backend, dst, lambda: backend.copy_within(src, dst))
        report(copied)
        return copied
    if size is None or size <= STREAM_COPY_ABOVE:
        first = fetch(backend, src, 0, STREAM_COPY_ABOVE)
        if first.size <= STREAM_COPY_ABOVE:
            ops.put(dst, memoryview(first.data), client=client)
            report(first.size)
            return first.size
        return _stream_copy(
            src, dst, first.size, first.etag, part_size, memoryview(first.data), report, client
        )
    meta = ops.stat(src, client)
    return _stream_copy(src, dst, meta.size, meta.etag, part_size, None, report, client)


def _ignore(nbytes: int) -> None:
    pass


def _stream_copy(
    src: ObjectURI,
    dst: ObjectURI,
    size: int,
    etag: str | None,
    part_size: int,
    head: memoryview | None,
    report: Callable[[int], None],
    client: HasStores | None,
) -> int:
    backend = backend_for(src, client)
    offset = 0
    with ObjectWriter(dst, WriterOptions(part_size=part_size), client=client) as writer:
        if head is not None:
            writer.write(head)
            offset = len(head)
            report(offset)
        buf = bytearray(part_size)
        view = memoryview(buf)
        while offset < size:
            got = fetch(backend, src, offset, part_size, into=view, if_match=etag, op="GET_RANGE")
            if got.nbytes == 0:
                raise NotFoundError("source shrank during copy", uri=str(src), op="GET")
            writer.write(view[: got.nbytes])
            offset += got.nbytes
            report(got.nbytes)
    return size


def copy_reporting(
    src: ObjectURI,
    dst: ObjectURI,
    size: int | None,
    progress: Progress | None,
    client: HasStores | None = None,
) -> int:
    """:func:`copy_object`, telling ``progress`` of the bytes as they move and of the object."""
    if progress is None:
        return copy_object(src, dst, size=size, client=client)
    nbytes = copy_object(src, dst, size=size, on_bytes=lambda n: progress(n, 0), client=client)
    progress(0, 1)
    return nbytes


def delete_recursive(
    uri: ObjectURI,
    *,
    pattern: str | None = None,
    max_in_flight: int = 64,
    batch: int = 1000,
    client: HasStores | None = None,
) -> int:
    """Delete every object ``uri`` selects (recursively); returns how many were deleted."""
    backend = backend_for(uri, client)
    listing = select(uri, recursive=True, pattern=pattern, client=client)
    objects = (m.uri for m in listing if not m.is_prefix)

    def chunks() -> Iterator[list[ObjectURI]]:
        group: list[ObjectURI] = []
        for item in objects:
            group.append(item)
            if len(group) >= batch:
                yield group
                group = []
        if group:
            yield group

    def delete_group(group: list[ObjectURI]) -> int:
        failed = ops.call(
            "DELETE", backend, group[0], lambda: backend.delete_many(group), n_objects=len(group)
        )
        if failed:
            raise BatchError(
                "DELETE",
                failures=[(str(u), e) for u, e in failed],
                succeeded=len(group) - len(failed),
            )
        return len(group)

    counts = run_batch(
        delete_group, chunks(), max(1, max_in_flight // 16), what="DELETE", name=lambda g: str(g[0])
    )
    if not uri.key or uri.key.endswith("/"):
        backend.remove_empty_dirs(uri)
    elif backend.local:
        backend.remove_empty_dirs(uri.with_key(uri.key + "/"))
    return sum(counts)


# -- upload / download -------------------------------------------------------------------------

_REGEX_ONLY = re.compile(r"\.\*|\.\+|[$^+\\(){}|]")


def expand_local_sources(patterns: str | Iterable[str]) -> Iterator[tuple[str, str]]:
    """Local files named by paths, globs or regexes, as ``(path, relative_name)`` pairs.

    * a file: itself, named by its base name;
    * a directory: every file below it, relative to it;
    * a glob (``*``, ``?``, ``[...]``, ``**``): matches, relative to the directory before the
      first glob component (so ``dir/**`` keeps the tree below ``dir/``);
    * a regex in the last component (``/logs/.*\\.log$``): files in that directory whose name
      it matches.

    Raises:
        NotFoundError: a pattern matched nothing.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [os.fspath(patterns)]
    for pattern in patterns:
        found = False
        for path, rel in _expand_one(os.path.expanduser(os.fspath(pattern))):
            found = True
            yield path, rel
        if not found:
            raise NotFoundError("matches no local file", uri=pattern, op="UPLOAD")


def _expand_one(pattern: str) -> Iterator[tuple[str, str]]:
    if pattern.startswith("file://"):
        pattern = pattern[len("file://") :]
    if os.path.isfile(pattern):
        yield pattern, os.path.basename(pattern)
        return
    if os.path.isdir(pattern):
        yield from _walk_files(pattern)
        return
    directory, name = os.path.split(pattern)
    if _REGEX_ONLY.search(name) and not has_glob(directory):
        regex = re.compile(name)
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            return
        for entry in names:
            path = os.path.join(directory, entry)
            if regex.fullmatch(entry) and os.path.isfile(path):
                yield path, entry
        return
    if has_glob(pattern):
        parts = pattern.split(os.sep)
        first = next(i for i, part in enumerate(parts) if has_glob(part))
        base = os.sep.join(parts[:first]) or ("/" if pattern.startswith("/") else ".")
        for path in sorted(globlib.iglob(pattern, recursive=True)):
            if os.path.isfile(path):
                yield path, os.path.relpath(path, base)


def _walk_files(top: str) -> Iterator[tuple[str, str]]:
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            yield path, os.path.relpath(path, top)


def upload(
    src_patterns: str | Iterable[str],
    dest_prefix: str | ObjectURI,
    max_in_flight: int = 32,
    create_bucket: bool = False,
    progress: Progress | None = None,
    *,
    client: HasStores | None = None,
) -> list[str]:
    """Upload local files (paths, globs, regexes) below ``dest_prefix``; returns the URIs.

    ``progress(nbytes, objects)``, if given, is called from worker threads with increments:
    bytes as they are transferred (part by part for large objects) and ``objects=1`` when an
    object is complete. If it raises (``CancelledError`` from a Ctrl-C handler, say), the
    objects in flight are aborted, leaving no partial object, and are reported as failed.
    """
    dest = parse_uri(dest_prefix)
    if create_bucket and not dest.is_local:
        backend = backend_for(dest, client)
        if not backend.bucket_exists(dest):
            backend.create_bucket(dest)

    def one(pair: tuple[str, str]) -> str:
        path, rel = pair
        target = dest.join(rel.replace(os.sep, "/"))
        source = ObjectURI("file", "", os.path.abspath(path))
        copy_reporting(source, target, os.path.getsize(path), progress, client)
        return str(target)

    return run_batch(
        one,
        expand_local_sources(src_patterns),
        max_in_flight,
        what="UPLOAD",
        name=lambda pair: pair[0],
    )


def download(
    src_uri: str | ObjectURI,
    dest_dir: str | os.PathLike[str],
    max_in_flight: int = 64,
    recursive: bool = True,
    pattern: str | None = None,
    progress: Progress | None = None,
    *,
    client: HasStores | None = None,
) -> list[str]:
    """Download what ``src_uri`` selects into ``dest_dir``, keeping the key layout.

    Keys that would land outside ``dest_dir`` (``..`` segments, absolute keys) are refused and
    reported in the ``BatchError``; the rest are downloaded. Returns the local paths written.
    ``progress`` is called as in :func:`upload`.
    """
    src = parse_uri(src_uri)
    root = os.path.abspath(os.fspath(dest_dir))
    selection = Selection.of(src.key, recursive)

    def one(meta: ObjectMeta) -> str:
        rel = selection.relative(meta.key)
        target = os.path.normpath(os.path.join(root, rel))
        if rel.startswith("/") or os.path.commonpath([root, target]) != root or target == root:
            raise InvalidURIError(
                f"key would be written outside {root}", uri=str(meta.uri), op="DOWNLOAD"
            )
        copy_reporting(meta.uri, ObjectURI("file", "", target), meta.size, progress, client)
        return target

    listing = select(src, recursive=recursive, pattern=pattern, client=client)
    entries = (m for m in listing if not m.is_prefix)
    return run_batch(one, entries, max_in_flight, what="DOWNLOAD", name=lambda m: str(m.uri))
