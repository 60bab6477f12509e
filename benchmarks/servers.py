"""Loopback servers for the S3 suites: nginx as a GET endpoint, moto under gunicorn for PUTs.

* :class:`Nginx` serves a directory as ``http://127.0.0.1:P/<bucket>/<key>`` (files below
  ``root/<bucket>/``), with Range, ``If-Match`` and HEAD from nginx's static module, sendfile,
  keep-alive and no access log. No ``tcp_nopush``: with it, a range ending at the end of the
  file waited ~40 ms for a delayed ACK on a reused connection, for every client. nginx
  ignores signatures, so every S3 client can GET from it with path-style addressing and
  dummy credentials. ``GET /<bucket>?list-type=2...`` answers a ListObjectsV2 document
  written by :meth:`Nginx.write_listing` (the whole bucket in one page), enough for datasets
  that list a prefix before reading it. moto is far too slow to tell clients apart on GETs
  (it copies the object per ranged request).
* :class:`MotoGunicorn` runs moto's S3 app under gunicorn (``-k gthread``, one worker) for PUT,
  LIST and multipart suites; moto bounds those figures, and the tables say so.

Both bind 127.0.0.1 on a free port, keep their files in a private temp directory, and are
stopped by PID (their process group).
"""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
from html import escape
from pathlib import Path

from tests.servers.common import free_port, start_server, stop_server
from tests.servers.tls import make_certificates

from .harness import PEERS_PYTHON

__all__ = [
    "DUMMY_CREDENTIALS",
    "MotoGunicorn",
    "Nginx",
    "nginx_binary",
    "s3_env",
]

#: Every S3 client gets these: the servers ignore signatures, the SDKs insist on having some.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_env(endpoint: str, ca_bundle: str | None = None) -> dict[str, str]:
    """Environment pointing every S3 client (ours, boto3, the original) at ``endpoint``.

    ``ca_bundle`` (a self-signed server's certificate) goes where each client looks for extra
    CAs: ``AWS_CA_BUNDLE`` (botocore, ours), ``SSL_CERT_FILE`` (OpenSSL-based clients).
    """
    extra = {"AWS_CA_BUNDLE": ca_bundle, "SSL_CERT_FILE": ca_bundle} if ca_bundle else {}
    return {
        **extra,
        **DUMMY_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_S3_ADDRESSING_STYLE": "path",
        "S3DLIO_ADDRESSING_STYLE": "path",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def nginx_binary() -> str | None:
    """Path of Debian's nginx, if installed (``benchmarks/setup.sh`` installs it)."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )


_NGINX_CONF = """\
{user}worker_processes {workers};
daemon off;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 120;
    keepalive_requests 10000000;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port}{tls};
        root {root};{tls_conf}
        location ~ ^/(?<bucket>[^/]+)/?$ {{
            default_type application/xml;
            try_files /.s3list/$bucket.xml =404;
        }}
        location / {{ }}
    }}
}}
"""


_TLS_CONF = """
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:1m;
        ssl_buffer_size 16k;"""


class Nginx:
    """nginx serving ``root`` (buckets are its sub-directories) on a loopback port.

    Args:
        root: The data directory; ``root/<bucket>/<key>`` is served at ``/<bucket>/<key>``.
        workers: nginx worker processes (default: one per CPU, nginx's ``auto``).
        tls: Serve ``https`` with a certificate signed by a CA generated for the run
            (:attr:`ca_bundle`, ``tests/servers/tls.py``); nginx then encrypts in user space
            (no sendfile).
    """

    def __init__(self, root: Path, workers: int | str = "auto", *, tls: bool = False) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (run benchmarks/setup.sh)")
        self.root = Path(root)
        self.port = free_port()
        self._run = Path(tempfile.mkdtemp(prefix="s3dlio-bench-nginx-"))
        #: The self-signed certificate clients must trust (``https`` only), PEM.
        self.ca_bundle: str | None = None
        tls_conf = ""
        if tls:
            certs = make_certificates(self._run)
            self.ca_bundle = certs.ca
            tls_conf = _TLS_CONF.format(cert=certs.chain, key=certs.key)
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        conf = self._run / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                user=user,
                workers=workers,
                run=self._run,
                port=self.port,
                root=self.root,
                tls=" ssl" if tls else "",
                tls_conf=tls_conf,
            )
        )
        self._proc = start_server(
            [binary, "-c", str(conf), "-p", str(self._run), "-e", str(self._run / "error.log")],
            self.port,
            self._run / "stdout.log",
            timeout=20,
        )

    def write_listing(self, bucket: str) -> int:
        """Write the ListObjectsV2 answer for ``bucket`` (every file below it); returns keys."""
        top = self.root / bucket
        keys = sorted(
            (str(Path(d, f).relative_to(top)), os.path.getsize(os.path.join(d, f)))
            for d, _, files in os.walk(top)
            for f in files
        )
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>2024-01-01T00:00:00.000Z"
            f"</LastModified><ETag>&quot;0&quot;</ETag><Size>{size}</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>"
            for k, size in keys
        )
        doc = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount>"
            f"<MaxKeys>{max(1000, len(keys))}</MaxKeys><IsTruncated>false</IsTruncated>"
            f"{contents}</ListBucketResult>"
        )
        listing = self.root / ".s3list"
        listing.mkdir(exist_ok=True)
        (listing / f"{bucket}.xml").write_text(doc)
        return len(keys)

    def stop(self) -> None:
        """Stop nginx (its process group) and remove its private files."""
        stop_server(self._proc)
        shutil.rmtree(self._run, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoGunicorn:
    """moto's S3 under gunicorn (``-k gthread``, one worker, ``threads`` threads).

    gunicorn and moto live in the peers' venv (``benchmarks/setup.sh``); the app object is
    ``benchmarks/moto_app.py:app``.
    """

    def __init__(self, threads: int = 8) -> None:
        gunicorn = PEERS_PYTHON.parent / "gunicorn"
        if not gunicorn.exists():
            raise RuntimeError("gunicorn is not installed in benchmarks/.venv-peers")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._run = Path(tempfile.mkdtemp(prefix="s3dlio-bench-moto-"))
        self._proc = start_server(
            [
                str(gunicorn),
                "-k",
                "gthread",
                "-w",
                "1",
                "--threads",
                str(threads),
                "-b",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(Path(__file__).parent),
                "--log-level",
                "warning",
                "--timeout",
                "300",
                "moto_app:app",
            ],
            self.port,
            self._run / "gunicorn.log",
            env={"MOTO_PORT": str(self.port)},
            timeout=60,
        )

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (with boto3 from our venv: moto routes by the signature's scope)."""
        import boto3
        from botocore.config import Config

        creds = DUMMY_CREDENTIALS
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=creds["AWS_REGION"],
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        """Stop gunicorn (its process group) and remove its log."""
        stop_server(self._proc)
        shutil.rmtree(self._run, ignore_errors=True)

    def __enter__(self) -> MotoGunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
