"""JAX input pipelines over any storage URI (re-exported as :mod:`s3dlio.jax`).

:class:`JaxIterable` streams objects through the async loader (background prefetch on the
loader's threads), sharded across JAX processes by ``jax.process_index()`` /
``jax.process_count()`` (or explicit ``rank``/``world_size``), shuffled per epoch and
resumable like every s3dlio dataset. It yields NumPy ``uint8`` arrays over the fetched
buffers (no copy), or ``jax.Array`` with ``output="jax"``.

Given a :class:`~s3dlio.datasets.streaming.StreamingDataset` instead of a URI, it iterates
that dataset's records (shards read sequentially, shuffle buffer, its resume state), batched the
same way: ``bytes`` records become ``uint8`` arrays, decoded records pass as they are.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import numpy as np

from ..errors import InvalidArgumentError

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "s3dlio.jax needs JAX; install it with: pip install 's3dlio[jax]'", name="jax"
    ) from exc

from ..io.uri import ObjectURI
from .dataset import ObjectDataset, create_dataset
from .loader import AsyncLoader
from .options import LoaderOptions, PyLoaderOptions, coerce_options
from .sampling import EpochSampler, Resumable, detect_rank_world

__all__ = ["JaxIterable", "S3JaxIterable", "stack_batch"]

Options = LoaderOptions | PyLoaderOptions | Mapping[str, Any] | None
OUTPUTS = ("numpy", "jax")


def stack_batch(items: list[Any]) -> Any:
    """One array ``[B, ...]`` when every item has the same shape and dtype, else the list."""
    first = items[0]
    if all(isinstance(a, np.ndarray) for a in items) and all(
        a.shape == first.shape and a.dtype == first.dtype for a in items
    ):
        return np.stack(items)
    return items


class JaxIterable(Resumable):
    """Iterates the objects a URI selects as NumPy arrays or ``jax.Array`` batches.

    With ``batch_size=1`` it yields one array per object (as the original did); with a larger
    ``batch_size`` it yields batches: one stacked array ``[B, L]`` when the items have equal
    shapes (after ``transform``), else a list.

    Args:
        uri: Prefix, exact object or glob, on any backend; or a
            :class:`~s3dlio.datasets.streaming.StreamingDataset` (its own options then apply:
            ``loader_opts`` gives only ``batch_size`` and ``drop_last``).
        loader_opts: :class:`~s3dlio.LoaderOptions` (or dict).
        transform: Called on each item (a 1-D ``uint8`` array) before batching.
        output: ``"numpy"`` or ``"jax"`` (``jax.numpy.asarray`` of each item or batch).
        writable: Accepted for compatibility (the arrays are writable already).
        suppress_nonwritable_warning: Accepted for compatibility.
        dataset: Use these objects instead of listing ``uri``.
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        *,
        loader_opts: Options = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        output: str = "numpy",
        writable: bool = False,
        suppress_nonwritable_warning: bool = True,
        dataset: ObjectDataset | None = None,
    ) -> None:
        if output not in OUTPUTS:
            raise InvalidArgumentError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.options = opts = coerce_options(loader_opts)
        self.transform = transform
        self.output = output
        self._loader: AsyncLoader | None = None
        self.stream: Any = None
        if _is_stream(uri):
            self.stream = cast(Any, uri)
            self.dataset = cast(Any, uri)
            self.sampler = self.stream.sampler
            return
        self.dataset = dataset if dataset is not None else create_dataset(uri, opts)
        rank, world = opts.rank, opts.world_size
        if rank is None:
            rank, world = detect_rank_world()
        self.sampler = EpochSampler(
            len(self.dataset), shuffle=opts.shuffle, seed=opts.seed, rank=rank, world_size=world
        )

    @classmethod
    def from_prefix(
        cls,
        uri: str | ObjectURI,
        *,
        prefetch: int = 8,
        num_workers: int = 0,
        batch_size: int = 1,
        drop_last: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        auto_tune: bool = False,
        transform: Callable[[np.ndarray], Any] | None = None,
        writable: bool = False,
        suppress_nonwritable_warning: bool = True,
        output: str = "numpy",
        rank: int | None = None,
        world_size: int | None = None,
        reader_mode: str = "sequential",
        part_size: int | str = 8 << 20,
        max_inflight_parts: int = 4,
        ordered: bool = True,
        timeout: float | None = None,
        cancellation_token: Any = None,
    ) -> JaxIterable:
        """The original's constructor: loader options as keywords."""
        opts = LoaderOptions(
            batch_size=batch_size,
            drop_last=drop_last,
            shuffle=shuffle,
            seed=seed,
            num_workers=num_workers,
            prefetch=prefetch,
            auto_tune=auto_tune,
            rank=rank,
            world_size=world_size,
            reader_mode=reader_mode,
            part_size=part_size,  # type: ignore[arg-type]
            max_inflight_parts=max_inflight_parts,
            ordered=ordered,
            timeout=timeout,
            cancellation_token=cancellation_token,
        )
        return cls(
            uri,
            loader_opts=opts,
            transform=transform,
            output=output,
            writable=writable,
            suppress_nonwritable_warning=suppress_nonwritable_warning,
        )

    @property
    def loader(self) -> AsyncLoader:
        """The loader behind the iterator (tuning, cancel, close)."""
        if self._loader is None:
            self._loader = AsyncLoader(self.dataset, self.options, sampler=self.sampler)
        return self._loader

    def _finish(self, value: Any) -> Any:
        if self.output == "jax":
            if isinstance(value, list):
                return [jnp.asarray(v) for v in value]
            return jnp.asarray(value)
        return value

    def __iter__(self) -> Iterator[Any]:
        size, drop_last = self.options.batch_size, self.options.drop_last
        passage: Any = iter(self.stream) if self.stream is not None else iter(self.loader)
        batch: list[Any] = []
        try:
            for view in passage:
                item = _as_item(view)
                if self.transform is not None:
                    item = self.transform(item)
                if size == 1:
                    yield self._finish(item)
                    continue
                batch.append(item)
                if len(batch) == size:
                    yield self._finish(stack_batch(batch))
                    batch = []
            if batch and not drop_last:
                yield self._finish(stack_batch(batch))
        finally:
            passage.close()

    def __len__(self) -> int:
        """Items (``batch_size=1``) or batches this process visits per epoch.

        Raises:
            TypeError: over a streaming dataset (its record count is known only once read).
        """
        if self.stream is not None:
            raise TypeError("len() of a JaxIterable over a StreamingDataset is not known")
        items = len(self.sampler)
        size = self.options.batch_size
        if size == 1:
            return items
        return items // size if self.options.drop_last else -(-items // size)

    def _epoch_sampler(self) -> EpochSampler:
        return self.sampler

    @property
    def process_index(self) -> int:
        """The JAX process this iterator serves (from the sampler's layout)."""
        return self.sampler.layout().rank

    @property
    def devices(self) -> list[Any]:
        """This process's local JAX devices (where ``output="jax"`` arrays land)."""
        return list(jax.local_devices())


def _is_stream(source: Any) -> bool:
    if isinstance(source, (str, ObjectURI)) or "s3dlio.datasets.streaming" not in sys.modules:
        return False
    return isinstance(source, sys.modules["s3dlio.datasets.streaming"].StreamingDataset)


def _as_item(value: Any) -> Any:
    """A loader's buffer or a streamed raw record as a ``uint8`` array; anything else as is."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(value, dtype=np.uint8)
    return value


S3JaxIterable = JaxIterable
