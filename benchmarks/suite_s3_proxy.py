"""S3 GETs through a forward proxy: nginx behind Debian's ``tinyproxy`` on loopback.

The GET cases of :mod:`benchmarks.suite_s3` (8 x 64 MiB, 1,024 x 64 KiB), every client told to
use the proxy its usual way (``HTTPS_PROXY``/``HTTP_PROXY`` for ours and boto3, ``proxy_url``
for obstore): ``https`` through ``CONNECT`` tunnels (nginx with TLS; tinyproxy only pumps
encrypted bytes) and plain ``http`` with absolute-form requests (tinyproxy parses each request
and, being tinyproxy, closes the client connection after each answer). The proxy is the
bottleneck; its bare ceiling is ``curl --parallel 8`` through it (and the same curl straight to
nginx, for what the proxy costs). ``python -m benchmarks s3-proxy``; ``benchmarks/setup.sh``
installs tinyproxy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from tests.servers.common import free_port, start_server, stop_server

from .data import KiB, MiB, write_files
from .harness import Case, Context, ours, peer, tool
from .servers import Nginx, nginx_binary, s3_env

FILE = "s3.py"
S3_NEEDS = ("s3dlio.io.backends.s3",)

_CONF = """\
Port {port}
Listen 127.0.0.1
Timeout 120
MaxClients 256
Allow 127.0.0.1
LogLevel Warning
DisableViaHeader Yes
"""


class TinyProxy:
    """Debian's tinyproxy on a free loopback port (foreground, stopped by PID).

    Args:
        workdir: Where its configuration and log go.
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not Path(binary).exists():
            raise RuntimeError("tinyproxy is not installed: run benchmarks/setup.sh")
        self.port = free_port()
        conf = workdir / "tinyproxy.conf"
        conf.write_text(_CONF.format(port=self.port))
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc = start_server([binary, "-d", "-c", str(conf)], self.port, workdir / "tp.log")

    def stop(self) -> None:
        """Stop the proxy (idempotent)."""
        stop_server(self._proc)

    def __enter__(self) -> TinyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _curl(endpoint: str, paths: list[Path], bucket: str, ca: str | None, proxy: str | None):
    return [
        "curl",
        "-s",
        "--fail",
        *(["--cacert", ca] if ca else []),
        *(["-x", proxy] if proxy else ["--noproxy", "*"]),
        "--parallel",
        "--parallel-max",
        "8",
        *[a for p in paths for a in ("-o", "/dev/null", f"{endpoint}/{bucket}/{p.name}")],
    ]


def _cases(ctx: Context, www: Path, tls: bool) -> Iterator[Case]:
    large = sorted((www / "large").iterdir())
    small = sorted((www / "small").iterdir())
    nginx = ctx.stack.enter_context(Nginx(www, tls=tls))
    proxy = ctx.stack.enter_context(TinyProxy(ctx.workdir))
    ca = nginx.ca_bundle
    variable = "HTTPS_PROXY" if tls else "HTTP_PROXY"
    env = {**s3_env(nginx.endpoint, ca), variable: proxy.url}
    how = "CONNECT tunnels, https" if tls else "absolute-form requests, http"
    for bucket, paths, size, label, unit in (
        ("large", large, 64 * MiB, "64 MiB", "GB/s"),
        ("small", small, 64 * KiB, "64 KiB", "obj/s"),
    ):
        keys = ctx.workdir / f"proxy-{bucket}.keys"
        keys.write_text("".join(p.name + "\n" for p in paths))
        common = {
            "endpoint": nginx.endpoint,
            "bucket": bucket,
            "keys": str(keys),
            "env": env,
            "proxy": proxy.url,
        }
        yield Case(
            f"GET {len(paths)} x {label} objects through tinyproxy ({how})",
            unit,
            [
                ours("ours get_many", FILE, "s3dlio_get_many", needs=S3_NEEDS, **common),
                peer(
                    "boto3 8 threads", FILE, "boto3_threads", needs=("boto3",), threads=8, **common
                ),
                peer("obstore", FILE, "obstore_get", needs=("obstore",), **common),
                tool(
                    "curl --parallel 8 through the proxy",
                    _curl(nginx.endpoint, paths, bucket, ca, proxy.url),
                ),
                tool(
                    "curl --parallel 8 direct (no proxy)",
                    _curl(nginx.endpoint, paths, bucket, ca, None),
                ),
            ],
            bytes=len(paths) * size,
            objects=len(paths),
            note="tinyproxy 1.11 (one process per client connection) between every client and "
            "nginx, all on the same 2 CPUs: the proxy bounds every row; 'curl through the proxy' "
            "is its bare ceiling."
            + (
                " Over plain http tinyproxy closes each client connection after its answer "
                "(without a Connection: close header), so every request pays a new connection "
                "to the proxy and from the proxy to nginx."
                if not tls
                else " Inside the tunnels it only copies TLS records."
            ),
        )
    proxy.stop()
    nginx.stop()


def suite(ctx: Context) -> Iterator[Case]:
    """GET 64 MiB and 64 KiB objects through tinyproxy, https then http."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed: run benchmarks/setup.sh")
    www = ctx.workdir / "www-proxy"
    write_files(www / "large", ctx.scale(8, 4), 64 * MiB)
    write_files(www / "small", ctx.scale(1024, 256), 64 * KiB)
    yield from _cases(ctx, www, tls=True)
    yield from _cases(ctx, www, tls=False)
