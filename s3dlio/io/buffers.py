"""Buffers handed to users: :class:`BytesView`, and aligned memory for O_DIRECT.

``BytesView`` is a ``bytearray`` subclass, so it *is* a buffer: ``memoryview(v)``,
``np.frombuffer(v, dtype)`` and ``torch.frombuffer(v, ...)`` share its memory without a copy,
``v == b"..."`` compares contents and ``bytes(v)`` makes the one copy a user asks for. Every
read path fills a BytesView in place (``readinto``), so a GET never joins chunks.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sys
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError
from .config import settings

__all__ = [
    "ALIGN",
    "ALIGN_ABOVE",
    "HUGE_ABOVE",
    "HUGE_PAGE",
    "BytesView",
    "aligned_buffer",
    "as_readonly_view",
    "buffer_address",
]

#: Alignment O_DIRECT requires of buffers, offsets and lengths.
ALIGN = 4096
#: :meth:`BytesView.allocate` page-aligns buffers from this size up.
ALIGN_ABOVE = 256 * 1024
#: From this size up, :meth:`BytesView.allocate` asks Linux for transparent huge pages
#: (``S3DLIO_HUGE_PAGES=0`` turns it off): memory touched for the first time then costs one page
#: fault per 2 MiB instead of one per 4 KiB.
HUGE_ABOVE = 32 * 1024 * 1024
#: The transparent huge page size (x86-64, and arm64 with 4 KiB pages).
HUGE_PAGE = 2 * 1024 * 1024
_MADV_HUGEPAGE = 14

# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_madvise: Any = None
_mallopt: Any = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _madvise = _libc.madvise
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise.restype = ctypes.c_int
        if platform.libc_ver()[0] == "glibc":
            _mallopt = _libc.mallopt
            _mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol
        _madvise = _mallopt = None
_malloc_tuned = False


def _tune_malloc() -> None:
    """Once per process, before the first buffer: let glibc keep freed memory for new buffers.

    By default glibc maps every block from 128 KiB up (32 MiB once it has adapted) afresh and
    unmaps it on ``free``, and returns the top of its heap to the system as soon as 128 KiB of
    it is free. A reader that drops a batch of buffers and allocates the next one then pays a
    page fault per 4 KiB of every new buffer (16 per 64 KiB object, a quarter of the CPU time of
    a small GET), and on virtual machines that hand free memory back to the host (free page
    reporting) a host fault too: fresh 64 MiB buffers filled at ~1 GB/s here, reused ones at
    ~6. With ``Settings.malloc_keep`` set, blocks up to that size come from the heap
    (``M_MMAP_THRESHOLD``), and once more than that much of the heap's top is free glibc gives
    back only the excess (``M_TRIM_THRESHOLD`` with ``M_TOP_PAD``: the threshold alone made it
    give back *all* of it, so a batch larger than the limit was faulted in afresh every time).
    At most ``malloc_keep`` bytes (and at most 2 GiB, the parameters' limit) of freed memory
    stay with the process. Values the user gave glibc (``MALLOC_TRIM_THRESHOLD_``,
    ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_THRESHOLD_``, ``GLIBC_TUNABLES``) win.

    The top pad also makes each growth of the heap reserve that much address space beyond what
    is allocated (not memory: ``VmData`` grows, the resident size does not; where a limit
    refuses it, glibc grows the heap without it). With strict overcommit accounting
    (``vm.overcommit_memory=2``), where reserved space counts as memory, it is not set.
    """
    global _malloc_tuned
    _malloc_tuned = True
    keep = min(settings().malloc_keep, 2**31 - 1)
    if not keep or _mallopt is None:
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    for env, tunable, param, value in (
        ("MALLOC_MMAP_THRESHOLD_", "mmap_threshold", _M_MMAP_THRESHOLD, keep),
        ("MALLOC_TRIM_THRESHOLD_", "trim_threshold", _M_TRIM_THRESHOLD, keep),
        ("MALLOC_TOP_PAD_", "top_pad", _M_TOP_PAD, _top_pad(keep)),
    ):
        if value and env not in os.environ and tunable not in tunables:
            _mallopt(param, value)


def _top_pad(keep: int) -> int:
    """``M_TOP_PAD`` for keeping ``keep`` bytes; 0 (glibc's default) under strict overcommit
    accounting, where the address space it reserves would count as memory."""
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return 0 if f.read().strip() == "2" else keep
    except OSError:
        return keep


_resize: Any
try:  # CPython: grow a bytearray without zero-filling it (the C API's PyByteArray_Resize)
    _resize = ctypes.pythonapi.PyByteArray_Resize
    _resize.argtypes = [ctypes.py_object, ctypes.c_ssize_t]
    _resize.restype = ctypes.c_int
except (AttributeError, ValueError):  # pragma: no cover - other interpreters
    _resize = None


class BytesView(bytearray):
    """The bytes of an object, zero-copy to ``memoryview``, NumPy and PyTorch.

    A ``bytearray`` in every respect (``len``, slicing, ``==``, ``decode``, buffer protocol),
    plus the helper methods of the original s3dlio's ``BytesView``.
    """

    __slots__ = ()

    @classmethod
    def allocate(cls, size: int) -> BytesView:
        """A BytesView of ``size`` bytes whose contents are undefined (to be filled by a read).

        From :data:`ALIGN_ABOVE` bytes up the first byte is on a page boundary: ``malloc`` puts
        large blocks 16 bytes past one, and the kernel copying page-aligned data (page-cache
        pages, sendfile'd socket data) 16 bytes ahead modulo 4 KiB stalls on 4K aliasing: a
        64 MiB read cost up to 2.5x more there (``docs/performance.md``, "S3 data path").

        From :data:`HUGE_ABOVE` bytes up (on Linux, unless ``S3DLIO_HUGE_PAGES=0``) the whole
        huge pages (:data:`HUGE_PAGE`) inside the buffer are advised ``MADV_HUGEPAGE``: filling
        new memory for a 64 MiB buffer then takes ~31 huge page faults and at most 1,024 small
        ones (the pieces before the first and after the last 2 MiB boundary) instead of 16,384
        (3-4x less CPU for the read). Only the pages a read touches are resident. The buffer is
        not over-allocated to start on a huge page: 2 MiB more per buffer made a batch of
        64 x 32 MiB overflow the 2 GiB glibc keeps, and the excess was given back and faulted in
        again every batch (~500 faults, up to 1.4x the CPU time of a batch), while buffers that
        stay resident copy at the same rate either way (``docs/performance.md``, ``file://``
        batches).

        The first call in a process tunes glibc's ``malloc`` to keep freed memory for the next
        buffers (``S3DLIO_MALLOC_KEEP_MB``, see :func:`_tune_malloc`), which avoids the page
        faults altogether once a process has read its first batch.
        """
        if not _malloc_tuned:
            _tune_malloc()
        if size >= HUGE_ABOVE and _madvise is not None and settings().huge_pages:
            view = cls.allocate_aligned(size)
            start = buffer_address(view)
            first = -(-start // HUGE_PAGE) * HUGE_PAGE
            end = (start + size) // HUGE_PAGE * HUGE_PAGE
            if end > first:
                _madvise(first, end - first, _MADV_HUGEPAGE)
            return view
        if size >= ALIGN_ABOVE:
            return cls.allocate_aligned(size)
        return cls._allocate(size)

    @classmethod
    def _allocate(cls, size: int) -> BytesView:
        view = cls()
        if size:
            if _resize is not None:
                if _resize(view, size) != 0:  # pragma: no cover - out of memory
                    raise MemoryError(size)
            else:  # pragma: no cover
                view.extend(bytes(size))
        return view

    @classmethod
    def allocate_aligned(cls, size: int, align: int = ALIGN) -> BytesView:
        """Like :meth:`allocate`, with the first byte on an ``align`` boundary (for O_DIRECT).

        Over-allocates by ``align`` and drops the head: CPython moves a bytearray's start
        pointer on a front deletion instead of copying (the dropped head is never touched, so
        it costs address space, not memory).
        """
        view = cls._allocate(size + align)
        skip = (-buffer_address(view)) % align
        if skip:
            del view[:skip]
        del view[size:]
        if buffer_address(view) % align:  # pragma: no cover - non-CPython layouts
            padded = aligned_buffer(size, align)
            return cls(memoryview(padded)[:size])
        return view

    def memoryview(self) -> memoryview:
        """A writable ``memoryview`` over the data (no copy)."""
        return memoryview(self)

    def to_bytes(self) -> bytes:
        """An immutable copy as ``bytes``."""
        return bytes(self)

    def as_numpy(self, dtype: Any = np.uint8) -> np.ndarray:
        """A NumPy array sharing this buffer (no copy)."""
        return np.frombuffer(self, dtype=dtype)

    def __repr__(self) -> str:
        head = bytes(self[:16])
        return f"BytesView({len(self)} bytes, {head!r}{'...' if len(self) > 16 else ''})"


def buffer_address(buf: Any) -> int:
    """The memory address of a writable buffer's first byte."""
    view = memoryview(buf)
    if view.nbytes == 0:
        return 0
    if view.readonly:
        return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def aligned_buffer(size: int, align: int = ALIGN) -> mmap.mmap:
    """Anonymous page-aligned memory of at least ``size`` bytes (rounded up to ``align``).

    ``mmap`` memory is page aligned by construction and zero pages cost nothing until touched.
    The mapping is private: a forked child (a DataLoader worker) gets its own copy instead of
    sharing the pages with its parent (``mmap(-1, n)`` alone maps them shared).
    """
    rounded = max(align, -(-size // align) * align)
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    return mmap.mmap(-1, rounded, flags=flags) if flags else mmap.mmap(-1, rounded)


def as_readonly_view(data: Any, *, what: str = "data") -> memoryview:
    """A flat, byte-format ``memoryview`` over any buffer (bytes, bytearray, numpy, ...).

    Raises:
        TypeError: ``data`` does not support the buffer protocol (a ``str``, a list, ...).
    """
    if isinstance(data, str):
        raise ArgumentTypeError(f"{what} must be a bytes-like object, not str (encode it first)")
    try:
        view = memoryview(data)
    except TypeError:
        raise ArgumentTypeError(
            f"{what} must be a bytes-like object (bytes, bytearray, memoryview, numpy array), "
            f"not {type(data).__name__}"
        ) from None
    if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        view = view.cast("B")
    return view
