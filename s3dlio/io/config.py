"""Configuration objects and every ``S3DLIO_*`` environment variable, resolved in one place.

| variable | meaning | default |
|---|---|---|
| ``S3DLIO_RT_THREADS`` | size of the shared I/O thread pool | ``max(8, 4 * cores)`` capped at 64 |
| ``S3DLIO_MAX_HTTP_CONNECTIONS`` | HTTP connections kept per endpoint | pool size |
| ``S3DLIO_RANGE_THRESHOLD_MB`` | split GETs above this size (MiB) | 32 network / 64 local |
| ``S3DLIO_RANGE_CONCURRENCY`` | concurrent ranges per object | scaled by size and cores |
| ``S3DLIO_CHUNK_SIZE`` | range size, bytes or ``"8MiB"`` | 1/4/8 MiB by object size |
| ``S3DLIO_OPLOG_LEVEL`` | zstd level of the op-log | 1 |
| ``S3DLIO_CONNECT_TIMEOUT_SECS`` | TCP connect timeout | 10 |
| ``S3DLIO_OPERATION_TIMEOUT_SECS`` | socket read timeout of one request | 60 |
| ``S3DLIO_MAX_RETRY_ATTEMPTS`` | attempts per request (first try included) | 5 |
| ``S3DLIO_RETRY_MAX_SECS`` | total time a request may spend retrying | 60 |
| ``S3DLIO_HUGE_PAGES`` | back new buffers from 32 MiB up with transparent huge pages | 1 |
| ``S3DLIO_MALLOC_KEEP_MB`` | freed memory glibc keeps for new buffers (0: untouched) | RAM/8, at most 2048 |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import InvalidArgumentError

__all__ = [
    "MiB",
    "configure",
    "RangeEngineConfig",
    "RetryConfig",
    "Settings",
    "parse_size",
    "settings",
]

KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": KiB,
    "ki": KiB,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": MiB,
    "mi": MiB,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": GiB,
    "gi": GiB,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
    "ti": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: int | str) -> int:
    """Turn ``1048576``, ``"1MiB"``, ``"20 MB"`` or ``"1.5GiB"`` into a byte count.

    Raises:
        InvalidArgumentError: (a ``ValueError``) for text that is not a size, or a negative number.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgumentError(f"size must be >= 0, got {value}")
        return value
    match = _SIZE_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise InvalidArgumentError(
            f"not a size: {value!r} (examples: 4096, '64KiB', '20MiB', '1GB')"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgumentError(
            f"environment variable {name}={raw!r} is not an integer"
        ) from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InvalidArgumentError(f"environment variable {name}={raw!r} is not a boolean (1 or 0)")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgumentError(f"environment variable {name}={raw!r} is not a number") from None


@dataclass(frozen=True, kw_only=True)
class RangeEngineConfig:
    """When and how a large GET is split into concurrent range requests.

    Attributes:
        threshold: Objects larger than this many bytes are split. ``None`` = the backend's
            default (32 MiB for network backends, 64 MiB for local files).
        chunk_size: Bytes per range. ``None`` = 1 MiB below 16 MiB, 4 MiB up to 256 MiB,
            8 MiB above.
        concurrency: Ranges in flight per object. ``None`` = scaled by size and cores.
        enabled: ``False`` never splits.
    """

    threshold: int | None = None
    chunk_size: int | None = None
    concurrency: int | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("threshold", "chunk_size"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_size(value))
        if self.chunk_size is not None and self.chunk_size < 4096:
            raise InvalidArgumentError(f"chunk_size must be >= 4096, got {self.chunk_size}")
        if self.concurrency is not None and self.concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be >= 1, got {self.concurrency}")

    @classmethod
    def from_env(cls) -> RangeEngineConfig:
        """Read ``S3DLIO_RANGE_THRESHOLD_MB``, ``S3DLIO_RANGE_CONCURRENCY``, ``S3DLIO_CHUNK_SIZE``."""
        threshold_mb = _env_int("S3DLIO_RANGE_THRESHOLD_MB", None)
        chunk = os.environ.get("S3DLIO_CHUNK_SIZE")
        return cls(
            threshold=None if threshold_mb is None else threshold_mb * MiB,
            chunk_size=parse_size(chunk) if chunk else None,
            concurrency=_env_int("S3DLIO_RANGE_CONCURRENCY", None),
        )

    def threshold_for(self, local: bool) -> int:
        """The split threshold in bytes for a local or a network backend."""
        if self.threshold is not None:
            return self.threshold
        return 64 * MiB if local else 32 * MiB

    def chunk_for(self, size: int, local: bool) -> int:
        """Range size for an object of ``size`` bytes."""
        if self.chunk_size is not None:
            return self.chunk_size
        if local:  # the original: 16 ranges per local file
            return max(MiB, -(-size // 16))
        if size < 16 * MiB:
            return MiB
        if size <= 256 * MiB:
            return 4 * MiB
        return 8 * MiB

    def concurrency_for(self, size: int, chunk: int) -> int:
        """Ranges in flight for an object of ``size`` bytes cut into ``chunk``-byte ranges."""
        parts = -(-size // chunk)
        if self.concurrency is not None:
            return max(1, min(self.concurrency, parts))
        cores = os.cpu_count() or 2
        return max(1, min(parts, max(4, 4 * cores), 32))


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    """Exponential backoff with full jitter for transient faults and throttling.

    Attributes:
        max_attempts: Attempts per request, the first included.
        base_delay: First backoff in seconds; doubles each attempt.
        max_delay: Cap on one backoff.
        max_total: Give up once this many seconds have passed since the first attempt.
    """

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 5.0
    max_total: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_total < 0:
            raise InvalidArgumentError("retry delays must be >= 0")

    @classmethod
    def from_env(cls) -> RetryConfig:
        """Read ``S3DLIO_MAX_RETRY_ATTEMPTS`` and ``S3DLIO_RETRY_MAX_SECS``."""
        return cls(
            max_attempts=_env_int("S3DLIO_MAX_RETRY_ATTEMPTS", 5) or 1,
            max_total=_env_float("S3DLIO_RETRY_MAX_SECS", 60.0),
        )


def _default_malloc_keep() -> int:
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        ram = 16 * GiB
    return min(2 * GiB, ram // 8 // MiB * MiB)


def _malloc_keep_from_env() -> int:
    mb = _env_int("S3DLIO_MALLOC_KEEP_MB", None)
    return _default_malloc_keep() if mb is None else mb * MiB


def _default_threads() -> int:
    return max(8, min(64, 4 * (os.cpu_count() or 2)))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Process-wide settings, read from the environment once (see the module table).

    Attributes:
        threads: Size of the shared I/O thread pool.
        max_connections: HTTP connections kept per endpoint.
        connect_timeout: Seconds to open a TCP connection.
        operation_timeout: Socket read timeout of one request, in seconds.
        oplog_level: zstd level of the op-log stream.
        huge_pages: Ask Linux for transparent huge pages for new buffers from 32 MiB up
            (:meth:`~s3dlio.io.buffers.BytesView.allocate`; ``docs/performance.md``).
        malloc_keep: Bytes of freed memory glibc keeps for reuse instead of returning them to
            the system (its mmap and trim thresholds), set once, at the first buffer
            allocation; 0 leaves ``malloc`` as it is. Default: 1/8 of the RAM, at most 2 GiB
            (a ``get_many`` batch up to that size is refilled without page faults).
        range: Range-engine configuration.
        retry: Retry policy.
    """

    threads: int = field(default_factory=_default_threads)
    max_connections: int | None = None
    connect_timeout: float = 10.0
    operation_timeout: float = 60.0
    oplog_level: int = 1
    huge_pages: bool = True
    malloc_keep: int = field(default_factory=_default_malloc_keep)
    range: RangeEngineConfig = field(default_factory=RangeEngineConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise InvalidArgumentError(f"S3DLIO_RT_THREADS must be >= 1, got {self.threads}")
        if self.malloc_keep < 0:
            raise InvalidArgumentError(
                f"S3DLIO_MALLOC_KEEP_MB must be >= 0, got {self.malloc_keep}"
            )

    @property
    def connections(self) -> int:
        """HTTP connections per endpoint: ``max_connections`` or the pool size."""
        return self.max_connections or self.threads

    @classmethod
    def from_env(cls) -> Settings:
        """Resolve every ``S3DLIO_*`` variable."""
        return cls(
            threads=_env_int("S3DLIO_RT_THREADS", None) or _default_threads(),
            max_connections=_env_int("S3DLIO_MAX_HTTP_CONNECTIONS", None),
            connect_timeout=_env_float("S3DLIO_CONNECT_TIMEOUT_SECS", 10.0),
            operation_timeout=_env_float("S3DLIO_OPERATION_TIMEOUT_SECS", 60.0),
            oplog_level=_env_int("S3DLIO_OPLOG_LEVEL", 1) or 1,
            huge_pages=_env_bool("S3DLIO_HUGE_PAGES", True),
            malloc_keep=_malloc_keep_from_env(),
            range=RangeEngineConfig.from_env(),
            retry=RetryConfig.from_env(),
        )


_settings: Settings | None = None


def settings() -> Settings:
    """The process-wide :class:`Settings`, read from the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings(new: Settings | None = None) -> None:
    """Replace the process-wide settings (``None`` re-reads the environment on next use).

    The default client's backends are rebuilt (their connections follow the new limits and
    timeouts); other clients read the settings when they next build their connections.
    """
    global _settings
    old, _settings = _settings, new
    if old is not None and new is not None and _network(old) == _network(new):
        return  # nothing a connection was built from has changed
    from .store import reset_backends  # the store layer sits on this module

    reset_backends()


def _network(cfg: Settings) -> tuple[int, float, float]:
    """The settings connections are built from."""
    return cfg.connections, cfg.connect_timeout, cfg.operation_timeout


def configure(**changes: Any) -> Settings:
    """Change process-wide settings from code; returns the new :class:`Settings`.

    Keywords are :class:`Settings` fields: ``threads``, ``max_connections``,
    ``connect_timeout``, ``operation_timeout``, ``oplog_level``, ``huge_pages``,
    ``malloc_keep``, ``range``
    (a :class:`RangeEngineConfig`) and ``retry`` (a :class:`RetryConfig`). Fields not given keep
    their current value (from the environment by default). A new pool size applies to pools
    created afterwards; backends rebuild their clients when network settings change.

    Example:
        ``s3dlio.configure(range=RangeEngineConfig(threshold="16MiB"), threads=32)``
    """
    unknown = set(changes) - {f.name for f in fields(Settings)}
    if unknown:
        raise InvalidArgumentError(f"unknown settings: {', '.join(sorted(unknown))}")
    new = replace(settings(), **changes)
    reset_settings(new)
    return new
