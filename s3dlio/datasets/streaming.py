"""Streaming shard datasets: shards read front to back in large ranges, shuffled through a buffer.

::

    from s3dlio.datasets.streaming import StreamingDataset
    from s3dlio.torch import ResumableDataLoader

    ds = StreamingDataset("s3://bucket/train/", format="webdataset", shuffle=True,
                          shuffle_buffer=10_000, cache_dir="/local/cache")
    loader = ResumableDataLoader(ds, batch_size=64, num_workers=4)
    for epoch in range(10):
        loader.set_epoch(epoch)
        for batch in loader: ...
        state = loader.state_dict()            # exact mid-epoch resume point

A map-style dataset makes one request per record (thousands per second of small GETs, each
paying a round trip and, on a cloud, a fee). A :class:`StreamingDataset` reads each shard
(object) sequentially in ``part_size`` range requests, so an epoch costs at most
``sum(ceil(size / part_size)) + shards`` requests, and randomises through the shard order and a
shuffle buffer instead. See ``docs/datasets.md`` ("Streaming shard datasets") for the details:
how shards are dealt to ranks and workers, the memory bound, the cache, the resume state.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..errors import InvalidArgumentError, NotFoundError, S3DlioError
from ..formats.blocks import FetchStats
from ..formats.registry import format_names, format_spec
from ..io import ops
from ..io.config import MiB, parse_size
from ..io.executor import bounded_map
from ..io.listing import select
from ..io.store import HasStores
from ..io.uri import ObjectURI, parse_uri
from .cache import ShardCache
from .sampling import EpochSampler, Resumable, WorldLayout
from .shardformats import ReadFailure, decode_record, parquet_available
from .shardio import PartStream, Shard
from .streamstate import (
    INFINITE,
    Draws,
    ShuffleBuffer,
    assign_shards,
    epoch_order,
    replay,
    round_robin,
    worker_seed,
)

try:  # a torch IterableDataset when torch is there (DataLoader workers then split shards)
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - depends on the environment
    _Base = object  # type: ignore[assignment,misc]

__all__ = ["ON_ERROR", "STATE_VERSION", "StreamSampler", "StreamingDataset", "list_shards"]

log = logging.getLogger("s3dlio")

#: Version of the dict :meth:`StreamingDataset.state_dict` returns.
STATE_VERSION = 1
#: What ``on_error`` accepts.
ON_ERROR = ("raise", "skip")
_SIDE_FILES = (".idx",)  # TFRecord indexes beside their shards
_HEAD = 2  # shared slots before the per-shard counts: [workers of the pass, unused]


def list_shards(
    uris: str | ObjectURI | os.PathLike[str] | Sequence[str | ObjectURI],
    *,
    format: str = "tfrecord",
    client: HasStores | None = None,
) -> list[Shard]:
    """The shards a dataset reads: a list of URIs (each one ``HEAD``-ed, concurrently, in this
    order), or a prefix or glob (listed, in key order; TFRecord ``.idx`` files left out).

    Raises:
        NotFoundError: nothing matches, or a listed URI does not exist.
        InvalidArgumentError: an empty list.
    """
    if isinstance(uris, (str, ObjectURI, os.PathLike)):
        parsed = parse_uri(
            os.fspath(uris) if isinstance(uris, os.PathLike) else uris, allow_bare=True
        )
        shards: list[Shard] = []
        for meta in select(parsed, recursive=True, client=client):
            key = meta.key
            if meta.is_prefix or key.endswith("/"):
                continue
            if format == "tfrecord" and key.endswith(_SIDE_FILES):
                continue
            shards.append(Shard(len(shards), str(meta.uri), meta.size, meta.etag))
        if not shards:
            raise NotFoundError("selects no shards", uri=str(parsed), op="LIST")
        return shards
    targets = [parse_uri(u, allow_bare=True) for u in uris]
    if not targets:
        raise InvalidArgumentError("StreamingDataset needs at least one shard URI")
    out = []
    for i, (uri, outcome) in enumerate(
        bounded_map(lambda u: ops.stat(u, client), targets, max_in_flight=32)
    ):
        meta = outcome.result()
        out.append(Shard(i, str(uri), meta.size, meta.etag))
    return out


class StreamSampler(EpochSampler):
    """The epoch and resume bookkeeping of a :class:`StreamingDataset` (its ``sampler``).

    An :class:`~s3dlio.datasets.sampling.EpochSampler` whose items are shards, so that
    :class:`~s3dlio.torch.ResumableDataLoader` drives it as it drives the other datasets:
    the loader counts the batches the training loop consumed, and this object turns that count
    into the records each DataLoader worker had delivered (workers report the record count of
    every shard they finish through memory shared with the main process).

    Args:
        shards: The dataset's shards.
        shuffle: Shuffle the shard order each epoch.
        seed: Seed of the shard order and of the shuffle buffers.
        rank: This rank (``None``: detected).
        world_size: Number of ranks (``None``: detected).
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(len(shards), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
        self.sizes = [s.size for s in shards]
        n = len(shards)
        self._shared: Any = multiprocessing.RawArray("q", _HEAD + 2 * n)
        self._shared[_HEAD : _HEAD + n] = [-1] * n  # records per shard (-1: not read yet)
        self._resume: dict[str, Any] | None = None  # loaded, for the next pass
        self._base: dict[str, Any] | None = None  # the point the current pass started from
        self._armed = False  # a loader began a pass here; a local __iter__ starts from _base
        self._mode = "idle"  # "local": iterated in this process; "loader": in DataLoader workers
        self._delivered = 0
        self._loader_seen = 0

    # -- shared counters ------------------------------------------------------------------------
    def counts(self) -> list[int]:
        """Records of each shard as last read (``-1``: not read in this run yet)."""
        n = self.num_items
        known = list(self._shared[_HEAD : _HEAD + n])
        for state in (self._base, self._resume):
            if state is not None:
                for i, c in enumerate(state["counts"]):
                    if known[i] < 0:
                        known[i] = int(c)
        return known

    def record_count(self, shard: int, records: int, skipped: int) -> None:
        """A worker finished reading ``shard``: it held ``records`` records (``skipped`` bad)."""
        self._shared[_HEAD + shard] = records
        self._shared[_HEAD + self.num_items + shard] = skipped

    @property
    def skipped(self) -> int:
        """Bad records (or shard tails) skipped in the latest read of each shard, all workers."""
        n = self.num_items
        return int(sum(self._shared[_HEAD + n : _HEAD + 2 * n]))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if multiprocessing.context.get_spawning_popen() is None:
            # Pickled for something else than a DataLoader worker: the counters go as values
            # (shared memory travels only to the processes being started).
            state["_shared"] = list(self._shared[:])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(self._shared, list):
            values = self._shared
            self._shared = multiprocessing.RawArray("q", len(values))
            self._shared[:] = values

    # -- passes -------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from the next pass (a loaded state of this epoch stays)."""
        if epoch < 0:
            raise InvalidArgumentError(f"epoch must be >= 0, got {epoch}")
        if epoch != self._epoch:
            self._epoch = epoch
            self._resume = self._base = None
            self._armed = False
            self._mode = "idle"
            self._delivered = self._loader_seen = 0

    def next_start(self, layout: WorldLayout | None = None) -> tuple[int, int]:
        """``(0, 0)``: a loader counts the batches of each pass from zero (the resume point
        itself travels to the workers with the dataset).

        :class:`~s3dlio.torch.ResumableDataLoader` calls it just before it starts the pass's
        workers, which then report how many they are.
        """
        self._shared[0] = 0
        return 0, 0

    def sequence_length(self, global_offset: int = 0, layout: WorldLayout | None = None) -> int:
        """Unknown before the shards are read: a bound no count reaches."""
        return INFINITE

    def set_position(self, global_offset: int, samples_seen: int) -> None:
        """Called by :class:`~s3dlio.torch.ResumableDataLoader`: ``samples_seen`` is
        ``batches * batch_size`` consumed in this pass (0 when the pass starts)."""
        if samples_seen == 0:
            self._base, self._resume = self._resume, None
            self._armed = True
            self._mode = "loader"
            self._loader_seen = 0
        else:
            self._loader_seen = int(samples_seen)

    def begin(self, layout: WorldLayout) -> tuple[WorldLayout, int, list[int]]:  # type: ignore[override]
        """Start a pass in this process.

        Returns:
            ``(role, emitted, counts)``: the layout whose records this process delivers (a
            resumed pass rotates the DataLoader workers' roles so that the loader's turn
            order continues where the interrupted run stood), the records that role had
            emitted, and the known record counts of the shards.

        Raises:
            InvalidArgumentError: the resume point was saved with another layout (ranks or
                DataLoader workers) and is not at the start of the epoch.
        """
        if self._resume is not None:
            start: dict[str, Any] | None = self._resume
        else:
            start = self._base if self._armed else None
        self._resume = None
        self._armed = False
        self._base = start
        self._mode = "local"
        self._delivered = 0
        self._shared[0] = layout.num_workers
        counts = self.counts()
        if start is None or not any(start["consumed"]):
            return layout, 0, counts
        saved = (int(start["rank"]), int(start["world_size"]), int(start["num_workers"]))
        now = (layout.rank, layout.world_size, layout.num_workers)
        if saved != now:
            raise InvalidArgumentError(
                f"the resume state was saved by rank {saved[0]} of {saved[1]} with {saved[2]} "
                f"DataLoader worker(s); this is rank {now[0]} of {now[1]} with {now[2]}: "
                "resume with the same layout (or from the start of an epoch)"
            )
        role = (layout.worker_id + int(start.get("next_worker", 0))) % layout.num_workers
        role_layout = WorldLayout(layout.rank, layout.world_size, role, layout.num_workers)
        return role_layout, int(start["consumed"][role]), counts

    def delivered(self) -> None:
        """One more record reached the consumer (iteration in this process)."""
        self._delivered += 1

    def worker_shards(self, layout: WorldLayout) -> list[int]:
        """The shards the worker of ``layout`` reads this epoch, in order."""
        order = epoch_order(self.num_items, shuffle=self.shuffle, seed=self.seed, epoch=self._epoch)
        return assign_shards(
            self.sizes,
            order,
            rank=layout.rank,
            world_size=layout.world_size,
            worker=layout.worker_id,
            num_workers=layout.num_workers,
        )

    # -- state --------------------------------------------------------------------------------
    def _consumed(self, lay: WorldLayout, samples_seen: int | None) -> tuple[int, list[int], int]:
        """``(workers, records consumed per worker role, role that delivers next)``."""
        base = self._base
        if self._mode == "local" and samples_seen is None:
            first = int(base["consumed"][0]) if base is not None and base["consumed"] else 0
            return 1, [first + self._delivered], 0
        workers = int(self._shared[0]) or (int(base["num_workers"]) if base else 1)
        before = list(base["consumed"]) if base is not None else [0] * workers
        rotation = int(base.get("next_worker", 0)) if base is not None else 0
        if len(before) != workers:  # a state at the start of an epoch fits any layout
            before, rotation = [0] * workers, 0
        seen = self._loader_seen if samples_seen is None else int(samples_seen)
        if self._mode == "idle" and samples_seen is None:
            return workers, before, rotation
        size = max(1, self.block_size)
        counts = self.counts()
        remaining, lengths = [], []
        for position in range(workers):  # the DataLoader's worker ``position`` plays ``role``
            role = (position + rotation) % workers
            layout = WorldLayout(lay.rank, lay.world_size, role, workers)
            shard_counts = [counts[s] for s in self.worker_shards(layout)]
            total = sum(shard_counts) if min(shard_counts, default=0) >= 0 else INFINITE
            rest = max(0, total - before[role])
            remaining.append(rest)
            lengths.append(INFINITE if total == INFINITE else -(-rest // size))
        taken, last = round_robin(seen // size, lengths)
        consumed = list(before)
        for position in range(workers):
            role = (position + rotation) % workers
            consumed[role] += min(taken[position] * size, remaining[position])
        following = rotation if last < 0 else (last + 1 + rotation) % workers
        return workers, consumed, following

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """The resume state: a small, picklable, versioned dict.

        Args:
            samples_seen: Records the loop consumed in this pass, counted in whole batches
                (``batches * batch_size``, as :class:`~s3dlio.torch.ResumableDataLoader`
                counts them). ``None``: what the loader (or iteration in this process) counted.
        """
        if self._resume is not None and samples_seen is None:
            return dict(self._resume)
        lay = self.layout()
        workers, consumed, following = self._consumed(lay, samples_seen)
        return {
            "version": STATE_VERSION,
            "kind": "streaming",
            "num_items": self.num_items,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "epoch": self._epoch,
            "rank": lay.rank,
            "world_size": lay.world_size,
            "num_workers": workers,
            "consumed": consumed,
            "next_worker": following,
            "counts": self.counts(),
            "samples_seen": sum(consumed),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass deliver exactly the records the state had not delivered.

        Raises:
            InvalidArgumentError: a state of another kind or version, or of another dataset.
        """
        if state.get("kind") != "streaming" or state.get("version") != STATE_VERSION:
            raise InvalidArgumentError(
                f"not a StreamingDataset state (kind {state.get('kind')!r}, "
                f"version {state.get('version')!r})"
            )
        if int(state["num_items"]) != self.num_items:
            raise InvalidArgumentError(
                f"the state is of a dataset of {state['num_items']} shards, this one has "
                f"{self.num_items}"
            )
        if len(state["counts"]) != self.num_items or min(state["consumed"], default=0) < 0:
            raise InvalidArgumentError("malformed StreamingDataset state")
        self.shuffle = bool(state["shuffle"])
        self.seed = int(state["seed"])
        self._epoch = int(state["epoch"])
        self._resume = {
            **state,
            "consumed": list(state["consumed"]),
            "counts": list(state["counts"]),
        }
        self._base = None
        self._armed = False
        self._mode = "idle"
        self._delivered = self._loader_seen = 0

    def __len__(self) -> int:
        """Shards this rank reads per epoch."""
        lay = self.layout()
        order = epoch_order(self.num_items, shuffle=self.shuffle, seed=self.seed, epoch=self._epoch)
        return len(
            assign_shards(
                self.sizes, order, rank=lay.rank, world_size=lay.world_size, worker=0, num_workers=1
            )
        )


class StreamingDataset(Resumable, _Base):
    """Records of shards read front to back, sharded per rank and worker, shuffled, resumable.

    Args:
        uris: Shards: a list of URIs (read in this order when not shuffled), a prefix or a
            glob (listed once, in key order), on any backend.
        format: ``"tfrecord"`` (CRC-checked payloads), ``"raw"`` (``record_size``-byte
            records), ``"npz"`` (one array per member), ``"npy"`` (one array per object),
            ``"parquet"`` (one ``pyarrow.Table`` per row group) or ``"webdataset"`` (tar shards,
            one dict per sample: ``{"__key__", "__url__", ext: bytes, ...}``).
        shuffle: Shuffle the shard order each epoch (a pure function of ``seed`` and epoch).
        seed: Seed of the shard order and of the shuffle buffer.
        shuffle_buffer: Records held by the shuffle buffer (0: records in shard order).
        record_size: Bytes per record for ``format="raw"`` (int or ``"4KiB"``).
        cache_dir: Keep shards on local disk after the first read (see
            :class:`~s3dlio.datasets.cache.ShardCache`).
        max_cache_bytes: Bound of the cache directory (``None``: no bound).
        part_size: Bytes per range request (int or ``"8MiB"``).
        decode: Decode records: ``tf.train.Example`` to ``{name: np.ndarray}``, WebDataset
            text/class/JSON/``.npy`` files to ``str``/``int``/objects/arrays.
        transform: Called on each record (after ``decode``) before it is yielded.
        rank: This rank (``None``: ``torch.distributed``, JAX, ``RANK``/``WORLD_SIZE``).
        world_size: Number of ranks (with ``rank``).
        client: The :class:`s3dlio.Client` to read through (default: the default client).
        on_error: ``"raise"`` (default): bad data raises
            :class:`~s3dlio.errors.IntegrityError` naming the shard and offset; ``"skip"``:
            a bad record is skipped (a corrupt header or truncation ends its shard) and
            counted in :attr:`skipped`.

    Memory per iterating process is bounded by ``3 * part_size`` of part buffers (the part
    being parsed and two fetched ahead, including the next shard's first part), plus
    ``shuffle_buffer`` records, plus, for ``npz``/``npy``/``parquet``, one whole object
    (their index sits at the end), plus one record when a record is larger than a part.

    Raises:
        NotFoundError: ``uris`` selects nothing, or a listed shard does not exist.
        InvalidArgumentError: a bad argument, a cache directory that cannot be written, or
            ``format="parquet"`` without :mod:`s3dlio.formats.parquet`.
    """

    def __init__(
        self,
        uris: str | ObjectURI | os.PathLike[str] | Sequence[str | ObjectURI],
        format: str = "tfrecord",
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer: int = 0,
        record_size: int | str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_cache_bytes: int | str | None = None,
        part_size: int | str = 8 * MiB,
        decode: bool = False,
        transform: Callable[[Any], Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        *,
        client: HasStores | None = None,
        on_error: str = "raise",
    ) -> None:
        spec = format_spec(format)  # aliases too: "tfrecords", "wds", "tar", ...
        if spec.stream is None:
            raise InvalidArgumentError(
                f"format must be one of {format_names('stream')}, got {format!r}", op="LIST"
            )
        format = spec.name
        self._shard_records = spec.load("stream")
        if format == "parquet" and not parquet_available():
            raise InvalidArgumentError(
                "format='parquet' needs s3dlio.formats.parquet, which this installation lacks"
            )
        if on_error not in ON_ERROR:
            raise InvalidArgumentError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if int(shuffle_buffer) < 0:
            raise InvalidArgumentError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.format = format
        self.part_size = parse_size(part_size)
        if self.part_size < 1:
            raise InvalidArgumentError(f"part_size must be >= 1 byte, got {part_size!r}")
        self.record_size = None if record_size is None else parse_size(record_size)
        if format == "raw" and not self.record_size:
            raise InvalidArgumentError("format='raw' needs record_size (bytes per record, >= 1)")
        self.shuffle_buffer = int(shuffle_buffer)
        self.decode = decode
        self.transform = transform
        self.on_error = on_error
        self.client = client
        limit = None if max_cache_bytes is None else parse_size(max_cache_bytes)
        self.cache = None if cache_dir is None else ShardCache(cache_dir, limit)
        self.shards = list_shards(uris, format=format, client=client)
        self.sampler = StreamSampler(
            self.shards, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size
        )
        self.stats = FetchStats()

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing happens before the first record is asked for (a DataLoader
        # calls iter() before ResumableDataLoader positions the sampler).
        sampler = self.sampler
        layout, emitted, counts = sampler.begin(sampler.layout())
        mine = sampler.worker_shards(layout)
        draws = Draws(
            worker_seed(
                sampler.seed,
                sampler.epoch,
                layout.rank,
                layout.world_size,
                layout.worker_id,
                layout.num_workers,
            )
        )
        positions = list(range(len(mine)))
        wanted: dict[tuple[int, int], int] = {}
        first: tuple[int, int] | None = (0, 0)
        held: list[Any] | None = None
        if emitted:
            state = replay([counts[s] for s in mine], emitted, self.shuffle_buffer, draws)
            wanted = {ordinal: slot for slot, ordinal in enumerate(state.held)}
            first = state.next
            needed = {p for p, _ in state.held}
            if first is not None:
                needed.update(range(first[0], len(mine)))
            positions = sorted(needed)
            held = [None] * len(state.held)
        buffer = ShuffleBuffer(self.shuffle_buffer, draws, held)
        yield from self._run(mine, positions, wanted, first, buffer)

    def _run(
        self,
        mine: list[int],
        positions: list[int],
        wanted: dict[tuple[int, int], int],
        first: tuple[int, int] | None,
        buffer: ShuffleBuffer,
    ) -> Iterator[Any]:
        sampler = self.sampler
        stream = PartStream(
            [self.shards[mine[p]] for p in positions],
            self.part_size,
            cache=self.cache,
            client=self.client,
            stats=self.stats,
        )
        finish = self._finish
        plain = not self.decode and self.transform is None
        direct = buffer.size == 0  # no shuffle buffer: records go straight out
        push = buffer.push
        try:
            for shard_pass in stream:
                position = positions[shard_pass.position]
                shard = shard_pass.shard
                skipped = [0]
                records = self._shard_records(
                    self.format,
                    shard_pass.windows(),
                    uri=shard.uri,
                    size=shard.size,
                    fail=self._failer(skipped),
                    record_size=self.record_size,
                    expect=self._expect(stream),
                )
                count = 0
                resuming = bool(wanted) or first is None or first > (position, 0)
                for record in records:
                    if resuming:  # (a plain pass skips this per-record bookkeeping)
                        ordinal = (position, count)
                        if wanted:
                            slot = wanted.pop(ordinal, None)
                            if slot is not None:
                                buffer.items[slot] = record
                                count += 1
                                continue
                        if first is None or ordinal < first:
                            count += 1
                            continue  # delivered before the resume point
                    count += 1
                    if direct:
                        sampler._delivered += 1
                        yield record if plain else finish(record)
                        continue
                    out, item = push(record)
                    if out:
                        sampler._delivered += 1
                        yield item if plain else finish(item)
                sampler.record_count(shard.index, count, skipped[0])
            while True:
                out, item = buffer.pop()
                if not out:
                    break
                sampler.delivered()
                yield finish(item)
        except ReadFailure as failure:
            raise failure.error from None
        finally:
            stream.close()

    def _finish(self, record: Any) -> Any:
        if self.decode:
            record = decode_record(self.format, record)
        return record if self.transform is None else self.transform(record)

    def _failer(self, skipped: list[int]) -> Callable[[S3DlioError], None]:
        def fail(error: S3DlioError) -> None:
            if self.on_error == "raise":
                raise error
            skipped[0] += 1
            log.warning("StreamingDataset skipped bad data: %s", error)

        return fail

    @staticmethod
    def _expect(stream: PartStream) -> Callable[[int, int], None]:
        limit = max(stream.part_size, 64 * 1024)

        def expect(nbytes: int, headroom: int) -> None:
            need = -(-(nbytes + headroom) // 4096) * 4096
            if need > stream.headroom:
                stream.headroom = min(max(need, 2 * stream.headroom), limit)

        return expect

    # -- bookkeeping ----------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["stats"] = None  # counters (with a lock) stay in their process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stats = FetchStats()

    def _epoch_sampler(self) -> EpochSampler:
        return self.sampler

    @property
    def skipped(self) -> int:
        """Bad records (or shard tails) skipped with ``on_error="skip"``, all workers."""
        return self.sampler.skipped

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self.sampler.epoch

    def shards_for(self, layout: WorldLayout) -> list[Shard]:
        """The shards the rank and worker of ``layout`` read this epoch, in order."""
        return [self.shards[i] for i in self.sampler.worker_shards(layout)]

    def requests_bound(self) -> int:
        """Most requests an epoch makes: ``sum(ceil(size / part_size)) + shards``."""
        part = self.part_size
        return sum(-(-s.size // part) for s in self.shards) + len(self.shards)

    def __repr__(self) -> str:
        return (
            f"StreamingDataset({len(self.shards)} shards, format={self.format!r}, "
            f"epoch={self.epoch}, shuffle_buffer={self.shuffle_buffer})"
        )
