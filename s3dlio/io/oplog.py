"""The operation log: every storage request of every backend, as a warp-compatible TSV in zstd.

The file is one zstd stream of tab-separated lines, the first being exactly::

    idx	thread	op	client_id	n_objects	bytes	endpoint	file	error	start	first_byte	end	duration_ns

Timestamps are RFC 3339 UTC with nanoseconds (``2026-01-02T03:04:05.123456789Z``);
``first_byte`` is empty for metadata operations; tabs and newlines inside an error are replaced
by spaces. This is the layout of MinIO warp's benchmark output, so warp's tools and
``s3-cli replay`` read it.

Producers only enqueue a tuple; a writer thread formats and compresses. The queue is bounded (a
burst blocks the producers briefly rather than dropping lines). The stream is closed properly by
:func:`finalize_op_log` or, failing that, at interpreter exit.

A process forked while a log is open (a DataLoader worker) logs to a file of its own beside the
parent's, ``ops.worker-<pid>.tsv.zst`` for ``ops.tsv.zst``, created on its first operation and
closed when the worker exits; :func:`worker_log_paths` finds them and :func:`read_op_log` reads
any of them. (Processes started with ``spawn`` do not inherit the log.)
"""

from __future__ import annotations

import atexit
import glob
import io
import multiprocessing.util
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import zstandard

from .config import settings

__all__ = [
    "COLUMNS",
    "HEADER",
    "finalize_op_log",
    "format_timestamp",
    "init_op_log",
    "is_op_log_active",
    "op_log_stats",
    "read_op_log",
    "record",
    "worker_log_paths",
]

HEADER = (
    "idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror"
    "\tstart\tfirst_byte\tend\tduration_ns\n"
)
COLUMNS = tuple(HEADER.rstrip("\n").split("\t"))
_QUEUE_SIZE = 65536
_FLUSH_AFTER = 1.0  # seconds without operations before buffered lines are flushed
_STOP = None


