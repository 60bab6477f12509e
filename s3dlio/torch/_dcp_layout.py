"""How :mod:`s3dlio.torch.dcp` lays a checkpoint out: key prefixes, item records, byte spans.

Kept apart from the storage classes so that the naming rules (shared with
:mod:`s3dlio.compat.s3torchconnector.dcp`) and the range arithmetic can be read and tested on
their own. Nothing here does I/O.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import crc32c
import torch
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.planner import ReadItem, WriteItem, WriteItemType

from ..errors import IntegrityError, InvalidArgumentError
from ..io.buffers import BytesView

__all__ = [
    "CRC_BLOCK",
    "BinaryPrefixStrategy",
    "DefaultPrefixStrategy",
    "HexPrefixStrategy",
    "ItemLocation",
    "Need",
    "NumericPrefixStrategy",
    "PrefixStrategy",
    "RoundRobinPrefixStrategy",
    "block_crcs",
    "make_prefix_strategy",
    "merge_spans",
    "needed_span",
    "parse_metadata",
    "plan_objects",
    "split_items",
]

_MERGE_GAP = 256 << 10  # ranges of one object closer than this are read as one

#: Bytes covered by one recorded CRC32C; a ranged read is widened to whole blocks to verify.
CRC_BLOCK = 4 << 20


# -- prefix strategies --------------------------------------------------------------------------


class PrefixStrategy:
    """Names the key prefix of each rank's shard objects, relative to the checkpoint URI.

    Call it with a rank (and, optionally, the world size) to get a prefix such as ``"__3_"``
    or ``"0100000000/__3_"``; shard objects are named ``<prefix><n>_<save tag>.distcp``.
    """

    def __call__(self, rank: int, world_size: int | None = None) -> str:
        return self.generate_prefix(rank, world_size)

    def generate_prefix(self, rank: int, world_size: int | None = None) -> str:
        """The prefix of ``rank``'s objects."""
        return f"__{rank}_"


DefaultPrefixStrategy = PrefixStrategy


def _epoch_part(epoch: int | None) -> str:
    return "" if epoch is None else f"epoch_{epoch}/"


