"""S3 over loopback: GET throughput from nginx, PUT throughput into moto (under gunicorn).

GET cases read every object once per round: 64 MiB objects (GB/s) and 64 KiB objects
(objects/s), against boto3 threads, s3transfer, s3torchconnector, obstore and the original
s3dlio, with the wire limit of the same endpoint measured by ``wrk`` (and ``curl --parallel``
for large objects); :func:`get_cases` runs them over ``https`` too (``suite_s3_https``). PUT cases write objects into moto, which bounds every client there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .data import KiB, MiB, write_files
from .harness import Case, Context, Target, ours, peer, tool
from .servers import MotoGunicorn, Nginx, nginx_binary, s3_env

FILE = "s3.py"
S3_NEEDS = ("s3dlio.io.backends.s3",)

_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_WRK = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB|TB) read")


def parse_wrk(text: str) -> dict[str, float]:
    """wrk's summary line (binary units) as a round dict."""
    found = _WRK.search(text)
    if found is None:
        raise ValueError(f"no wrk summary in: {text[-300:]}")
    requests, secs, sunit, amount, bunit = found.groups()
    return {
        "objects": int(requests),
        "seconds": float(secs) * _TIME[sunit],
        "bytes": int(float(amount) * _UNITS[bunit]),
    }


def _wrk(url: str, seconds: int, connections: int) -> list[str]:
    return ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url]


def _keys_file(ctx: Context, bucket: str, paths: list[Path]) -> str:
    out = ctx.workdir / f"{bucket}.keys"
    out.write_text("".join(p.name + "\n" for p in paths))
    return str(out)


def _get_contenders(
    endpoint: str, bucket: str, keys: str, env: dict[str, str], *, s3transfer: bool = True
) -> list:
    common = {"endpoint": endpoint, "bucket": bucket, "keys": keys, "env": env}
    rows = [
        ours("ours get_many", FILE, "s3dlio_get_many", needs=S3_NEEDS, **common),
        peer("original get_many", FILE, "s3dlio_get_many", needs=("s3dlio",), **common),
        peer("boto3 8 threads", FILE, "boto3_threads", needs=("boto3",), threads=8, **common),
        peer("obstore", FILE, "obstore_get", needs=("obstore",), **common),
        peer(
            "s3torchconnector 8 threads",
            FILE,
            "s3torchconnector_get",
            needs=("s3torchconnector",),
            threads=8,
            **common,
        ),
    ]
    if s3transfer:
        rows.insert(
            3,
            peer(
                "s3transfer download",
                FILE,
                "s3transfer_download",
                needs=("s3transfer",),
                threads=10,
                **common,
            ),
        )
    return rows


def _curl(endpoint: str, bucket: str, paths: list[Path], ca: str | None) -> list[str]:
    return [
        "curl",
        "-s",
        "--fail",
        *(["--cacert", ca] if ca else []),
        "--parallel",
        "--parallel-max",
        "8",
        *[a for p in paths for a in ("-o", "/dev/null", f"{endpoint}/{bucket}/{p.name}")],
    ]


_S_TIME = re.compile(r"(\d+) connections in ([\d.]+) real seconds, (\d+) bytes read per connection")


def parse_s_time(text: str) -> dict[str, float]:
    """``openssl s_time``'s first summary line (new connections) as a round dict."""
    found = _S_TIME.search(text)
    if found is None:
        raise ValueError(f"no s_time summary in: {text[-300:]}")
    conns, secs, per = found.groups()
    return {"objects": int(conns), "seconds": float(secs), "bytes": int(conns) * int(per)}


def _s_time(port: int, path: str, ca: str, seconds: int) -> list[str]:
    """One TLS connection after another, each fetching ``path`` (HTTP/1.0), session reused."""
    return [
        "openssl",
        "s_time",
        "-connect",
        f"127.0.0.1:{port}",
        "-CAfile",
        ca,
        "-www",
        path,
        "-reuse",
        "-time",
        str(seconds),
    ]


