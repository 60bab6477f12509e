"""The checkpoint store: atomic commits, verified loads, retention, on any backend.

Commit protocol (:meth:`CheckpointStore.commit`): every rank's shard is stored first (each
atomically, by the streaming writer); then the complete manifest, one atomic PUT; then
``latest.json``. A checkpoint exists exactly when its complete manifest does, so a crash at any
point leaves what :meth:`~CheckpointStore.load_latest` returns unchanged.

Readers trust only complete manifests whose shards are all present with the recorded sizes,
and check each shard's CRC32C as they load it. The newest checkpoint is the newest complete
manifest, by save time (the ``<ts>`` of its key, then its ``wall_time``): ``latest.json`` is
written for the original s3dlio and for people; a missing or stale one changes nothing.

After a commit, ``keep_last`` retention deletes older checkpoints (manifest first, so each
stops existing before its shards go), and shard directories that no manifest lists and that
are older than the commit (left by a crashed save) are removed.
"""

from __future__ import annotations

import calendar
import dataclasses
import io
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    S3DlioError,
)
from ..io import ops, transfer
from ..io.executor import bounded_map
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from .config import CheckpointConfig
from .loading import load_shard
from .manifest import (
    LATEST_KEY,
    MANIFEST_DIR,
    SHARD_DIR,
    CheckpointInfo,
    Latest,
    Manifest,
    ManifestName,
    ShardMeta,
    format_timestamp,
    parse_wall_time,
    shard_key,
)
from .shards import ShardStream, read_shard, write_shard

if TYPE_CHECKING:
    from .distributed import CheckpointWriter

__all__ = ["CheckpointReader", "CheckpointStore"]

log = logging.getLogger("s3dlio.checkpoint")


