"""Replay an operation log against another prefix, keeping its timing, and measure latency.

Reads our op-log or a MinIO warp benchmark file (the same 13 tab-separated columns: ``idx
thread op client_id n_objects bytes endpoint file error start first_byte end duration_ns``),
zstd-compressed or plain (logs joined with ``cat`` too). Each operation is re-issued through the public API against
``target`` at its original start time relative to the first one, divided by ``speed``:

=============================  =================================================================
logged op                      replayed as
=============================  =================================================================
``GET``, ``GET_RANGE``         ``get_range(uri, 0, bytes)`` (``get(uri)`` when ``bytes`` is 0)
``PUT``                        a PUT of ``bytes`` bytes of synthetic data
``HEAD``, ``STAT`` (warp)      ``stat(uri)``
``LIST``                       the first page of a recursive listing of the logged prefix
``DELETE``                     ``delete(uri, missing_ok=True)`` of the logged key
=============================  =================================================================

Other lines (multipart steps ``PUT_START``/``PUT_COMPLETE``, bucket operations) are counted as
skipped: the ``PUT`` line of a multipart upload already stands for the whole object. Keys are
mapped by removing their common directory (or ``source_prefix``) and appending the rest to
``target``. Operations on the same key keep their order (a GET never overtakes the PUT before
it); others overlap as they did, up to ``jobs`` at a time.
"""

from __future__ import annotations

import calendar
import io
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import zstandard

import s3dlio

from ..errors import InvalidArgumentError

