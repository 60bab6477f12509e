"""One contender's process: set up once, then run timed rounds on request.

The harness starts this script with the Python of the contender's venv (ours: ``.venv``; the
peers: ``benchmarks/.venv-peers``, started from a neutral directory so our ``s3dlio`` package
never shadows the original's). It is stdlib-only and imports nothing from the benchmarks
package, so the peers' venv can run it.

Protocol, one JSON document per line:

* argv: ``worker.py FILE FUNCTION PARAMS_JSON`` — ``FILE`` is a Python file, ``FUNCTION`` a
  factory in it called as ``FUNCTION(params)``; it prepares everything untimed (clients, data
  lists, warm connections) and returns a zero-argument callable that performs one round and
  returns a dict with at least ``bytes`` and ``objects`` (anything else is kept as extra).
* stdout: ``{"ready": true}`` once set up (or ``{"error": "..."}`` and exit 1).
* stdin ``run`` -> stdout ``{"seconds": wall, "cpu": seconds, "bytes": n, "objects": k, ...}``;
  ``cpu`` is this process's user+system time over the round, all threads, plus its child
  processes' (DataLoader workers, persistent or not); ``rss_before`` and ``peak_rss`` are this
  process's resident bytes when the round starts and at its highest during the round (the
  kernel's high-water mark, reset before each round; absent where ``/proc`` cannot do that).
  stdin closed or ``quit`` -> exit 0.

A round that raises prints ``{"error": "..."}``; the harness reports that contender as failed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
import time
import traceback

_TICK = os.sysconf("SC_CLK_TCK")


def _live_children_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s descendants that are still running (persistent
    DataLoader workers); reaped ones are in ``RUSAGE_CHILDREN``."""
    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / _TICK
            except (OSError, IndexError, ValueError):
                continue
            total += _live_children_cpu(kid)
    return total


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        own.ru_utime
        + own.ru_stime
        + kids.ru_utime
        + kids.ru_stime
        + _live_children_cpu(os.getpid())
    )


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` size field (``VmRSS``, ``VmHWM``) in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _load(path: str, function: str):
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = "_contender_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, function)


def _say(doc: dict) -> None:
    out.write(json.dumps(doc) + "\n")
    out.flush()


def main() -> int:
    path, function, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        run = _load(path, function)(params)
    except BaseException:  # noqa: BLE001 - reported to the harness
        _say({"error": traceback.format_exc(limit=8)})
        return 1
    _say({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        command = line.strip()
        if command in ("", "quit"):
            break
        peak_known = _reset_peak_rss()
        rss_before = _status("VmRSS")
        wall, cpu = time.perf_counter(), _cpu()
        try:
            result = dict(run())
        except BaseException:  # noqa: BLE001 - reported to the harness
            _say({"error": traceback.format_exc(limit=8)})
            continue
        result["seconds"] = time.perf_counter() - wall
        result["cpu"] = _cpu() - cpu
        peak = _status("VmHWM") if peak_known else None
        if peak is not None and rss_before is not None:
            result["rss_before"] = rss_before
            result["peak_rss"] = peak
        _say(result)
    return 0


if __name__ == "__main__":
    # Contenders may print (progress bars, warnings): keep the protocol on a private copy of
    # stdout and send everything else to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.exit(main())
