"""fsspec's own abstract test suite (``fsspec.tests.abstract``) run on S3dlioFileSystem.

fsspec's wheel ships the suite (``fsspec/tests/abstract``: copy, get, put, open and pipe
tests, and the ``AbstractFixtures`` they take), so it is imported from the installed fsspec:
nothing is vendored or downloaded. ``mv`` has no abstract class in fsspec (its ``mv.py`` only
tests LocalFileSystem), so there is nothing to run for it. A missing suite fails the
collection loudly (an fsspec too old to ship it is not supported by these tests).

test_fsspec_abstract.py gives each backend a fixtures class: the filesystem (``fsspec.filesystem("s3dlio")``, through
the entry point), a fresh directory URI as ``fs_path``, ``/``-joined paths and, on object
stores, no empty directories (s3fs semantics: a prefix exists when an object is below it).
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import pytest

try:
    import fsspec.tests.abstract  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed fsspec
    raise ImportError(
        f"fsspec {fsspec.__version__} does not ship fsspec.tests.abstract; the fsspec suite "
        "needs an fsspec whose wheel includes it (2023.9 and later)"
    ) from exc


@pytest.fixture(autouse=True)
def _forget_filesystems() -> Iterator[None]:
    """After each test, drop the filesystems fsspec's instance cache keeps (closing the clients
    they built), so no connection outlives its test."""
    yield
    from s3dlio.fsspec import _CLASSES, S3dlioFileSystem

    for cls in (S3dlioFileSystem, *_CLASSES.values()):
        for fs in list(cls._cache.values()):
            fs.close()
        cls.clear_instance_cache()
