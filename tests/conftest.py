"""Session-wide fixtures: real servers on loopback and one fresh root URI per backend.

The contract suite (``tests/contract/``) takes the ``store_root`` fixture, parametrised over
every backend in :data:`BACKENDS`: a fresh, empty prefix URI ending in ``/``. A backend joins
the suite by adding its scheme to :data:`BACKENDS` and a ``<scheme>_root`` fixture (in a module
under ``tests/servers/`` listed in ``pytest_plugins``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dlio.io.config import RangeEngineConfig, Settings, reset_settings, settings

pytest_plugins: list[str] = [
    "tests.servers.azurite",
    "tests.servers.gcs",
    "tests.servers.moto",
    "tests.servers.proxy",
]

#: Backends the contract suite runs over.
BACKENDS = ["file", "direct", "s3", "az", "gs"]

#: O_DIRECT needs a real disk (tmpfs accepts unaligned O_DIRECT on this kernel).
DISK_TMP = Path(os.environ.get("S3DLIO_TEST_DISK_DIR", "/tmp"))


@pytest.fixture
def disk_dir() -> Path:
    """A fresh directory on a real disk (not tmpfs), removed afterwards."""
    import shutil

    path = DISK_TMP / f"s3dlio-test-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def file_root(disk_dir: Path) -> str:
    """A fresh ``file://`` prefix."""
    return f"file://{disk_dir}/"


@pytest.fixture
def direct_root(disk_dir: Path) -> str:
    """A fresh ``direct://`` prefix."""
    return f"direct://{disk_dir}/"


@pytest.fixture(params=BACKENDS)
def store_root(request: pytest.FixtureRequest) -> str:
    """A fresh, empty prefix URI (ending in ``/``) on each backend in turn."""
    return request.getfixturevalue(f"{request.param}_root")


@pytest.fixture
def scheme(store_root: str) -> str:
    """The scheme of ``store_root``."""
    return store_root.split("://", 1)[0]


@pytest.fixture
def split_ranges() -> Iterator[None]:
    """Split GETs above 1 MiB into 1 MiB ranges (RangeEngine) for one test."""
    old = settings()
    reset_settings(Settings(range=RangeEngineConfig(threshold="1MiB", chunk_size="1MiB")))
    yield
    reset_settings(old)
