"""The one process-wide I/O thread pool, and the few ways the library runs work on it.

The pool is created lazily and forgotten in a forked child (DataLoader workers), which builds its
own on first use: a child never inherits threads, sockets or locks from its parent.
:class:`PerProcess` gives backends the same guarantee for their clients.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from ..errors import InvalidArgumentError
from .config import settings

__all__ = [
    "Outcome",
    "PerProcess",
    "bounded_map",
    "get_executor",
    "run_claimed",
    "shutdown_executors",
]

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_executors: dict[str, ThreadPoolExecutor] = {}
_executors_pid = 0


def get_executor(kind: str = "io") -> ThreadPoolExecutor:
    """A shared pool (``S3DLIO_RT_THREADS`` workers), created on first use in each process.

    ``"io"`` runs requests and per-object tasks; ``"parts"`` runs upload parts only. Part
    uploads never wait on other tasks, so a writer used inside an ``"io"`` task cannot
    deadlock the pool.
    """
    pool = _executors.get(kind)
    if pool is not None and _executors_pid == os.getpid():
        return pool
    with _lock:
        _reset_if_forked()
        pool = _executors.get(kind)
        if pool is None:
            pool = ThreadPoolExecutor(
                max_workers=settings().threads, thread_name_prefix=f"s3dlio-{kind}"
            )
            _executors[kind] = pool
    return pool


def _reset_if_forked() -> None:
    global _executors_pid
    if _executors_pid != os.getpid():
        _executors.clear()
        _executors_pid = os.getpid()


def shutdown_executors(wait: bool = True, *, cancel_futures: bool = True) -> None:
    """Stop this process's shared pools (they are rebuilt on next use).

    Args:
        wait: Wait until the work already started has finished.
        cancel_futures: Drop queued work that has not started (``False``: it runs first).
    """
    with _lock:
        _reset_if_forked()
        pools = list(_executors.values())
        _executors.clear()
    for pool in pools:
        pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _forget_after_fork() -> None:
    global _lock, _executors_pid
    _executors.clear()
    _executors_pid = 0
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _wake_workers_at_exit() -> None:
    """At interpreter exit, before Python joins the worker threads: wake every idle worker.

    ``concurrent.futures`` wakes at exit only the workers it has registered, and it registers a
    worker after the thread has started. Ctrl-C landing inside ``submit`` while it starts one
    (the first upload part of ``s3-cli cp - URI``, say) leaves a worker it never registered,
    waiting for work forever, and the process could never exit. Shutting the pools down without
    waiting puts the wake-up behind any queued work, so queued work still runs first, as at any
    exit.
    """
    shutdown_executors(wait=False, cancel_futures=False)


# threading's own exit hooks run before non-daemon threads are joined (``atexit`` runs after,
# too late); concurrent.futures registers its wake-up the same way. Imported while the
# interpreter is already shutting down, there is no exit left to guard.
try:
    getattr(threading, "_register_atexit", lambda hook: None)(_wake_workers_at_exit)
except RuntimeError:  # "can't register atexit after shutdown"
    pass


class PerProcess(Generic[T]):
    """A lazily built value that is rebuilt in every process (after ``fork`` too).

    Backends keep their SDK clients and connection pools in one of these.

    Args:
        factory: Builds the value; called at most once per process (thread-safe).
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._pid = 0
        self._lock = threading.Lock()
        # A weak reference: a client's values must not live as long as the interpreter.
        after_fork = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (m := after_fork()) and m())

    def _after_fork(self) -> None:
        self._value = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value for this process."""
        value = self._value
        if value is not None and self._pid == os.getpid():
            return value
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value = self._factory()
                self._pid = os.getpid()
            return self._value

    def peek(self) -> T | None:
        """The value of this process if it was built, else ``None`` (nothing is built)."""
        return self._value if self._pid == os.getpid() else None

    def reset(self) -> None:
        """Drop the value; the next :meth:`get` builds a new one."""
        with self._lock:
            self._value = None


class Outcome(Generic[R]):
    """The finished result of one :func:`bounded_map` item (``Future``-like, always done)."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: R | None, error: BaseException | None) -> None:
        self._value = value
        self._error = error

    def result(self) -> R:
        """The value, or raise the item's exception."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The item's exception, or ``None``."""
        return self._error

    def done(self) -> bool:
        """Always True."""
        return True


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    max_in_flight: int,
    *,
    ordered: bool = True,
) -> Iterator[tuple[T, Outcome[R]]]:
    """Run ``fn`` over ``items`` with up to ``max_in_flight`` calls at once.

    Items are pulled from ``items`` lazily and at most ``max_in_flight`` are claimed but not yet
    yielded, so a streamed listing of a million keys stays in bounded memory. Yields
    ``(item, outcome)`` pairs in input order (``ordered=True``) or as they finish; an outcome has
    ``result()`` and ``exception()`` like a finished ``Future``.

    Long-lived workers on the shared pool pull items themselves (no Future or wake-up per item),
    and the consuming thread runs items too when no worker has started yet, so a nested call
    from inside a pool task always makes progress. Closing the generator early stops claiming;
    calls already running finish in the background.
    """
    if max_in_flight < 1:
        raise InvalidArgumentError(f"max_in_flight must be >= 1, got {max_in_flight}")
    run = _MapRun(fn, iter(items), max_in_flight)
    helpers = min(max_in_flight, get_executor()._max_workers) - 1
    pool = get_executor()
    for _ in range(helpers):
        pool.submit(run.work_loop)
    try:
        yield from run.results(ordered)
    finally:
        run.stop()


