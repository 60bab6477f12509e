"""Adaptive tuning: move request concurrency (and range part size) to where throughput peaks.

The loader reports every finished request to an :class:`AdaptiveTuner`. The tuner measures
throughput in *probes*: stretches of at least ``probe_seconds`` and ``min_samples`` requests,
counting only requests started after the last change (so a probe sees the new setting in
steady state). A probe counts only if the loader was limited by concurrency during it (a
request was waiting for a free slot at most completions); when the consumer or the end of the
data is the bottleneck, more requests cannot help, and the tuner holds still.

Each knob is hill-climbed: double while throughput improves by more than ``improvement``;
when it stops improving, halve from the best value while throughput stays within
``improvement / 2`` of the best (fewer requests for the same speed); settle there. In ``range``
mode part size is tuned the same way once concurrency has settled. A settled tuner keeps
measuring, and climbs again when throughput moves by more than ``retune_change`` for two
probes in a row (latency or bandwidth changed), and every ``explore_every`` probes (a better
setting may have appeared elsewhere, e.g. the service scaled out).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidArgumentError
from ..io.config import MiB

__all__ = ["AdaptiveTuner", "Probe", "TuningState"]


@dataclass(frozen=True)
class Probe:
    """One throughput measurement.

    Attributes:
        inflight: Concurrency during the probe.
        part_size: Range part size during the probe (``None`` in sequential mode).
        bytes_per_second: Measured throughput.
        items_per_second: Requests finished per second.
        requests: Requests counted.
        valid: Whether concurrency was the bottleneck (only valid probes steer).
    """

    inflight: int
    part_size: int | None
    bytes_per_second: float
    items_per_second: float
    requests: int
    valid: bool


@dataclass(frozen=True)
class TuningState:
    """What the tuner has chosen and why (``loader.tuning``).

    Attributes:
        auto_tune: Whether tuning is on (else the values are the fixed configuration).
        inflight: Requests allowed in flight now.
        part_size: Range part size now (``None`` in sequential mode).
        phase: ``"fixed"``, ``"inflight"`` / ``"part_size"`` (climbing that knob) or
            ``"settled"``.
        min_inflight: Lower bound of concurrency.
        max_inflight: Upper bound of concurrency (the loader's ``prefetch``).
        bytes_per_second: Throughput of the last valid probe (0 before the first).
        best_bytes_per_second: Best throughput seen in the current climb.
        probes: Valid probes measured.
        adjustments: Times a knob was changed.
        history: The most recent probes, oldest first.
    """

    auto_tune: bool
    inflight: int
    part_size: int | None
    phase: str
    min_inflight: int
    max_inflight: int
    bytes_per_second: float
    best_bytes_per_second: float
    probes: int
    adjustments: int
    history: tuple[Probe, ...]

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs and JSON)."""
        return asdict(self)


class _HillClimb:
    """Hill-climbs one integer knob with ×2 / ÷2 steps between ``lo`` and ``hi``.

    ``up_only`` explores upwards from ``start`` only (a settled tuner looking for more).
    """

    def __init__(
        self, start: int, lo: int, hi: int, improvement: float, up_only: bool = False
    ) -> None:
        self.value = min(max(start, lo), hi)
        self.lo, self.hi = lo, hi
        self.improvement = improvement
        self.direction = 1
        self.turned = up_only
        self.best: tuple[float, int] | None = None
        self.measured: dict[int, float] = {}

    def _step(self, value: int, direction: int) -> int | None:
        new = max(1, value * 2) if direction > 0 else value // 2
        new = min(max(new, self.lo), self.hi)
        return None if new == value else new

    def _accept(self, throughput: float) -> bool:
        """Going up must pay off; going down may cost a little (fewer requests, same speed)."""
        if self.best is None:
            return True
        if self.direction > 0:
            return throughput > self.best[0] * (1 + self.improvement)
        return throughput >= self.best[0] * (1 - self.improvement / 2)

    def _take(self, throughput: float, value: int) -> None:
        best = self.best[0] if self.best is not None else 0.0
        self.best = (max(best, throughput), value)

    def decide(self, throughput: float) -> tuple[int, bool]:
        """Record the throughput of the current value; return ``(next value, settled)``."""
        self.measured[self.value] = throughput
        if self._accept(throughput):
            self._take(throughput, self.value)
        elif not self.turned:
            self.turned, self.direction = True, -self.direction
        else:
            return self._settle()
        assert self.best is not None
        while True:
            candidate = self._step(self.best[1], self.direction)
            if candidate is not None and candidate in self.measured:
                if self._accept(self.measured[candidate]):
                    self._take(self.measured[candidate], candidate)
                    continue
                candidate = None
            if candidate is not None:
                self.value = candidate
                return candidate, False
            if self.turned:
                return self._settle()
            self.turned, self.direction = True, -self.direction

    def _settle(self) -> tuple[int, bool]:
        assert self.best is not None
        self.value = self.best[1]
        return self.value, True


class AdaptiveTuner:
    """Chooses concurrency (and part size) from measured throughput.

    Args:
        inflight: Starting concurrency.
        max_inflight: Highest concurrency allowed.
        min_inflight: Lowest concurrency allowed (0: no worker requests; the loader's consumer
            copies page-cached files itself).
        part_size: Starting part size (``None``: not tuned, sequential mode).
        min_part_size: Smallest part size tried.
        max_part_size: Largest part size tried.
        enabled: ``False`` keeps the starting values (``loader.tuning`` still reports them).
        tune_part_size: Tune the part size too (after concurrency), when there is one.
        probe_seconds: Minimum length of one probe.
        min_samples: Minimum requests per probe.
        improvement: Relative gain that counts as "better" (0.1 = 10 %).
        retune_change: Relative change of a settled throughput that restarts tuning.
        explore_every: Valid probes after which a settled tuner climbs again (0 = never).
        clock: Monotonic time source in seconds.
    """

    def __init__(
        self,
        *,
        inflight: int,
        max_inflight: int,
        min_inflight: int = 1,
        part_size: int | None = None,
        min_part_size: int = MiB,
        max_part_size: int = 64 * MiB,
        enabled: bool = True,
        tune_part_size: bool = True,
        probe_seconds: float = 0.2,
        min_samples: int = 8,
        improvement: float = 0.10,
        retune_change: float = 0.30,
        explore_every: int = 25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= min_inflight <= max_inflight or max_inflight < 1:
            raise InvalidArgumentError(
                f"need 0 <= min_inflight <= max_inflight, got {min_inflight}, {max_inflight}"
            )
        self.enabled = enabled
        self.tune_part_size = tune_part_size
        self.min_inflight, self.max_inflight = min_inflight, max_inflight
        self.min_part_size = min(min_part_size, part_size or min_part_size)
        self.max_part_size = max(max_part_size, part_size or max_part_size)
        self.probe_seconds, self.min_samples = probe_seconds, min_samples
        self.improvement, self.retune_change = improvement, retune_change
        self.explore_every = explore_every
        self._settled_probes = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight = min(max(inflight, min_inflight), max_inflight)
        self._part_size = part_size
        self._phase = "inflight" if enabled else "fixed"
        self._climb = self._new_climb("inflight")
        self._reference = 0.0
        self._strikes = 0
        self._last_bps = 0.0
        self._probes = 0
        self._adjustments = 0
        self._history: deque[Probe] = deque(maxlen=32)
        self._reset_probe(clock())

    @property
    def inflight(self) -> int:
        """Requests allowed in flight now."""
        return self._inflight

    @property
    def part_size(self) -> int | None:
        """Range part size now (``None`` in sequential mode)."""
        return self._part_size

    def _new_climb(self, knob: str, up_only: bool = False) -> _HillClimb:
        if knob == "inflight":
            return _HillClimb(
                self._inflight, self.min_inflight, self.max_inflight, self.improvement, up_only
            )
        assert self._part_size is not None
        return _HillClimb(
            self._part_size, self.min_part_size, self.max_part_size, self.improvement, up_only
        )

    def _reset_probe(self, now: float) -> None:
        self._probe_start = now
        self._count = 0
        self._limited = 0
        self._first_finish: float | None = None
        self._first_bytes = 0
        self._last_finish = now
        self._bytes = 0

    def observe(self, nbytes: int, started: float, finished: float, limited: bool) -> bool:
        """Record one finished request; return whether a knob changed.

        Args:
            nbytes: Bytes the request delivered.
            started: When it started (the tuner's clock).
            finished: When it finished.
            limited: Whether work was waiting for a free request slot when it finished.
        """
        if not self.enabled:
            return False
        with self._lock:
            if started < self._probe_start:
                return False  # began under the previous setting
            self._count += 1
            self._limited += limited
            self._bytes += nbytes
            if self._first_finish is None:
                self._first_finish, self._first_bytes = finished, nbytes
            self._last_finish = max(self._last_finish, finished)
            enough = max(self.min_samples, self._inflight)
            if finished - self._probe_start < self.probe_seconds or self._count < enough:
                return False
            return self._end_probe(finished)

    def _end_probe(self, now: float) -> bool:
        span = self._last_finish - (self._first_finish or self._probe_start)
        counted = self._count - 1
        bps = (self._bytes - self._first_bytes) / span if span > 0 else 0.0
        ips = counted / span if span > 0 else 0.0
        valid = self._limited * 2 >= self._count and span > 0
        self._history.append(Probe(self._inflight, self._part_size, bps, ips, self._count, valid))
        self._reset_probe(now)
        if not valid:
            return False
        self._probes += 1
        self._last_bps = bps
        if self._phase == "settled":
            return self._check_settled(bps, now)
        value, settled = self._climb.decide(bps)
        changed = self._apply(value)
        if settled:
            if self._phase == "inflight" and self._part_size is not None and self.tune_part_size:
                self._phase = "part_size"
                self._climb = self._new_climb("part_size")
            else:
                self._phase = "settled"
                self._reference = self._climb.best[0] if self._climb.best else bps
                self._strikes = self._settled_probes = 0
        return changed

    def _apply(self, value: int) -> bool:
        if self._phase == "inflight":
            changed = value != self._inflight
            self._inflight = value
        else:
            changed = value != self._part_size
            self._part_size = value
        self._adjustments += changed
        return changed

    def _check_settled(self, bps: float, now: float) -> bool:
        ref = self._reference
        if ref > 0 and abs(bps / ref - 1) > self.retune_change:
            self._strikes += 1
        else:
            self._strikes = 0
        self._settled_probes += 1
        explore = self.explore_every and self._settled_probes >= self.explore_every
        if self._strikes >= 2 or explore:
            self._phase = "inflight"
            self._climb = self._new_climb("inflight", up_only=self._strikes < 2)
            self._strikes = 0
        return False

    def state(self) -> TuningState:
        """A snapshot of the current choices and recent probes."""
        with self._lock:
            best = self._climb.best[0] if self._climb.best else 0.0
            if self._phase == "settled":
                best = self._reference
            return TuningState(
                auto_tune=self.enabled,
                inflight=self._inflight,
                part_size=self._part_size,
                phase=self._phase,
                min_inflight=self.min_inflight,
                max_inflight=self.max_inflight,
                bytes_per_second=self._last_bps,
                best_bytes_per_second=best,
                probes=self._probes,
                adjustments=self._adjustments,
                history=tuple(self._history),
            )
