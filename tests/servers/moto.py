"""moto's S3 server on a free loopback port, for the whole test session.

The fixture starts ``python -m moto.server -H 127.0.0.1 -p <port>`` (its log goes to a file
under the session's temp directory), points the standard AWS variables at it
(``AWS_ENDPOINT_URL``, test credentials, ``us-east-1``; shared config files and the instance
metadata service switched off) for the session, creates one bucket with plain boto3 and stops
the server by PID at the end, restoring the environment.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .common import environment, free_port, start_server, stop_server

BUCKET = "s3dlio-test"
#: Test credentials (moto accepts any; these are the ones its documentation uses).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class MotoS3:
    """A running moto S3 server.

    Attributes:
        port: Its loopback port.
        url: ``http://127.0.0.1:<port>`` (the ``AWS_ENDPOINT_URL`` value).
        bucket: The bucket created for the session.
    """

    port: int
    url: str
    bucket: str

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``, as written in explicit-endpoint URIs."""
        return f"127.0.0.1:{self.port}"

    def client(self, **config: Any) -> Any:
        """A plain boto3 S3 client for this server (path-style), for cross-checks."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, **config),
        )


def _environment(url: str) -> dict[str, str | None]:
    """What the session sets (``None`` = removed) so that only the test server is reachable."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_S3": None,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": None,
        "AWS_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **CREDENTIALS,
    }


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """Start moto once per session and point the AWS environment variables at it."""
    import s3dlio

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log
    )
    try:
        with environment(_environment(url)):
            s3dlio.configure_s3()  # rebuild clients from the new environment
            server = MotoS3(port, url, BUCKET)
            server.client().create_bucket(Bucket=BUCKET)
            yield server
    finally:
        s3dlio.configure_s3()
        stop_server(proc)


@pytest.fixture
def s3_root(moto_s3: MotoS3) -> str:
    """A fresh, empty ``s3://<session bucket>/<uuid>/`` prefix."""
    return f"s3://{moto_s3.bucket}/{uuid.uuid4().hex[:12]}/"
