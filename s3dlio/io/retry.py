"""Retries with exponential backoff and full jitter.

Backends raise :class:`~s3dlio.errors.TransientError` (or its subclass
:class:`~s3dlio.errors.ThrottledError`) for faults that may pass: throttling, 5xx, connection
resets, timeouts, truncated bodies. :func:`call` repeats the whole request (open *and* read, so a
body cut short is fetched again, never returned) up to ``max_attempts`` times or ``max_total``
seconds, and the final error says how many attempts were made.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import S3DlioError, ThrottledError, TransientError
from .config import RetryConfig, settings

__all__ = ["backoff_delay", "call", "retry_stats"]

T = TypeVar("T")

_stats_lock = threading.Lock()
_stats = {"retries": 0, "throttled": 0, "gave_up": 0}


def backoff_delay(attempt: int, config: RetryConfig, throttled: bool = False) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (full jitter; throttling waits longer)."""
    base = config.base_delay * (4 if throttled else 1)
    return random.uniform(0, min(config.max_delay, base * (2 ** (attempt - 1))))


def call(
    fn: Callable[[], T],
    *,
    op: str,
    uri: object,
    byte_range: tuple[int, int | None] | None = None,
    config: RetryConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
    failed: TransientError | None = None,
) -> T:
    """Run ``fn()``, retrying transient faults with backoff.

    Args:
        fn: One complete attempt of a request.
        op: Operation name for the error (``"GET"``...).
        uri: The URI for the error (stringified only if an error is raised).
        byte_range: The range, for the error.
        config: Retry policy; defaults to the process settings.
        should_stop: Checked before each retry; when it returns True, the last error is raised
            at once (used by cancellation).
        failed: The error of a first attempt already made elsewhere (a multiplexed request):
            it counts as attempt 1, and ``fn`` runs after its backoff.

    Raises:
        S3DlioError: the last error, with ``attempts`` filled in.
    """
    policy = config or settings().retry
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            if failed is not None:
                error, failed = failed, None
                raise error
            return fn()
        except TransientError as exc:
            elapsed = time.monotonic() - started
            throttled = isinstance(exc, ThrottledError)
            delay = backoff_delay(attempt, policy, throttled)
            out_of_time = elapsed + delay > policy.max_total
            if attempt >= policy.max_attempts or out_of_time or (should_stop and should_stop()):
                with _stats_lock:
                    _stats["gave_up"] += 1
                exc.attempts = attempt
                raise exc.with_context(
                    uri=str(uri), op=op, byte_range=byte_range
                ) from exc.__cause__
            with _stats_lock:
                _stats["retries"] += 1
                _stats["throttled"] += throttled
            time.sleep(delay)
        except S3DlioError as exc:
            exc.attempts = exc.attempts or attempt
            raise exc.with_context(uri=str(uri), op=op, byte_range=byte_range) from exc.__cause__


def retry_stats() -> dict[str, int]:
    """Process-wide counts: ``retries`` made, of which ``throttled``, and requests ``gave_up``."""
    with _stats_lock:
        return dict(_stats)
