"""``torch.distributed.checkpoint`` (DCP) storage over any URI.

:class:`StorageWriter` and :class:`StorageReader` implement DCP's storage interfaces on every
backend (``s3://``, ``az://``, ``gs://``, ``file://``, ``direct://``)::

    import torch.distributed.checkpoint as dcp
    from s3dlio.torch.dcp import StorageReader, StorageWriter

    dcp.save(state_dict, storage_writer=StorageWriter("s3://bucket/run/step-100"))
    dcp.load(state_dict, storage_reader=StorageReader("s3://bucket/run/step-100"))

Layout under the checkpoint URI: shard objects ``<prefix><n>_<tag>.distcp`` (``prefix``
from the prefix strategy, ``__<rank>_`` by default; ``tag`` is unique per save), one per
tensor of at least the part size and a few packing the smaller items, holding each tensor's
raw bytes (row-major, 64-byte aligned) and each non-tensor item's bytes; and ``.metadata``, DCP's pickled
:class:`~torch.distributed.checkpoint.metadata.Metadata` whose ``storage_data`` maps every
item to an :class:`~s3dlio.torch._dcp_layout.ItemLocation` (object, offset, length, dtype,
shape and a CRC32C per 4 MiB). ``.metadata`` is written last, in one atomic PUT, after every
rank's shards are committed: a checkpoint is loadable only once complete, and saving again to
the same URI keeps the previous one loadable until the new ``.metadata`` replaces it.

Loads read only the byte ranges each rank needs (resharding reads sub-ranges of the stored
chunks), many at once, and verify their CRC32Cs. Up to ``atomic_limit`` bytes per rank they
are all verified before anything is copied into the caller's tensors (a missing object, a
short object or a CRC mismatch fails the load before anything is loaded); larger loads read
straight into the tensors, so memory stays bounded (see :class:`StorageReader`). Checkpoints written by DCP's ``FileSystemWriter`` and by s3torchconnector's
``S3StorageWriter`` (``torch.save`` per item) load too, without CRCs (they record none).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pickle
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import Metadata, MetadataIndex, StorageMeta
from torch.distributed.checkpoint.planner import (
    LoadItemType,
    LoadPlan,
    LoadPlanner,
    ReadItem,
    SavePlan,
    SavePlanner,
    WriteItem,
    WriteItemType,
)
from torch.distributed.checkpoint.staging import BlockingAsyncStager
from torch.distributed.checkpoint.storage import StorageReader as _DCPStorageReader
from torch.distributed.checkpoint.storage import StorageWriter as _DCPStorageWriter
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from ..errors import IntegrityError, InvalidArgumentError, NotFoundError, S3DlioError
from ..io import ops
from ..io.buffers import BytesView
from ..io.config import RangeEngineConfig, parse_size
from ..io.executor import run_claimed
from ..io.range_engine import fetch
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from ..io.writer import ObjectWriter, WriterOptions
from ._dcp_layout import (
    CRC_BLOCK,
    BinaryPrefixStrategy,
    DefaultPrefixStrategy,
    HexPrefixStrategy,
    ItemLocation,
    Need,
    NumericPrefixStrategy,
    PrefixStrategy,
    RoundRobinPrefixStrategy,
    block_crcs,
    check_prefix,
    make_prefix_strategy,
    merge_spans,
    needed_span,
    parse_metadata,
    plan_objects,
)

__all__ = [
    "BinaryPrefixStrategy",
    "DefaultPrefixStrategy",
    "HexPrefixStrategy",
    "ItemLocation",
    "NumericPrefixStrategy",
    "PrefixStrategy",
    "RoundRobinPrefixStrategy",
    "StorageReader",
    "StorageWriter",
    "load",
    "save",
]

METADATA = ".metadata"
SUFFIX = ".distcp"
DCP_VERSION = "1.0.0"
_ALIGN = 64
_ZEROS = bytes(_ALIGN)


def _checkpoint_uri(uri: str | os.PathLike[str] | ObjectURI) -> ObjectURI:
    parsed = parse_uri(os.fspath(uri) if not isinstance(uri, ObjectURI) else uri, allow_bare=True)
    key = parsed.key.rstrip("/")
    if not key and parsed.is_local:
        raise InvalidArgumentError("a checkpoint needs a directory", uri=str(uri), op="DCP")
    return parsed.with_key(key)


def _join(base: ObjectURI, relative: str) -> ObjectURI:
    return base.with_key(f"{base.key}/{relative}" if base.key else relative)


def _validate(checkpoint_id: str | os.PathLike[str]) -> bool:
    text = os.fspath(checkpoint_id)
    if "://" not in text:
        return False
    try:
        parse_uri(text)
    except S3DlioError:
        return False
    return True


@dataclass(frozen=True)
class _Prefix:
    prefix: str


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise IntegrityError(f"unknown dtype {name!r} in checkpoint metadata")
    return dtype


def _raw_writable(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, writable in place."""
    if not tensor.numel():
        return memoryview(bytearray())
    raw: Any = tensor.reshape(-1).view(torch.uint8).numpy()
    return memoryview(raw)


