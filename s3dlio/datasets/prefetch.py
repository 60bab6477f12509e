"""The loader's engine: a bounded, tunable, cancellable prefetch window over a dataset.

A :class:`Prefetcher` walks a list of dataset indices, keeping at most ``prefetch`` items
requested ahead of the consumer (in flight or ready) and at most ``tuner.inflight`` requests
running, on worker threads of its own (named ``s3dlio-loader-N_k``) that pull the next request
as soon as they finish one, so the window refills while the consumer is busy. Items are
delivered in index order or in completion order.

In ``range`` mode an object is read as ``part_size`` range requests into one preallocated
buffer: the first range tells the object's size and version, the rest carry ``if_match`` so a
replaced object fails instead of mixing versions, ``max_inflight_parts`` of one object at a
time. Parts of objects already started go before new objects.

Stopping (:meth:`Prefetcher.cancel`, :meth:`Prefetcher.close`, or the end of the data) starts
no new request, drops queued ones, abandons the ones running (their results are discarded and
their retries stop), and lets every thread exit as soon as its current request returns.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import CancelledError, InvalidURIError, OperationTimeoutError
from ..io.buffers import BytesView
from ..io.range_engine import fetch, plan_ranges
from ..io.store import backend_for
from ..io.uri import ObjectURI, parse_uri
from .dataset import NO_SPLIT, ObjectDataset
from .options import LoaderOptions
from .tuning import AdaptiveTuner

__all__ = ["BufferPool", "Prefetcher", "Slot"]

_ids = itertools.count(1)


class BufferPool:
    """Reuses the buffers of delivered items once nothing outside the pool refers to them.

    Handing out a fresh multi-MiB buffer per object costs page faults and zeroing in the
    kernel on every read (the allocator returns freed big blocks to the system), which
    halves large-object throughput. The pool remembers delivered buffers; when an object of
    the same size is fetched later and one of them is referenced by nothing but the pool
    (no ``BytesView``, ``memoryview``, array or tensor of the consumer's holds it, so nobody
    can observe the reuse), its memory is read into again.

    Args:
        capacity: Delivered buffers remembered (older ones are forgotten).
        min_size: Smaller buffers are not pooled (allocating them is cheap).
    """

    def __init__(self, capacity: int, min_size: int = 256 * 1024) -> None:
        self._held: deque[BytesView] = deque(maxlen=max(1, capacity))
        self._lock = threading.Lock()
        self.min_size = min_size
        self.reused = 0

    def remember(self, buf: BytesView | None) -> None:
        """Note a buffer handed to the consumer."""
        if buf is not None and len(buf) >= self.min_size:
            with self._lock:
                self._held.append(buf)

    def take(self, size: int) -> BytesView | None:
        """A remembered buffer of exactly ``size`` bytes that nobody else holds, if any."""
        if size < self.min_size:
            return None
        with self._lock:
            for buf in self._held:
                # References: the deque, ``buf`` and getrefcount's argument.
                if len(buf) == size and sys.getrefcount(buf) <= _FREE_REFS:
                    self._held.remove(buf)
                    self.reused += 1
                    return buf
        return None


def _free_refs() -> int:
    held: deque[BytesView] = deque([BytesView.allocate(1)])
    for buf in held:
        return sys.getrefcount(buf)
    raise AssertionError  # pragma: no cover


_FREE_REFS = _free_refs()


class Slot:
    """One item on its way: where it is from, its buffer, and what is left to fetch.

    Attributes:
        position: Position in the prefetcher's index list.
        index: Dataset index.
        uri: The object's URI.
        data: The object's bytes once fetched.
        error: The error that ended the fetch, if any.
    """

    __slots__ = ("position", "index", "uri", "parsed", "size", "part_size", "data", "etag",
                 "error", "queued", "active", "done", "started")  # fmt: skip

    def __init__(self, position: int, index: int, uri: str, size: int, part_size: int) -> None:
        self.position, self.index, self.uri = position, index, uri
        self.parsed: ObjectURI = parse_uri(uri)
        self.size, self.part_size = size, part_size
        self.data: BytesView | None = None
        self.etag: str | None = None
        self.error: BaseException | None = None
        self.queued: deque[tuple[int, int]] = deque()
        self.active = 0
        self.done = False
        self.started = False


class Prefetcher:
    """Fetches ``indices`` of ``dataset`` ahead of the consumer.

    Args:
        dataset: Where the objects are.
        indices: Dataset indices, in the order to visit them.
        options: ``prefetch`` (window), ``ordered``, ``reader_mode``, ``max_inflight_parts``.
        tuner: Says how many requests may run and the part size; told about every request.
        on_deliver: Called with 1 for each item handed to the consumer (resume bookkeeping).
    """

    def __init__(
        self,
        dataset: ObjectDataset,
        indices: Sequence[int],
        options: LoaderOptions,
        tuner: AdaptiveTuner,
        *,
        on_deliver: Callable[[int], None] | None = None,
    ) -> None:
        self._dataset = dataset
        self._indices = list(indices)
        self._tuner = tuner
        self._on_deliver = on_deliver
        self._window = options.prefetch
        self._ordered = options.ordered
        self._range = options.reader_mode == "range"
        self._max_parts = options.max_inflight_parts
        self._part_default = options.part_size
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here for something to do
        self._items = threading.Condition(self._lock)  # the consumer waits here for an item
        self._next = 0
        self._slots: deque[Slot] = deque()  # ordered: every undelivered item, in order
        self._ready: deque[Slot] = deque()  # unordered: finished items
        self._part_slots: deque[Slot] = deque()  # items with ranges waiting for a worker
        self._active = 0  # requests running
        self._ahead = 0  # items started and not yet delivered
        self._state = "running"  # running | done | closed | cancelled
        self._reason = ""
        self._wakers: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []
        self._live = 0  # worker threads not yet exited
        self._pool = BufferPool(2 * options.prefetch + 2)
        self.name = f"s3dlio-loader-{next(_ids)}"
        self.stats = {"requests": 0, "bytes": 0, "max_ahead": 0, "max_active": 0}
        with self._lock:
            if not self._indices:
                self._stop("done")
            else:
                self._spawn()

    # -- producer side (worker threads) ------------------------------------------------------
    def _spawn(self) -> None:
        """Start worker threads up to the tuner's concurrency (under the lock)."""
        while self._state == "running" and self._live < self._tuner.inflight:
            thread = threading.Thread(target=self._worker, name=f"{self.name}_{len(self._threads)}",
                                      daemon=True)  # fmt: skip
            self._threads.append(thread)
            self._live += 1
            thread.start()

    def _worker(self) -> None:
        exited = False
        try:
            while True:
                with self._lock:
                    job = self._claim()
                    while job is None:
                        if self._state != "running" or self._live > self._tuner.inflight:
                            self._live -= 1  # decided under the lock: no two leave for one
                            exited = True
                            self._items.notify_all()
                            return
                        self._work.wait()
                        job = self._claim()
                self._run(*job)
        finally:
            if not exited:
                with self._lock:
                    self._live -= 1
                    self._items.notify_all()

    def _claim(self) -> tuple[Slot, tuple[int, int] | None] | None:
        """The next request to make, if any may start now (under the lock)."""
        if self._state != "running" or self._active >= self._tuner.inflight:
            return None
        job = self._next_part() or self._next_item()
        if job is not None:
            self._active += 1
            job[0].active += 1
            self.stats["max_active"] = max(self.stats["max_active"], self._active)
        return job

    def _next_part(self) -> tuple[Slot, tuple[int, int]] | None:
        for slot in list(self._part_slots):
            if not slot.queued:
                self._part_slots.remove(slot)
            elif slot.active < self._max_parts:
                part = slot.queued.popleft()
                if not slot.queued:
                    self._part_slots.remove(slot)
                return slot, part
        return None

    def _next_item(self) -> tuple[Slot, None] | None:
        if self._ahead >= self._window or self._next >= len(self._indices):
            return None
        position = self._next
        index = int(self._indices[position])
        self._next += 1
        size = self._dataset.size_of(index)
        part = self._tuner.part_size or self._part_default
        slot = Slot(position, index, self._dataset.uri_of(index), -1 if size is None else size,
                    part)  # fmt: skip
        self._ahead += 1
        self.stats["max_ahead"] = max(self.stats["max_ahead"], self._ahead)
        if self._ordered:
            self._slots.append(slot)
        return slot, None

    def _waiting_work(self) -> bool:
        return bool(self._part_slots) or (
            self._ahead < self._window and self._next < len(self._indices)
        )

    def _stopping(self) -> bool:
        return self._state != "running"

    def _run(self, slot: Slot, part: tuple[int, int] | None) -> None:
        started = time.monotonic()
        nbytes = 0
        error: BaseException | None = None
        try:
            if not self._stopping():
                nbytes = self._request(slot, part)
        except Exception as exc:  # noqa: BLE001 - delivered to the consumer at the item
            error = exc
        finished = time.monotonic()
        with self._lock:
            self._active -= 1
            slot.active -= 1
            if self._state != "running":
                self._items.notify_all()
                return
            self.stats["requests"] += 1
            self.stats["bytes"] += nbytes
            if self._tuner.observe(nbytes, started, finished, self._waiting_work()):
                self._spawn()
                self._work.notify_all()
            if error is not None:
                slot.error = slot.error or error
                slot.queued.clear()
            elif slot.queued:
                self._work.notify(min(len(slot.queued), self._max_parts))
            if slot.active == 0 and not slot.queued:
                slot.done = True
                if not self._ordered:
                    self._ready.append(slot)
                    self._notify()
                elif self._slots and self._slots[0] is slot:
                    self._notify()  # in order, only the head can be delivered

    def _request(self, slot: Slot, part: tuple[int, int] | None) -> int:
        backend = backend_for(slot.parsed)
        if not self._range:
            reuse = self._pool.take(slot.size) if slot.size > 0 else None
            if reuse is not None:
                try:
                    result = fetch(backend, slot.parsed, into=memoryview(reuse),
                                   should_stop=self._stopping)  # fmt: skip
                except InvalidURIError:  # the object grew since it was listed
                    reuse = None
                else:
                    if result.nbytes == slot.size:
                        slot.data = reuse
                        return result.nbytes
            result = fetch(backend, slot.parsed, should_stop=self._stopping)
            slot.data = result.data  # type: ignore[assignment]
            return result.nbytes
        if part is not None:
            offset, length = part
            assert slot.data is not None
            target = memoryview(slot.data)[offset : offset + length]
            result = fetch(backend, slot.parsed, offset, length, into=target, if_match=slot.etag,
                           config=NO_SPLIT, op="GET_RANGE", should_stop=self._stopping)  # fmt: skip
            return result.nbytes
        # The first range: learn the size and version, then queue the other ranges.
        first = slot.part_size if slot.size < 0 else min(slot.part_size, slot.size)
        buf = None
        if slot.size >= 0:
            buf = self._pool.take(slot.size) or backend.allocate(slot.size)
        into = memoryview(buf)[:first] if buf is not None else None
        result = fetch(backend, slot.parsed, 0, first, into=into, config=NO_SPLIT,
                       should_stop=self._stopping)  # fmt: skip
        if buf is None or len(buf) != result.size:
            grown = backend.allocate(result.size)
            memoryview(grown)[: result.nbytes] = memoryview(result.data)[: result.nbytes]
            buf = grown
        slot.data, slot.etag, slot.size = buf, result.etag, result.size
        rest = plan_ranges(result.nbytes, result.size, slot.part_size)
        if rest:
            with self._lock:
                slot.queued.extend(rest)
                self._part_slots.append(slot)
        return result.nbytes

    # -- consumer side -----------------------------------------------------------------------
    def _poll(self) -> Slot | None:
        if self._state == "cancelled":
            raise CancelledError(
                "loader cancelled" + (f": {self._reason}" if self._reason else ""), op="LOAD"
            )
        if self._state in ("closed", "done"):
            raise StopIteration
        slot = None
        if self._ordered:
            if self._slots and self._slots[0].done:
                slot = self._slots.popleft()
        elif self._ready:
            slot = self._ready.popleft()
        if slot is None:
            if self._next >= len(self._indices) and self._ahead == 0:
                self._stop("done")
                raise StopIteration
            return None
        self._ahead -= 1
        self._work.notify()  # room in the window: a worker may start the next item
        return slot

    def _deliver(self, slot: Slot) -> Slot:
        self._pool.remember(slot.data)
        if self._on_deliver is not None:
            self._on_deliver(1)
        if slot.error is not None:
            raise slot.error
        return slot

    def poll(self) -> Slot | None:
        """The next item if one is ready, else ``None`` (never blocks).

        Raises:
            StopIteration: everything was delivered, or the prefetcher was closed.
            CancelledError: the prefetcher was cancelled.
            S3DlioError: the item's fetch failed (the next call continues with the next item).
        """
        with self._lock:
            slot = self._poll()
        return None if slot is None else self._deliver(slot)

    def take(self, timeout: float | None = None) -> Slot:
        """The next item, waiting for it up to ``timeout`` seconds (``None`` = no limit).

        Raises:
            OperationTimeoutError: nothing arrived within ``timeout``.
            StopIteration, CancelledError, S3DlioError: as :meth:`poll`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                slot = self._poll()
                if slot is not None:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise OperationTimeoutError(
                        f"no item within {timeout} s", op="LOAD", uri=self._dataset.uri
                    )
                self._items.wait(remaining)
        return self._deliver(slot)

    def add_waker(self, waker: Callable[[], None]) -> None:
        """Call ``waker()`` once at the next change of state (an item ready, a stop, ...)."""
        with self._lock:
            if self._state != "running" or self._has_news():
                waker()
            else:
                self._wakers.append(waker)

    def _has_news(self) -> bool:
        head_done = bool(self._slots) and self._slots[0].done
        ready = head_done if self._ordered else bool(self._ready)
        return ready or (self._next >= len(self._indices) and self._ahead == 0)

    def _notify(self) -> None:
        self._items.notify_all()
        wakers, self._wakers = self._wakers, []
        for waker in wakers:
            waker()

    # -- stopping ----------------------------------------------------------------------------
    def _stop(self, state: str, reason: str = "") -> None:
        if self._state != "running":
            return
        self._state, self._reason = state, reason
        self._work.notify_all()  # idle workers leave; busy ones leave after their request
        self._slots.clear()
        self._ready.clear()
        self._part_slots.clear()
        self._notify()

    def cancel(self, reason: str = "") -> None:
        """Stop now: waiting and later calls raise :class:`~s3dlio.errors.CancelledError`."""
        with self._lock:
            self._stop("cancelled", reason)

    def close(self) -> None:
        """Stop now: waiting and later calls end the iteration (idempotent)."""
        with self._lock:
            self._stop("closed")

    @property
    def buffers_reused(self) -> int:
        """Objects read into the buffer of an earlier item nobody held any more."""
        return self._pool.reused

    @property
    def state(self) -> str:
        """``"running"``, ``"done"``, ``"closed"`` or ``"cancelled"``."""
        return self._state

    def wait_idle(self, timeout: float | None = None) -> bool:
        """After a stop: wait until every worker thread has exited; return whether they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._live > 0 and self._state != "running":
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._items.wait(remaining)
            return self._live == 0
