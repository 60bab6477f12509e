"""Settings of a checkpoint store, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgumentError
from ..io.config import MiB, parse_size
from ..io.writer import WriterOptions
from .manifest import parse_strategy

__all__ = ["CheckpointConfig"]


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """How a :class:`~s3dlio.checkpoint.CheckpointStore` lays out, writes and checks shards.

    Attributes:
        strategy: Shard key layout: ``"flat"``, ``"round_robin"`` (16 prefixes by rank) or
            ``"binary"`` (prefix from the rank's bits). Spreads load over S3 key partitions.
        compression_level: zstd level 1-22 for shards (``.bin.zst``); ``None``/``0`` stores
            them uncompressed.
        keep_last: After each commit keep only this many newest checkpoints (``None``: all).
        part_size: Upload part size (``"16MiB"`` accepted); the original's
            ``multipart_threshold`` maps here.
        max_in_flight: Parts of one shard uploading at once.
        verify: Check every shard's size and CRC32C when loading.
    """

    strategy: str = "flat"
    compression_level: int | None = None
    keep_last: int | None = None
    part_size: int | str = 16 * MiB
    max_in_flight: int = 4
    verify: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", parse_strategy(self.strategy))
        level = self.compression_level
        if level == 0:
            object.__setattr__(self, "compression_level", None)
        elif level is not None and not 1 <= int(level) <= 22:
            raise InvalidArgumentError(f"compression_level must be 1-22 (or None), got {level}")
        if self.keep_last is not None and int(self.keep_last) < 1:
            raise InvalidArgumentError(f"keep_last must be >= 1 (or None), got {self.keep_last}")
        object.__setattr__(self, "part_size", parse_size(self.part_size))
        if int(self.max_in_flight) < 1:
            raise InvalidArgumentError(f"max_in_flight must be >= 1, got {self.max_in_flight}")

    def writer_options(self) -> WriterOptions:
        """The streaming-writer options shards are written with."""
        return WriterOptions(
            compression="zstd" if self.compression_level else None,
            compression_level=self.compression_level or 3,
            part_size=self.part_size,
            max_in_flight=self.max_in_flight,
        )
