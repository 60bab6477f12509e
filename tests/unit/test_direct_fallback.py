"""direct:// on a file system that refuses O_DIRECT (ramfs): buffered I/O and one warning."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

import s3dlio
from s3dlio.io.backends.direct import DirectIOFallbackWarning, DirectStore


@pytest.fixture
def ramfs() -> Path:
    """A fresh ramfs mount (it refuses O_DIRECT with EINVAL); skipped where mounting is denied."""
    path = Path(f"/tmp/s3dlio-ramfs-{uuid.uuid4().hex[:8]}")
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "ramfs", "none", str(path)], capture_output=True)
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount ramfs here: {mounted.stderr.decode().strip()}")
    yield path
    subprocess.run(["umount", str(path)], check=True)
    path.rmdir()


def test_refused_o_direct_falls_back_with_one_warning(ramfs: Path) -> None:
    DirectStore._refused.discard(str(ramfs / "d"))
    data = bytes(range(256)) * 50 + b"tail"
    with pytest.warns(DirectIOFallbackWarning, match="O_DIRECT refused"):
        s3dlio.put_bytes(f"direct://{ramfs}/d/a.bin", data)
    s3dlio.put_bytes(f"direct://{ramfs}/d/b.bin", data)  # no second warning (filterwarnings=error)
    assert s3dlio.get(f"direct://{ramfs}/d/a.bin") == data
    assert s3dlio.get_range(f"direct://{ramfs}/d/b.bin", 4095, 10) == data[4095:4105]
    assert (ramfs / "d" / "a.bin").stat().st_size == len(data)
