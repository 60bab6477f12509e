"""Cancellation: CancelledError within 1 s, in-flight requests abandoned, no thread left."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import ident, join_all, new_loader_threads, populate

from s3dlio import CancellationToken, CancelledError, LoaderOptions, create_async_loader

LATENCY = 0.6  # every request takes this long: cancelling must not wait for them


@pytest.fixture
def slow_root(slow_store, disk_dir) -> str:
    root = populate(f"slowfile://{disk_dir}/", 30)
    slow_store.configure(latency=LATENCY, capacity=None)
    return root


def test_cancel_wakes_a_blocked_consumer_within_a_second(slow_root, slow_store, loader_threads):
    token = CancellationToken()
    loader = create_async_loader(slow_root, LoaderOptions(prefetch=8), cancellation_token=token)
    passage = iter(loader)
    waiting = threading.Event()
    outcome: dict[str, object] = {}

    def consume() -> None:
        waiting.set()
        try:
            next(passage)
            outcome["result"] = "item"
        except CancelledError as exc:
            outcome["result"] = exc
        outcome["at"] = time.monotonic()

    consumer = threading.Thread(target=consume)
    consumer.start()
    waiting.wait()
    assert slow_store.first_request.wait(5)  # requests are in flight
    cancelled_at = time.monotonic()
    token.cancel("shutting down")
    consumer.join(5)
    assert isinstance(outcome["result"], CancelledError)
    assert "shutting down" in str(outcome["result"])
    assert outcome["at"] - cancelled_at < 1.0  # type: ignore[operator]
    assert loader.cancelled
    with pytest.raises(CancelledError):
        next(passage)
    assert join_all(new_loader_threads(loader_threads), 2.0) == []


def test_in_flight_requests_are_abandoned_not_awaited(slow_root, slow_store, loader_threads):
    loader = create_async_loader(slow_root, LoaderOptions(prefetch=8))
    passage = iter(loader)
    assert slow_store.first_request.wait(5)
    started = time.monotonic()
    loader.cancel()
    with pytest.raises(CancelledError):
        next(passage)
    assert time.monotonic() - started < LATENCY  # did not wait for the running requests
    assert loader.wait_idle(2.0)
    assert slow_store.requests <= 8  # only the first window: nothing new was started
    assert join_all(new_loader_threads(loader_threads), 2.0) == []


def test_one_token_stops_every_loader_sharing_it(slow_root, loader_threads):
    token = CancellationToken()
    first = create_async_loader(slow_root, {"prefetch": 4, "cancellation_token": token})
    second = create_async_loader(slow_root, LoaderOptions(prefetch=4), cancellation_token=token)
    passes = [iter(first), iter(second)]
    token.cancel()
    for passage in passes:
        with pytest.raises(CancelledError):
            next(passage)
    with pytest.raises(CancelledError):
        iter(first)  # a cancelled loader starts no new pass
    assert join_all(new_loader_threads(loader_threads), 2.0) == []


def test_leaving_the_with_block_closes_the_loader(local_objects, loader_threads):
    prefix, _ = local_objects
    with create_async_loader(prefix, LoaderOptions(prefetch=4)) as loader:
        passage = iter(loader)
        assert ident(next(passage)) == 0
    with pytest.raises(StopIteration):
        next(passage)
    assert join_all(new_loader_threads(loader_threads), 2.0) == []


def test_iterator_close_stops_the_pass(slow_root, loader_threads):
    loader = create_async_loader(slow_root, LoaderOptions(prefetch=8))
    with iter(loader) as passage:
        pass
    with pytest.raises(StopIteration):
        next(passage)
    assert join_all(new_loader_threads(loader_threads), 2.0) == []
    assert not loader.cancelled
    loader.close()


def test_cancel_during_async_for(slow_root, loader_threads):
    token = CancellationToken()

    async def run() -> float:
        loader = create_async_loader(
            slow_root, LoaderOptions(batch_size=4, prefetch=8), cancellation_token=token
        )
        asyncio.get_running_loop().call_soon(token.cancel)
        started = time.monotonic()
        with pytest.raises(CancelledError):
            async for _ in loader:
                pass
        return time.monotonic() - started

    assert asyncio.run(run()) < 1.0
    assert join_all(new_loader_threads(loader_threads), 2.0) == []


def test_a_finished_pass_leaves_no_threads(local_objects, loader_threads):
    prefix, n = local_objects
    assert len(list(create_async_loader(prefix, LoaderOptions(prefetch=16)))) == n
    assert join_all(new_loader_threads(loader_threads), 2.0) == []


def test_token_basics():
    token = CancellationToken()
    calls = []
    remove = token.on_cancel(lambda: calls.append("a"))
    token.on_cancel(lambda: calls.append("b"))
    remove()
    assert not token.cancelled and not token.wait(0)
    token.cancel("why")
    token.cancel("again")  # idempotent
    assert calls == ["b"] and token.is_cancelled() and token.reason == "why"
    late = []
    token.on_cancel(lambda: late.append(1))
    assert late == [1]
    with pytest.raises(CancelledError, match="why"):
        token.raise_if_cancelled()
    import pickle

    assert pickle.loads(pickle.dumps(token)).cancelled
