"""The async loader: ``for`` yields items, ``async for`` yields batches.

:func:`create_async_loader` lists the objects a URI selects, shards and orders them with the
one :class:`~s3dlio.datasets.sampling.EpochSampler`, and fetches them through a bounded
:class:`~s3dlio.datasets.prefetch.Prefetcher` whose concurrency an
:class:`~s3dlio.datasets.tuning.AdaptiveTuner` may adapt while it runs::

    opts = s3dlio.LoaderOptions(batch_size=32, prefetch=64, shuffle=True, auto_tune=True)
    with s3dlio.create_async_loader("s3://bucket/train/", opts) as loader:
        for item in loader:                  # BytesView, one per object
            ...
        async for batch in loader:           # lists of batch_size BytesViews
            ...
        print(loader.tuning)                 # what the tuner chose

One pass (``for`` or ``async for``) runs at a time per loader; starting a new one closes the
previous. Call :meth:`AsyncLoader.set_epoch` before each epoch for a new shuffle.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import InvalidArgumentError, OperationTimeoutError
from ..formats.registry import format_spec
from ..io.buffers import BytesView
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from .cancel import CancellationToken
from .dataset import ObjectDataset, create_dataset
from .localread import supports_cached_reads
from .options import LoaderOptions, PyLoaderOptions, coerce_options
from .prefetch import Prefetcher, Slot
from .sampling import EpochSampler, Resumable
from .tuning import AdaptiveTuner, TuningState

__all__ = [
    "AsyncBatchIterator",
    "AsyncLoader",
    "LoaderItem",
    "LoaderIterator",
    "create_async_loader",
    "make_tuner",
]

T = TypeVar("T")
Options = LoaderOptions | PyLoaderOptions | Mapping[str, Any] | None


@dataclass(frozen=True)
class LoaderItem:
    """One object as :meth:`AsyncLoader.items` yields it (the original's ``PyObjectItem``).

    Attributes:
        uri: The object's full URI (which object arrived, also in completion order).
        index: Its index in the dataset.
        data: Its bytes (zero-copy :class:`~s3dlio.BytesView`).
    """

    uri: str
    index: int
    data: BytesView

    @property
    def byte_count(self) -> int:
        """Bytes transferred (``len(item)``)."""
        return len(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return bytes(self.data)


def make_tuner(options: LoaderOptions, dataset: ObjectDataset | None = None) -> AdaptiveTuner:
    """The tuner a loader with ``options`` over ``dataset`` uses.

    Concurrency is tuned unless ``num_workers`` fixes it (and ``auto_tune`` is off); part size
    only with ``auto_tune``. Over page-cached ``file://`` objects the tuner may also try no
    worker requests at all (the consumer copies the files itself).
    """
    ranged = options.reader_mode == "range"
    tuned = options.tunes_concurrency
    inline = (
        dataset is not None
        and not ranged
        and supports_cached_reads(backend_for(dataset.uri, dataset.client), parse_uri(dataset.uri))
    )
    return AdaptiveTuner(
        inflight=options.initial_concurrency if tuned else options.concurrency,
        max_inflight=options.prefetch,
        min_inflight=0 if inline else 1,
        part_size=options.part_size if ranged else None,
        enabled=tuned,
        tune_part_size=options.auto_tune,
    )


class LoaderIterator(Generic[T]):
    """One pass over a loader: ``next()`` waits for the next item.

    ``close()`` (or leaving a ``with`` block) stops the pass at once: no new requests, the
    running ones abandoned, the loader's threads gone within moments.
    """

    def __init__(
        self, prefetcher: Prefetcher, convert: Callable[[Slot], T], timeout: float | None
    ) -> None:
        self._prefetcher = prefetcher
        self._convert = convert
        self._timeout = timeout
        #: The loader this pass belongs to, kept alive by the pass so that a cancellation
        #: token reaches it even when nothing else holds the loader (``for x in
        #: create_async_loader(...)``).
        self.owner: Any = None

    def __iter__(self) -> LoaderIterator[T]:
        return self

    def __next__(self) -> T:
        return self._convert(self._prefetcher.take(self._timeout))

    def collect_batch(self, n: int) -> list[T]:
        """Up to ``n`` next items (fewer at the end of the pass; ``[]`` once it is over)."""
        if not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"collect_batch needs n >= 1, got {n!r}", op="LOAD")
        batch: list[T] = []
        for item in self:
            batch.append(item)
            if len(batch) == n:
                break
        return batch

    def close(self) -> None:
        """Stop this pass (idempotent); further ``next()`` calls end the iteration."""
        self._prefetcher.close()

    def __enter__(self) -> LoaderIterator[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        prefetcher = getattr(self, "_prefetcher", None)
        if prefetcher is not None:
            prefetcher.close()

    @property
    def stats(self) -> dict[str, int]:
        """Requests and bytes so far, the peaks of items ahead and requests in flight, and
        how many buffers were reused."""
        return {**self._prefetcher.stats, "buffers_reused": self._prefetcher.buffers_reused}


class AsyncBatchIterator:
    """One ``async for`` pass: yields lists of ``batch_size`` items."""

    def __init__(self, prefetcher: Prefetcher, options: LoaderOptions) -> None:
        self._prefetcher = prefetcher
        self._options = options
        self._ended = False
        self.owner: Any = None  # the loader, kept alive by the pass (see LoaderIterator)

    def __aiter__(self) -> AsyncBatchIterator:
        return self

    async def _next_slot(self) -> Slot | None:
        loop = asyncio.get_running_loop()
        timeout = self._options.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                slot = self._prefetcher.poll()
            except StopIteration:
                return None
            if slot is not None:
                return slot
            wake = loop.create_future()

            def waker(fut: asyncio.Future[None] = wake) -> None:
                loop.call_soon_threadsafe(_resolve, fut)

            self._prefetcher.add_waker(waker)
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                await asyncio.wait_for(wake, remaining)
            except asyncio.TimeoutError:
                raise OperationTimeoutError(f"no item within {timeout} s", op="LOAD") from None

    async def __anext__(self) -> list[BytesView]:
        if self._ended:
            raise StopAsyncIteration
        batch: list[BytesView] = []
        size = self._options.batch_size
        while len(batch) < size:
            slot = await self._next_slot()
            if slot is None:
                self._ended = True
                break
            batch.append(slot.data)  # type: ignore[arg-type]
        if not batch or (len(batch) < size and self._options.drop_last):
            self._prefetcher.close()
            raise StopAsyncIteration
        return batch

    async def aclose(self) -> None:
        """Stop this pass."""
        self._prefetcher.close()

    def close(self) -> None:
        """Stop this pass."""
        self._prefetcher.close()

    def __del__(self) -> None:
        prefetcher = getattr(self, "_prefetcher", None)
        if prefetcher is not None:
            prefetcher.close()


class AsyncLoader(Resumable):
    """Loads the objects of a dataset with bounded prefetch, sharding, resume and tuning.

    Use :func:`create_async_loader` to make one. It is a context manager; :meth:`cancel`,
    :meth:`close` and a shared :class:`~s3dlio.CancellationToken` stop it.

    Args:
        dataset: The objects.
        opts: Loader options.
        cancellation_token: Cancels this loader (and every other loader sharing it).
        sampler: The sharding/shuffle/resume state (built from ``opts`` when ``None``).
    """

    def __init__(
        self,
        dataset: ObjectDataset,
        opts: Options = None,
        *,
        cancellation_token: CancellationToken | None = None,
        sampler: EpochSampler | None = None,
    ) -> None:
        self.dataset = dataset
        self.options = options = coerce_options(opts)
        self.sampler = sampler or EpochSampler(
            len(dataset),
            shuffle=options.shuffle,
            seed=options.seed,
            rank=options.rank,
            world_size=options.world_size,
            block_size=options.batch_size,
        )
        self._tuner = make_tuner(options, dataset)
        self._own = CancellationToken()
        self._lock = threading.Lock()
        self._passes: weakref.WeakSet[Prefetcher] = weakref.WeakSet()
        self._unsubscribe: list[Callable[[], None]] = []
        me = weakref.ref(self)
        for token in {
            id(t): t for t in (cancellation_token, options.cancellation_token) if t is not None
        }.values():
            self._unsubscribe.append(token.on_cancel(functools.partial(_cancel_ref, me, token)))

    # -- passes ------------------------------------------------------------------------------
    def _start(self) -> Prefetcher:
        self._own.raise_if_cancelled("loader")
        indices = self.sampler.begin().tolist()
        prefetcher = Prefetcher(
            self.dataset, indices, self.options, self._tuner, on_deliver=self.sampler.advance
        )
        with self._lock:
            for old in list(self._passes):
                old.close()
            self._passes.add(prefetcher)
        if self._own.cancelled:  # cancelled while starting
            prefetcher.cancel(self._own.reason)
        return prefetcher

    def __iter__(self) -> LoaderIterator[BytesView]:
        """A pass yielding each object's bytes (:class:`~s3dlio.BytesView`)."""
        it = LoaderIterator(self._start(), _data, self.options.timeout)
        it.owner = self
        return it

    def items(self) -> LoaderIterator[LoaderItem]:
        """A pass yielding :class:`LoaderItem` (URI, index and bytes) per object."""
        it = LoaderIterator(self._start(), _item, self.options.timeout)
        it.owner = self
        return it

    def __aiter__(self) -> AsyncBatchIterator:
        """An ``async for`` pass yielding batches (lists of ``batch_size`` BytesViews)."""
        it = AsyncBatchIterator(self._start(), self.options)
        it.owner = self
        return it

    def __len__(self) -> int:
        """Items this rank visits per epoch."""
        return len(self.sampler)

    # -- epochs and resume -------------------------------------------------------------------
    def _epoch_sampler(self) -> EpochSampler:
        return self.sampler

    # -- tuning ------------------------------------------------------------------------------
    @property
    def tuning(self) -> TuningState:
        """The current concurrency and part size, and the throughput probes behind them."""
        return self._tuner.state()

    # -- stopping ----------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        """Whether this loader was cancelled."""
        return self._own.cancelled

    def cancel(self, reason: str = "") -> None:
        """Stop: no new requests, running ones abandoned; iterators raise ``CancelledError``."""
        self._own.cancel(reason)
        with self._lock:
            passes = list(self._passes)
        for prefetcher in passes:
            prefetcher.cancel(reason)

    def close(self) -> None:
        """Stop every pass of this loader (iterators end) and detach from shared tokens."""
        with self._lock:
            passes = list(self._passes)
        for prefetcher in passes:
            prefetcher.close()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """After a stop: wait until no request of this loader runs; return whether done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            passes = list(self._passes)
        for prefetcher in passes:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not prefetcher.wait_idle(remaining):
                return False
        return True

    def __enter__(self) -> AsyncLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AsyncLoader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AsyncLoader({self.dataset.uri!r}, {len(self.dataset)} objects)"


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _cancel_ref(ref: weakref.ref[AsyncLoader], token: CancellationToken) -> None:
    loader = ref()
    if loader is not None:
        loader.cancel(token.reason)


def _data(slot: Slot) -> BytesView:
    return slot.data  # type: ignore[return-value]


def _item(slot: Slot) -> LoaderItem:
    return LoaderItem(slot.uri, slot.index, slot.data)  # type: ignore[arg-type]


def create_async_loader(
    uri: str | ObjectURI | ObjectDataset,
    opts: Options = None,
    cancellation_token: CancellationToken | None = None,
    *,
    client: HasStores | None = None,
) -> AsyncLoader:
    """A loader over the objects ``uri`` selects (or over an :class:`ObjectDataset`).

    Args:
        uri: Prefix, exact object, glob, or a dataset from :func:`create_dataset`.
        opts: :class:`LoaderOptions`, a dict of them, or a :class:`PyLoaderOptions`.
        cancellation_token: Stops the loader when cancelled (may be shared).
        client: The :class:`s3dlio.Client` to read through (default: the default client;
            a dataset given as ``uri`` keeps its own).

    Raises:
        NotFoundError: ``uri`` selects no objects.
        CancelledError: only later, from the iterators, when cancelled.
    """
    fmt = opts.get("format") if isinstance(opts, Mapping) else None
    if fmt is not None:  # a format with a loader of its own (Parquet: one item per row group)
        spec = format_spec(fmt)
        if spec.loader is not None:
            make = spec.load("loader")
            return make(uri, opts, cancellation_token=cancellation_token, client=client)
        opts = {k: v for k, v in opts.items() if k != "format"}  # type: ignore[union-attr]
    options = coerce_options(opts)
    dataset = uri if isinstance(uri, ObjectDataset) else create_dataset(uri, options, client=client)
    return AsyncLoader(dataset, options, cancellation_token=cancellation_token)
