"""The on-store layout of a checkpoint, and its JSON documents as frozen dataclasses.

The layout is the original s3dlio's, byte for byte, so checkpoints move between the two::

    <base>/latest.json                                   {manifest_key, global_step, ts}
    <base>/manifests/ckpt-<step>-<ts>.json               the manifest (below)
    <base>/shards/ckpt-<step>-<ts>/rank-<r>.bin          strategy "flat"
    <base>/shards/rr/<r % 16 as 2 hex>/ckpt-.../rank-<r>.bin    strategy "round_robin"
    <base>/shards/bin/<first 4 of r as 8-bit binary>/ckpt-.../rank-<r>.bin  strategy "binary"

``<ts>`` is the UTC save time as ``YYYYmmdd-HHMMSS``; a zstd-compressed shard's key ends in
``.bin.zst``. Documents are pretty-printed JSON (two-space indent), fields in the order below.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import IntegrityError, InvalidArgumentError

__all__ = [
    "FORMAT_VERSION",
    "LATEST_KEY",
    "MANIFEST_DIR",
    "SHARD_DIR",
    "STRATEGIES",
    "CheckpointInfo",
    "Latest",
    "Manifest",
    "ManifestName",
    "ShardMeta",
    "format_timestamp",
    "format_wall_time",
    "manifest_key",
    "parse_strategy",
    "parse_wall_time",
    "shard_key",
]

#: ``format_version`` of the manifests this module writes.
FORMAT_VERSION = 1
#: The commit pointer, relative to the checkpoint base.
LATEST_KEY = "latest.json"
#: Directory of manifests and of shards, relative to the base.
MANIFEST_DIR = "manifests/"
SHARD_DIR = "shards/"
#: Key-layout strategies for shards (``"roundrobin"`` is accepted for ``"round_robin"``).
STRATEGIES = ("flat", "round_robin", "binary")
COMPLETE = "complete"

_MANIFEST_RE = re.compile(r"^ckpt-(\d+)-(.+)\.json$")
_WALL_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_strategy(name: str | None) -> str:
    """The canonical strategy name for ``name`` (``None`` means ``"flat"``).

    Raises:
        InvalidArgumentError: not one of :data:`STRATEGIES` (a ``ValueError``).
    """
    if name is None:
        return "flat"
    canon = name.lower()
    if canon == "roundrobin":
        canon = "round_robin"
    if canon not in STRATEGIES:
        raise InvalidArgumentError(
            f"unknown checkpoint strategy {name!r}; valid options: flat, round_robin, binary"
        )
    return canon


def format_timestamp(ns: int | None = None) -> str:
    """The ``<ts>`` part of checkpoint keys: UTC ``YYYYmmdd-HHMMSS`` of ``ns`` (default: now)."""
    ns = time.time_ns() if ns is None else ns
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(ns // 1_000_000_000))


def format_wall_time(ns: int | None = None) -> str:
    """A manifest's ``wall_time``: RFC 3339 UTC as the original writes it.

    Sub-second digits are 0, 3, 6 or 9, the fewest that are exact
    (``2026-01-02T03:04:05.123456789+00:00``).
    """
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac == 0:
        digits = ""
    elif frac % 1_000_000 == 0:
        digits = f".{frac // 1_000_000:03d}"
    elif frac % 1_000 == 0:
        digits = f".{frac // 1_000:06d}"
    else:
        digits = f".{frac:09d}"
    return f"{head}{digits}+00:00"


def parse_wall_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 ``wall_time`` (``0`` if unparseable)."""
    match = _WALL_RE.match(text or "")
    if not match:
        return 0
    head, frac, zone = match.groups()
    moment = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    seconds = int(moment.astimezone(timezone.utc).timestamp())
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def checkpoint_name(step: int, ts: str) -> str:
    """``ckpt-<step>-<ts>``: the stem shared by a checkpoint's manifest and shard directory."""
    return f"ckpt-{step}-{ts}"


def manifest_key(step: int, ts: str) -> str:
    """``manifests/ckpt-<step>-<ts>.json``."""
    return f"{MANIFEST_DIR}{checkpoint_name(step, ts)}.json"


def shard_key(step: int, ts: str, rank: int, strategy: str = "flat") -> str:
    """The key of rank ``rank``'s shard (without the ``.zst`` a compressed shard adds)."""
    name = checkpoint_name(step, ts)
    strategy = parse_strategy(strategy)
    if strategy == "round_robin":
        directory = f"{SHARD_DIR}rr/{rank % 16:02x}/{name}"
    elif strategy == "binary":
        directory = f"{SHARD_DIR}bin/{format(rank, '08b')[:4]}/{name}"
    else:
        directory = f"{SHARD_DIR}{name}"
    return f"{directory}/rank-{rank}.bin"


