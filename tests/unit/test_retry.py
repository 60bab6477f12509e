"""Retry policy: transient faults are retried whole, short bodies never returned, limits kept.

Faults come from a file-system backend registered under its own scheme that fails the first
requests it serves (the server-side fault proxy tests live with the network backends).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import s3dlio
from s3dlio import RetryConfig, ThrottledError, TransientError
from s3dlio.io import retry
from s3dlio.io.backends.file import FileReadStream, FileStore
from s3dlio.io.config import Settings, reset_settings, settings
from s3dlio.io.store import register_backend, reset_backends
from s3dlio.io.uri import ObjectURI


class FlakyStore(FileStore):
    """A real file store whose first ``faults`` reads fail in the configured way."""

    scheme = "flaky"
    faults = 0
    kind = "throttle"
    opened = 0

    def open_read(
        self,
        uri: ObjectURI,
        offset: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
    ):  # type: ignore[no-untyped-def]
        type(self).opened += 1
        stream = super().open_read(uri, offset, length, if_match=if_match)
        if type(self).faults > 0:
            type(self).faults -= 1
            if self.kind == "throttle":
                stream.close()
                raise ThrottledError("503 SlowDown")
            assert isinstance(stream, FileReadStream)
            stream._end = stream.offset + stream.length // 2  # the body ends early
        return stream


@pytest.fixture
def flaky(disk_dir: Path):
    register_backend("flaky", FlakyStore)
    old = settings()
    reset_settings(Settings(retry=RetryConfig(max_attempts=4, base_delay=0.001, max_delay=0.01)))
    FlakyStore.opened = 0
    yield f"flaky://{disk_dir}/"
    reset_settings(old)
    reset_backends()


def test_throttling_retried(flaky: str) -> None:
    s3dlio.put_bytes(flaky + "a", b"payload")
    FlakyStore.faults, FlakyStore.kind = 3, "throttle"
    before = retry.retry_stats()["retries"]
    assert s3dlio.get(flaky + "a") == b"payload"
    assert FlakyStore.opened == 4
    assert retry.retry_stats()["retries"] - before == 3


def test_truncated_body_never_returned(flaky: str) -> None:
    payload = bytes(range(256)) * 100
    s3dlio.put_bytes(flaky + "t", payload)
    FlakyStore.faults, FlakyStore.kind = 2, "truncate"
    assert s3dlio.get(flaky + "t") == payload
    assert FlakyStore.opened == 3


def test_gives_up_with_attempt_count(flaky: str) -> None:
    s3dlio.put_bytes(flaky + "g", b"x")
    FlakyStore.faults, FlakyStore.kind = 10, "throttle"
    with pytest.raises(ThrottledError) as info:
        s3dlio.get(flaky + "g")
    assert info.value.attempts == 4
    assert "after 4 attempts" in str(info.value) and flaky + "g" in str(info.value)


def test_non_transient_not_retried(flaky: str) -> None:
    with pytest.raises(s3dlio.NotFoundError) as info:
        s3dlio.get(flaky + "missing")
    assert FlakyStore.opened == 1 and info.value.attempts == 1


def test_backoff_bounds() -> None:
    cfg = RetryConfig(base_delay=0.1, max_delay=1.0)
    for attempt in range(1, 10):
        assert 0 <= retry.backoff_delay(attempt, cfg) <= min(1.0, 0.1 * 2 ** (attempt - 1))


def test_total_time_bound() -> None:
    calls = []

    def always_fails() -> None:
        calls.append(1)
        raise TransientError("reset")

    cfg = RetryConfig(max_attempts=100, base_delay=0.5, max_delay=0.5, max_total=0.0)
    with pytest.raises(TransientError):
        retry.call(always_fails, op="GET", uri="file:///x", config=cfg)
    assert len(calls) == 1
