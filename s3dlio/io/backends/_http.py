"""``requests`` sessions for the backends that speak HTTP through it (Azure, GCS).

A plain ``requests.Session`` re-reads the proxy variables of the environment on every request,
which costs more than the rest of a small GET. :func:`tune_session` resolves them once for the
endpoint, sizes the connection pool and turns off urllib3's own retries (the library's retry
policy is the only one).
"""

from __future__ import annotations

import os

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

__all__ = ["tune_session"]


def tune_session(session: requests.Session, endpoint: str, pool_size: int) -> requests.Session:
    """Configure ``session`` for requests to ``endpoint``; returns it.

    Args:
        session: The session to configure (a new ``requests.Session`` or an authorized one).
        endpoint: The service URL, for the ``NO_PROXY`` decision.
        pool_size: Connections kept per host.
    """
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if session.trust_env:
        session.proxies.update(get_environ_proxies(endpoint))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle and session.verify is True:
            session.verify = bundle
        session.trust_env = False
    return session
