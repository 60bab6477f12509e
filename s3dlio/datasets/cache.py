"""A local disk cache of whole shards, shared by the workers and processes of one machine.

:class:`ShardCache` keeps a shard read once from object storage as a file in ``directory``, so
later epochs read it from local disk instead of the network:

- **Keyed by version**: a file's name is derived from the shard's URI *and* its size and etag,
  so an object that changed is a miss (and the old copy is removed when the new one lands).
  :class:`~s3dlio.datasets.streaming.StreamingDataset` also checks the object's current size
  and etag with one ``HEAD`` before using a cached copy in each epoch.
- **Atomic**: a copy is written through :func:`s3dlio.open_writer` to a hidden temp file beside
  its final name and renamed into place when complete, so a reader (another DataLoader worker,
  another process) sees a whole file or none, never a torn one. Two processes filling the same
  shard at once both write their own temp file; the last rename wins with identical bytes.
- **Bounded, LRU**: after each new copy, the least recently used files are deleted until the
  directory holds at most ``max_bytes`` (a hit marks a file used by setting its access time;
  its modification time, part of a local file's version, stays).
  Eviction runs under an exclusive ``fcntl`` lock on ``directory/.lock`` so two processes never
  count the directory at the same time; readers take no lock (a file deleted while open stays
  readable through its descriptor on POSIX). Temp files being written are not counted; temp
  files older than an hour (left by a killed process) are deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from dataclasses import dataclass

from ..errors import InvalidArgumentError, S3DlioError
from ..io.backends.file import TEMP_MARK
from ..io.writer import ObjectWriter, open_writer

__all__ = ["CacheEntry", "ShardCache"]

SUFFIX = ".shard"
LOCK_NAME = ".lock"
STALE_TEMP_SECONDS = 3600


@dataclass(frozen=True)
class CacheEntry:
    """One cached file.

    Attributes:
        path: Its local path.
        size: Its size in bytes.
        used: Last use (access or modification time, seconds since the epoch).
    """

    path: str
    size: int
    used: float


class ShardCache:
    """Whole shards on local disk, bounded and shared (see the module docs).

    Args:
        directory: Where the copies live (created if missing).
        max_bytes: Most bytes of copies kept (``None``: no limit). A shard larger than this is
            never cached.

    Raises:
        InvalidArgumentError: ``directory`` cannot be created or is not writable, or
            ``max_bytes`` is negative.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int | None = None) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        if max_bytes is not None and max_bytes < 0:
            raise InvalidArgumentError(f"max_cache_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        try:
            os.makedirs(self.directory, exist_ok=True)
            probe = os.path.join(self.directory, f"{TEMP_MARK}probe.{os.getpid()}")
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise InvalidArgumentError(
                f"cache_dir {self.directory!r} is not a writable directory: {exc.strerror or exc}",
                uri=self.directory,
                op="CACHE",
            ) from None

    # -- names -------------------------------------------------------------------------------
    def _stem(self, uri: str) -> str:
        return hashlib.sha256(uri.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def path_for(self, uri: str, size: int, etag: str | None) -> str:
        """The file holding version ``(size, etag)`` of ``uri``."""
        version = hashlib.sha256(f"{size}\0{etag or ''}".encode()).hexdigest()[:16]
        return os.path.join(self.directory, f"{self._stem(uri)}-{version}{SUFFIX}")

    def admits(self, size: int) -> bool:
        """Whether a shard of ``size`` bytes may be cached."""
        return self.max_bytes is None or size <= self.max_bytes

    # -- reading -----------------------------------------------------------------------------
    def lookup(self, uri: str, size: int, etag: str | None) -> str | None:
        """The path of a complete copy of this version of ``uri``, marked as used; else ``None``."""
        path = self.path_for(uri, size, etag)
        try:
            st = os.stat(path)
            if st.st_size != size:
                return None
            os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))  # used now; content unchanged
        except OSError:
            return None
        return path

    def invalidate(self, uri: str) -> None:
        """Delete every cached version of ``uri``."""
        stem = self._stem(uri) + "-"
        for entry in self._scan():
            if os.path.basename(entry.path).startswith(stem):
                _unlink(entry.path)

    # -- writing -----------------------------------------------------------------------------
    def open_fill(self, uri: str, size: int, etag: str | None) -> CacheFill:
        """A writer for a new copy of ``uri``; :meth:`CacheFill.commit` makes it visible."""
        return CacheFill(self, uri, size, etag)

    def _admit(self, uri: str, path: str) -> None:
        """A copy of ``uri`` just landed at ``path``: drop other versions, evict to the bound."""
        stem = self._stem(uri) + "-"
        with self._locked():
            entries = []
            for entry in self._scan():
                name = os.path.basename(entry.path)
                if name.startswith(stem) and entry.path != path:
                    _unlink(entry.path)
                else:
                    entries.append(entry)
            if self.max_bytes is None:
                return
            total = sum(e.size for e in entries)
            for entry in sorted(entries, key=lambda e: (e.used, e.path)):
                if total <= self.max_bytes:
                    break
                if entry.path == path and len(entries) > 1:
                    continue  # the newest copy goes last
                _unlink(entry.path)
                total -= entry.size

    def _locked(self) -> _DirLock:
        return _DirLock(os.path.join(self.directory, LOCK_NAME))

    def _scan(self) -> list[CacheEntry]:
        out: list[CacheEntry] = []
        now = time.time()
        try:
            items = list(os.scandir(self.directory))
        except OSError:
            return out
        for item in items:
            try:
                st = item.stat()
            except OSError:
                continue  # deleted meanwhile
            if item.name.startswith(TEMP_MARK):
                if now - st.st_mtime > STALE_TEMP_SECONDS:
                    _unlink(item.path)
                continue
            if item.name.endswith(SUFFIX):
                out.append(CacheEntry(item.path, st.st_size, max(st.st_atime, st.st_mtime)))
        return out

    def entries(self) -> list[CacheEntry]:
        """The complete copies now in the cache, least recently used first."""
        return sorted(self._scan(), key=lambda e: (e.used, e.path))

    def total_bytes(self) -> int:
        """Bytes of complete copies now in the cache."""
        return sum(e.size for e in self._scan())

    def __repr__(self) -> str:
        return f"ShardCache({self.directory!r}, max_bytes={self.max_bytes})"


class CacheFill:
    """A copy of one shard being written (through the storage layer's atomic file writer).

    Attributes:
        path: The final path of the copy.
    """

    def __init__(self, cache: ShardCache, uri: str, size: int, etag: str | None) -> None:
        self.cache = cache
        self.uri = uri
        self.size = size
        self.path = cache.path_for(uri, size, etag)
        self._writer: ObjectWriter | None = open_writer("file://" + self.path)
        self._written = 0

    def write(self, data: memoryview) -> None:
        """Append the next bytes of the shard."""
        if self._writer is not None:
            self._writer.write(data)
            self._written += len(data)

    def commit(self) -> None:
        """Make the copy visible (rename), then evict to the cache's bound.

        A copy whose length is not the shard's size is discarded instead.
        """
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if self._written != self.size:
            writer.abort()
            return
        try:
            writer.finalize()
        except S3DlioError:
            writer.abort()
            return  # a cache that cannot be written is only a slower epoch
        self.cache._admit(self.uri, self.path)

    def abort(self) -> None:
        """Discard the partial copy."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()


class _DirLock:
    """An exclusive ``flock`` on a lock file, held inside a ``with`` block."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> _DirLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
