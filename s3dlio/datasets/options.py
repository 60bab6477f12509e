"""Loader configuration: the frozen :class:`LoaderOptions`, and the original's builder.

Every loader, dataset and iterable takes a :class:`LoaderOptions`, a plain ``dict`` with the
same keys (the original's key names such as ``shard_rank`` and ``timeout_seconds`` are
accepted too), or a :class:`PyLoaderOptions` builder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentTypeError, InvalidArgumentError, UnsupportedOperationError
from ..io.config import MiB, parse_size
from .cancel import CancellationToken

__all__ = ["LoaderOptions", "PyLoaderOptions", "READER_MODES", "coerce_options"]

#: Ways a loader fetches one object.
READER_MODES = ("sequential", "range")

#: The original's option names that mean the same as one of ours.
_ALIASES = {
    "shard_rank": "rank",
    "sampler_rank": "rank",
    "shard_world_size": "world_size",
    "sampler_world_size": "world_size",
    "timeout_seconds": "timeout",
    "generator_seed": "seed",
    "in_order": "ordered",
}

#: The original's options that concern its native runtime or the PyTorch DataLoader, not the
#: loader itself: accepted (so option dicts move over unchanged) and ignored.
_IGNORED = frozenset(
    {
        "pin_memory",
        "persistent_workers",
        "non_blocking",
        "enable_transforms",
        "collate_buffer_size",
        "debug_mode",
        "memory_format",
        "gpu_optimized",
        "multiprocessing_context",
        "sampler_type",
        "sampler_replacement",
        "loading_mode",
        "worker_id",
        "num_workers_pytorch",
    }
)


@dataclass(frozen=True, kw_only=True)
class LoaderOptions:
    """How a loader lists, orders, shards and fetches objects.

    Attributes:
        batch_size: Items per batch (``async for`` yields batches; for PyTorch iterable
            datasets, set it to the ``DataLoader``'s batch size so that batches arrive in the
            sampler's order and resume is exact).
        drop_last: Drop a last batch shorter than ``batch_size``.
        shuffle: Visit items in a pseudo-random order, a pure function of
            ``(seed, epoch)``.
        seed: Seed of the shuffle.
        prefetch: Items requested ahead of the consumer (in flight or ready): the memory
            bound of the loader, and the ceiling of its concurrency.
        num_workers: Concurrent requests. ``0`` (the default): the loader chooses, starting
            at ``min(4, prefetch)`` and moving between 1 and ``prefetch`` with the measured
            throughput (see ``loader.tuning``). A number fixes it, unless ``auto_tune`` is
            on, where it is the start.
        ordered: Deliver items in sampler order (``True``) or as they complete.
        reader_mode: ``"sequential"``: one GET per object (the storage layer still splits
            very large objects). ``"range"``: every object is fetched as ``part_size`` range
            requests, up to ``max_inflight_parts`` of one object at a time.
        part_size: Bytes per range request in ``"range"`` mode (int or ``"8MiB"``).
        max_inflight_parts: Range requests of one object in flight at once.
        rank: This process's shard (``None``: ``torch.distributed``, then JAX, then the
            ``RANK`` environment variable, else 0).
        world_size: Number of shards (``None``: detected like ``rank``).
        auto_tune: Adapt concurrency even when ``num_workers`` is set, and the part size in
            ``"range"`` mode, to the measured throughput while running; see
            ``loader.tuning``.
        timeout: Seconds to wait for one item before raising
            :class:`~s3dlio.errors.OperationTimeoutError` (``None`` = no limit).
        cancellation_token: Stops the loader when cancelled (may be shared by loaders).
        endpoints: Base URIs of 1-32 endpoints holding the same data (``s3://host:port/bucket/``
            names a server): requests are balanced over them, with failover (see
            :class:`s3dlio.MultiEndpointStore`). ``None``: the client's one endpoint.
        strategy: How ``endpoints`` are balanced: ``"round_robin"`` or ``"least_connections"``.
    """

    batch_size: int = 1
    drop_last: bool = False
    shuffle: bool = False
    seed: int = 0
    prefetch: int = 8
    num_workers: int = 0
    ordered: bool = True
    reader_mode: str = "sequential"
    part_size: int = 8 * MiB
    max_inflight_parts: int = 4
    rank: int | None = None
    world_size: int | None = None
    auto_tune: bool = False
    timeout: float | None = None
    cancellation_token: CancellationToken | None = field(default=None, compare=False)
    endpoints: tuple[str, ...] | None = None
    strategy: str = "round_robin"

    def __post_init__(self) -> None:
        if self.endpoints is not None:
            eps = (self.endpoints,) if isinstance(self.endpoints, str) else self.endpoints
            object.__setattr__(self, "endpoints", tuple(str(e) for e in eps))
            if not 1 <= len(self.endpoints) <= 32:
                raise InvalidArgumentError(
                    f"endpoints must list 1 to 32 URIs, got {len(self.endpoints)}"
                )
        if self.strategy not in ("round_robin", "least_connections"):
            raise InvalidArgumentError(
                f"strategy must be 'round_robin' or 'least_connections', got {self.strategy!r}"
            )
        object.__setattr__(self, "part_size", parse_size(self.part_size))
        object.__setattr__(self, "seed", int(self.seed or 0))
        for name in ("batch_size", "prefetch", "max_inflight_parts"):
            if int(getattr(self, name)) < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise InvalidArgumentError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.reader_mode not in READER_MODES:
            raise InvalidArgumentError(
                f"reader_mode must be one of {READER_MODES}, got {self.reader_mode!r}"
            )
        if self.part_size < 4096:
            raise InvalidArgumentError(f"part_size must be >= 4096 bytes, got {self.part_size}")
        if self.world_size is not None and self.world_size < 1:
            raise InvalidArgumentError(f"world_size must be >= 1, got {self.world_size}")
        if self.rank is not None:
            if self.rank < 0:
                raise InvalidArgumentError(f"rank must be >= 0, got {self.rank}")
            if self.world_size is not None and self.rank >= self.world_size:
                raise InvalidArgumentError(
                    f"rank {self.rank} is not below world_size {self.world_size}"
                )
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds, got {self.timeout}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LoaderOptions:
        """Options from a dict of our names or the original's (unknown keys are an error).

        Raises:
            InvalidArgumentError: a key no loader option has, or a value out of range.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = _ALIASES.get(key, key)
            if name in known:
                if value is not None or name in (
                    "rank",
                    "world_size",
                    "timeout",
                    "cancellation_token",
                ):
                    kwargs[name] = value
            elif key not in _IGNORED:
                raise InvalidArgumentError(
                    f"unknown loader option {key!r}; known: {', '.join(sorted(known))}"
                )
        return cls(**kwargs)

    def replace(self, **changes: Any) -> LoaderOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every option as a plain dict (the token is left out)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("cancellation_token")
        return out

    def client_for(self, client: Any = None) -> Any:
        """The client a loader reads through: one balancing over :attr:`endpoints` (built on
        ``client``'s options) when they are set, else ``client`` itself."""
        if not self.endpoints:
            return client
        from ..io.multi import store_for_endpoints

        return store_for_endpoints(self.endpoints, self.strategy, client).client

    @property
    def tunes_concurrency(self) -> bool:
        """Whether the loader adapts its concurrency (``auto_tune``, or ``num_workers=0``)."""
        return self.auto_tune or self.num_workers == 0

    @property
    def concurrency(self) -> int:
        """Requests in flight when not tuning: ``num_workers`` capped by ``prefetch``."""
        return min(self.num_workers or self.prefetch, self.prefetch)

    @property
    def initial_concurrency(self) -> int:
        """Where tuning starts."""
        return min(self.num_workers or min(4, self.prefetch), self.prefetch)