__all__ = [
    "LoggedOp",
    "ReplayReport",
    "parse_timestamp",
    "plan_targets",
    "read_op_log",
    "replay",
    "warm_up",
]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_KINDS = {
    "GET": "GET",
    "GET_RANGE": "GET",
    "PUT": "PUT",
    "HEAD": "HEAD",
    "STAT": "HEAD",
    "LIST": "LIST",
    "DELETE": "DELETE",
}
_TS_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$"
)
_PUT_BLOCK = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoggedOp:
    """One operation of a log that replay re-issues.

    Attributes:
        op: The replayed kind: ``GET``, ``PUT``, ``HEAD``, ``LIST`` or ``DELETE``.
        name: The logged key or path (``file`` column).
        nbytes: The logged byte count.
        start_ns: Logged start, nanoseconds since the epoch.
    """

    op: str
    name: str
    nbytes: int
    start_ns: int


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch from RFC 3339 text (``Z`` or ``+hh:mm``, 0-9 decimals).

    Raises:
        InvalidArgumentError: (a ``ValueError``) the text is not such a timestamp.
    """
    match = _TS_RE.match(text.strip())
    if match is None:
        raise InvalidArgumentError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    frac, zone = match.group(7) or "", match.group(8) or "Z"
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0") or 0)


def _open_text(path: str) -> io.TextIOWrapper:
    raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - wrapped and closed by the caller
    head = raw.read(4)
    raw.seek(0)
    if head == _ZSTD_MAGIC:
        raw = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")


def read_op_log(path: str | os.PathLike[str]) -> tuple[list[LoggedOp], dict[str, int]]:
    """The replayable operations of a log, in start order, and counts of skipped lines by op.

    Raises:
        InvalidArgumentError: the file has no ``op``/``file``/``bytes``/``start`` header columns,
            or a line cannot be parsed (its line number is given).
    """
    ops: list[LoggedOp] = []
    skipped: dict[str, int] = defaultdict(int)
    with _open_text(os.fspath(path)) as text:
        header = text.readline().rstrip("\r\n").split("\t")
        try:
            col = {name: header.index(name) for name in ("op", "file", "bytes", "start")}
        except ValueError:
            raise InvalidArgumentError(
                "not an op-log: the header must name the columns op, file, bytes and start",
                uri=os.fspath(path),
            ) from None
        for lineno, line in enumerate(text, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if fields == header:  # logs concatenated with `cat` repeat the header
                continue
            if len(fields) < len(header):
                if line.strip():
                    raise InvalidArgumentError(
                        f"line {lineno}: {len(fields)} columns, expected {len(header)}",
                        uri=os.fspath(path),
                    )
                continue
            raw_op = fields[col["op"]].upper()
            kind = _KINDS.get(raw_op)
            if kind is None:
                skipped[raw_op] += 1
                continue
            try:
                ops.append(
                    LoggedOp(
                        kind,
                        fields[col["file"]],
                        int(fields[col["bytes"]] or 0),
                        parse_timestamp(fields[col["start"]]),
                    )
                )
            except ValueError as exc:
                raise InvalidArgumentError(f"line {lineno}: {exc}", uri=os.fspath(path)) from None
    ops.sort(key=lambda o: o.start_ns)
    return ops, dict(skipped)


def plan_targets(
    ops: list[LoggedOp], target: str, source_prefix: str | None = None
) -> Callable[[str], str]:
    """A function mapping a logged name to its URI below ``target``.

    ``source_prefix`` (default: the logged names' common directory) is removed from each
    name; the rest is appended to ``target``.
    """
    base = target if target.endswith("/") else target + "/"
    if source_prefix is None:
        common = os.path.commonprefix([o.name for o in ops]) if ops else ""
        source_prefix = common[: common.rfind("/") + 1]

    def mapped(name: str) -> str:
        rest = name[len(source_prefix) :] if name.startswith(source_prefix) else name
        return base + rest.lstrip("/")

    return mapped


@dataclass
class _Stats:
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    nbytes: int = 0


@dataclass
class ReplayReport:
    """What a replay did.

    Attributes:
        by_op: Per replayed kind: latencies (ns), error count and bytes.
        skipped: Log lines not replayed, by logged op.
        late_ns: For every operation, how long after its scheduled time it started.
        seconds: Wall time of the replay.
        first_errors: Up to ten ``(uri, error)`` pairs, for the report.
    """

    by_op: dict[str, _Stats] = field(default_factory=lambda: defaultdict(_Stats))
    skipped: dict[str, int] = field(default_factory=dict)
    late_ns: list[int] = field(default_factory=list)
    seconds: float = 0.0
    first_errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def operations(self) -> int:
        """Operations replayed (failed ones included)."""
        return sum(len(s.latencies_ns) for s in self.by_op.values())

    @property
    def errors(self) -> int:
        """Operations that failed."""
        return sum(s.errors for s in self.by_op.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: per-op count, errors, bytes and p50/p90/p99/max/mean in ms."""
        ops = {
            op: {
                "count": len(s.latencies_ns),
                "errors": s.errors,
                "bytes": s.nbytes,
                **_percentiles_ms(s.latencies_ns),
            }
            for op, s in sorted(self.by_op.items())
        }
        return {
            "operations": self.operations,
            "errors": self.errors,
            "seconds": self.seconds,
            "ops": ops,
            "skipped": dict(self.skipped),
            "late_ms": _percentiles_ms(self.late_ns),
            "first_errors": [list(e) for e in self.first_errors],
        }

    def table(self) -> list[str]:
        """The report as aligned text lines."""
        head = f"{'op':8}{'count':>8}{'errors':>8}{'bytes':>14}"
        head += "".join(f"{h:>10}" for h in ("p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"))
        lines = [head]
        for op, row in self.as_dict()["ops"].items():
            cells = f"{op:8}{row['count']:>8}{row['errors']:>8}{row['bytes']:>14}"
            cells += "".join(f"{row[k]:>10.3f}" for k in ("p50", "p90", "p99", "max", "mean"))
            lines.append(cells)
        late = _percentiles_ms(self.late_ns)
        lines.append(
            f"{self.operations} operations, {self.errors} errors in {self.seconds:.2f} s; "
            f"start behind schedule: p50 {late['p50']:.3f} ms, max {late['max']:.3f} ms"
        )
        if self.skipped:
            shown = ", ".join(f"{op} {n}" for op, n in sorted(self.skipped.items()))
            lines.append(f"skipped log lines: {shown}")
        lines += [
            f"error: {err if uri in err else f'{uri}: {err}'}" for uri, err in self.first_errors
        ]
        return lines


def _percentiles_ms(values_ns: list[int]) -> dict[str, float]:
    if not values_ns:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ordered = sorted(values_ns)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] / 1e6

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": ordered[-1] / 1e6,
        "mean": sum(ordered) / len(ordered) / 1e6,
    }


class _Payload:
    """Synthetic bytes for replayed PUTs: one block, sliced or repeated."""

    def __init__(self) -> None:
        self._block = s3dlio.generate_data(_PUT_BLOCK, seed=0)

    def put(self, uri: str, nbytes: int) -> None:
        view = memoryview(self._block)
        if nbytes <= len(view):
            s3dlio.put_bytes(uri, view[:nbytes])
            return
        with s3dlio.open_writer(uri) as writer:
            left = nbytes
            while left:
                n = min(left, len(view))
                writer.write(view[:n])
                left -= n