def get_cases(ctx: Context, *, tls: bool) -> Iterator[Case]:
    """The GET cases (large, then small objects) against nginx over ``http`` or ``https``."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed: run benchmarks/setup.sh")
    www = ctx.workdir / "www"
    large = write_files(www / "large", ctx.scale(8, 4), 64 * MiB)
    small = write_files(www / "small", ctx.scale(1024, 256), 64 * KiB)
    nginx = ctx.stack.enter_context(Nginx(www, tls=tls))
    ca = nginx.ca_bundle
    env = s3_env(nginx.endpoint, ca)
    wrk_secs = ctx.scale(3, 1)
    where = "nginx with TLS on loopback" if tls else "nginx on loopback"
    # SPEC.md section 15: https >= 1.2x / 2x obstore; plain http keeps (at least) that lead.
    large_targets = [Target("ours get_many", "obstore", 1.2)]
    small_targets = [Target("ours get_many", "obstore", 2.0)]
    if not tls:
        large_targets[:0] = [
            Target("ours get_many", "original get_many", 1.1),
            Target("ours get_many", "wrk -c8 (wire limit)", 0.85),
        ]
        small_targets[:0] = [Target("ours get_many", "s3torchconnector 8 threads", 1.0)]
    tls_note = (
        " TLS 1.3: nginx reads each file and encrypts it in user space (no sendfile), with an "
        "ECDSA P-256 certificate from a CA generated for the run, which every client trusts "
        "through its usual CA setting; each client's library picks the cipher (AES-256-GCM "
        "first for OpenSSL's and rustls' defaults)."
        if tls
        else ""
    )
    served = (
        "nginx (keep-alive, no access log) serves files from the page cache"
        if tls
        else "nginx (sendfile, keep-alive, no access log) serves files from the page cache"
    )

    keys = _keys_file(ctx, "large", large)
    limits = [
        tool(
            "wrk -c8 (wire limit)",
            _wrk(f"{nginx.endpoint}/large/{large[0].name}", wrk_secs, 8),
            parse=parse_wrk,
        ),
        tool("curl --parallel 8", _curl(nginx.endpoint, "large", large, ca)),
    ]
    if ca:
        limits.append(
            tool(
                "openssl s_time (1 connection)",
                _s_time(nginx.port, f"/large/{large[0].name}", ca, wrk_secs),
                parse=parse_s_time,
            )
        )
    yield Case(
        f"GET {len(large)} x 64 MiB objects ({where})",
        "GB/s",
        [*_get_contenders(nginx.endpoint, "large", keys, env, s3transfer=not tls), *limits],
        bytes=len(large) * 64 * MiB,
        objects=len(large),
        targets=large_targets,
        note=served + "; it shares the 2 CPUs with the client, so the wire limit is what one "
        "client process can pull while nginx sends." + tls_note,
    )

    keys = _keys_file(ctx, "small", small)
    limits = [
        tool(
            "wrk -c16 (wire limit)",
            _wrk(f"{nginx.endpoint}/small/{small[0].name}", wrk_secs, 16),
            parse=parse_wrk,
        )
    ]
    if ca:
        limits.append(tool("curl --parallel 8", _curl(nginx.endpoint, "small", small, ca)))
    yield Case(
        f"GET {len(small)} x 64 KiB objects ({where})",
        "obj/s",
        [*_get_contenders(nginx.endpoint, "small", keys, env, s3transfer=False), *limits],
        bytes=len(small) * 64 * KiB,
        objects=len(small),
        targets=small_targets,
        note="Per-request cost dominates: the ratio to the original says how close a Python "
        "request path gets to a Rust one. s3transfer (a HEAD and a GET per object, ~110 "
        "objects/s here) is left out of this case to keep the run short." + tls_note,
    )
    nginx.stop()


def suite(ctx: Context) -> Iterator[Case]:
    """GET large, GET small (nginx), then PUT small and large (moto)."""
    yield from get_cases(ctx, tls=False)
    moto = ctx.stack.enter_context(MotoGunicorn(threads=8))
    moto.create_bucket("bench-put")
    env = s3_env(moto.endpoint)
    for count, size, label in (
        (ctx.scale(128, 64), 64 * KiB, "64 KiB"),
        (ctx.scale(8, 2), 16 * MiB, "16 MiB"),
    ):
        common = {
            "endpoint": moto.endpoint,
            "bucket": "bench-put",
            "size": size,
            "count": count,
            "env": env,
        }
        yield Case(
            f"PUT {count} x {label} objects (moto under gunicorn, 1 worker, 8 threads)",
            "obj/s" if size < MiB else "GB/s",
            [
                ours(
                    "ours put_many",
                    FILE,
                    "s3dlio_put_many",
                    needs=S3_NEEDS,
                    prefix="ours",
                    **common,
                ),
                peer(
                    "original put_many",
                    FILE,
                    "s3dlio_put_many",
                    needs=("s3dlio",),
                    prefix="orig",
                    **common,
                ),
                peer(
                    "boto3 8 threads",
                    FILE,
                    "boto3_put_threads",
                    needs=("boto3",),
                    prefix="boto3",
                    threads=8,
                    **common,
                ),
                peer(
                    "s3transfer upload",
                    FILE,
                    "s3transfer_upload",
                    needs=("s3transfer",),
                    prefix="s3transfer",
                    threads=10,
                    **common,
                ),
            ],
            bytes=count * size,
            objects=count,
            note="moto (a Python server, one process) is the bottleneck here: these figures "
            "bound the clients from above, they do not rank them.",
        )
