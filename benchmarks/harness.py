"""Interleaved rounds, medians and ratios: the machinery every suite shares.

A suite is a generator of :class:`Case` objects (``suite(ctx)``): it prepares the data and
servers of one case, yields it, and cleans up after the harness has measured it. A case names
its contenders; each runs in its own process so that its CPU time is its own:

* :func:`ours` and :func:`peer` contenders are factories in ``benchmarks/contenders/*.py``,
  run by ``benchmarks/worker.py`` under our venv or the peers' venv (``.venv-peers``, where
  ``import s3dlio`` is the original). The factory sets up untimed; each round is one call.
* :func:`tool` contenders are shell tools (``cat``, ``wrk``, ``curl``), started once per round;
  their CPU time comes from ``RUSAGE_CHILDREN``.

Rounds interleave the contenders (A B C, then B C A, ...) after one untimed warm-up round, so
drifts (page cache, thermal, other load) hit everyone alike. Each contender's figure is the
median over the rounds; a ratio is ours ÷ theirs of those medians.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
CONTENDERS = BENCH / "contenders"
WORKER = BENCH / "worker.py"
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
#: The Python of each reference venv ``setup.sh`` builds, by :attr:`Contender.venv`: the peers,
#: and mosaicml-streaming's own (it needs a torch/torchvision pair that loads together).
VENV_PYTHONS = {"peers": PEERS_PYTHON, "mosaic": BENCH / ".venv-mosaic" / "bin" / "python"}
RESULTS = BENCH / "results"

GB = 1e9
#: unit -> (which count of a round is divided by seconds, scale)
UNITS: dict[str, tuple[str, float]] = {
    "GB/s": ("bytes", GB),
    "MB/s": ("bytes", 1e6),
    "obj/s": ("objects", 1.0),
    "rec/s": ("objects", 1.0),
    "samples/s": ("objects", 1.0),
    "slices/s": ("objects", 1.0),
}


# -- describing a case -------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One way of doing a case's work.

    Attributes:
        name: Row label (``"ours file://"``, ``"cat"``, ``"original s3dlio get_many"``).
        role: ``"ours"``, ``"peer"`` (a library a user could pick instead) or ``"limit"``
            (what the machine does: ``cat``, ``wrk``, raw CRC32C).
        venv: ``"ours"``, ``"peers"`` or ``"mosaic"`` for worker contenders (see
            :data:`VENV_PYTHONS`); ``None`` for tools.
        file: The contender file in ``benchmarks/contenders/`` (worker contenders).
        function: The factory in that file.
        params: JSON-able keyword arguments for the factory.
        command: Argv of a tool, run once per round.
        parse: Turns a tool's stdout into a round dict (``bytes``, ``objects`` and, when the
            tool times itself, ``seconds``); by default the case's ``bytes``/``objects``.
        needs: What must import in the contender's venv: ``"module"`` or ``"module:attribute"``
            (else the row says "not yet: ... missing" for ours, "skipped" for a peer).
        env: Extra environment variables for the contender's process.
        group: Ratios are computed only between rows of the same group (rows without a
            group compare with every row): e.g. iterable vs iterable datasets.
    """

    name: str
    role: str
    venv: str | None = None
    file: str | None = None
    function: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    parse: Callable[[str], dict[str, Any]] | None = None
    needs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    group: str = ""


def ours(
    name: str,
    file: str,
    function: str,
    *,
    needs: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    group: str = "",
    **params: Any,
) -> Contender:
    """A contender run from our package, in our venv."""
    return Contender(
        name, "ours", "ours", file, function, params, needs=needs, env=env or {}, group=group
    )


def peer(
    name: str,
    file: str,
    function: str,
    *,
    needs: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    role: str = "peer",
    venv: str = "peers",
    group: str = "",
    **params: Any,
) -> Contender:
    """A reference contender, run in the peers' venv (the original s3dlio, boto3,
    s3torchconnector...) or, with ``venv="ours"``, in ours (plain h5py/NumPy/torch code that
    does not import s3dlio)."""
    return Contender(
        name, role, venv, file, function, params, needs=needs, env=env or {}, group=group
    )