class PyLoaderOptions:
    """The original's chainable builder (``PyLoaderOptions().with_batch_size(4).shuffle(True, 7)``).

    Each method changes the builder and returns it; anything that takes options takes the
    builder too (:meth:`to_options` gives the frozen :class:`LoaderOptions`). Methods about the
    original's native runtime or the PyTorch ``DataLoader`` (``pin_memory``, ``use_spawn``,
    ...) are accepted and have no effect on a loader.
    """

    def __init__(self, **values: Any) -> None:
        self._values: dict[str, Any] = LoaderOptions.from_dict(values).to_dict()
        self._ignored: dict[str, Any] = {}

    def to_options(self) -> LoaderOptions:
        """The frozen :class:`LoaderOptions` this builder describes."""
        return LoaderOptions(**self._values)

    def to_dict(self) -> dict[str, Any]:
        """Every option as a plain dict."""
        return {**self._values, **self._ignored}

    def _set(self, **values: Any) -> PyLoaderOptions:
        self._values = LoaderOptions(**{**self._values, **values}).to_dict()
        return self

    def _note(self, name: str, value: Any) -> PyLoaderOptions:
        self._ignored[name] = value
        return self

    # -- setters (the original's names) --------------------------------------------------------
    def with_batch_size(self, size: int) -> PyLoaderOptions:
        """Set ``batch_size``."""
        return self._set(batch_size=size)

    def drop_last(self, yes: bool = True) -> PyLoaderOptions:
        """Set ``drop_last``."""
        return self._set(drop_last=yes)

    def shuffle(self, on: bool = True, seed: int = 0) -> PyLoaderOptions:
        """Set ``shuffle`` and its ``seed``."""
        return self._set(shuffle=on, seed=seed)

    def with_generator_seed(self, seed: int) -> PyLoaderOptions:
        """Set ``seed``."""
        return self._set(seed=seed)

    def prefetch(self, n: int) -> PyLoaderOptions:
        """Set ``prefetch``."""
        return self._set(prefetch=n)

    def num_workers(self, n: int) -> PyLoaderOptions:
        """Set ``num_workers``."""
        return self._set(num_workers=n)

    def auto_tune(self, on: bool = True) -> PyLoaderOptions:
        """Set ``auto_tune``."""
        return self._set(auto_tune=on)

    def with_timeout(self, seconds: float) -> PyLoaderOptions:
        """Set ``timeout``."""
        return self._set(timeout=seconds)

    def distributed_sampling(self, rank: int, world_size: int) -> PyLoaderOptions:
        """Shard by ``rank`` of ``world_size``."""
        return self._set(rank=rank, world_size=world_size)

    distributed_optimized = distributed_sampling

    def random_sampling(self, replacement: bool = False) -> PyLoaderOptions:
        """Shuffle (sampling with replacement is not offered: items are seen exactly once)."""
        if replacement:
            raise UnsupportedOperationError(
                "sampling with replacement is not supported; every item is seen once per epoch"
            )
        return self._set(shuffle=True)

    def pin_memory(self, pin: bool = True) -> PyLoaderOptions:
        """Accepted for compatibility (a ``DataLoader`` option)."""
        return self._note("pin_memory", pin)

    def persistent_workers(self, persistent: bool = True) -> PyLoaderOptions:
        """Accepted for compatibility (a ``DataLoader`` option)."""
        return self._note("persistent_workers", persistent)

    def non_blocking(self, non_blocking: bool = True) -> PyLoaderOptions:
        """Accepted for compatibility (a device-copy option)."""
        return self._note("non_blocking", non_blocking)

    def enable_transforms(self, enable: bool = True) -> PyLoaderOptions:
        """Accepted for compatibility (pass ``transform=`` to a dataset instead)."""
        return self._note("enable_transforms", enable)

    def collate_buffer_size(self, size: int) -> PyLoaderOptions:
        """Accepted for compatibility."""
        return self._note("collate_buffer_size", size)

    def channels_first(self) -> PyLoaderOptions:
        """Accepted for compatibility."""
        return self._note("memory_format", "channels_first")

    def channels_last(self) -> PyLoaderOptions:
        """Accepted for compatibility."""
        return self._note("memory_format", "channels_last")

    def gpu_optimized(self) -> PyLoaderOptions:
        """Accepted for compatibility."""
        return self._note("gpu_optimized", True)

    def debug_mode(self) -> PyLoaderOptions:
        """Accepted for compatibility."""
        return self._note("debug_mode", True)

    def use_fork(self) -> PyLoaderOptions:
        """Accepted for compatibility (a ``DataLoader`` option)."""
        return self._note("multiprocessing_context", "fork")

    def use_spawn(self) -> PyLoaderOptions:
        """Accepted for compatibility (a ``DataLoader`` option)."""
        return self._note("multiprocessing_context", "spawn")

    def use_forkserver(self) -> PyLoaderOptions:
        """Accepted for compatibility (a ``DataLoader`` option)."""
        return self._note("multiprocessing_context", "forkserver")

    # -- values (the original's names) ---------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Items per batch."""
        return int(self._values["batch_size"])

    @property
    def drop_last_value(self) -> bool:
        """Whether a short last batch is dropped."""
        return bool(self._values["drop_last"])

    @property
    def shuffle_value(self) -> bool:
        """Whether items are shuffled."""
        return bool(self._values["shuffle"])

    @property
    def seed(self) -> int:
        """Shuffle seed."""
        return int(self._values["seed"])

    @property
    def prefetch_value(self) -> int:
        """Items requested ahead."""
        return int(self._values["prefetch"])

    @property
    def num_workers_value(self) -> int:
        """Concurrent requests."""
        return int(self._values["num_workers"])

    @property
    def shard_rank(self) -> int | None:
        """Shard of this process."""
        return self._values["rank"]  # type: ignore[no-any-return,unused-ignore]

    @property
    def shard_world_size(self) -> int | None:
        """Number of shards."""
        return self._values["world_size"]  # type: ignore[no-any-return,unused-ignore]

    @property
    def timeout_seconds(self) -> float | None:
        """Per-item timeout."""
        return self._values["timeout"]  # type: ignore[no-any-return,unused-ignore]

    @property
    def pin_memory_value(self) -> bool:
        """The accepted ``pin_memory`` setting."""
        return bool(self._ignored.get("pin_memory", False))

    @property
    def persistent_workers_value(self) -> bool:
        """The accepted ``persistent_workers`` setting."""
        return bool(self._ignored.get("persistent_workers", False))

    @property
    def non_blocking_value(self) -> bool:
        """The accepted ``non_blocking`` setting."""
        return bool(self._ignored.get("non_blocking", False))

    def __repr__(self) -> str:
        return f"PyLoaderOptions({self.to_options()!r})"


def coerce_options(
    opts: LoaderOptions | PyLoaderOptions | Mapping[str, Any] | None = None, **overrides: Any
) -> LoaderOptions:
    """Turn any accepted form of options (or ``None``) into :class:`LoaderOptions`.

    Keyword ``overrides`` that are not ``None`` replace the corresponding fields.
    """
    if opts is None:
        base = LoaderOptions()
    elif isinstance(opts, LoaderOptions):
        base = opts
    elif isinstance(opts, PyLoaderOptions):
        base = opts.to_options()
    elif isinstance(opts, Mapping):
        base = LoaderOptions.from_dict(opts)
    else:
        raise ArgumentTypeError(
            f"loader options must be LoaderOptions, a dict or PyLoaderOptions, "
            f"not {type(opts).__name__}"
        )
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.replace(**changes) if changes else base