def _raw(tensor: torch.Tensor) -> memoryview:
    flat = tensor.reshape(-1)
    if not flat.numel():
        return memoryview(b"")
    raw: Any = flat.view(torch.uint8).numpy()
    return memoryview(raw)


class StorageWriter(_DCPStorageWriter, BlockingAsyncStager):
    """DCP's ``StorageWriter`` over any URI (``dcp.save`` and ``dcp.async_save``).

    Each rank writes every tensor of at least ``part_size`` bytes as a shard object of its
    own, and packs the smaller items into at least ``thread_count`` objects of about
    ``part_size`` bytes; up to ``max_in_flight`` objects upload at once. A contiguous CPU
    tensor of at most ``max_put_size`` bytes goes in one PUT straight from its memory; larger
    objects stream through a writer (multipart / staged blocks / temp file + rename) whose
    parts of contiguous CPU tensors are sent from the tensor's memory too, and whose other
    bytes are copied part by part. So a save holds the ``state_dict`` plus at most
    ``max_in_flight`` part buffers (and one CPU copy of a tensor that is not a contiguous CPU
    tensor, per object in flight). Every object is atomic (a PUT, or an upload aborted on an
    error); the coordinator writes ``.metadata`` last.

    Args:
        uri: The checkpoint "directory" (``s3://bucket/run/step-100``; a bare path is local).
            ``dcp.save(checkpoint_id=...)`` replaces it.
        client: The :class:`s3dlio.Client` to write through (default: the default client).
        prefix_strategy: ``None`` (every shard beside ``.metadata``), ``"round_robin"`` (over
            ``prefixes``), ``"hex"`` or ``"binary"`` (a reversed base-16/base-2 number per
            rank, spreading keys over S3 partitions, as s3torchconnector's strategies do), a
            :class:`PrefixStrategy`, or any object with ``generate_prefix(rank)``.
        prefixes: The prefixes of ``"round_robin"``.
        prefix_count: Distinct spread prefixes of ``"hex"``/``"binary"`` (default: world size).
        thread_count: Objects the small items of a rank are packed into, at least (DCP's and
            s3torchconnector's name; it does not limit concurrency, ``max_in_flight`` does).
        part_size: Upload part size (``"16MiB"`` accepted; default 16 MiB); also the size
            from which a tensor is an object of its own.
        max_in_flight: Objects uploading at once per rank, and parts at once per streamed
            object (default 8).
        max_put_size: Largest tensor sent in one PUT (default 64 MiB); above, multipart.
        cache_staged_state_dict: ``dcp.async_save``: keep the CPU copy between saves.

    Raises:
        InvalidArgumentError: a bad URI, prefix strategy or option.
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        client: HasStores | None = None,
        prefix_strategy: Any = None,
        prefixes: Sequence[str] | None = None,
        prefix_count: int | None = None,
        thread_count: int = 2,
        part_size: int | str = 16 << 20,
        max_in_flight: int = 8,
        max_put_size: int | str = 64 << 20,
        cache_staged_state_dict: bool = False,
    ) -> None:
        _DCPStorageWriter.__init__(self)
        BlockingAsyncStager.__init__(self, cache_staged_state_dict=cache_staged_state_dict)
        if not isinstance(thread_count, int) or thread_count < 1:
            raise InvalidArgumentError(
                f"thread_count must be an integer >= 1, got {thread_count!r}"
            )
        self.uri = _checkpoint_uri(uri)
        self.client = client
        self.prefix_strategy = make_prefix_strategy(
            prefix_strategy, prefixes=prefixes, prefix_count=prefix_count
        )
        self.thread_count = thread_count
        self.options = WriterOptions(part_size=part_size, max_in_flight=max_in_flight).validated()
        self.max_in_flight = self.options.max_in_flight
        self.max_put_size = parse_size(max_put_size)
        self.save_id = uuid.uuid4().hex
        self.rank: int | None = None
        self.use_collectives = True

    # -- DCP interface ---------------------------------------------------------------------------
    def reset(self, checkpoint_id: str | os.PathLike[str] | None = None) -> None:
        """Start a new save (to ``checkpoint_id`` if given)."""
        if checkpoint_id:
            self.uri = _checkpoint_uri(checkpoint_id)
        self.save_id = uuid.uuid4().hex

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        """Note this rank and whether ranks coordinate (``use_collectives``)."""
        self.rank = kwargs.get("rank")
        self.use_collectives = kwargs.get("use_collectives", True)

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        """Without collectives, name this rank's prefix here (else the coordinator does)."""
        if not self.use_collectives and self.rank is not None:
            prefix = check_prefix(self.prefix_strategy(self.rank, None))
            return dataclasses.replace(plan, storage_data=_Prefix(prefix))
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        """Give each rank's plan its key prefix (the prefix strategy of the rank's index)."""
        return [
            dataclasses.replace(
                plan, storage_data=_Prefix(check_prefix(self.prefix_strategy(i, len(plans))))
            )
            for i, plan in enumerate(plans)
        ]

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        """Write this rank's items into its shard objects, ``max_in_flight`` requests at once."""
        prefix = (
            plan.storage_data.prefix
            if isinstance(plan.storage_data, _Prefix)
            else (f"__{self.rank or 0}_")
        )
        tag = self.save_id[:12]
        files = plan_objects(plan.items, self.thread_count, parse_size(self.options.part_size))
        results: list[list[WriteResult]] = [[] for _ in files]

        def write_one(i: int) -> None:
            results[i] = self._write_file(f"{prefix}{i}_{tag}{SUFFIX}", files[i], planner)

        run_claimed(len(files), write_one, self.max_in_flight)
        fut: Future[list[WriteResult]] = Future()
        fut.set_result([r for rs in results for r in rs])
        return fut

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        """Write ``.metadata`` (one atomic PUT), then delete the shards of the one it replaced."""
        metadata.version = DCP_VERSION
        metadata.storage_data = {wr.index: wr.storage_data for rs in results for wr in rs}
        metadata.storage_meta = self.storage_meta()
        name = (
            f"__{self.rank}{METADATA}"
            if not self.use_collectives and self.rank is not None
            else METADATA
        )
        target = _join(self.uri, name)
        previous = _previous_files(target, self.client)
        ops.put(target, memoryview(pickle.dumps(metadata, protocol=5)), client=self.client)
        if previous:
            kept = {loc.relative_path for loc in metadata.storage_data.values()}
            stale = [_join(self.uri, rel) for rel in sorted(previous - kept)]
            if stale:
                try:  # failures are returned, not raised: leftovers are harmless garbage
                    backend_for(target, self.client).delete_many(stale)
                except S3DlioError:
                    pass  # garbage left behind is harmless: nothing refers to it

    def storage_meta(self) -> StorageMeta | None:
        """The checkpoint URI and this save's id."""
        return StorageMeta(checkpoint_id=str(self.uri), save_id=self.save_id)

    @property
    def checkpoint_id(self) -> str:
        """The checkpoint URI."""
        return str(self.uri)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """Whether ``checkpoint_id`` is a URI with a scheme s3dlio serves."""
        return _validate(checkpoint_id)

    # -- writing ---------------------------------------------------------------------------------
    def _write_file(
        self, relative: str, items: list[WriteItem], planner: SavePlanner
    ) -> list[WriteResult]:
        uri = _join(self.uri, relative)
        if len(items) == 1 and items[0].type != WriteItemType.BYTE_IO:
            tensor = cast(torch.Tensor, planner.resolve_data(items[0])).detach()
            if (
                tensor.device.type == "cpu"
                and tensor.is_contiguous()
                and tensor.numel() * tensor.element_size() <= self.max_put_size
            ):
                # One tensor, one PUT straight from its memory: no staging copy, no multipart
                # bookkeeping (the store assembles nothing), and atomic like every PUT.
                view = _raw(tensor)
                loc = self._location(relative, 0, view, tensor)
                ops.put(uri, view, client=self.client)
                return [WriteResult(items[0].index, loc.length, loc)]
        results: list[WriteResult] = []
        borrowed: list[Any] = []  # alive until the writer is finalized
        with ObjectWriter(uri, self.options, client=self.client) as writer:
            for item in items:
                pad = -writer.tell() % _ALIGN
                if pad:
                    writer.write(_ZEROS[:pad])
                offset = writer.tell()
                data = planner.resolve_data(item)
                if item.type == WriteItemType.BYTE_IO:
                    view = memoryview(cast(io.BytesIO, data).getbuffer())
                    loc = ItemLocation(relative, offset, len(view), block_crcs(view))
                    writer.write(view)
                    view.release()
                else:
                    tensor = cast(torch.Tensor, data).detach()
                    own = tensor.device.type == "cpu" and tensor.is_contiguous()
                    if not own:
                        tensor = tensor.to("cpu").contiguous()
                    view = _raw(tensor)
                    loc = self._location(relative, offset, view, tensor)
                    if own:
                        writer.write_borrowed(view)
                        borrowed.append(tensor)
                    else:
                        writer.write(view)
                results.append(WriteResult(item.index, loc.length, loc))
        borrowed.clear()
        return results

    @staticmethod
    def _location(
        relative: str, offset: int, view: memoryview, tensor: torch.Tensor
    ) -> ItemLocation:
        return ItemLocation(
            relative,
            offset,
            len(view),
            block_crcs(view),
            dtype=str(tensor.dtype).removeprefix("torch."),
            shape=tuple(tensor.shape),
        )


