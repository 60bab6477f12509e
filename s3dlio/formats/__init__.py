"""Data formats read through range requests on any backend.

- :mod:`s3dlio.formats.tfrecord`: TFRecord reader (CRC-verified, by index), writer, index files,
  ``tf.train.Example`` decoding to NumPy.
- :mod:`s3dlio.formats.hdf5`: ``open_hdf5(uri)``, h5py over a :class:`~s3dlio.io.rangefile.RangeFile`.
- :mod:`s3dlio.formats.npz`: NPZ members loaded through the zip central directory.
- :mod:`s3dlio.formats.raw`: whole objects or fixed-size records.
- :mod:`s3dlio.formats.generate`: ``put()``, synthetic raw/npz/tfrecord/hdf5 datasets.

Submodules are imported on first use, so ``import s3dlio.formats`` never imports h5py.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["generate", "hdf5", "npz", "raw", "tfrecord"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
