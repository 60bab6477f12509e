"""The original's ``s3dlio.jax_tf`` module: JAX iterables and a ``tf.data`` builder.

``JaxIterable`` / ``S3JaxIterable`` are :mod:`s3dlio.jax`'s; :func:`make_tf_dataset` needs
TensorFlow (not a dependency of s3dlio: ``pip install tensorflow``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on first use: s3dlio.jax imports jax
    from .jax import JaxIterable, S3JaxIterable

__all__ = ["JaxIterable", "S3JaxIterable", "make_tf_dataset"]


def __getattr__(name: str) -> Any:
    if name in ("JaxIterable", "S3JaxIterable"):
        from . import jax as _jax

        return getattr(_jax, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_tf_dataset(
    uri: str,
    *,
    prefetch: int = 8,
    num_workers: int = 0,
    batch_size: int = 1,
    drop_last: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    auto_tune: bool = False,
    map_fn: Callable[[Any], Any] | None = None,
    writable: bool = False,
    suppress_nonwritable_warning: bool = True,
) -> Any:
    """A ``tf.data.Dataset`` of the objects ``uri`` selects, each a 1-D ``tf.uint8`` tensor
    (batched when ``batch_size > 1``), read by an s3dlio loader (any backend).

    Args:
        uri: Prefix, object or glob.
        prefetch: Objects fetched ahead.
        num_workers: Concurrent requests (``0``: tuned).
        batch_size: Objects per batch (ragged objects: use ``map_fn`` to make them equal).
        drop_last: Drop a short last batch.
        shuffle: Shuffle the object order per epoch (seeded by ``seed``).
        seed: The shuffle's seed.
        auto_tune: Tune concurrency while running.
        map_fn: Applied to each object's array (NumPy) before it becomes a tensor.
        writable: Give writable arrays (a copy; otherwise read-only views become tensors).
        suppress_nonwritable_warning: Accepted for the original's signature.

    Raises:
        ImportError: TensorFlow is not installed (named, with the install line).
    """
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ImportError(
            "make_tf_dataset needs TensorFlow, which is not installed: pip install 's3dlio[tensorflow]'"
        ) from exc
    import numpy as np

    from .datasets.loader import create_async_loader

    opts = {
        "prefetch": prefetch,
        "num_workers": num_workers,
        "shuffle": shuffle,
        "seed": seed,
        "auto_tune": auto_tune,
    }

    def items() -> Iterator[Any]:
        for data in create_async_loader(uri, opts):
            array = np.frombuffer(data, dtype=np.uint8)
            if writable:
                array = array.copy()
            yield map_fn(array) if map_fn is not None else array

    spec = tf.TensorSpec(shape=(None,), dtype=tf.uint8)
    dataset = tf.data.Dataset.from_generator(items, output_signature=spec)
    if batch_size > 1:
        dataset = dataset.batch(batch_size, drop_remainder=drop_last)
    return dataset.prefetch(tf.data.AUTOTUNE)
