"""S3 GETs over TLS: the GET cases of :mod:`benchmarks.suite_s3` against nginx with ``https``.

nginx serves the same files with a self-signed certificate generated for the run (``openssl``);
every client trusts it through its usual CA setting, nothing is left unverified. The limit rows
are ``wrk`` and ``curl --parallel`` over TLS, and ``openssl s_time`` (one connection after
another, session resumed) for large objects. ``python -m benchmarks s3-https`` or
``python -m benchmarks s3 --https``.
"""

from __future__ import annotations

from collections.abc import Iterator

from .harness import Case, Context
from .suite_s3 import get_cases


def suite(ctx: Context) -> Iterator[Case]:
    """GET 64 MiB and 64 KiB objects from nginx over https."""
    yield from get_cases(ctx, tls=True)