class CheckpointStore:
    """Checkpoints under one base URI, in the original s3dlio's layout.

    Args:
        uri: Base URI (``s3://bucket/run1/``, ``file:///ckpt/``, ...) on any backend.
        strategy: ``"flat"`` (default), ``"round_robin"`` or ``"binary"`` shard key layout.
        multipart_threshold: Upload part size for shards (the original's name).
        compression_level: zstd level for shards (``None``: uncompressed).
        keep_last: Keep only this many newest checkpoints after each commit.
        config: A full :class:`CheckpointConfig` (overrides the keywords above).
        client: The :class:`s3dlio.Client` to store through (default: the default client).

    ``save(step, epoch, framework, data)`` stores ``data``: bytes as-is, or a PyTorch
    ``state_dict`` / JAX or NumPy pytree with tensors streamed (see
    :mod:`s3dlio.checkpoint.serializers`); ``load_latest()`` / ``load(step)`` give it back.
    """

    def __init__(
        self,
        uri: str | ObjectURI,
        strategy: str | None = None,
        multipart_threshold: int | str | None = None,
        compression_level: int | None = None,
        keep_last: int | None = None,
        *,
        config: CheckpointConfig | None = None,
        client: HasStores | None = None,
    ) -> None:
        if config is None:
            config = CheckpointConfig(
                strategy=strategy or "flat",
                compression_level=compression_level,
                keep_last=keep_last,
            )
            if multipart_threshold is not None:
                config = dataclasses.replace(config, part_size=multipart_threshold)
        self.config = config
        self.client = client
        base = parse_uri(uri, allow_bare=True)
        self.base = base.join("") if base.key else base
        self.uri = str(self.base)
        self._cache: dict[ManifestName, Manifest] = {}

    def __repr__(self) -> str:
        return f"CheckpointStore({self.uri!r}, strategy={self.config.strategy!r})"

    def _uri(self, key: str) -> ObjectURI:
        return self.base.join(key)

    # -- saving ------------------------------------------------------------------------------
    def save(self, step: int, epoch: int, framework: str, data: Any, user_meta: Any = None) -> str:
        """Save a single-rank checkpoint and commit it.

        Args:
            step: Global step (>= 0).
            epoch: Epoch (>= 0).
            framework: Free text recorded in the manifest (``"torch"``, ``"jax"``...).
            data: Bytes-like (stored as-is) or a tensor tree (``state_dict``, pytree).
            user_meta: Any JSON-serialisable value, kept in the manifest.

        Returns:
            The manifest key (``manifests/ckpt-<step>-<ts>.json``).
        """
        stream = self.shard_stream(step, epoch, rank=0)
        meta = write_shard(stream, data)
        return self.commit(step, epoch, framework, [meta], 1, user_meta, timestamp=stream.timestamp)

    def save_stream(
        self, step: int, epoch: int, framework: str, user_meta: Any = None
    ) -> ShardStream:
        """A writable file object that commits a single-rank checkpoint when finalized.

        ``with store.save_stream(100, 1, "torch") as f: torch.save(state, f)`` streams
        ``torch.save``'s output to the store and commits on leaving the block (an exception
        discards it). ``f.manifest_key`` is the committed manifest's key.
        """
        stream = self.shard_stream(step, epoch, rank=0)

        def commit(meta: ShardMeta) -> str | None:
            return self.commit(step, epoch, framework, [meta], 1, user_meta, stream.timestamp)

        stream._on_finalize = commit
        return stream

    def shard_stream(
        self, step: int, epoch: int, rank: int, world_size: int = 1, timestamp: str | None = None
    ) -> ShardStream:
        """A stream for rank ``rank``'s shard of checkpoint ``step`` (not committed by itself)."""
        _check_step(step, epoch)
        if not 0 <= rank < world_size:
            raise InvalidArgumentError(f"rank must be in 0..{world_size - 1}, got {rank}")
        ts = timestamp or self.fresh_timestamp(step)
        key = shard_key(step, ts, rank, self.config.strategy)
        return ShardStream(
            self.base,
            key,
            self.config.writer_options(),
            step=step,
            epoch=epoch,
            rank=rank,
            timestamp=ts,
            client=self.client,
        )

    def fresh_timestamp(self, step: int) -> str:
        """A ``<ts>`` for a new checkpoint of ``step``: now, or later if now is taken.

        Two saves of one step within one second would share keys; the second moves to the
        next free second, so it never overwrites the committed first.
        """
        ts = format_timestamp()
        while object_exists(self._uri(ManifestName(ts, step).key), self.client):
            seconds = calendar.timegm(time.strptime(ts, "%Y%m%d-%H%M%S")) + 1
            ts = format_timestamp(seconds * 1_000_000_000)
        return ts

    def commit(
        self,
        step: int,
        epoch: int,
        framework: str,
        shards: Iterable[ShardMeta | Mapping[str, Any]],
        world_size: int,
        user_meta: Any = None,
        timestamp: str | None = None,
    ) -> str:
        """Commit a checkpoint whose shards are all stored: manifest, then ``latest.json``.

        Args:
            shards: One entry per rank ``0..world_size-1`` (``ShardMeta`` or the dicts that
                :meth:`ShardStream.finalize` returns).
            timestamp: The ``<ts>`` of the manifest key (default: rank 0's shard's, else now).

        Returns:
            The manifest key.

        Raises:
            IntegrityError: ranks missing or repeated, or a shard is missing or has another
                size than recorded. Nothing is committed then.
        """
        _check_step(step, epoch)
        metas = [s if isinstance(s, ShardMeta) else ShardMeta.from_dict(s) for s in shards]
        ts = timestamp or _shard_timestamp(metas) or self.fresh_timestamp(step)
        manifest = Manifest.build(framework, step, epoch, world_size, metas, user_meta)
        problems = self._shard_problems(manifest)
        if problems:
            raise IntegrityError("; ".join(problems), uri=self.uri, op="CHECKPOINT_COMMIT")
        name = ManifestName(ts, step)
        ops.put(self._uri(name.key), memoryview(manifest.encode()), client=self.client)
        self._cache[name] = manifest
        latest = memoryview(Latest(name.key, step, ts).encode())
        ops.put(self._uri(LATEST_KEY), latest, client=self.client)
        self._tidy(name, manifest)
        return name.key

    # -- manifests ---------------------------------------------------------------------------
    def manifest_names(self) -> list[ManifestName]:
        """Every manifest key under the base (complete or not), parsed, in key order."""
        found = []
        for page in ops.list_pages(self._uri(MANIFEST_DIR), recursive=False, client=self.client):
            for meta in page:
                name = None if meta.is_prefix else ManifestName.parse(meta.key)
                if name is not None:
                    found.append(name)
        return found

    def manifest(self, name: ManifestName) -> Manifest | None:
        """The manifest stored under ``name``; ``None`` if it is gone or malformed."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        try:
            manifest = Manifest.decode(ops.get(self._uri(name.key), self.client))
        except NotFoundError:
            return None
        except IntegrityError as exc:
            log.warning("ignoring malformed manifest %s: %s", self._uri(name.key), exc)
            return None
        self._cache[name] = manifest
        return manifest

    def _newest_first(self, names: Iterable[ManifestName]) -> list[ManifestName]:
        """Order by save time: ``<ts>``, then ``wall_time`` for saves within the same second."""
        names = sorted(names, reverse=True)
        per_ts: dict[str, int] = {}
        for n in names:
            per_ts[n.ts] = per_ts.get(n.ts, 0) + 1

        def when(n: ManifestName) -> tuple[str, int, int]:
            if per_ts[n.ts] == 1:
                return (n.ts, 0, n.step)
            manifest = self.manifest(n)
            return (n.ts, parse_wall_time(manifest.wall_time) if manifest else 0, n.step)

        return sorted(names, key=when, reverse=True)

    def _shard_problems(self, manifest: Manifest) -> list[str]:
        """What is wrong with the stored shards: missing, or another size (concurrent HEADs)."""

        def check(meta: ShardMeta) -> str | None:
            try:
                size = ops.stat(self._uri(meta.key), self.client).size
            except NotFoundError:
                return f"shard {meta.key} (rank {meta.rank}) is missing"
            if size != meta.size:
                return f"shard {meta.key} is {size} bytes, the manifest says {meta.size}"
            return None

        if len(manifest.shards) == 1:
            results = [check(manifest.shards[0])]
        else:
            results = [f.result() for _, f in bounded_map(check, manifest.shards, 16)]
        return [p for p in results if p]

    def _committed(
        self,
        names: Iterable[ManifestName],
        *,
        check_shards: bool = True,
        problems: list[str] | None = None,
    ) -> tuple[ManifestName, Manifest] | None:
        """The newest complete manifest among ``names`` whose shards are all stored."""
        for name in self._newest_first(names):
            manifest = self.manifest(name)
            if manifest is None or not manifest.is_complete:
                continue
            found = self._shard_problems(manifest) if check_shards else []
            if not found:
                return name, manifest
            log.warning("skipping unusable checkpoint %s: %s", name.key, "; ".join(found))
            if problems is not None:
                problems.extend(found)
        return None

    def latest(self) -> tuple[ManifestName, Manifest] | None:
        """The newest committed checkpoint whose shards are all present, or ``None``."""
        return self._committed(self.manifest_names())

    def find(self, step: int) -> tuple[ManifestName, Manifest]:
        """The newest committed checkpoint of ``step``.

        Raises:
            NotFoundError: there is none.
            IntegrityError: there is one, but a shard is missing or has another size.
        """
        problems: list[str] = []
        names = [n for n in self.manifest_names() if n.step == step]
        found = self._committed(names, problems=problems)
        if found is None and problems:
            raise IntegrityError(
                f"checkpoint step {step} is damaged: " + "; ".join(problems),
                uri=self.uri,
                op="CHECKPOINT_LOAD",
            )
        if found is None:
            raise NotFoundError(
                f"no committed checkpoint for step {step}", uri=self.uri, op="CHECKPOINT_LOAD"
            )
        return found

    # -- loading -----------------------------------------------------------------------------
    def load_latest(
        self, rank: int | None = None, *, raw: bool = False, weights_only: bool = True
    ) -> Any:
        """Load the newest committed checkpoint (``None`` if there is none).

        Args:
            rank: Whose shard to load; default rank 0 of a single-rank checkpoint, or this
                process's ``torch.distributed`` rank when the world sizes match.
            raw: Return the shard's bytes even if it holds a tensor tree.
            weights_only: Load trees with the restricted unpickler (see serializers).

        Returns:
            Saved bytes as a zero-copy ``BytesView``, or the saved tensor tree.

        Raises:
            IntegrityError: the shard fails its CRC32C check (it is never silently replaced
                by an older checkpoint).
        """
        found = self.latest()
        if found is None:
            return None
        return self._load(found[1], rank, raw, weights_only)

    def load(
        self, step: int, rank: int | None = None, *, raw: bool = False, weights_only: bool = True
    ) -> Any:
        """Load the checkpoint of ``step`` (see :meth:`load_latest`).

        Raises:
            NotFoundError: no committed checkpoint of that step.
            IntegrityError: its shards are damaged (missing, wrong size or checksum).
        """
        return self._load(self.find(step)[1], rank, raw, weights_only)

    def open(
        self, step: int | None = None, rank: int | None = None, *, verify: bool | None = None
    ) -> io.RawIOBase | io.BytesIO:
        """A seekable, read-only file over a shard: ``torch.load(store.open())`` works.

        Args:
            step: The checkpoint; ``None`` for the newest.
            rank: As for :meth:`load_latest`.
            verify: Check the shard's CRC32C first (default: ``config.verify``). Verified, the
                shard is read whole and served from memory; unverified and uncompressed, it is
                a :class:`~s3dlio.io.rangefile.RangeFile` that fetches only what is read.
        """
        if step is None:
            found = self.latest()
            if found is None:
                raise NotFoundError("no committed checkpoint", uri=self.uri, op="CHECKPOINT_LOAD")
        else:
            found = self.find(step)
        manifest = found[1]
        meta = manifest.shard(_resolve_rank(manifest, rank))
        verify = self.config.verify if verify is None else verify
        if not verify and not meta.key.endswith(".zst"):
            from ..io.rangefile import RangeFile

            return RangeFile(self._uri(meta.key))
        return io.BytesIO(read_shard(self.base, meta, verify=verify, client=self.client))

    def read_shard(self, manifest: Manifest, rank: int | None = None) -> Any:
        """The bytes of one rank's shard, checked when ``config.verify`` (a ``BytesView``)."""
        meta = manifest.shard(_resolve_rank(manifest, rank))
        return read_shard(self.base, meta, verify=self.config.verify, client=self.client)

    def _load(self, manifest: Manifest, rank: int | None, raw: bool, weights_only: bool) -> Any:
        if raw:
            return self.read_shard(manifest, rank)
        meta = manifest.shard(_resolve_rank(manifest, rank))
        return load_shard(
            self.base,
            meta,
            verify=self.config.verify,
            weights_only=weights_only,
            client=self.client,
        )

    # -- listing and deleting ----------------------------------------------------------------
    def list_checkpoints(self) -> list[CheckpointInfo]:
        """Every readable manifest, by step then time (``status`` says if complete)."""
        infos = []
        for name in sorted(self.manifest_names(), key=lambda n: (n.step, n.ts)):
            manifest = self.manifest(name)
            if manifest is not None:
                infos.append(CheckpointInfo.of(name, manifest))
        return infos

    def delete_checkpoint(self, step: int) -> bool:
        """Delete every checkpoint of ``step``; returns whether there was one.

        Each manifest goes first (the checkpoint stops existing), then its shards. If
        ``latest.json`` named it, it is pointed at the newest remaining checkpoint.
        """
        names = self.manifest_names()
        doomed = [n for n in names if n.step == step]
        for name in doomed:
            self._delete(name)
        if doomed:
            self._repoint_latest(set(doomed), [n for n in names if n.step != step])
        return bool(doomed)

    def _delete(self, name: ManifestName) -> None:
        manifest = self.manifest(name)
        ops.delete(self._uri(name.key), missing_ok=True, client=self.client)
        self._cache.pop(name, None)
        if manifest is None:
            return
        backend = backend_for(self.base, self.client)
        keys = [self._uri(s.key) for s in manifest.shards]
        failed = ops.call(
            "DELETE", backend, keys[0], lambda: backend.delete_many(keys), n_objects=len(keys)
        )
        failed = [(u, e) for u, e in failed if not isinstance(e, NotFoundError)]
        if failed:
            log.warning("could not delete shards of %s: %s", name.key, failed)
        for directory in {k.key.rsplit("/", 1)[0] + "/" for k in keys}:
            self._clear_dir(self.base.with_key(directory))

    def _clear_dir(self, directory: ObjectURI) -> None:
        backend = backend_for(directory, self.client)
        backend.discard_incomplete(directory)
        transfer.delete_recursive(directory)

    def _repoint_latest(self, removed: set[ManifestName], remaining: list[ManifestName]) -> None:
        try:
            current = Latest.decode(ops.get(self._uri(LATEST_KEY), self.client))
        except (NotFoundError, IntegrityError):
            current = None
        if current is not None and ManifestName.parse(current.manifest_key) not in removed:
            return
        found = self._committed(remaining, check_shards=False)
        if found is None:
            ops.delete(self._uri(LATEST_KEY), missing_ok=True, client=self.client)
        else:
            name = found[0]
            ops.put(
                self._uri(LATEST_KEY),
                memoryview(Latest(name.key, name.step, name.ts).encode()),
                client=self.client,
            )

    # -- after a commit ----------------------------------------------------------------------
    def _tidy(self, committed: ManifestName, manifest: Manifest) -> None:
        """Retention and clean-up after a commit; failures are logged, never raised."""
        try:
            for directory in {s.key.rsplit("/", 1)[0] + "/" for s in manifest.shards}:
                backend_for(self.base, self.client).discard_incomplete(self._uri(directory))
            names = self.manifest_names()
            if self.config.keep_last is not None:
                names = self._retain(committed, names, self.config.keep_last)
            self._sweep_orphans(committed, names)
        except S3DlioError as exc:
            log.warning("checkpoint clean-up after %s failed: %s", committed.key, exc)

    def _retain(
        self, committed: ManifestName, names: list[ManifestName], keep: int
    ) -> list[ManifestName]:
        """Keep ``committed`` and the ``keep - 1`` newest complete checkpoints before it."""
        ordered = self._newest_first(set(names) | {committed})
        position = ordered.index(committed)
        kept = ordered[: position + 1]  # anything newer was saved concurrently: not ours
        budget = keep - 1
        for name in ordered[position + 1 :]:
            manifest = self.manifest(name)
            if budget > 0 and manifest is not None and manifest.is_complete:
                kept.append(name)
                budget -= 1
            else:
                self._delete(name)
        return kept

    def _shard_dirs(self) -> Iterable[tuple[ManifestName, ObjectURI]]:
        """Every ``ckpt-<step>-<ts>/`` directory below ``shards/`` (any strategy), also those
        holding nothing but unfinished uploads."""
        top = self._uri(SHARD_DIR)
        seen: set[str] = set()
        for uri in backend_for(top, self.client).list_incomplete(top):
            directory = uri.key.rsplit("/", 1)[0]
            name = ManifestName.parse_dir(directory.rsplit("/", 1)[-1])
            if name is not None and directory not in seen:
                seen.add(directory)
                yield name, uri.with_key(directory + "/")
        todo = [(top, 0)]
        while todo:
            prefix, depth = todo.pop()
            for page in ops.list_pages(prefix, recursive=False, client=self.client):
                for meta in page:
                    if not meta.is_prefix:
                        continue
                    leaf = meta.key.rstrip("/").rsplit("/", 1)[-1]
                    name = ManifestName.parse_dir(leaf)
                    if name is not None:
                        if meta.key.rstrip("/") not in seen:
                            yield name, meta.uri
                    elif depth < 2:
                        todo.append((meta.uri, depth + 1))

    def _sweep_orphans(self, committed: ManifestName, names: list[ManifestName]) -> None:
        """Remove shard directories older than ``committed`` that no manifest lists."""
        known = set(names)
        for name, directory in list(self._shard_dirs()):
            if name in known or name.ts >= committed.ts:
                continue
            if self._listed_elsewhere(name, known):
                continue
            log.info("removing shards of an unfinished checkpoint: %s", directory)
            self._clear_dir(directory)

    def _listed_elsewhere(self, name: ManifestName, known: set[ManifestName]) -> bool:
        """Whether a manifest of the same step with another ``<ts>`` lists ``name``'s dir.

        (Ranks that picked their own timestamps may put shards in a differently named dir.)
        """
        marker = f"/{name.name}/"
        for other in known:
            manifest = self.manifest(other) if other.step == name.step else None
            if manifest is not None and any(marker in "/" + s.key for s in manifest.shards):
                return True
        return False

    # -- readers and writers -----------------------------------------------------------------
    def writer(self, world_size: int, rank: int) -> CheckpointWriter:
        """A writer for rank ``rank`` of a distributed checkpoint (see ``distributed``)."""
        from .distributed import CheckpointWriter

        return CheckpointWriter(self, world_size, rank)

    def reader(self) -> CheckpointReader:
        """A reader with the original's manifest-level methods."""
        return CheckpointReader(self)


