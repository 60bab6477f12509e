"""JAX input pipelines over any storage URI: see :mod:`s3dlio.datasets.jax`.

Importing this module imports JAX; ``import s3dlio`` alone does not.
"""

from __future__ import annotations

from .datasets.jax import JaxIterable, S3JaxIterable, stack_batch

__all__ = ["JaxIterable", "S3JaxIterable", "stack_batch"]