def _previous_files(metadata_uri: ObjectURI, client: HasStores | None) -> set[str]:
    """Shard objects the ``.metadata`` about to be replaced refers to (empty if none)."""
    try:
        old = pickle.loads(ops.get(metadata_uri, client))
        data = getattr(old, "storage_data", None) or {}
        return {loc.relative_path for loc in data.values() if isinstance(loc, ItemLocation)}
    except NotFoundError:
        return set()
    except Exception:  # noqa: BLE001 - an unreadable old file is simply replaced
        return set()


# -- reading ------------------------------------------------------------------------------------


class StorageReader(_DCPStorageReader):
    """DCP's ``StorageReader`` over any URI (``dcp.load``, with any world size).

    Args:
        uri: The checkpoint "directory"; ``dcp.load(checkpoint_id=...)`` replaces it.
        client: The :class:`s3dlio.Client` to read through (default: the default client).
        max_in_flight: Range requests running at once per rank.
        range_size: Bytes per range request when a needed span of an object is large
            (``"8MiB"`` accepted; S3's recommended size, and s3torchconnector's part size).
        atomic_limit: Loads of at most this many bytes per rank (default 256 MiB; ``None``:
            any size) are all-or-nothing: everything is read and every CRC32C verified before
            the first byte is copied into the state_dict, which costs the rank's bytes once
            more in memory. Larger loads keep memory bounded: they read straight into the
            state_dict's tensors (contiguous CPU tensors; a CRC32C checked per range as it
            lands) and stage the rest ``max_in_flight * range_size`` bytes at a time.

    Errors (inside DCP's ``CheckpointException``, per rank): ``NotFoundError`` when the URI
    holds no checkpoint (no ``.metadata``) or a shard object is missing; ``IntegrityError``
    when ``.metadata`` is not a DCP checkpoint's, a shard is short, or a CRC32C differs.
    Each names the URI. Nothing is loaded into the state_dict when one is raised, except
    when a load larger than ``atomic_limit`` finds a CRC32C mismatch: missing and short
    objects are still found before anything is loaded, but items read before the damaged
    range may already be in place (the load still fails).
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        client: HasStores | None = None,
        max_in_flight: int = 16,
        range_size: int | str = 8 << 20,
        atomic_limit: int | str | None = 256 << 20,
    ) -> None:
        super().__init__()
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise InvalidArgumentError(
                f"max_in_flight must be an integer >= 1, got {max_in_flight!r}"
            )
        self.uri = _checkpoint_uri(uri)
        self.client = client
        self.max_in_flight = max_in_flight
        size = parse_size(range_size)
        size = -(-size // CRC_BLOCK) * CRC_BLOCK  # whole CRC blocks: each range checked alone
        self._range_size = size
        self._ranges = RangeEngineConfig(threshold=size, chunk_size=size)
        self.atomic_limit = None if atomic_limit is None else parse_size(atomic_limit)
        self.storage_data: dict[MetadataIndex, Any] = {}
        self.load_id = uuid.uuid4().hex
        #: The first s3dlio error this reader raised inside DCP (which wraps it), if any.
        self.last_error: S3DlioError | None = None
        self._prefetched: Metadata | None = None  # read by :func:`load` before DCP asks

    def reset(self, checkpoint_id: str | os.PathLike[str] | None = None) -> None:
        """Start a new load (from ``checkpoint_id`` if given)."""
        self.storage_data = {}
        self.last_error = None
        if checkpoint_id:
            self.uri = _checkpoint_uri(checkpoint_id)
        self.load_id = uuid.uuid4().hex

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        """The checkpoint's ``.metadata`` (``rank=`` reads a rank-local ``__<rank>.metadata``).

        Raises:
            NotFoundError: the URI holds no (complete) checkpoint.
            IntegrityError: the file is not a DCP checkpoint's metadata.
        """
        rank = kwargs.get("rank")
        if rank is None and self._prefetched is not None:
            metadata, self._prefetched = self._prefetched, None
            return metadata
        try:
            return self._read_metadata(rank)
        except S3DlioError as exc:
            if self.last_error is None:
                self.last_error = exc
            raise

    def _read_metadata(self, rank: int | None) -> Metadata:
        name = METADATA if rank is None else f"__{rank}{METADATA}"
        uri = _join(self.uri, name)
        try:
            raw = ops.get(uri, self.client)
        except NotFoundError as exc:
            raise NotFoundError(
                f"no complete DCP checkpoint here ({name} is missing)",
                uri=str(self.uri),
                op="DCP_LOAD",
            ) from exc
        metadata = parse_metadata(raw, str(uri))
        storage_meta = getattr(metadata, "storage_meta", None) or StorageMeta()
        storage_meta.load_id = self.load_id
        metadata.storage_meta = storage_meta
        return metadata

    def set_up_storage_reader(
        self, metadata: Metadata, is_coordinator: bool, *args: Any, **kwargs: Any
    ) -> None:
        """Keep the item locations of ``metadata``."""
        self.storage_data = dict(metadata.storage_data)

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        """Unchanged (reads are grouped and ordered in :meth:`read_data`)."""
        return plan

    def prepare_global_plan(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        """Unchanged."""
        return plans

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        """Fetch the byte ranges of ``plan``, verify them all, then load them into place."""
        try:
            self._read_data(plan, planner)
        except S3DlioError as exc:
            self.last_error = exc
            raise
        fut: Future[None] = Future()
        fut.set_result(None)
        return fut

    def _read_data(self, plan: LoadPlan, planner: LoadPlanner) -> None:
        needs = [self._need(req) for req in plan.items]
        total = sum(n.end - n.start for n in needs)
        if self.atomic_limit is None or total <= self.atomic_limit:
            self._read_staged(needs, planner)
            return
        self._check_objects(needs)  # missing or short objects: found before anything loads
        direct: list[tuple[Need, torch.Tensor]] = []
        staged: list[Need] = []
        for need in needs:
            target = self._direct_target(need, planner)
            if target is None:
                staged.append(need)
            else:
                direct.append((need, target))
        self._read_direct(direct)
        for req_target in direct:
            planner.commit_tensor(req_target[0].req, req_target[1])
        budget = self.max_in_flight * self._range_size
        batch: list[Need] = []
        held = 0
        for need in staged:
            if batch and held + need.end - need.start > budget:
                self._read_staged(batch, planner)
                batch, held = [], 0
            batch.append(need)
            held += need.end - need.start
        if batch:
            self._read_staged(batch, planner)

    def _check_objects(self, needs: list[Need]) -> None:
        """Every shard object ``needs`` reads exists and is long enough (``stat`` each)."""
        ends: dict[str, int] = {}
        for n in needs:
            rel = n.loc.relative_path
            ends[rel] = max(ends.get(rel, 0), n.loc.offset + n.end)
        names = sorted(ends)

        def check(i: int) -> None:
            uri = _join(self.uri, names[i])
            size = ops.stat(uri, self.client).size
            if size < ends[names[i]]:
                raise IntegrityError(
                    f"shard object is {size} bytes, the checkpoint needs bytes up to "
                    f"{ends[names[i]]}",
                    uri=str(uri),
                    op="DCP_LOAD",
                )

        run_claimed(len(names), check, min(self.max_in_flight, len(names)))

    def _direct_target(self, need: Need, planner: LoadPlanner) -> torch.Tensor | None:
        """The state_dict tensor ``need``'s bytes can be read into as they are, if any."""
        req, loc = need.req, need.loc
        if (
            req.type == LoadItemType.BYTE_IO
            or not isinstance(loc, ItemLocation)
            or loc.shape is None
            or loc.dtype is None
        ):
            return None
        dtype = _dtype(loc.dtype)
        lo, hi = needed_span(loc.shape, dtype.itemsize, req.storage_offsets, req.lengths)
        count = math.prod(req.lengths)
        if hi <= lo or (lo, hi) != (need.start, need.end) or hi - lo != count * dtype.itemsize:
            return None  # a box that is not one run of stored bytes, or not block-aligned
        target = planner.resolve_tensor(req).detach()
        if (
            target.device.type != "cpu"
            or target.dtype != dtype
            or not target.is_contiguous()
            or tuple(target.size()) != tuple(req.lengths)
        ):
            return None
        return target

    def _read_direct(self, direct: list[tuple[Need, torch.Tensor]]) -> None:
        """Read each need into its tensor, range by range, checking each range's CRC32Cs."""
        chunk = self._range_size
        pieces = [
            (need, target, off)
            for need, target in direct
            for off in range(need.start, need.end, chunk)
        ]
        views = {id(target): _raw_writable(target) for _, target in direct}

        def read_one(i: int) -> None:
            need, target, off = pieces[i]
            loc = cast(ItemLocation, need.loc)
            uri = _join(self.uri, loc.relative_path)
            length = min(chunk, need.end - off)
            into = views[id(target)][off - need.start : off - need.start + length]
            result = fetch(
                backend_for(uri, self.client),
                uri,
                loc.offset + off,
                length,
                into=into,
                config=self._ranges,
                op="GET_RANGE",
            )
            if result.nbytes != length:
                raise IntegrityError(
                    f"shard object is {result.size} bytes, the checkpoint needs bytes up to "
                    f"{loc.offset + off + length}",
                    uri=str(uri),
                    op="DCP_LOAD",
                )
            try:
                loc.check(into, off, f"item {need.req.storage_index.fqn!r}")
            except IntegrityError as exc:
                raise exc.with_context(uri=str(uri), op="DCP_LOAD") from None

        run_claimed(len(pieces), read_one, min(self.max_in_flight, len(pieces)))

    def _read_staged(self, needs: list[Need], planner: LoadPlanner) -> None:
        """Read ``needs`` into memory, verify them all, then copy them into place."""
        spans = merge_spans(needs)

        def read_one(i: int) -> None:
            span = spans[i]
            uri = _join(self.uri, span.relative)
            result = fetch(
                backend_for(uri, self.client),
                uri,
                span.start,
                span.end - span.start,
                config=self._ranges,
                op="GET_RANGE",
            )
            if result.nbytes != span.end - span.start:
                raise IntegrityError(
                    f"shard object is {result.size} bytes, the checkpoint needs bytes up to "
                    f"{span.end}",
                    uri=str(uri),
                    op="DCP_LOAD",
                )
            span.data = cast(BytesView, result.data)

        run_claimed(len(spans), read_one, min(self.max_in_flight, len(spans)))
        views = [self._verified(n) for n in needs]  # every check before any copy
        for need, view in zip(needs, views, strict=True):
            self._load(need, view, planner)

    @property
    def checkpoint_id(self) -> str:
        """The checkpoint URI."""
        return str(self.uri)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """Whether ``checkpoint_id`` is a URI with a scheme s3dlio serves."""
        return _validate(checkpoint_id)

    # -- planning the reads ----------------------------------------------------------------------
    def _need(self, req: ReadItem) -> Need:
        loc = self.storage_data.get(req.storage_index)
        if loc is None:
            raise IntegrityError(
                f"item {req.storage_index.fqn!r} is not in the checkpoint's metadata",
                uri=str(self.uri),
                op="DCP_LOAD",
            )
        if isinstance(loc, _StorageInfo):  # torch.save per item: read it whole
            if loc.transform_descriptors:
                raise IntegrityError(
                    f"item {req.storage_index.fqn!r} uses stream transforms "
                    f"{list(loc.transform_descriptors)}, which s3dlio does not read",
                    uri=str(self.uri),
                    op="DCP_LOAD",
                )
            return Need(req, loc, 0, loc.length)
        if req.type == LoadItemType.BYTE_IO or loc.shape is None or loc.dtype is None:
            return Need(req, loc, 0, loc.length)
        itemsize = _dtype(loc.dtype).itemsize
        lo, hi = needed_span(loc.shape, itemsize, req.storage_offsets, req.lengths)
        lo -= lo % loc.block
        hi = min(loc.length, -(-hi // loc.block) * loc.block)
        return Need(req, loc, lo, max(lo, hi))

    def _verified(self, need: Need) -> memoryview:
        """The item bytes ``need`` asked for, checked against their CRC32Cs."""
        span = need.span
        if span is None:
            return memoryview(b"")
        assert span.data is not None
        first = need.loc.offset + need.start - span.start
        view = memoryview(span.data)[first : first + need.end - need.start]
        if isinstance(need.loc, ItemLocation):
            try:
                need.loc.check(view, need.start, f"item {need.req.storage_index.fqn!r}")
            except IntegrityError as exc:
                raise exc.with_context(
                    uri=str(_join(self.uri, need.loc.relative_path)), op="DCP_LOAD"
                ) from None
        return view

    def _load(self, need: Need, view: memoryview, planner: LoadPlanner) -> None:
        req, loc = need.req, need.loc
        if req.type == LoadItemType.BYTE_IO:
            planner.load_bytes(req, io.BytesIO(view.tobytes()))
            return
        if isinstance(loc, _StorageInfo):
            stored = torch.load(io.BytesIO(view), map_location="cpu", weights_only=True)
            from torch.distributed._shard._utils import narrow_tensor_by_index

            source = narrow_tensor_by_index(stored, req.storage_offsets, req.lengths)
        else:
            assert loc.shape is not None and loc.dtype is not None
            dtype = _dtype(loc.dtype)
            shape = loc.shape
            strides = [1] * len(shape)
            for d in range(len(shape) - 2, -1, -1):
                strides[d] = strides[d + 1] * shape[d + 1]
            lo, hi = needed_span(shape, dtype.itemsize, req.storage_offsets, req.lengths)
            if hi <= lo:
                source = torch.empty(tuple(req.lengths), dtype=dtype)
            else:
                raw = torch.frombuffer(view, dtype=torch.uint8)
                flat = raw[lo - need.start : hi - need.start].view(dtype)
                source = flat.as_strided(tuple(req.lengths), strides)
        target = planner.resolve_tensor(req).detach()
        if target.size() != source.size():
            raise IntegrityError(
                f"item {req.storage_index.fqn!r}: stored {tuple(source.size())}, "
                f"the state_dict wants {tuple(target.size())}",
                uri=str(self.uri),
                op="DCP_LOAD",
            )
        target.copy_(source)
        planner.commit_tensor(req, target)


# -- one-call helpers ---------------------------------------------------------------------------


def save(
    state_dict: dict[str, Any],
    uri: str | os.PathLike[str],
    *,
    client: HasStores | None = None,
    process_group: Any = None,
    planner: SavePlanner | None = None,
    **options: Any,
) -> Metadata:
    """``dcp.save(state_dict)`` to ``uri`` through a :class:`StorageWriter`.

    Without an initialized process group it saves from this process alone. ``options`` are
    :class:`StorageWriter`'s. An s3dlio error of any rank is raised as itself (DCP wraps it
    in a ``CheckpointException``, kept as ``__cause__``).
    """
    writer = StorageWriter(uri, client=client, **options)
    return cast(
        Metadata,
        _unwrapped(
            lambda no_dist: dcp.save(
                state_dict,
                storage_writer=writer,
                planner=planner,
                process_group=process_group,
                no_dist=no_dist,
            ),
            None,
        ),
    )


def load(
    state_dict: dict[str, Any],
    uri: str | os.PathLike[str],
    *,
    client: HasStores | None = None,
    process_group: Any = None,
    planner: LoadPlanner | None = None,
    max_in_flight: int = 16,
    atomic_limit: int | str | None = 256 << 20,
) -> None:
    """``dcp.load(state_dict)`` in place from ``uri`` through a :class:`StorageReader`
    (``max_in_flight`` and ``atomic_limit`` are its options).

    Raises:
        NotFoundError: no checkpoint at ``uri``, or a shard object is missing.
        IntegrityError: not a DCP checkpoint, a short shard, or a CRC32C mismatch.
    """
    reader = StorageReader(
        uri, client=client, max_in_flight=max_in_flight, atomic_limit=atomic_limit
    )
    reader._prefetched = reader.read_metadata()  # a missing checkpoint: raised here, typed
    _unwrapped(
        lambda no_dist: dcp.load(
            state_dict,
            storage_reader=reader,
            planner=planner,
            process_group=process_group,
            no_dist=no_dist,
        ),
        reader,
    )


def _unwrapped(run: Any, reader: StorageReader | None) -> Any:
    no_dist = not (dist.is_available() and dist.is_initialized())
    try:
        if not no_dist:
            return run(False)
        with warnings.catch_warnings():  # "assuming the intent is to save in a single process"
            warnings.filterwarnings("ignore", "torch.distributed is disabled")
            return run(True)
    except CheckpointException as exc:
        err = reader.last_error if reader is not None else None
        if err is None:
            err = next((e for e, _ in exc.failures.values() if isinstance(e, S3DlioError)), None)
        if err is None:
            raise
        raise err from exc
