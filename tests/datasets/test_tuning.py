"""Adaptive tuning: the hill climb on modelled services, then for real on a slow backend."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import pytest
from conftest import write_files

import s3dlio
from s3dlio import LoaderOptions, create_async_loader
from s3dlio.datasets.tuning import AdaptiveTuner


class ServiceModel:
    """A service whose latency depends on the concurrency: ``latency(n)`` seconds per wave."""

    def __init__(self, latency: Callable[[int], float]) -> None:
        self.latency = latency
        self.now = 0.0

    def run(self, tuner: AdaptiveTuner, waves: int, *, limited: bool = True) -> None:
        for _ in range(waves):
            n = tuner.inflight
            took = self.latency(n)
            start = self.now
            for i in range(n):
                tuner.observe(4096, start, start + took * (i + 1) / n, limited)
            self.now += took


def capacity(slots: int, base: float = 0.01) -> Callable[[int], float]:
    """At most ``slots`` requests are served at once; the rest queue."""
    return lambda n: base * math.ceil(n / slots)


def make_tuner(model: ServiceModel, start: int, **kw: object) -> AdaptiveTuner:
    kw.setdefault("explore_every", 0)
    return AdaptiveTuner(inflight=start, max_inflight=64, clock=lambda: model.now, **kw)  # type: ignore[arg-type]


def test_climbs_to_the_service_capacity_and_settles():
    model = ServiceModel(capacity(8))
    tuner = make_tuner(model, 1)
    model.run(tuner, 400)
    state = tuner.state()
    assert state.phase == "settled"
    assert state.inflight == 8
    assert [p.inflight for p in state.history][:5] == [1, 2, 4, 8, 16]


def test_lowers_concurrency_when_more_requests_hurt():
    model = ServiceModel(lambda n: 0.01 * (1 + 0.1 * max(0, n - 4) ** 2))
    tuner = make_tuner(model, 8)
    model.run(tuner, 400)
    assert tuner.state().phase == "settled"
    assert tuner.inflight == 4


def test_holds_still_when_the_consumer_is_the_bottleneck():
    model = ServiceModel(capacity(8))
    tuner = make_tuner(model, 2)
    model.run(tuner, 300, limited=False)
    state = tuner.state()
    assert state.inflight == 2 and state.probes == 0 and state.adjustments == 0
    assert state.history and not any(p.valid for p in state.history)


def test_climbs_again_when_the_service_changes():
    slots = {"n": 4}
    model = ServiceModel(lambda n: 0.01 * math.ceil(n / slots["n"]))
    tuner = make_tuner(model, 1)
    model.run(tuner, 300)
    assert (tuner.state().phase, tuner.inflight) == ("settled", 4)
    slots["n"] = 32  # the service scaled out: the same concurrency, the same throughput
    tuner.explore_every = 10
    model.run(tuner, 1500)
    recent = [p.inflight for p in tuner.state().history if p.valid][-10:]
    assert max(set(recent), key=recent.count) == 32
    # A service that slows down at the current setting is noticed at once.
    before = tuner.state().adjustments
    slots["n"] = 8
    tuner.explore_every = 0
    model.run(tuner, 600)
    assert tuner.state().phase == "settled"
    assert tuner.inflight == 8 and tuner.state().adjustments > before


def test_part_size_is_tuned_after_concurrency():
    """Per-request overhead favours big parts until the service's bandwidth is the limit."""
    model = ServiceModel(capacity(8))
    tuner = make_tuner(model, 2, part_size=1 << 20, max_part_size=64 << 20)
    overhead, per_request, total = 0.01, 400e6, 1000e6  # s, B/s, B/s

    for _ in range(1500):
        n, part = tuner.inflight, tuner.part_size or 0
        took = max(overhead + part / per_request, n * part / total) * math.ceil(n / 8)
        start = model.now
        for i in range(n):
            tuner.observe(part, start, start + took * (i + 1) / n, True)
        model.now += took

    state = tuner.state()
    assert state.phase == "settled" and state.inflight == 8, state
    assert state.part_size == 2 << 20


def test_disabled_tuner_reports_the_fixed_choice():
    tuner = AdaptiveTuner(inflight=6, max_inflight=8, part_size=1 << 20, enabled=False)
    assert not tuner.observe(100, 0.0, 1.0, True)
    state = tuner.state().as_dict()
    assert (state["phase"], state["inflight"], state["part_size"]) == ("fixed", 6, 1 << 20)


def test_loader_raises_concurrency_on_a_slow_service_and_settles(slow_store, disk_dir):
    """Real requests: each read waits 15 ms in one of 8 service slots, then reads the file."""
    root = write_files(disk_dir, 800, size=256)
    slow_store.configure(latency=0.015, capacity=8)
    opts = LoaderOptions(auto_tune=True, num_workers=2, prefetch=64)
    with create_async_loader(root, opts) as loader:
        assert loader.tuning.inflight == 2
        count = sum(1 for _ in loader)
        state = loader.tuning
    assert count == 800
    assert state.phase == "settled", state
    assert state.inflight in (8, 16), state
    assert state.adjustments >= 2
    assert slow_store.peak_active >= 8
    climbed = [p.inflight for p in state.history if p.valid]
    assert climbed[0] == 2 and max(climbed) >= 8


@pytest.mark.parametrize("mode", ["range"])
def test_range_mode_reports_part_size(local_objects, mode):
    prefix, n = local_objects
    opts = LoaderOptions(auto_tune=True, reader_mode=mode, part_size="64KiB", prefetch=8)
    loader = create_async_loader(prefix, opts)
    assert len(list(loader)) == n
    state = loader.tuning
    assert state.auto_tune and state.part_size is not None and 1 <= state.inflight <= 8


def test_loader_raises_concurrency_behind_a_slow_s3_proxy(moto_s3, fault_proxy):
    """Real S3 requests through a loopback proxy that delays every object GET by 100 ms."""
    proxy = fault_proxy(moto_s3.port)
    prefix = f"{moto_s3.bucket}/{uuid.uuid4().hex[:12]}/"
    s3dlio.put_many({f"s3://{prefix}o{i:04d}": b"x" * 512 for i in range(300)})
    proxy.add_fault("latency", match=f"GET /{prefix}o", seconds=0.1)
    opts = LoaderOptions(auto_tune=True, num_workers=2, prefetch=32)
    with create_async_loader(f"s3://{proxy.endpoint}/{prefix}", opts) as loader:
        count = sum(1 for _ in loader)
        state = loader.tuning
    assert count == 300
    climbed = [p.inflight for p in state.history if p.valid]
    assert climbed[0] == 2 and state.inflight >= 8, state
    assert state.adjustments >= 2
    assert len(proxy.requests_matching(f"GET /{prefix}o")) == 300
