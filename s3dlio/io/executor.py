"""The one process-wide I/O thread pool, and the few ways the library runs work on it.

The pool is created lazily and forgotten in a forked child (DataLoader workers), which builds its
own on first use: a child never inherits threads, sockets or locks from its parent.
:class:`PerProcess` gives backends the same guarantee for their clients.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

from .config import settings

__all__ = ["PerProcess", "bounded_map", "get_executor", "run_claimed", "shutdown_executors"]

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


def shutdown_executors(wait: bool = True) -> None:
    """Stop the shared pools (they are rebuilt on next use)."""
    with _lock:
        pools = list(_executors.values())
        _executors.clear()
    for pool in pools:
        pool.shutdown(wait=wait, cancel_futures=True)


def _forget_after_fork() -> None:
    global _lock, _executors_pid
    _executors.clear()
    _executors_pid = 0
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


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
        os.register_at_fork(after_in_child=self._after_fork)

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

    def reset(self) -> None:
        """Drop the value; the next :meth:`get` builds a new one."""
        with self._lock:
            self._value = None


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    max_in_flight: int,
    *,
    ordered: bool = True,
) -> Iterator[tuple[T, Future[R]]]:
    """Run ``fn`` over ``items`` on the shared pool with at most ``max_in_flight`` pending.

    Items are pulled from ``items`` lazily, so a streamed listing of a million keys stays in
    bounded memory. Yields ``(item, finished_future)`` pairs in input order (``ordered=True``) or
    as they complete. Closing the generator early cancels what has not started.
    """
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
    pool = get_executor()
    pending: deque[tuple[T, Future[R]]] = deque()
    source = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < max_in_flight:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((item, pool.submit(fn, item)))
            if not pending:
                return
            if ordered:
                item, fut = pending.popleft()
                wait([fut])
                yield item, fut
            else:
                done, _ = wait([f for _, f in pending], return_when=FIRST_COMPLETED)
                for pair in [p for p in pending if p[1] in done]:
                    pending.remove(pair)
                    yield pair
    finally:
        for _, fut in pending:
            fut.cancel()


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
