"""PyTorch datasets over any storage URI (:mod:`s3dlio.datasets.torch`); submodules add more.

Importing this module imports PyTorch; ``import s3dlio`` alone does not.
"""

from __future__ import annotations

from ..datasets.torch import *  # noqa: F403 - this module is the public name of that one
from ..datasets.torch import __all__ as __all__
