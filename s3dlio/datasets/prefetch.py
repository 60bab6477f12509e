"""The loader's engine: a bounded, tunable, cancellable prefetch window over a dataset.

A :class:`Prefetcher` walks a list of dataset indices, keeping at most ``prefetch`` items
requested ahead of the consumer (in flight or ready) and at most ``tuner.inflight`` requests
running, on worker threads of its own (named ``s3dlio-loader-N_k``) that pull the next request
as soon as they finish one, so the window refills while the consumer is busy. Items are
delivered in index order or in completion order.

Hand-offs between threads cost more than small local reads (a wake-up is tens of µs on a busy
machine; copying a cached 128 KiB file takes ~10 µs), so the engine avoids them where it can:
the consumer is woken only when it waits for the very item that finished, parked workers are
woken when a quarter of the window is free rather than per item, and for ``file://`` objects
(:mod:`~s3dlio.datasets.localread`) the consumer copies page-cached files itself when nothing is
ready, worker threads are limited to the cores while every read hits the page cache, and the
full concurrency comes back as soon as a read has to wait for the disk.

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
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import CancelledError, InvalidArgumentError, OperationTimeoutError
from ..io.buffers import BytesView
from ..io.range_engine import fetch, plan_ranges
from ..io.store import backend_for
from ..io.uri import ObjectURI, parse_uri
from .bufferpool import BufferPool
from .dataset import NO_SPLIT, ObjectDataset
from .localread import CachedFileReader, FallbackRead, supports_cached_reads
from .options import LoaderOptions
from .tuning import AdaptiveTuner

__all__ = ["BufferPool", "Prefetcher", "Slot", "WARM_WORKERS"]

_ids = itertools.count(1)

#: Worker threads while every read is a page-cache copy (the consumer copies too): none on a
#: machine of two cores or fewer, where a second copying thread mostly fought the consumer for
#: the GIL (+50% CPU per item, faster only while the other core was idle), then one per core
#: beyond two, at most two.
WARM_WORKERS = max(0, min((os.cpu_count() or 1) - 2, 2))
#: Most consecutive items one thread claims at once while reads hit the page cache.
MAX_RUN = 16


def _no_clock() -> float:
    return 0.0


class Slot:
    """One item on its way: where it is from, its buffer, and what is left to fetch.

    Attributes:
        position: Position in the prefetcher's index list.
        index: Dataset index.
        uri: The object's URI.
        data: The object's bytes once fetched.
        error: The error that ended the fetch, if any.
    """

    __slots__ = (
        "position",
        "index",
        "uri",
        "_parsed",
        "size",
        "part_size",
        "data",
        "etag",
        "error",
        "queued",
        "active",
        "done",
    )

    def __init__(self, position: int, index: int, uri: str, size: int, part_size: int) -> None:
        self.position, self.index, self.uri = position, index, uri
        self._parsed: ObjectURI | None = None
        self.size, self.part_size = size, part_size
        self.data: BytesView | None = None
        self.etag: str | None = None
        self.error: BaseException | None = None
        self.queued: deque[tuple[int, int]] | None = None  # range mode: ranges left to start
        self.active = 0
        self.done = False

    @property
    def parsed(self) -> ObjectURI:
        """The parsed URI (parsed on first use: page-cache reads need only the path)."""
        if self._parsed is None:
            self._parsed = parse_uri(self.uri)
        return self._parsed


#: A finished read: the slot, its start and end (monotonic seconds), its bytes, and whether
#: the page cache served it (``None``: not a page-cache read, or it failed).
Done = tuple[Slot, float, float, int, "bool | None"]


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
        self._uris = dataset.uris()
        self._sizes: list[int] | None = None  # page-cache reads learn sizes as they read
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
        self._blocked: deque[Slot] = deque()  # items the consumer found uncached: for workers
        self._shared: list[list[Slot]] = []  # workers' runs: their unread items, in order
        self._active = 0  # worker jobs running (each makes one request at a time)
        self._ahead = 0  # items started and not yet delivered
        self._state = "running"  # running | done | closed | cancelled
        self._reason = ""
        self._wakers: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []
        self._live = 0  # worker threads not yet exited
        self._parked = 0  # worker threads waiting for work
        self._waiting = 0  # consumers waiting for an item
        self._batch = options.batch_size  # a waiting consumer is woken for this many items
        self._want = 1  # ... or fewer at the end of the pass (under the lock)
        self._refill = max(1, self._window // 4)  # parked workers wake when this much room
        self._pool = BufferPool(2 * options.prefetch + 2)
        # Page-cache aware reads (file:// only): see localread.py and _limit().
        backend = backend_for(dataset.uri, dataset.client)
        cached = not self._range and supports_cached_reads(backend, parse_uri(dataset.uri))
        self._reader = CachedFileReader() if cached else None
        if self._reader is None or dataset.sizes_known:
            self._sizes = dataset.sizes.tolist()
        self._warm = True  # reads are page-cache copies (few threads, runs of items)
        self._miss_rate = 0.0  # moving average over the last ~32 reads
        self.name = f"s3dlio-loader-{next(_ids)}"
        self.stats = {
            "requests": 0,
            "bytes": 0,
            "max_ahead": 0,
            "max_active": 0,
            "consumer_reads": 0,
            "cache_misses": 0,
        }
        with self._lock:
            if not self._indices:
                self._stop("done")
            else:
                self._spawn()

    # -- how many threads, how many items per claim ----------------------------------------
    def _limit(self) -> int:
        """Worker jobs allowed to run now (under the lock).

        The tuner's concurrency, except while reads are page-cache copies: copying is CPU
        work, so a thread per core (the consumer being one) is as fast as it gets, and more
        only fight over the GIL. Reads that wait for the disk bring the full concurrency back.
        """
        inflight = self._tuner.inflight
        if self._reader is None:
            return inflight
        if self._warm and not self._blocked:
            return min(inflight, WARM_WORKERS)
        return max(1, inflight)

    def _run_length(self) -> int:
        """Consecutive items one claim takes (under the lock): one request per claim, except
        runs of page-cache copies, which spare the per-item locking and bookkeeping."""
        if self._reader is None or not self._warm:
            return 1
        return max(1, min(MAX_RUN, self._window // (2 * (WARM_WORKERS + 1))))

    def _spawn(self) -> None:
        """Start worker threads up to :meth:`_limit` (under the lock)."""
        while self._state == "running" and self._live < self._limit():
            thread = threading.Thread(
                target=self._worker, name=f"{self.name}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            self._live += 1
            thread.start()

    def _note_reads(self, *, hits: int = 0, misses: int = 0) -> None:
        """Update the page-cache miss rate with some reads (under the lock).

        A moving average over the last ~32 reads, with hysteresis, so that a stray miss (a page
        under writeback, readahead in progress) does not start every thread: reads turn cold
        above 10% misses and warm again below 2%.
        """
        rate = self._miss_rate
        for _ in range(min(misses, 256)):
            rate += (1.0 - rate) / 32
        if hits:
            rate *= (31 / 32) ** hits
        self._miss_rate = rate
        self.stats["cache_misses"] += misses
        if self._warm and rate > 0.1:
            self._warm = False
            self._spawn()
            self._work.notify_all()
        elif not self._warm and rate < 0.02:
            self._warm = True  # surplus workers leave when they next look for work

    # -- producer side (worker threads) ------------------------------------------------------
    def _worker(self) -> None:
        exited = False
        try:
            while True:
                with self._lock:
                    job = self._claim()
                    while job is None:
                        if self._state != "running" or self._live > self._limit():
                            self._live -= 1  # decided under the lock: no two leave for one
                            exited = True
                            self._items.notify_all()
                            return
                        self._parked += 1
                        self._work.wait()
                        self._parked -= 1
                        job = self._claim()
                if self._range:
                    self._run_part(job[0][0], job[1])
                else:
                    self._run_items(job[0])
        finally:
            if not exited:
                with self._lock:
                    self._live -= 1
                    self._items.notify_all()

    def _claim(self) -> tuple[list[Slot], tuple[int, int] | None] | None:
        """The next job a worker may start now, if any (under the lock)."""
        if self._state != "running" or self._active >= self._limit():
            return None
        job: tuple[list[Slot], tuple[int, int] | None] | None = None
        if self._blocked:
            job = ([self._blocked.popleft()], None)
        else:
            part = self._next_part()
            if part is not None:
                job = ([part[0]], part[1])
            else:
                run = self._next_run()
                if run:
                    job = (run, None)
        if job is not None:
            self._active += 1
            if self._active > self.stats["max_active"]:
                self.stats["max_active"] = self._active
            if self._range:
                job[0][0].active += 1
            elif len(job[0]) > 1:
                self._shared.append(job[0])  # the consumer may take items from its end
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

    def _next_run(self) -> list[Slot]:
        """Claim the next items of the window (under the lock), up to :meth:`_run_length`."""
        count = min(self._run_length(), self._window - self._ahead, len(self._indices) - self._next)
        run: list[Slot] = []
        if count <= 0:
            return run
        part = self._tuner.part_size or self._part_default
        uris, sizes, indices = self._uris, self._sizes, self._indices
        for position in range(self._next, self._next + count):
            index = indices[position]
            size = -1 if sizes is None else sizes[index]
            run.append(Slot(position, index, uris[index], size, part))
        self._next += count
        self._ahead += count
        if self._ahead > self.stats["max_ahead"]:
            self.stats["max_ahead"] = self._ahead
        if self._ordered:
            self._slots.extend(run)
        return run

    def _waiting_work(self) -> bool:
        return bool(self._part_slots or self._blocked) or (
            self._ahead < self._window and self._next < len(self._indices)
        )

    def _stopping(self) -> bool:
        return self._state != "running"

    def _read_run(self, run: list[Slot], blocking: bool) -> tuple[list[Done], list[Slot]]:
        """Read the whole objects of ``run`` one after another (outside the lock).

        Returns the reads made and, with ``blocking`` false, the items a page-cache read could
        not serve at once (for the workers). A stop ends the run early. Reads are timed only
        for a tuner that listens.
        """
        done: list[Done] = []
        blocked: list[Slot] = []
        clock = time.monotonic if self._tuner.enabled else _no_clock
        read = self._read_whole
        for slot in run:
            if self._state != "running":
                break
            started = clock()
            try:
                got = read(slot, blocking)
            except Exception as exc:  # noqa: BLE001 - delivered to the consumer at the item
                slot.error = exc
                got = (0, None)
            if got is None:
                blocked.append(slot)
            else:
                done.append((slot, started, clock(), got[0], got[1]))
        return done, blocked

    def _run_items(self, run: list[Slot]) -> None:
        """A worker job in sequential mode: read ``run``'s items from the front, one by one,
        while a consumer that would otherwise wait takes items from the back."""
        try:
            while self._state == "running":
                try:
                    slot = run.pop(0)  # list.pop is atomic: each item is read once
                except IndexError:
                    return
                self._finish(*self._read_run([slot], True), helper=False)
        finally:
            with self._lock:
                self._active -= 1
                for i, shared in enumerate(self._shared):
                    if shared is run:
                        del self._shared[i]
                        break
                if self._state != "running":
                    self._items.notify_all()

    def _finish(self, done: list[Done], blocked: list[Slot], helper: bool) -> None:
        """Account for finished reads and hand their items over (takes the lock).

        Args:
            done: The reads made.
            blocked: Items whose page-cache read would have waited: the workers read them.
            helper: The consumer made the reads (not a worker).
        """
        with self._lock:
            if self._state != "running":
                return
            stats = self.stats
            if blocked:
                self._blocked.extend(blocked)
                self._note_reads(misses=len(blocked))
                self._spawn()
                self._work.notify(len(blocked))
            hits = misses = 0
            for slot, _, _, nbytes, hit in done:
                stats["bytes"] += nbytes
                if hit:
                    hits += 1
                elif hit is not None:
                    misses += 1
                self._complete(slot)
            stats["requests"] += len(done)
            if helper:
                stats["consumer_reads"] += len(done)
            if self._reader is not None and (hits or misses):
                self._note_reads(hits=hits, misses=misses)
            if self._tuner.enabled:
                limited = True if helper else self._waiting_work()
                for _, started, finished, nbytes, _ in done:
                    if self._tuner.observe(nbytes, started, finished, limited):
                        self._spawn()
                        self._work.notify_all()

    def _run_part(self, slot: Slot, part: tuple[int, int] | None) -> None:
        """A worker job in range mode: one range request of ``slot``."""
        started = time.monotonic()
        nbytes = 0
        try:
            if not self._stopping():
                nbytes = self._request(slot, part)
        except Exception as exc:  # noqa: BLE001 - delivered to the consumer at the item
            slot.error = slot.error or exc
            if slot.queued:
                slot.queued.clear()
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
            if slot.queued and slot.error is None:
                self._work.notify(min(len(slot.queued), self._max_parts))
            self._complete(slot)

    def _complete(self, slot: Slot) -> None:
        """A request of ``slot`` ended: mark it done when nothing of it is left (under the lock)."""
        if not (slot.active or slot.queued):  # range mode: no part running or waiting
            slot.done = True
            if not self._ordered:
                self._ready.append(slot)
                if len(self._ready) >= self._want or self._wakers:
                    self._notify()
            elif self._slots and (self._wakers or self._head_ready()):
                self._notify()

    def _head_ready(self) -> bool:
        """Whether the ``_want`` items at the head are all done (ordered; under the lock)."""
        slots = self._slots
        if not slots[0].done:
            return False
        want = self._want
        if want == 1:
            return True
        for count, slot in enumerate(slots):
            if not slot.done:
                return False
            if count + 1 >= want:
                return True
        return False

    def _read_whole(self, slot: Slot, blocking: bool) -> tuple[int, bool | None] | None:
        """Read a whole object into ``slot.data``: ``(bytes, page-cache hit)``, or ``None``
        when ``blocking`` is false and the read would have to wait."""
        reader = self._reader
        if reader is not None and slot.uri.startswith("file://"):
            try:
                read = reader.read(slot.uri[7:], blocking, self._pool)  # URIs are normalised
            except FallbackRead:
                pass  # fetch below repeats the read with retries and typed errors
            else:
                if read is None:
                    return None
                slot.data = read[0]
                return len(read[0]), read[1]
        if not blocking:
            return None
        return self._request(slot, None), None

    def _request(self, slot: Slot, part: tuple[int, int] | None) -> int:
        backend = backend_for(slot.parsed, self._dataset.client)
        if not self._range:
            reuse = self._pool.take(slot.size) if slot.size > 0 else None
            if reuse is not None:
                try:
                    result = fetch(
                        backend, slot.parsed, into=memoryview(reuse), should_stop=self._stopping
                    )
                except InvalidArgumentError:  # the object grew since it was listed
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
            result = fetch(
                backend,
                slot.parsed,
                offset,
                length,
                into=target,
                if_match=slot.etag,
                config=NO_SPLIT,
                op="GET_RANGE",
                should_stop=self._stopping,
            )
            return result.nbytes
        # The first range: learn the size and version, then queue the other ranges.
        first = slot.part_size if slot.size < 0 else min(slot.part_size, slot.size)
        buf = None
        if slot.size >= 0:
            buf = self._pool.take(slot.size) or backend.allocate(slot.size)
        into = memoryview(buf)[:first] if buf is not None else None
        result = fetch(
            backend, slot.parsed, 0, first, into=into, config=NO_SPLIT, should_stop=self._stopping
        )
        if buf is None or len(buf) != result.size:
            grown = backend.allocate(result.size)
            memoryview(grown)[: result.nbytes] = memoryview(result.data)[: result.nbytes]
            buf = grown
        slot.data, slot.etag, slot.size = buf, result.etag, result.size
        rest = plan_ranges(result.nbytes, result.size, slot.part_size)
        if rest:
            with self._lock:
                slot.queued = deque(rest)
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
        if self._parked and self._ahead <= self._window - self._refill:
            self._work.notify(self._refill)  # room in the window: workers start more items
        return slot

    def _claim_help(self) -> list[Slot] | None:
        """Items the consumer may read itself instead of waiting (under the lock).

        Only page-cache copies, which never wait for the disk: the consumer copies a cached
        file in less time than a hand-off from another thread takes.
        """
        if self._reader is None or self._state != "running":
            return None
        run = self._next_run()
        if run:
            return run
        for shared in self._shared:  # a worker's run, nearest the head first: take its last
            try:
                return [shared.pop()]
            except IndexError:
                continue
        return None

    def _help(self, run: list[Slot]) -> None:
        """Read ``run`` on the consumer's thread; reads that would block go to the workers."""
        self._finish(*self._read_run(run, False), helper=True)

    def _deliver(self, slot: Slot) -> Slot:
        self._pool.remember(slot.data)
        if self._on_deliver is not None:
            self._on_deliver(1)
        if slot.error is not None:
            raise slot.error
        return slot

    def poll(self) -> Slot | None:
        """The next item if one is ready (or cached), else ``None`` (never waits).

        Raises:
            StopIteration: everything was delivered, or the prefetcher was closed.
            CancelledError: the prefetcher was cancelled.
            S3DlioError: the item's fetch failed (the next call continues with the next item).
        """
        while True:
            with self._lock:
                slot = self._poll()
                helping = None if slot is not None else self._claim_help()
                if slot is None and helping is None:
                    return None
            if slot is not None:
                return self._deliver(slot)
            assert helping is not None
            self._help(helping)

    def take(self, timeout: float | None = None) -> Slot:
        """The next item, waiting for it up to ``timeout`` seconds (``None`` = no limit).

        While it waits, the consumer reads page-cached items of the window itself.

        Raises:
            OperationTimeoutError: nothing arrived within ``timeout``.
            StopIteration, CancelledError, S3DlioError: as :meth:`poll`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                slot = self._poll()
                helping = None if slot is not None else self._claim_help()
                if slot is None and helping is None:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise OperationTimeoutError(
                            f"no item within {timeout} s", op="LOAD", uri=self._dataset.uri
                        )
                    # Wake once a batch is ready, not per item: each wake-up is a thread
                    # switch, which a busy machine makes slow (docs/datasets.md).
                    # (With a timeout, any item counts: it must not wait for more.)
                    undelivered = len(self._indices) - self._next + self._ahead
                    batch = self._batch if deadline is None else 1
                    self._want = max(1, min(batch, self._window, undelivered))
                    self._waiting += 1
                    try:
                        self._items.wait(remaining)
                    finally:
                        self._waiting -= 1
                        self._want = 1
                    continue
            if slot is not None:
                return self._deliver(slot)
            assert helping is not None
            self._help(helping)

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
        more = self._next < len(self._indices)
        helpable = self._reader is not None and more and self._ahead < self._window
        return ready or helpable or (not more and self._ahead == 0)

    def _notify(self) -> None:
        if self._waiting:
            self._items.notify_all()
        if self._wakers:
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
        self._blocked.clear()
        self._shared.clear()
        self._items.notify_all()
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