def format_timestamp(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, from nanoseconds since the epoch."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


class _OpLog:
    """One open log: a bounded queue and the thread that writes it."""

    def __init__(self, path: str, client_id: str) -> None:
        self.path = path
        self.client_id = _clean(client_id)
        self.pid = os.getpid()
        self.queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(_QUEUE_SIZE)
        self.counts: Counter[str] = Counter()
        self.bytes = 0
        self.errors = 0
        self.lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        # unbuffered: a forked child holding this object must have no bytes of ours to flush
        self.file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by the writer thread
        self.stream = zstandard.ZstdCompressor(level=settings().oplog_level).stream_writer(
            self.file, closefd=False
        )
        self.stream.write(HEADER.encode())
        self.thread = threading.Thread(target=self._run, name="s3dlio-oplog", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        idx = 0
        stop = False
        unflushed = False
        while not stop:
            try:
                batch = [self.queue.get(timeout=_FLUSH_AFTER)]
            except queue.Empty:
                if unflushed:  # a quiet second: make what we have decodable if we are killed
                    self.stream.flush(zstandard.FLUSH_BLOCK)
                    unflushed = False
                continue
            while len(batch) < 4096:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for item in batch:
                if item is _STOP:
                    stop = True
                    continue
                thread, op, n_objects, nbytes, endpoint, name, error, start, first, end = item
                lines.append(
                    f"{idx}\t{thread}\t{op}\t{self.client_id}\t{n_objects}\t{nbytes}\t{endpoint}"
                    f"\t{_clean(name)}\t{_clean(error)}\t{format_timestamp(start)}"
                    f"\t{format_timestamp(first) if first else ''}\t{format_timestamp(end)}"
                    f"\t{end - start}\n"
                )
                idx += 1
            if lines:
                self.stream.write("".join(lines).encode())
                unflushed = True
        self._close()

    def _close(self) -> None:
        self.stream.close()
        self.file.close()

    def put(self, item: tuple[Any, ...]) -> None:
        with self.lock:
            self.counts[item[1]] += 1
            self.bytes += item[3]
            self.errors += bool(item[6])
        self.queue.put(item)

    def finish(self) -> None:
        self.queue.put(_STOP)
        self.thread.join()


_log: _OpLog | None = None
_log_lock = threading.Lock()
_last_stats: dict[str, Any] = {}
#: In a forked child of a logging parent: (parent's path, client id) until the child logs.
_inherited: tuple[str, str] | None = None


def worker_log_path(path: str, pid: int) -> str:
    """The log file of forked process ``pid`` for the parent log ``path``."""
    directory, name = os.path.split(path)
    stem, dot, rest = name.partition(".")
    return os.path.join(directory, f"{stem}.worker-{pid}{dot}{rest}")


def worker_log_paths(path: str | os.PathLike[str]) -> list[str]:
    """The log files forked workers of the process logging to ``path`` wrote, sorted."""
    directory, name = os.path.split(os.fspath(path))
    stem, dot, rest = name.partition(".")
    return sorted(
        glob.glob(
            os.path.join(
                glob.escape(directory) or ".",
                f"{glob.escape(stem)}.worker-*{dot}{glob.escape(rest)}",
            )
        )
    )


def read_op_log(path: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """The rows of an op-log (zstd or plain text) as ``{column: value}``, header lines skipped."""
    with open(path, "rb") as raw:
        head = raw.read(4)
        raw.seek(0)
        source: Any = raw
        if head == b"\x28\xb5\x2f\xfd":
            source = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        with io.TextIOWrapper(source, encoding="utf-8", newline="\n") as text:
            for line in text:
                fields = line.rstrip("\n").split("\t")
                if fields and fields[0] != "idx" and len(fields) == len(COLUMNS):
                    yield dict(zip(COLUMNS, fields, strict=True))


def _start_child_log() -> _OpLog | None:
    """In a forked child: open its own log file on its first operation."""
    global _log
    with _log_lock:
        if _log is None and _inherited is not None:
            path, client_id = _inherited
            _log = _OpLog(worker_log_path(path, os.getpid()), client_id)
            # multiprocessing children leave through os._exit, which skips atexit
            multiprocessing.util.Finalize(None, finalize_op_log, exitpriority=100)
        return _log


def init_op_log(path: str | os.PathLike[str], client_id: str = "") -> None:
    """Start logging every storage operation to ``path`` (a zstd-compressed TSV).

    A log already open is finalized first. ``client_id`` fills the ``client_id`` column.
    """
    global _log
    with _log_lock:
        if _log is not None:
            _finalize_locked()
        _log = _OpLog(os.fspath(path), client_id)


def is_op_log_active() -> bool:
    """Whether operations of this process are being logged."""
    log = _log
    return (log is not None and log.pid == os.getpid()) or _inherited is not None


def finalize_op_log() -> None:
    """Flush and close the op-log (a no-op when none is open)."""
    with _log_lock:
        _finalize_locked()


def _finalize_locked() -> None:
    global _log, _last_stats, _inherited
    _inherited = None
    log = _log
    if log is None:
        return
    _log = None
    if log.pid != os.getpid():  # a forked child: the parent owns the file
        return
    log.finish()
    _last_stats = _stats_of(log, active=False)


def _stats_of(log: _OpLog, active: bool) -> dict[str, Any]:
    with log.lock:
        return {
            "active": active,
            "path": log.path,
            "operations": sum(log.counts.values()),
            "bytes": log.bytes,
            "errors": log.errors,
            "by_op": dict(log.counts),
        }


def op_log_stats() -> dict[str, Any]:
    """Counts of the open log (or of the last one closed): operations, bytes, errors, by op."""
    log = _log
    if log is not None and log.pid == os.getpid():
        return _stats_of(log, active=True)
    return dict(_last_stats) if _last_stats else {"active": False, "operations": 0}


def record(
    op: str,
    name: str,
    *,
    endpoint: str,
    nbytes: int = 0,
    start_ns: int,
    end_ns: int,
    first_byte_ns: int = 0,
    error: str = "",
    n_objects: int = 1,
) -> None:
    """Append one operation (no-op when no log is open in this process)."""
    log = _log
    if log is None or log.pid != os.getpid():
        log = _start_child_log() if _inherited is not None else None
        if log is None:
            return
    log.put(
        (
            threading.get_native_id(),
            op,
            n_objects,
            nbytes,
            endpoint,
            name,
            error,
            start_ns,
            first_byte_ns,
            end_ns,
        )
    )


def _after_fork_in_child() -> None:
    global _log_lock, _log, _inherited
    _log_lock = threading.Lock()
    parent = _log
    if parent is not None:
        _inherited = (parent.path, parent.client_id)
        _log = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(finalize_op_log)