class CheckpointReader:
    """Manifest-level reading, as the original's ``PyCheckpointReader``.

    Manifests are returned as plain dicts (the JSON document).
    """

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store

    def load_latest_manifest(self) -> dict[str, Any] | None:
        """The newest committed manifest as a dict, or ``None``."""
        found = self.store.latest()
        return None if found is None else found[1].to_dict()

    def load_manifest(self, step: int) -> dict[str, Any]:
        """The newest committed manifest of ``step`` as a dict (``NotFoundError`` if none)."""
        return self.store.find(step)[1].to_dict()

    def read_shard_by_rank(self, manifest: Manifest | Mapping[str, Any], rank: int) -> Any:
        """One rank's shard bytes (verified), as a zero-copy ``BytesView``."""
        if not isinstance(manifest, Manifest):
            manifest = Manifest.from_dict(manifest)
        return self.store.read_shard(manifest, rank)


# -- helpers ------------------------------------------------------------------------------------


def _check_step(step: int, epoch: int) -> None:
    for label, value in (("step", step), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"{label} must be an integer >= 0, got {value!r}")


def object_exists(uri: ObjectURI, client: HasStores | None = None) -> bool:
    """Whether the object exists (``HEAD``)."""
    try:
        ops.stat(uri, client)
    except NotFoundError:
        return False
    return True


def _shard_timestamp(metas: list[ShardMeta]) -> str | None:
    """The ``<ts>`` in rank 0's shard key, if it follows the layout."""
    for meta in metas:
        if meta.rank == 0:
            for part in meta.key.split("/"):
                name = ManifestName.parse_dir(part)
                if name is not None:
                    return name.ts
    return None


def _resolve_rank(manifest: Manifest, rank: int | None) -> int:
    if rank is not None:
        return rank
    if manifest.world_size == 1:
        return 0
    from .distributed import dist_rank_world

    current = dist_rank_world()
    if current is not None and current[1] == manifest.world_size:
        return current[0]
    raise InvalidArgumentError(
        f"checkpoint step {manifest.global_step} has {manifest.world_size} shards: pass rank= "
        "(or load inside a torch.distributed job of that world size)"
    )
