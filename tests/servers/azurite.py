"""Azurite's blob service on a free loopback port, for the whole test session.

Azurite comes from ``node_modules`` (``package.json`` pins 3.35.0; ``make test`` runs
``npm ci``). The fixture exports ``AZURE_STORAGE_CONNECTION_STRING`` for Azurite's well-known
``devstoreaccount1`` account, creates one container for the session with the official SDK, and
stops the server by PID at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .common import environment, free_port, start_server, stop_server

ACCOUNT = "devstoreaccount1"
#: Azurite's published development key (not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "s3dlio-test"
BINARY = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "azurite-blob"


def connection_string(host: str, port: int) -> str:
    """The connection string of the development account served at ``host:port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://{host}:{port}/{ACCOUNT};"
    )


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service.

    Attributes:
        port: Its loopback port.
        connection_string: The connection string of ``devstoreaccount1`` on it.
        container: The container created for the session.
    """

    port: int
    connection_string: str
    container: str


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Start Azurite once per session and point ``AZURE_STORAGE_CONNECTION_STRING`` at it."""
    if not BINARY.exists():
        raise RuntimeError(f"{BINARY} is missing: run `make test` (or `npm ci`) first")
    from azure.storage.blob import BlobServiceClient

    port = free_port()
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    cmd = [
        str(BINARY),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    proc = start_server(cmd, port, log)
    conn = connection_string("127.0.0.1", port)
    try:
        with environment({"AZURE_STORAGE_CONNECTION_STRING": conn}):
            with BlobServiceClient.from_connection_string(conn) as service:
                service.create_container(CONTAINER)
            yield Azurite(port, conn, CONTAINER)
    finally:
        stop_server(proc)


@pytest.fixture
def az_root(azurite: Azurite) -> str:
    """A fresh, empty ``az://devstoreaccount1/<container>/<uuid>/`` prefix."""
    return f"az://{ACCOUNT}/{azurite.container}/{uuid.uuid4().hex[:12]}/"