def limit(name: str, file: str, function: str, **params: Any) -> Contender:
    """A machine limit measured by Python code in our venv (raw CRC32C, memcpy...)."""
    return Contender(name, "limit", "ours", file, function, params)


def tool(
    name: str,
    command: list[str],
    *,
    parse: Callable[[str], dict[str, Any]] | None = None,
    role: str = "limit",
    env: dict[str, str] | None = None,
) -> Contender:
    """A shell tool run once per round (``cat``, ``wrk``...)."""
    return Contender(name, role, None, command=tuple(command), parse=parse, env=env or {})


@dataclass(frozen=True)
class Target:
    """A goal: ``ours`` ÷ ``reference`` must reach ``at_least`` (SPEC.md section 8)."""

    ours: str
    reference: str
    at_least: float


@dataclass(frozen=True)
class Case:
    """One workload measured across contenders.

    Attributes:
        name: ``"file:// 64 x 32 MiB, warm cache"``.
        unit: How rates are shown (a key of :data:`UNITS`).
        contenders: The rows.
        bytes: Bytes one round moves (used for tools that do not report it).
        objects: Objects (records, samples) one round handles.
        targets: Ratios to check.
        note: One line under the table (what bounds it, how it was set up).
        round_timeout: Seconds a contender may take for one round before it is killed and
            reported as failed (a hang must not stall the run).
        isolated: Run each round of each worker contender in a fresh process, alone: its
            set-up, the round, then exit, before the next contender starts (cases whose
            contenders each hold gigabytes; set-up stays untimed).
        after_round: Called with the contender after each of its rounds (warm-up included),
            untimed: e.g. delete what the round stored, so a server that keeps everything in
            memory does not grow round after round.
        epilogue: Called once the case is measured; its text is added to the note (e.g. a
            server's memory after the rounds).
    """

    name: str
    unit: str
    contenders: list[Contender]
    bytes: int = 0
    objects: int = 0
    targets: list[Target] = field(default_factory=list)
    note: str = ""
    round_timeout: float = 180.0
    isolated: bool = False
    after_round: Callable[[Contender], None] | None = None
    epilogue: Callable[[], str] | None = None


@dataclass
class Context:
    """What a suite gets: options, a scratch directory and an exit stack for servers."""

    quick: bool
    rounds: int
    workdir: Path
    stack: ExitStack

    def scale(self, full: int, quick: int) -> int:
        """``full`` normally, ``quick`` under ``--quick``."""
        return quick if self.quick else full


# -- running -----------------------------------------------------------------------------------


