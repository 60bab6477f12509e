"""bounded_map and run_claimed: order, bounds, errors, nesting, early close; exit after Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from s3dlio.io.executor import bounded_map, get_executor, run_claimed


def test_ordered_results_and_errors() -> None:
    def fn(i: int) -> int:
        if i == 7:
            raise ValueError("seven")
        return i * i

    out = list(bounded_map(fn, range(20), 4))
    assert [item for item, _ in out] == list(range(20))
    assert out[7][1].exception() is not None
    assert [o.result() for i, o in out if i != 7] == [i * i for i in range(20) if i != 7]


def test_unordered_yields_everything() -> None:
    out = bounded_map(lambda i: i, range(100), 8, ordered=False)
    assert sorted(o.result() for _, o in out) == list(range(100))


def test_window_bounds_claimed_items() -> None:
    pulled = []
    lock = threading.Lock()

    def source():  # type: ignore[no-untyped-def]
        for i in range(50):
            with lock:
                pulled.append(i)
            yield i

    gen = bounded_map(lambda i: i, source(), 3)
    first = next(gen)
    assert first[0] == 0
    time.sleep(0.05)  # let workers run ahead as far as they may
    assert len(pulled) <= 1 + 3 + 1
    gen.close()


def test_nested_in_a_saturated_pool_makes_progress() -> None:
    pool = get_executor()
    width = pool._max_workers

    def outer(i: int) -> int:
        return sum(o.result() for _, o in bounded_map(lambda j: j, range(10), 4))

    # more outer tasks than threads: every inner map must still finish
    futures = [
        pool.submit(lambda i=i: list(bounded_map(outer, range(3), 2))) for i in range(width * 2)
    ]
    for fut in futures:
        assert [o.result() for _, o in fut.result(timeout=30)] == [45, 45, 45]


def test_many_small_maps_do_not_deadlock() -> None:
    for _ in range(200):
        assert [o.result() for _, o in bounded_map(lambda j: j, range(5), 2)] == list(range(5))


def test_source_error_is_raised() -> None:
    def source():  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("listing broke")

    with pytest.raises(RuntimeError, match="listing broke"):
        list(bounded_map(lambda i: i, source(), 4))


def test_run_claimed_all_and_first_error() -> None:
    seen = []
    run_claimed(50, seen.append, 4)
    assert sorted(seen) == list(range(50))

    def bad(i: int) -> None:
        if i == 3:
            raise KeyError(i)

    with pytest.raises(KeyError):
        run_claimed(10, bad, 3)


def test_interrupt_while_a_worker_starts_does_not_block_exit(tmp_path: Path) -> None:
    """Ctrl-C landing inside ``submit`` as it starts a worker thread: the task still runs and
    the process exits (concurrent.futures alone would wait forever for the unregistered worker)."""
    done = tmp_path / "done"
    script = textwrap.dedent(f"""
        import pathlib, sys, threading
        from s3dlio.io.executor import get_executor

        start = threading.Thread.start

        def interrupted_start(self):
            start(self)
            raise KeyboardInterrupt  # as a SIGINT handled while start() waits for the thread

        threading.Thread.start = interrupted_start
        try:
            get_executor("parts").submit(pathlib.Path({str(done)!r}).touch)  # in the worker
        except KeyboardInterrupt:
            pass
        threading.Thread.start = start
        sys.exit(130)
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True)
    assert proc.returncode == 130, proc.stderr.decode()
    assert done.exists()


def test_first_import_during_interpreter_exit() -> None:
    """Importing s3dlio for the first time from an ``atexit`` handler works (the exit hook is
    not registered once the interpreter is shutting down)."""
    script = textwrap.dedent("""
        import atexit

        def late():
            import s3dlio.io.executor
            print("imported")

        atexit.register(late)
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["imported"]
