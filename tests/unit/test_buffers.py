"""BytesView.allocate: sizes, alignment, and the transparent huge page advice for large buffers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from s3dlio.io import config
from s3dlio.io.buffers import (
    ALIGN,
    ALIGN_ABOVE,
    HUGE_ABOVE,
    HUGE_PAGE,
    BytesView,
    buffer_address,
)

thp_only = pytest.mark.skipif(
    not os.path.isdir("/sys/kernel/mm/transparent_hugepage"),
    reason="needs Linux with transparent huge pages",
)


@pytest.fixture
def restore_settings():
    saved = config.settings()
    yield
    config.reset_settings(saved)


def _vm_flags(address: int, smaps: list[str] | None = None) -> list[str]:
    """The ``VmFlags`` of the mapping holding ``address`` (this process's ``/proc/self/smaps``)."""
    if smaps is None:
        with open("/proc/self/smaps") as f:
            smaps = f.read().splitlines()
    inside = False
    for line in smaps:
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.parametrize(
    ("size", "align"),
    [
        (0, 1),
        (100, 1),
        (ALIGN_ABOVE, ALIGN),
        (HUGE_ABOVE - 1, ALIGN),
        (HUGE_ABOVE + 123, ALIGN),  # not over-allocated to start on a huge page
    ],
)
def test_allocate_size_and_alignment(size: int, align: int) -> None:
    view = BytesView.allocate(size)
    assert isinstance(view, bytearray)
    assert len(view) == size
    if size:
        assert buffer_address(view) % align == 0
        view[-1] = 7  # writable to the last byte
        assert np.frombuffer(view, dtype=np.uint8)[-1] == 7


@thp_only
def test_large_buffers_are_advised_huge_pages(restore_settings) -> None:
    view = BytesView.allocate(HUGE_ABOVE)
    view[:] = b"\x01" * len(view)  # touched, and still the same object and size
    assert len(view) == HUGE_ABOVE and view[0] == view[-1] == 1
    # the whole huge pages inside the buffer are advised, not the memory around it
    start = buffer_address(view)
    first = -(-start // HUGE_PAGE) * HUGE_PAGE
    last = (start + len(view)) // HUGE_PAGE * HUGE_PAGE - 1
    with open("/proc/self/smaps") as f:
        smaps = f.read().splitlines()
    assert "hg" in _vm_flags(first, smaps)
    assert "hg" in _vm_flags(last, smaps)


@thp_only
def test_memory_before_the_first_huge_page_is_not_advised() -> None:
    # a fresh process: in this one, memory next to the buffer may be advised by earlier tests
    out = subprocess.run(
        [sys.executable, "-c", _NEW_BUFFER], capture_output=True, text=True, check=True
    ).stdout
    address, smaps = out.split("\n", 1)
    start = int(address)
    first = -(-start // HUGE_PAGE) * HUGE_PAGE
    assert "hg" in _vm_flags(first, smaps.splitlines())
    if first > start:
        assert "hg" not in _vm_flags(first - 1, smaps.splitlines())


_NEW_BUFFER = """
from s3dlio.io.buffers import ALIGN, HUGE_ABOVE, BytesView, buffer_address
view = BytesView.allocate(HUGE_ABOVE)
assert buffer_address(view) % ALIGN == 0
print(buffer_address(view))
with open("/proc/self/smaps") as f:
    print(f.read())
"""


@thp_only
def test_huge_pages_can_be_turned_off() -> None:
    # a fresh process: the heap may hold buffers advised earlier, and glibc reuses them
    env = {**os.environ, "S3DLIO_HUGE_PAGES": "0"}
    out = subprocess.run(
        [sys.executable, "-c", _NEW_BUFFER], env=env, capture_output=True, text=True, check=True
    ).stdout
    address, smaps = out.split("\n", 1)
    assert "hg" not in _vm_flags(int(address), smaps.splitlines())


def test_huge_pages_setting_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_HUGE_PAGES", "0")
    assert config.Settings.from_env().huge_pages is False
    monkeypatch.setenv("S3DLIO_HUGE_PAGES", "yes")
    assert config.Settings.from_env().huge_pages is True
    monkeypatch.setenv("S3DLIO_HUGE_PAGES", "maybe")
    with pytest.raises(ValueError, match="S3DLIO_HUGE_PAGES"):
        config.Settings.from_env()


_REFILL = """
import resource, sys
from s3dlio.io.buffers import BytesView

size, count = int(sys.argv[1]), int(sys.argv[2])

def batch():
    bufs = [BytesView.allocate(size) for _ in range(count)]
    for b in bufs:
        b[::4096] = b"x" * len(range(0, size, 4096))  # touch every page
    return bufs

batch()  # a batch, dropped: its memory is freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _refill_faults(size: int, count: int, keep_mb: str) -> int:
    """Page faults taken by a second batch of buffers, the first one freed (in a new process)."""
    env = {**os.environ, "S3DLIO_MALLOC_KEEP_MB": keep_mb}
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", _REFILL, str(size), str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")


@glibc_only
def test_freed_buffers_are_reused_without_page_faults() -> None:
    assert _refill_faults(64 * 1024, 512, "256") < 512  # the second batch reused the first's
    assert _refill_faults(64 * 1024 * 1024, 3, "256") < 100


@glibc_only
def test_a_batch_larger_than_the_keep_refaults_only_the_excess() -> None:
    # 64 MiB of 128 KiB buffers, 32 MiB kept: about half the pages come back by page faults.
    # Without the top pad glibc gave back all 64 MiB once more than 32 MiB was free (all
    # 16,384 pages faulted again); keeping more than 32 MiB would break the bound.
    pages = 512 * 128 * 1024 // 4096
    faults = _refill_faults(128 * 1024, 512, "32")
    assert pages * 0.35 < faults < pages * 0.65


@glibc_only
def test_malloc_left_alone_returns_freed_memory() -> None:
    # glibc's default: the freed batch went back to the system, and comes back page by page
    assert _refill_faults(64 * 1024, 512, "0") > 512 * 8
