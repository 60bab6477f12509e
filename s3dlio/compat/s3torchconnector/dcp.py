"""s3torchconnector's ``s3torchconnector.dcp`` names over :mod:`s3dlio.torch.dcp`.

``S3StorageWriter(region, path, ...)`` / ``S3StorageReader(region, path)`` are
:class:`s3dlio.torch.dcp.StorageWriter` / :class:`~s3dlio.torch.dcp.StorageReader` (any URI
scheme, CRC32C-verified loads, ``.metadata`` written last). The reader also loads checkpoints
that s3torchconnector itself wrote (``torch.save`` per item); s3torchconnector's reader cannot
load what this writer writes (raw tensor bytes).
"""

from __future__ import annotations

import os
from typing import Any

from ...torch import dcp as _dcp
from ...torch._dcp_layout import (
    NumericPrefixStrategy as _Numeric,
)
from ...torch._dcp_layout import (
    PrefixStrategy,
)
from ...torch._dcp_layout import (
    RoundRobinPrefixStrategy as _RoundRobin,
)
from ._io import S3ClientConfig, client_for

__all__ = [
    "BinaryPrefixStrategy",
    "DefaultPrefixStrategy",
    "HexPrefixStrategy",
    "NumericPrefixStrategy",
    "RoundRobinPrefixStrategy",
    "S3PrefixStrategyBase",
    "S3StorageReader",
    "S3StorageWriter",
]

#: Base of the prefix strategies: ``generate_prefix(rank) -> str``.
S3PrefixStrategyBase = PrefixStrategy
#: ``__<rank>_`` beside ``.metadata``.
DefaultPrefixStrategy = PrefixStrategy


class NumericPrefixStrategy(_Numeric):
    """Ranks over reversed base-``base`` numbers (s3torchconnector's keywords)."""

    def __init__(
        self,
        base: int,
        epoch_num: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(
            base, epoch=epoch_num, min_prefix_length=min_prefix_length, prefix_count=prefix_count
        )


class BinaryPrefixStrategy(NumericPrefixStrategy):
    """Base-2 spread prefixes."""

    def __init__(
        self,
        epoch_num: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(2, epoch_num, min_prefix_length, prefix_count)


class HexPrefixStrategy(NumericPrefixStrategy):
    """Base-16 spread prefixes."""

    def __init__(
        self,
        epoch_num: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(16, epoch_num, min_prefix_length, prefix_count)


class RoundRobinPrefixStrategy(_RoundRobin):
    """Rank ``r`` under ``user_prefixes[r % len(user_prefixes)]``."""

    def __init__(self, user_prefixes: list[str], epoch_num: int | None = None) -> None:
        super().__init__(user_prefixes, epoch=epoch_num)


class S3StorageWriter(_dcp.StorageWriter):
    """DCP writer (s3torchconnector's signature) over any URI.

    Args:
        region: Signing region (default: the environment's).
        path: The checkpoint URI.
        s3client_config: Its ``part_size`` sizes upload parts.
        prefix_strategy: One of the strategies above (default: :class:`DefaultPrefixStrategy`).
        thread_count: Shard objects per rank written at once.
        kwargs: ``FileSystemWriter``'s options; ``cache_staged_state_dict`` is used, the
            others (``single_file_per_rank``, ``sync_files``, ``overwrite``,
            ``per_thread_copy_ahead``) have no meaning here and are ignored.
    """

    def __init__(
        self,
        region: str | None,
        path: str | os.PathLike[str],
        s3client_config: S3ClientConfig | None = None,
        prefix_strategy: Any = None,
        thread_count: int = 1,
        **kwargs: Any,
    ) -> None:
        config = s3client_config or S3ClientConfig()
        super().__init__(
            path,
            client=client_for(region, None, s3client_config),
            prefix_strategy=prefix_strategy,
            thread_count=thread_count,
            part_size=config.part_size,
            cache_staged_state_dict=bool(kwargs.get("cache_staged_state_dict", False)),
        )


class S3StorageReader(_dcp.StorageReader):
    """DCP reader (s3torchconnector's signature) over any URI.

    ``reader_constructor`` is accepted and ignored: the reader always fetches only the byte
    ranges each rank needs, concurrently.
    """

    def __init__(
        self,
        region: str | None,
        path: str | os.PathLike[str],
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: Any = None,
    ) -> None:
        super().__init__(path, client=client_for(region, None, s3client_config))