class Worker:
    """A contender process speaking the ``worker.py`` protocol."""

    def __init__(self, contender: Contender, case: Case) -> None:
        venv = contender.venv
        python = sys.executable if venv == "ours" else str(VENV_PYTHONS[venv or "peers"])
        params = {"case_bytes": case.bytes, "case_objects": case.objects, **contender.params}
        env = {**os.environ, **contender.env}
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [
                python,
                "-u",
                str(WORKER),
                str(CONTENDERS / contender.file),
                contender.function,
                json.dumps(params),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Wait for the set-up to finish (workers start in parallel, then this is called)."""
        hello = self._read()
        if "error" in hello:
            self.close()
            raise ContenderError("setup failed: " + _last_line(hello["error"]), hello["error"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise ContenderError(f"process exited ({code}) without answering")
        return json.loads(line)

    def round(self, timeout: float) -> dict[str, Any]:
        """One timed round; a contender that takes longer than ``timeout`` s is killed."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise ContenderError(f"no answer within {timeout:.0f} s (killed)")
        answer = self._read()
        if "error" in answer:
            raise ContenderError(_last_line(answer["error"]), answer["error"])
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class ContenderError(RuntimeError):
    """A contender failed; ``detail`` holds its traceback."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _tool_round(contender: Contender, case: Case) -> dict[str, Any]:
    assert contender.command is not None
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run(
        list(contender.command),
        stdout=subprocess.PIPE if contender.parse else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **contender.env},
        check=False,
    )
    seconds, used = time.perf_counter() - wall, _children_cpu() - cpu
    if done.returncode != 0:
        raise ContenderError(f"exit {done.returncode}: {_last_line(done.stderr or '')}")
    result: dict[str, Any] = {"bytes": case.bytes, "objects": case.objects, "seconds": seconds}
    if contender.parse is not None:
        result.update(contender.parse(done.stdout))
    result["cpu"] = used
    return result


_peer_modules: dict[tuple[Path, str], bool] = {}


def missing_modules(contender: Contender) -> list[str]:
    """The contender's ``needs`` that do not import in its venv."""
    if contender.venv == "ours":
        return [m for m in contender.needs if not _importable(m)]
    python = VENV_PYTHONS.get(contender.venv or "")
    if python is not None:
        if not python.exists():
            return [f"benchmarks/{python.parent.parent.name} (run benchmarks/setup.sh)"]
        unknown = [m for m in contender.needs if (python, m) not in _peer_modules]
        if unknown:
            probe = (
                "import importlib, sys\n"
                "for m in sys.argv[1:]:\n"
                "    mod, _, attr = m.partition(':')\n"
                "    try: ok = hasattr(importlib.import_module(mod), attr) if attr else bool(importlib.import_module(mod))\n"
                "    except Exception: ok = False\n"
                "    print(m, int(ok))\n"
            )
            out = subprocess.run(
                [str(python), "-c", probe, *unknown],
                capture_output=True,
                text=True,
                cwd=tempfile.gettempdir(),
                check=False,
            ).stdout
            for line in out.split("\n"):
                if line.strip():
                    name, ok = line.rsplit(" ", 1)
                    _peer_modules[python, name] = ok == "1"
        return [m for m in contender.needs if not _peer_modules.get((python, m), False)]
    if contender.command and shutil.which(contender.command[0]) is None:
        return [contender.command[0]]
    return []


def _importable(need: str) -> bool:
    module, _, attr = need.partition(":")
    try:
        imported = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a module mid-construction may fail any way
        return False
    return not attr or hasattr(imported, attr)


@dataclass
class Row:
    """One contender's outcome in a case."""

    contender: Contender
    samples: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"  # "ok", "not yet: ...", "skipped: ...", "failed: ..."
    detail: str = ""

    def rate(self, unit: str) -> float | None:
        """Median rate in ``unit`` over the rounds."""
        if not self.samples:
            return None
        what, scale = UNITS[unit]
        return statistics.median(s[what] / s["seconds"] / scale for s in self.samples)

    def rate_per_cpu(self, unit: str) -> float | None:
        """Median work per CPU-second of the contender's own process, in ``unit``.

        Unlike the wall-clock rate this barely moves when other processes load the machine.
        """
        what, scale = UNITS[unit]
        values = [s[what] / s["cpu"] / scale for s in self.samples if s.get("cpu", 0) > 0]
        return statistics.median(values) if values else None

    def median(self, key: str) -> float | None:
        values = [s[key] for s in self.samples if key in s]
        return statistics.median(values) if values else None


def _isolated_round(contender: Contender, case: Case) -> dict[str, Any]:
    """Start a worker, set it up, run one round, and let it exit (``Case.isolated``)."""
    worker = Worker(contender, case)
    try:
        worker.wait_ready()
        return worker.round(case.round_timeout)
    finally:
        worker.close()


def run_case(case: Case, rounds: int, log: Callable[[str], None]) -> list[Row]:
    """Measure every contender of ``case``: one warm-up round, then ``rounds`` interleaved."""
    rows = [Row(c) for c in case.contenders]
    runners: dict[int, Callable[[], dict[str, Any]]] = {}
    workers: list[Worker] = []
    starting: dict[int, Worker] = {}
    try:
        for i, row in enumerate(rows):
            c = row.contender
            missing = missing_modules(c)
            if missing:
                word = "not yet" if c.role == "ours" else "skipped"
                row.status = f"{word}: {', '.join(missing)} missing"
                log(f"    {c.name}: {row.status}")
                continue
            if c.command is not None:
                runners[i] = lambda c=c: _tool_round(c, case)
                continue
            if case.isolated:
                runners[i] = lambda c=c: _isolated_round(c, case)
                continue
            starting[i] = Worker(c, case)
            workers.append(starting[i])
        for i, worker in starting.items():
            try:
                worker.wait_ready()
            except ContenderError as exc:
                rows[i].status, rows[i].detail = f"failed: {exc}", exc.detail
                log(f"    {rows[i].contender.name}: {rows[i].status}")
                continue
            runners[i] = lambda w=worker: w.round(case.round_timeout)
        order = sorted(runners)
        for r in range(-1, rounds):  # round -1 is the untimed warm-up
            shift = max(r, 0) % max(len(order), 1)
            for i in order[shift:] + order[:shift]:
                if rows[i].status != "ok":
                    continue
                try:
                    sample = runners[i]()
                except ContenderError as exc:
                    rows[i].status, rows[i].detail = f"failed: {exc}", exc.detail
                    log(f"    {rows[i].contender.name}: {rows[i].status}")
                    continue
                finally:
                    if case.after_round is not None:
                        case.after_round(rows[i].contender)
                if r >= 0:
                    rows[i].samples.append(sample)
            if r >= 0:
                log(f"    round {r + 1}/{rounds} done")
    finally:
        for worker in workers:
            worker.close()
    return rows


# -- reporting ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def case_summary(case: Case, rows: list[Row]) -> dict[str, Any]:
    """The JSON document of one measured case."""
    by_name = {row.contender.name: row for row in rows}
    ratios = []
    for a in rows:
        if a.contender.role != "ours" or a.rate(case.unit) is None:
            continue
        for b in rows:
            if b.contender.role == "ours" or not b.rate(case.unit):
                continue
            if a.contender.group and b.contender.group and a.contender.group != b.contender.group:
                continue
            ratios.append(
                {
                    "ours": a.contender.name,
                    "reference": b.contender.name,
                    "ratio": a.rate(case.unit) / b.rate(case.unit),
                }
            )
    targets = []
    for t in case.targets:
        a, b = by_name.get(t.ours), by_name.get(t.reference)
        ra = a.rate(case.unit) if a else None
        rb = b.rate(case.unit) if b else None
        ratio = ra / rb if ra is not None and rb else None
        targets.append(
            {
                "ours": t.ours,
                "reference": t.reference,
                "at_least": t.at_least,
                "ratio": ratio,
                "met": None if ratio is None else ratio >= t.at_least,
            }
        )
    return {
        "case": case.name,
        "unit": case.unit,
        "note": " ".join(filter(None, [case.note, case.epilogue() if case.epilogue else ""])),
        "bytes_per_round": case.bytes,
        "objects_per_round": case.objects,
        "contenders": [
            {
                "name": row.contender.name,
                "role": row.contender.role,
                "status": row.status,
                "median_rate": row.rate(case.unit),
                "median_rate_per_cpu_second": row.rate_per_cpu(case.unit),
                "median_seconds": row.median("seconds"),
                "median_cpu_seconds": row.median("cpu"),
                "median_peak_rss": row.median("peak_rss"),
                "median_rss_before": row.median("rss_before"),
                "rounds": row.samples,
                **({"detail": row.detail} if row.detail else {}),
            }
            for row in rows
        ],
        "ratios": ratios,
        "targets": targets,
    }


def case_markdown(summary: dict[str, Any]) -> str:
    """A Markdown table for one case."""
    unit = summary["unit"]
    lines = [
        f"### {summary['case']}",
        "",
        f"| contender | role | {unit} (median) | range | wall s | CPU s | {unit} per CPU-s "
        "| status |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    what, scale = UNITS[unit]
    rss = any(c.get("median_peak_rss") for c in summary["contenders"])
    if rss:  # peak RSS of the contender's process during a round, and RSS at its start
        lines[2] = lines[2].replace("| status |", "| peak RSS MiB | RSS at start MiB | status |")
        lines[3] = "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for c in summary["contenders"]:
        rates = [s[what] / s["seconds"] / scale for s in c["rounds"]]
        span = f"{_fmt(min(rates))}–{_fmt(max(rates))}" if rates else "-"
        memory = ""
        if rss:
            peak, start = c.get("median_peak_rss"), c.get("median_rss_before")
            memory = (
                f"{_fmt(peak / 2**20, 4) if peak else '-'} | "
                f"{_fmt(start / 2**20, 4) if start else '-'} | "
            )
        lines.append(
            f"| {c['name']} | {c['role']} | {_fmt(c['median_rate'])} | {span} | "
            f"{_fmt(c['median_seconds'])} | {_fmt(c['median_cpu_seconds'])} | "
            f"{_fmt(c['median_rate_per_cpu_second'])} | {memory}{c['status']} |"
        )
    if summary["ratios"]:
        lines += ["", "| ours | ÷ reference | ratio |", "|---|---|---:|"]
        lines += [
            f"| {r['ours']} | {r['reference']} | {r['ratio']:.2f} |" for r in summary["ratios"]
        ]
    if summary["targets"]:
        lines += ["", "| target | needs | measured | met |", "|---|---:|---:|---|"]
        for t in summary["targets"]:
            met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
            got = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
            lines.append(f"| {t['ours']} ÷ {t['reference']} | >= {t['at_least']} | {got} | {met} |")
    if summary["note"]:
        lines += ["", summary["note"]]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host_cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "commit": commit,
    }


def run_suite(
    name: str,
    suite: Callable[[Context], Iterator[Case]],
    *,
    rounds: int,
    quick: bool,
    command: str,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every case of one suite; write ``results/<name>.json`` and ``.md``; return the doc."""
    started = time.perf_counter()
    load_before = round(os.getloadavg()[0], 2)
    summaries: list[dict[str, Any]] = []
    base = os.environ.get("S3DLIO_BENCH_DIR") or None
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix=f"s3dlio-bench-{name}-", dir=base))
        stack.callback(shutil.rmtree, workdir, True)
        ctx = Context(quick=quick, rounds=rounds, workdir=workdir, stack=stack)
        cases = suite(ctx)
        try:
            mark = time.perf_counter()
            for case in cases:
                log(f"  {case.name} (data ready in {time.perf_counter() - mark:.1f} s)")
                mark = time.perf_counter()
                summaries.append(case_summary(case, run_case(case, rounds, log)))
                log(f"    measured in {time.perf_counter() - mark:.1f} s")
                mark = time.perf_counter()
        finally:
            cases.close()
    doc = {
        "suite": name,
        "command": command,
        "quick": quick,
        "rounds": rounds,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {**machine(), "load_average_1m_at_start": load_before},
        "cases": summaries,
    }
    out = RESULTS / "quick" if quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [
        f"## {name}",
        "",
        f"`{command}` — {doc['machine']['date']}, commit "
        f"{doc['machine']['commit']}, {rounds} interleaved rounds after one warm-up, "
        f"{doc['machine']['host_cpus']} CPUs, {doc['seconds']} s, load average "
        f"{load_before} at start / {doc['machine']['load_average_1m']} at end "
        "(other processes share the machine: compare wall rates within a table only; "
        "the per-CPU-second rate is steadier).",
        "",
    ]
    md += [case_markdown(s) for s in summaries]
    (out / f"{name}.md").write_text("\n".join(md))
    return doc