def warm_up(target: str) -> None:
    """Build ``target``'s client and connection (one metadata request) before timing starts.

    Raises:
        S3DlioError: the target cannot be reached (other than "not found").
    """
    base = target if target.endswith("/") else target + "/"
    s3dlio.exists(base + ".s3dlio-replay-warm-up")


def _issue(op: LoggedOp, uri: str, payload: _Payload) -> int:
    """Re-issue one operation; returns the bytes it moved."""
    if op.op == "GET":
        data = s3dlio.get_range(uri, 0, op.nbytes) if op.nbytes else s3dlio.get(uri)
        return len(data)
    if op.op == "PUT":
        payload.put(uri, op.nbytes)
        return op.nbytes
    if op.op == "HEAD":
        s3dlio.stat(uri)
    elif op.op == "LIST":
        entries = s3dlio.list_iter(uri, recursive=True)
        next(entries, None)
        entries.close()  # type: ignore[attr-defined]
    elif op.op == "DELETE":
        s3dlio.delete(uri, missing_ok=True)
    return 0


def replay(
    ops: list[LoggedOp],
    target_of: Callable[[str], str],
    *,
    speed: float = 1.0,
    jobs: int = 64,
    on_done: Callable[[], None] | None = None,
) -> ReplayReport:
    """Re-issue ``ops`` (in start order) at their relative times divided by ``speed``.

    Args:
        ops: From :func:`read_op_log`.
        target_of: Maps a logged name to a URI (:func:`plan_targets`).
        speed: Time compression: 2 runs twice as fast; 0 issues everything at once (still
            keeping the order of operations on the same key).
        jobs: Operations in flight at most.
        on_done: Called after each operation (progress display).

    Returns:
        The :class:`ReplayReport`; failures are counted in it, not raised.
    """
    if speed < 0:
        raise InvalidArgumentError(f"speed must be >= 0, got {speed}")
    report = ReplayReport()
    lock = threading.Lock()
    payload = _Payload() if any(o.op == "PUT" for o in ops) else None
    t0 = ops[0].start_ns if ops else 0
    began = time.perf_counter_ns()

    def run(op: LoggedOp, uri: str, due_ns: int) -> None:
        started = time.perf_counter_ns()
        error = ""
        moved = 0
        try:
            moved = _issue(op, uri, payload)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - counted in the report
            error = str(exc) or type(exc).__name__
        elapsed = time.perf_counter_ns() - started
        with lock:
            stats = report.by_op[op.op]
            stats.latencies_ns.append(elapsed)
            stats.nbytes += moved
            report.late_ns.append(max(0, started - began - due_ns))
            if error:
                stats.errors += 1
                if len(report.first_errors) < 10:
                    report.first_errors.append((uri, error))
        if on_done is not None:
            on_done()

    last_on_key: dict[str, Future[None]] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="s3dlio-replay")
    try:
        for op in ops:
            due = 0 if speed == 0 else int((op.start_ns - t0) / speed)
            wait = due - (time.perf_counter_ns() - began)
            if wait > 0:
                time.sleep(wait / 1e9)
            uri = target_of(op.name)
            before = last_on_key.get(uri)
            if before is None or before.done():
                fut = pool.submit(run, op, uri, due)
            else:
                fut = _submit_after(pool, before, run, op, uri, due)
            last_on_key[uri] = fut
        for fut in list(last_on_key.values()):
            fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    report.seconds = (time.perf_counter_ns() - began) / 1e9
    return report


def _submit_after(
    pool: ThreadPoolExecutor, before: Future[None], fn: Callable[..., None], *args: Any
) -> Future[None]:
    """Submit ``fn(*args)`` once ``before`` is done; the returned future tracks it."""
    out: Future[None] = Future()

    def chain(_: Future[None]) -> None:
        try:
            inner = pool.submit(fn, *args)
        except RuntimeError as exc:  # the pool is shutting down (Ctrl-C)
            out.set_exception(exc)
            return
        inner.add_done_callback(lambda f: _settle(out, f))

    before.add_done_callback(chain)
    return out


def _settle(out: Future[None], done: Future[None]) -> None:
    exc = done.exception()
    if exc is not None:
        out.set_exception(exc)
    else:
        out.set_result(None)