class NumericPrefixStrategy(PrefixStrategy):
    """Ranks spread over ``prefix_count`` leading key prefixes: a number in ``base``, reversed.

    The digits are reversed so that consecutive ranks differ in the first character, which is
    what S3 partitions its request rate on (s3torchconnector's layout).

    Args:
        base: 2 or 16.
        epoch: Adds ``epoch_<n>/`` after the spread prefix.
        min_prefix_length: Digits at least (zero-padded).
        prefix_count: Distinct prefixes (default: the world size).
    """

    def __init__(
        self,
        base: int,
        *,
        epoch: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        if base not in (2, 16):
            raise InvalidArgumentError(f"base must be 2 or 16, got {base!r}")
        if not isinstance(min_prefix_length, int) or min_prefix_length < 1:
            raise InvalidArgumentError(
                f"min_prefix_length must be a positive integer, got {min_prefix_length!r}"
            )
        if prefix_count is not None and (not isinstance(prefix_count, int) or prefix_count < 1):
            raise InvalidArgumentError(
                f"prefix_count must be a positive integer, got {prefix_count!r}"
            )
        if epoch is not None and not isinstance(epoch, int):
            raise InvalidArgumentError(f"epoch must be None or an integer, got {epoch!r}")
        self.base = base
        self.epoch = epoch
        self.min_prefix_length = min_prefix_length
        self.prefix_count = prefix_count

    def generate_prefix(self, rank: int, world_size: int | None = None) -> str:
        count = self.prefix_count or world_size or 1
        digits = max(self.min_prefix_length, _digits(count, self.base))
        spec = f"0{digits}{'b' if self.base == 2 else 'x'}"
        return f"{format(rank % count, spec)[::-1]}/{_epoch_part(self.epoch)}__{rank}_"


def _digits(count: int, base: int) -> int:
    length, size = 1, base
    while size < count:
        length += 1
        size *= base
    return length


class HexPrefixStrategy(NumericPrefixStrategy):
    """:class:`NumericPrefixStrategy` in base 16."""

    def __init__(
        self,
        *,
        epoch: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(
            16, epoch=epoch, min_prefix_length=min_prefix_length, prefix_count=prefix_count
        )


class BinaryPrefixStrategy(NumericPrefixStrategy):
    """:class:`NumericPrefixStrategy` in base 2."""

    def __init__(
        self,
        *,
        epoch: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(
            2, epoch=epoch, min_prefix_length=min_prefix_length, prefix_count=prefix_count
        )


class RoundRobinPrefixStrategy(PrefixStrategy):
    """Rank ``r`` writes under ``prefixes[r % len(prefixes)]``.

    Args:
        prefixes: The prefixes to spread over (not empty).
        epoch: Adds ``epoch_<n>/`` after the prefix.
    """

    def __init__(self, prefixes: Sequence[str], *, epoch: int | None = None) -> None:
        if isinstance(prefixes, str) or not prefixes:
            raise InvalidArgumentError(
                "round_robin needs a non-empty list of prefixes (prefixes=[...])"
            )
        for p in prefixes:
            if not isinstance(p, str) or not p.strip("/") or ".." in p.split("/"):
                raise InvalidArgumentError(f"invalid prefix {p!r}")
        self.prefixes = [p.strip("/") for p in prefixes]
        self.epoch = epoch

    def generate_prefix(self, rank: int, world_size: int | None = None) -> str:
        head = self.prefixes[rank % len(self.prefixes)]
        return f"{head}/{_epoch_part(self.epoch)}__{rank}_"


def make_prefix_strategy(
    strategy: Any,
    *,
    prefixes: Sequence[str] | None = None,
    prefix_count: int | None = None,
    epoch: int | None = None,
) -> Callable[[int, int | None], str]:
    """The callable behind ``StorageWriter(prefix_strategy=...)``.

    Args:
        strategy: ``None`` (``__<rank>_`` beside ``.metadata``), ``"round_robin"`` (needs
            ``prefixes``), ``"hex"``, ``"binary"``, a :class:`PrefixStrategy`, or any object
            with ``generate_prefix(rank)`` (an s3torchconnector strategy) or callable of the rank.
        prefixes: The prefixes of ``"round_robin"``.
        prefix_count: Spread prefixes of ``"hex"``/``"binary"`` (default: the world size).
        epoch: Adds ``epoch_<n>/`` to the spread prefix.

    Raises:
        InvalidArgumentError: an unknown strategy or bad options.
    """
    if strategy is None:
        if prefixes is not None or prefix_count is not None:
            raise InvalidArgumentError("prefixes/prefix_count need a prefix_strategy")
        return PrefixStrategy()
    if isinstance(strategy, PrefixStrategy):
        return strategy
    if isinstance(strategy, str):
        name = strategy.lower().replace("-", "_")
        if name == "round_robin":
            return RoundRobinPrefixStrategy(prefixes or [], epoch=epoch)
        if name in ("hex", "binary"):
            cls = HexPrefixStrategy if name == "hex" else BinaryPrefixStrategy
            return cls(epoch=epoch, prefix_count=prefix_count)
        raise InvalidArgumentError(
            f"prefix_strategy must be None, 'round_robin', 'hex' or 'binary', got {strategy!r}"
        )
    generate = getattr(strategy, "generate_prefix", None)
    if not callable(generate) and callable(strategy):
        generate = strategy
    if callable(generate):
        call: Callable[[int], Any] = generate

        def prefix(rank: int, world_size: int | None = None) -> str:
            return str(call(rank))

        return prefix
    raise InvalidArgumentError(f"prefix_strategy {strategy!r} is not a strategy")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe relative key prefix, else ``InvalidArgumentError``."""
    parts = prefix.split("/")
    if not prefix or prefix.startswith("/") or ".." in parts or "" in parts[:-1]:
        raise InvalidArgumentError(f"prefix strategy produced an unusable prefix {prefix!r}")
    return prefix


# -- item records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemLocation:
    """Where one saved item lives, recorded in the checkpoint's ``.metadata`` ``storage_data``.

    Attributes:
        relative_path: The shard object, relative to the checkpoint URI.
        offset: First byte of the item in that object.
        length: Bytes of the item (a tensor's raw bytes, row-major; or a ``BytesIO``'s).
        crcs: CRC32C of each :attr:`block` bytes of the item (the last block shorter).
        block: Bytes per CRC.
        dtype: The tensor's dtype name (``"float32"``), ``None`` for bytes items.
        shape: The stored tensor chunk's shape, ``None`` for bytes items.
    """

    relative_path: str
    offset: int
    length: int
    crcs: tuple[int, ...]
    block: int = CRC_BLOCK
    dtype: str | None = None
    shape: tuple[int, ...] | None = None

    def check(self, data: memoryview, start: int, what: str) -> None:
        """Verify ``data`` = item bytes from ``start`` (a block boundary) against :attr:`crcs`.

        Raises:
            IntegrityError: a block's CRC32C differs (names the item and byte range).
        """
        first = start // self.block
        for i in range(first, first + -(-len(data) // self.block)):
            lo = i * self.block - start
            piece = data[lo : lo + self.block]
            got = crc32c.crc32c(piece)
            stored = self.crcs[i] if i < len(self.crcs) else None
            if got != stored:
                raise IntegrityError(
                    f"CRC32C mismatch in {what}: recorded {stored}, read {got}",
                    byte_range=(self.offset + i * self.block, len(piece)),
                )


def block_crcs(data: memoryview, block: int = CRC_BLOCK) -> tuple[int, ...]:
    """CRC32C of each ``block`` bytes of ``data`` (one CRC of 0 for empty data)."""
    if not len(data):
        return (0,)
    return tuple(crc32c.crc32c(data[i : i + block]) for i in range(0, len(data), block))


def needed_span(
    shape: Sequence[int], itemsize: int, offsets: Sequence[int], lengths: Sequence[int]
) -> tuple[int, int]:
    """The smallest byte span ``[start, end)`` of a row-major chunk holding a sub-box.

    ``offsets``/``lengths`` select the box (DCP's ``storage_offsets``/``lengths``). The span
    runs from the box's first element to its last; for a box of whole trailing dimensions
    (the usual resharding along dim 0) it is exactly the box.
    """
    if any(n == 0 for n in lengths) or not shape:
        return (0, itemsize if not shape else 0)
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    first = sum(o * s for o, s in zip(offsets, strides, strict=True))
    last = sum((o + n - 1) * s for o, n, s in zip(offsets, lengths, strides, strict=True))
    return (first * itemsize, (last + 1) * itemsize)


# -- planning the writes and reads -----------------------------------------------------------


def size_of(item: WriteItem) -> int:
    if item.tensor_data is None:
        return 0
    return int(
        torch.Size(item.tensor_data.size).numel()
        * torch._utils._element_size(item.tensor_data.properties.dtype)
    )


def plan_objects(items: Sequence[WriteItem], bins: int, part_size: int) -> list[list[WriteItem]]:
    """A rank's items over its shard objects.

    Every tensor of at least ``part_size`` bytes is an object of its own (uploaded straight
    from the tensor's memory, several at once); the smaller items are packed into at least
    ``bins`` objects, and into enough objects of about ``part_size`` bytes each that no packed
    object needs more than a part or two. Objects come largest first.
    """
    large = [i for i in items if i.type != WriteItemType.BYTE_IO and size_of(i) >= part_size]
    small = [i for i in items if not (i.type != WriteItemType.BYTE_IO and size_of(i) >= part_size)]
    objects = [[i] for i in sorted(large, key=size_of, reverse=True)]
    if small or not objects:
        packed = -(-sum(size_of(i) for i in small) // part_size)
        count = max(1, min(len(small), max(bins, packed)))
        objects += split_items(small, count)
    return objects


def split_items(items: Sequence[WriteItem], bins: int) -> list[list[WriteItem]]:
    """Items over ``bins`` files: bytes items round-robin, tensors largest-first to the lightest."""
    buckets: list[list[WriteItem]] = [[] for _ in range(bins)]
    sizes = [0] * bins
    small = [i for i in items if i.type == WriteItemType.BYTE_IO]
    for n, item in enumerate(small):
        buckets[n % bins].append(item)
    for item in sorted((i for i in items if i.type != WriteItemType.BYTE_IO), key=size_of)[::-1]:
        k = sizes.index(min(sizes))
        buckets[k].append(item)
        sizes[k] += size_of(item)
    return [b for b in buckets if b] or [[]]


@dataclass
class Span:
    """One range request: bytes ``[start, end)`` of a shard object, and what it serves."""

    relative: str
    start: int
    end: int
    data: BytesView | None = None


@dataclass
class Need:
    """One read item: the span serving it and where its bytes start inside it."""

    req: ReadItem
    loc: ItemLocation | _StorageInfo
    start: int  # item-relative first byte read (a CRC block boundary for ours)
    end: int
    span: Span | None = None


def parse_metadata(raw: BytesView, uri: str) -> Metadata:
    try:
        metadata = pickle.loads(memoryview(raw))
    except Exception as exc:  # noqa: BLE001 - any garbage: not a checkpoint
        raise IntegrityError(
            f"not a DCP checkpoint's metadata ({type(exc).__name__}: {exc})",
            uri=uri,
            op="DCP_LOAD",
        ) from None
    data = getattr(metadata, "storage_data", None)
    if not isinstance(metadata, Metadata) or not isinstance(data, dict):
        raise IntegrityError(
            f"not a DCP checkpoint's metadata (holds a {type(metadata).__name__})",
            uri=uri,
            op="DCP_LOAD",
        )
    for loc in data.values():
        if not isinstance(loc, (ItemLocation, _StorageInfo)):
            raise IntegrityError(
                f"DCP checkpoint of an unknown storage layout ({type(loc).__name__})",
                uri=uri,
                op="DCP_LOAD",
            )
    return metadata


def merge_spans(needs: list[Need]) -> list[Span]:
    """One request per run of nearby needed ranges of an object (attached to each need)."""
    spans: list[Span] = []
    order = sorted(needs, key=lambda n: (n.loc.relative_path, n.loc.offset + n.start))
    for need in order:
        if need.end == need.start:  # nothing to read (an empty tensor or bytes item)
            continue
        lo, hi = need.loc.offset + need.start, need.loc.offset + need.end
        last = spans[-1] if spans else None
        if (
            last is not None
            and last.relative == need.loc.relative_path
            and lo <= last.end + _MERGE_GAP
        ):
            last.end = max(last.end, hi)
        else:
            last = Span(need.loc.relative_path, lo, hi)
            spans.append(last)
        need.span = last
    return spans
