"""Whole-file reads of ``file://`` objects that can tell a page-cache hit from a disk read.

A read of a file whose pages are in the page cache is a memory copy: it takes ~10 µs for
128 KiB and gains nothing from being handed to another thread (the hand-off costs more than
the copy). A read that has to wait for the disk is the opposite: the more of them in flight,
the better. :class:`CachedFileReader` first reads with ``preadv2(RWF_NOWAIT)``, which the
kernel serves only from the page cache (``EAGAIN`` or a short count otherwise), so the
loader learns which case it is in from the read itself, at no extra cost on a hit:

* the consumer copies cached files itself when nothing is ready, and never waits for the disk
  (a miss is handed to the worker threads);
* worker threads are limited to a few while reads hit the cache, and the full concurrency is
  used again as soon as one misses (``docs/datasets.md``, "How the loader reads").

Only the plain ``file://`` backend qualifies (``direct://`` bypasses the page cache; other
local backends may add latency or semantics of their own), and only while the op-log is off
(the storage layer's ``fetch`` logs every request). Any error other than "would block" is left
to the caller, which repeats the read through ``fetch`` for its retries and typed errors.
"""

from __future__ import annotations

import errno
import os

from ..io import oplog
from ..io.buffers import BytesView
from ..io.store import ObjectStore
from ..io.uri import ObjectURI
from .bufferpool import BufferPool

__all__ = ["CachedFileReader", "FallbackRead", "supports_cached_reads"]

#: ``preadv`` flag: fail with ``EAGAIN`` (or return a short count) instead of waiting for I/O.
RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
#: ``errno`` values meaning "this file system does not do RWF_NOWAIT" (tmpfs, some FUSE/NFS).
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class FallbackRead(Exception):  # noqa: N818 - a signal, not an error users see
    """The fast read could not complete; read the object through ``fetch`` instead."""


def supports_cached_reads(backend: ObjectStore, uri: ObjectURI) -> bool:
    """Whether :class:`CachedFileReader` may read ``backend``'s objects below ``uri`` (files
    read through the page cache, op-log off)."""
    return bool(RWF_NOWAIT) and backend.local_path(uri) is not None and not oplog.is_op_log_active()


class CachedFileReader:
    """Reads whole local files into fresh (or recycled) buffers, page-cache hits first.

    A file system that refuses ``RWF_NOWAIT`` is remembered by device number; its reads are
    then plain blocking reads, reported as misses (they may wait for the device).
    """

    def __init__(self) -> None:
        self._no_nowait: set[int] = set()

    def read(
        self,
        path: str,
        blocking: bool,
        pool: BufferPool | None = None,
    ) -> tuple[BytesView, bool] | None:
        """Read the file at ``path`` whole.

        Args:
            path: Absolute path.
            blocking: Whether the read may wait for the disk; if not, a read the page cache
                cannot serve at once returns ``None`` (nothing is kept).
            pool: Where to find a free buffer of the file's size (and return it unused).

        Returns:
            ``(data, hit)``: the bytes, and whether the page cache served all of them at once;
            ``None`` when ``blocking`` is false and the read would wait.

        Raises:
            FallbackRead: any failure (missing file, a directory, a file that shrank, ...):
                the caller repeats the read through ``fetch``, which retries and raises the
                typed error.
        """
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            raise FallbackRead from exc
        try:
            st = os.fstat(fd)
            size = st.st_size
            buf = pool.take(size) if pool is not None else None
            if buf is None:
                buf = BytesView.allocate(size)
            got = 0
            if st.st_dev not in self._no_nowait:
                try:
                    got = os.preadv(fd, [buf], 0, RWF_NOWAIT)
                except BlockingIOError:
                    got = 0
                except OSError as exc:
                    if exc.errno not in _UNSUPPORTED:
                        raise FallbackRead from exc
                    self._no_nowait.add(st.st_dev)
                else:
                    if got == size:
                        return buf, True
            if not blocking:
                if pool is not None:
                    pool.remember(buf)
                return None
            view = memoryview(buf)
            while got < size:
                n = os.preadv(fd, [view[got:]], got)
                if n == 0:
                    raise FallbackRead("the file shrank while being read")
                got += n
            return buf, False
        except OSError as exc:
            raise FallbackRead from exc
        finally:
            os.close(fd)
