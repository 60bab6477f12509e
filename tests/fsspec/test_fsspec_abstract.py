"""fsspec's abstract suite (copy, get, put, open, pipe) on file://, s3:// (moto), az://
(Azurite) and gs:// (fake-gcs-server); see conftest.py."""

from __future__ import annotations

from pathlib import Path

import fsspec
import fsspec.tests.abstract as abstract
import pytest
from fsspec.tests.abstract import AbstractFixtures


class S3dlioFixtures(AbstractFixtures):
    """Fixtures for S3dlioFileSystem on one backend (``scheme``)."""

    scheme = "file"

    @pytest.fixture
    def fs(self):
        return fsspec.filesystem("s3dlio")

    @pytest.fixture
    def fs_join(self):
        return lambda *parts: "/".join(parts)

    @pytest.fixture
    def fs_path(self, request: pytest.FixtureRequest) -> str:
        return request.getfixturevalue(f"{self.scheme}_root").rstrip("/")

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return self.scheme in ("file", "direct")


class FileFixtures(S3dlioFixtures):
    scheme = "file"

    @pytest.fixture
    def fs_path(self, tmp_path: Path) -> str:
        return f"file://{tmp_path}/remote"


class S3Fixtures(S3dlioFixtures):
    scheme = "s3"


class AzFixtures(S3dlioFixtures):
    scheme = "az"


class GsFixtures(S3dlioFixtures):
    scheme = "gs"


class TestFileCopy(abstract.AbstractCopyTests, FileFixtures):
    pass


class TestFileGet(abstract.AbstractGetTests, FileFixtures):
    pass


class TestFilePut(abstract.AbstractPutTests, FileFixtures):
    pass


class TestFileOpen(abstract.AbstractOpenTests, FileFixtures):
    pass


class TestFilePipe(abstract.AbstractPipeTests, FileFixtures):
    pass


class TestS3Copy(abstract.AbstractCopyTests, S3Fixtures):
    pass


class TestS3Get(abstract.AbstractGetTests, S3Fixtures):
    pass


class TestS3Put(abstract.AbstractPutTests, S3Fixtures):
    pass


class TestS3Open(abstract.AbstractOpenTests, S3Fixtures):
    pass


class TestS3Pipe(abstract.AbstractPipeTests, S3Fixtures):
    pass


class TestAzCopy(abstract.AbstractCopyTests, AzFixtures):
    pass


class TestAzGet(abstract.AbstractGetTests, AzFixtures):
    pass


class TestAzPut(abstract.AbstractPutTests, AzFixtures):
    pass


class TestAzOpen(abstract.AbstractOpenTests, AzFixtures):
    pass


class TestAzPipe(abstract.AbstractPipeTests, AzFixtures):
    pass


class TestGsCopy(abstract.AbstractCopyTests, GsFixtures):
    pass


class TestGsGet(abstract.AbstractGetTests, GsFixtures):
    pass


class TestGsPut(abstract.AbstractPutTests, GsFixtures):
    pass


class TestGsOpen(abstract.AbstractOpenTests, GsFixtures):
    pass


class TestGsPipe(abstract.AbstractPipeTests, GsFixtures):
    pass
