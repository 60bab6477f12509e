"""s3torchconnector's names over s3dlio: change one import, keep the code.

``from s3torchconnector import S3Checkpoint`` becomes
``from s3dlio.compat.s3torchconnector import S3Checkpoint`` (and ``s3torchconnector.dcp``
becomes :mod:`s3dlio.compat.s3torchconnector.dcp`). Every URI scheme s3dlio serves works
through these names, not only ``s3://``; ``region``/``endpoint``/``s3client_config`` select an
:class:`s3dlio.Client` (the default client when none is given). Errors are s3dlio's
(:data:`S3Exception` is :class:`s3dlio.S3DlioError`). See ``docs/checkpoint.md``.
"""

from __future__ import annotations

from ._datasets import S3Checkpoint, S3IterableDataset, S3MapDataset
from ._io import (
    DCPOptimizedConstructor,
    ListObjectResult,
    ObjectInfo,
    RangedS3Reader,
    S3Client,
    S3ClientConfig,
    S3Exception,
    S3Reader,
    S3ReaderConstructor,
    S3Writer,
    SequentialS3Reader,
)

__all__ = [
    "DCPOptimizedConstructor",
    "ListObjectResult",
    "ObjectInfo",
    "RangedS3Reader",
    "S3Checkpoint",
    "S3Client",
    "S3ClientConfig",
    "S3Exception",
    "S3IterableDataset",
    "S3MapDataset",
    "S3Reader",
    "S3ReaderConstructor",
    "S3Writer",
    "SequentialS3Reader",
]