class _MapRun(Generic[T, R]):
    """Shared state of one :func:`bounded_map` call."""

    def __init__(self, fn: Callable[[T], R], source: Iterator[T], window: int) -> None:
        self.fn = fn
        self.source = source
        self.window = window
        self.cond = threading.Condition()
        self.source_lock = threading.Lock()
        self.done: dict[int, tuple[T, Outcome[R]]] = {}
        self.claimed = 0  # claimed and not yet yielded
        self.next_index = 0
        self.running = 0
        self.started = 0
        self.exhausted = False
        self.stopped = False
        self.source_error: BaseException | None = None

    def _claim(self, wait: bool = True) -> tuple[int, T] | None:
        """Reserve a slot and take the next item.

        Returns ``None`` when finished or stopped, or (``wait=False``, for the consumer, which
        must never block on a slot only it can free) when the window is full.
        """
        with self.cond:
            while not (self.stopped or self.exhausted) and self.claimed >= self.window:
                if not wait:
                    return None
                self.cond.wait()
            if self.stopped or self.exhausted:
                return None
            self.claimed += 1
            self.running += 1
        with self.source_lock:
            try:
                if not self.exhausted:
                    item = next(self.source)
                    index = self.next_index
                    self.next_index += 1
                    return index, item
            except StopIteration:
                pass
            except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
                self.source_error = exc
            self.exhausted = True
        with self.cond:
            self.claimed -= 1
            self.running -= 1
            self.cond.notify_all()
        return None

    def _run_one(self, index: int, item: T) -> None:
        try:
            outcome: Outcome[R] = Outcome(self.fn(item), None)
        except BaseException as exc:  # noqa: BLE001 - delivered through the outcome
            outcome = Outcome(None, exc)
        with self.cond:
            self.done[index] = (item, outcome)
            self.running -= 1
            self.cond.notify_all()

    def work_loop(self) -> None:
        """A pool worker: claim and run items until none are left."""
        with self.cond:
            self.started += 1
        while (claim := self._claim()) is not None:
            self._run_one(*claim)

    def results(self, ordered: bool) -> Iterator[tuple[T, Outcome[R]]]:
        """Yield finished items; run one itself when no worker has started."""
        expected = 0
        pair: tuple[T, Outcome[R]] | None
        while True:
            with self.cond:
                while True:
                    if ordered and expected in self.done:
                        pair = self.done.pop(expected)
                        break
                    if not ordered and self.done:
                        pair = self.done.pop(min(self.done))
                        break
                    if self.exhausted and self.running == 0 and not self.done:
                        if self.source_error is not None:
                            raise self.source_error
                        return
                    if self.started == 0 and not self.exhausted and self.claimed < self.window:
                        pair = None
                        break
                    self.cond.wait()
                if pair is not None:
                    self.claimed -= 1
                    expected += 1
                    self.cond.notify_all()
            if pair is None:  # no worker is running: make progress here
                claim = self._claim(wait=False)
                if claim is not None:
                    self._run_one(*claim)
                continue
            yield pair

    def stop(self) -> None:
        """Stop claiming new items (running calls finish in the background)."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


def run_claimed(count: int, work: Callable[[int], None], concurrency: int) -> None:
    """Run ``work(i)`` for ``i`` in ``range(count)`` with up to ``concurrency`` threads.

    The calling thread takes part: it claims indices like the pool helpers do, and then waits
    only for indices that a running thread has claimed. So nested use (a range-split GET inside
    a ``get_many`` task) can never deadlock on an exhausted pool. The first exception is re-raised
    after the others stop claiming.
    """
    if count <= 0:
        return
    state = {"next": 0, "running": 0}
    cond = threading.Condition()
    errors: list[BaseException] = []

    def claim_loop() -> None:
        while True:
            with cond:
                if errors or state["next"] >= count:
                    return
                index = state["next"]
                state["next"] += 1
                state["running"] += 1
            try:
                work(index)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                with cond:
                    errors.append(exc)
            finally:
                with cond:
                    state["running"] -= 1
                    cond.notify_all()

    helpers = min(concurrency, count) - 1
    if helpers > 0:
        pool = get_executor()
        for _ in range(helpers):
            pool.submit(claim_loop)
    claim_loop()
    with cond:
        while state["running"] > 0:
            cond.wait()
    if errors:
        raise errors[0]