@dataclass(frozen=True, order=True)
class ManifestName:
    """What a manifest's key says: ``manifests/ckpt-<step>-<ts>.json``.

    Ordered by ``(ts, step)``: the save time, to the second, then the step.
    """

    ts: str
    step: int

    @property
    def key(self) -> str:
        """The manifest's key relative to the checkpoint base."""
        return manifest_key(self.step, self.ts)

    @property
    def name(self) -> str:
        """``ckpt-<step>-<ts>``."""
        return checkpoint_name(self.step, self.ts)

    @classmethod
    def parse(cls, key: str) -> ManifestName | None:
        """Parse a manifest key (or its last path segment); ``None`` if it is not one."""
        match = _MANIFEST_RE.match(key.rsplit("/", 1)[-1])
        if not match:
            return None
        return cls(ts=match.group(2), step=int(match.group(1)))

    @classmethod
    def parse_dir(cls, name: str) -> ManifestName | None:
        """Parse a shard directory name ``ckpt-<step>-<ts>``; ``None`` if it is not one."""
        return cls.parse(name.rstrip("/") + ".json")


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def _loads(data: Any, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(bytes(data).decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    return doc


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise IntegrityError(f"{what} has no valid {name!r} field (got {value!r})")
    return value


@dataclass(frozen=True)
class ShardMeta:
    """One rank's shard as a manifest records it.

    Attributes:
        rank: The rank that wrote it.
        key: Its key relative to the checkpoint base (ends in ``.zst`` when compressed).
        size: Bytes stored (the compressed size for a ``.zst`` shard).
        etag: The store's version token when it was written (informational).
        checksum: ``"crc32c:%08x"`` of the uncompressed bytes.
    """

    rank: int
    key: str
    size: int
    etag: str | None = None
    checksum: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in the original's order."""
        return {
            "rank": self.rank,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "checksum": self.checksum,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ShardMeta:
        """Build from a manifest entry or a shard-meta dict (extra keys are ignored).

        Raises:
            IntegrityError: a required field is missing or of the wrong type.
        """
        what = "shard entry"
        etag, checksum = doc.get("etag"), doc.get("checksum")
        return cls(
            rank=_field(doc, "rank", int, what),
            key=_field(doc, "key", str, what),
            size=_field(doc, "size", int, what),
            etag=etag if isinstance(etag, str) else None,
            checksum=checksum if isinstance(checksum, str) else None,
        )


@dataclass(frozen=True)
class Manifest:
    """A checkpoint's manifest: it exists, complete, only once every shard is stored.

    Attributes:
        framework: Free text naming the producer (``"torch"``, ``"jax"``, ...).
        global_step: The training step.
        epoch: The epoch.
        wall_time: RFC 3339 UTC time of the commit.
        world_size: How many ranks wrote shards.
        shards: One entry per rank, sorted by rank.
        status: ``"complete"`` for a committed checkpoint.
        user_meta: Any JSON value the caller attached (``None`` if none).
        format_version: Schema version (1).
    """

    framework: str
    global_step: int
    epoch: int
    wall_time: str
    world_size: int
    shards: tuple[ShardMeta, ...]
    status: str = COMPLETE
    user_meta: Any = None
    format_version: int = FORMAT_VERSION

    @property
    def is_complete(self) -> bool:
        """Whether the manifest says the checkpoint is committed."""
        return self.status == COMPLETE

    @property
    def total_size(self) -> int:
        """Bytes stored across all shards."""
        return sum(s.size for s in self.shards)

    def shard(self, rank: int) -> ShardMeta:
        """The entry of ``rank``.

        Raises:
            InvalidArgumentError: no shard for that rank (a ``ValueError``).
        """
        for meta in self.shards:
            if meta.rank == rank:
                return meta
        raise InvalidArgumentError(
            f"checkpoint step {self.global_step} has no shard for rank {rank} "
            f"(world_size {self.world_size})"
        )

    def validate(self) -> Manifest:
        """Check the invariants; return ``self``.

        Raises:
            IntegrityError: version < 1, world_size < 1, a duplicate rank, or a complete
                manifest without exactly one shard per rank ``0..world_size-1``.
        """
        if self.format_version < 1:
            raise IntegrityError(f"invalid manifest format_version {self.format_version}")
        if self.world_size < 1:
            raise IntegrityError(f"invalid manifest world_size {self.world_size}")
        ranks = [s.rank for s in self.shards]
        if len(set(ranks)) != len(ranks):
            raise IntegrityError(f"manifest lists a rank twice: {sorted(ranks)}")
        if self.is_complete and set(ranks) != set(range(self.world_size)):
            raise IntegrityError(
                f"complete manifest must list ranks 0..{self.world_size - 1}, got {sorted(ranks)}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in the original's order."""
        return {
            "format_version": self.format_version,
            "framework": self.framework,
            "global_step": self.global_step,
            "epoch": self.epoch,
            "wall_time": self.wall_time,
            "world_size": self.world_size,
            "shards": [s.to_dict() for s in self.shards],
            "status": self.status,
            "user_meta": self.user_meta,
        }

    def encode(self) -> bytes:
        """The manifest document as stored."""
        return _dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Manifest:
        """Build from a parsed manifest (validated).

        Raises:
            IntegrityError: a field is missing or wrong, or an invariant fails.
        """
        what = "manifest"
        shards = _field(doc, "shards", list, what)
        return cls(
            format_version=_field(doc, "format_version", int, what),
            framework=_field(doc, "framework", str, what),
            global_step=_field(doc, "global_step", int, what),
            epoch=_field(doc, "epoch", int, what),
            wall_time=_field(doc, "wall_time", str, what),
            world_size=_field(doc, "world_size", int, what),
            shards=tuple(sorted((ShardMeta.from_dict(s) for s in shards), key=lambda s: s.rank)),
            status=_field(doc, "status", str, what),
            user_meta=doc.get("user_meta"),
        ).validate()

    @classmethod
    def decode(cls, data: Any) -> Manifest:
        """Parse a stored manifest document (see :meth:`from_dict`)."""
        return cls.from_dict(_loads(data, "manifest"))

    @classmethod
    def build(
        cls,
        framework: str,
        step: int,
        epoch: int,
        world_size: int,
        shards: Iterable[ShardMeta],
        user_meta: Any = None,
        wall_time_ns: int | None = None,
    ) -> Manifest:
        """A complete, validated manifest for a commit happening now."""
        return cls(
            framework=framework,
            global_step=step,
            epoch=epoch,
            wall_time=format_wall_time(wall_time_ns),
            world_size=world_size,
            shards=tuple(sorted(shards, key=lambda s: s.rank)),
            user_meta=user_meta,
        ).validate()


@dataclass(frozen=True)
class Latest:
    """``latest.json``: a pointer to the most recently committed manifest.

    It is a hint written after the manifest: readers that find it missing or older than the
    newest complete manifest use the manifest.
    """

    manifest_key: str
    global_step: int
    ts: str

    def encode(self) -> bytes:
        """The document as stored."""
        return _dumps(
            {"manifest_key": self.manifest_key, "global_step": self.global_step, "ts": self.ts}
        )

    @classmethod
    def decode(cls, data: Any) -> Latest:
        """Parse ``latest.json``.

        Raises:
            IntegrityError: malformed.
        """
        doc = _loads(data, "latest.json")
        what = "latest.json"
        return cls(
            manifest_key=_field(doc, "manifest_key", str, what),
            global_step=_field(doc, "global_step", int, what),
            ts=_field(doc, "ts", str, what),
        )


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint as :meth:`CheckpointStore.list_checkpoints` reports it.

    Attributes:
        step: ``global_step``.
        epoch: The epoch.
        framework: The manifest's framework string.
        timestamp: The ``<ts>`` of its keys (``YYYYmmdd-HHMMSS`` UTC).
        world_size: Ranks that wrote shards.
        total_size: Bytes stored across shards.
        status: ``"complete"`` for a committed checkpoint.
        manifest_key: Its manifest's key relative to the base.
        wall_time: RFC 3339 commit time.
        user_meta: The caller's metadata.
    """

    step: int
    epoch: int
    framework: str
    timestamp: str
    world_size: int
    total_size: int
    status: str
    manifest_key: str
    wall_time: str = ""
    user_meta: Any = field(default=None, compare=False)

    @property
    def is_complete(self) -> bool:
        """Whether the checkpoint is committed."""
        return self.status == COMPLETE

    @property
    def is_single_rank(self) -> bool:
        """Whether one rank wrote it."""
        return self.world_size == 1

    @property
    def size_mb(self) -> float:
        """:attr:`total_size` in MiB."""
        return self.total_size / (1 << 20)

    @property
    def size_gb(self) -> float:
        """:attr:`total_size` in GiB."""
        return self.total_size / (1 << 30)

    @classmethod
    def of(cls, name: ManifestName, manifest: Manifest) -> CheckpointInfo:
        """The info of ``manifest`` stored under ``name``."""
        return cls(
            step=manifest.global_step,
            epoch=manifest.epoch,
            framework=manifest.framework,
            timestamp=name.ts,
            world_size=manifest.world_size,
            total_size=manifest.total_size,
            status=manifest.status,
            manifest_key=name.key,
            wall_time=manifest.wall_time,
            user_meta=manifest.user_meta,
        )
