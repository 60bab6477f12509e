"""Who ``s3://`` talks to: one client's S3 clients and connection pools.

A :class:`State` is built from a :class:`~s3dlio.io.client_config.ClientConfig` (the client's
options, the environment for the rest) once per process per client (again after ``fork``): the
boto3 session and credentials, the SigV4 signer of the data path, and one :class:`Service` per
endpoint and signing region: a boto3 client for the control plane and keep-alive connection
pools for the data path. The backend itself is :mod:`s3dlio.io.backends.s3`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import ssl
import threading
import weakref

from ...errors import InvalidArgumentError
from ..client_config import ClientConfig, Network
from ..http import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    ConnectionPool,
    Endpoint,
    Response,
    SigV4Signer,
    canonical_query,
    quote_path,
)
from ..http import proxy as http_proxy
from ..uri import ObjectURI

__all__ = ["Service", "State"]

if importlib.util.find_spec("boto3") is None:  # imported on first use; missing: say so now
    raise ImportError(
        "the s3:// backend needs boto3; install it with: pip install 's3dlio[s3]'", name="boto3"
    )


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _dns_bucket(bucket: str) -> bool:
    """Whether ``bucket`` can be a host name label under TLS (virtual-hosted addressing)."""
    return re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket) is not None


class Service:
    """One endpoint and signing region: the boto3 client and the data-path connection pools."""

    def __init__(self, state: State, endpoint_url: str | None, region: str) -> None:
        from botocore import UNSIGNED
        from botocore.config import Config

        cfg = state.network
        options = Config(
            region_name=region,
            signature_version=UNSIGNED if state.anonymous else None,
            s3={"addressing_style": "path" if state.path_style(endpoint_url) else "auto"},
            max_pool_connections=cfg.connections,
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.operation_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="s3dlio",
            proxies=http_proxy.botocore_proxies(endpoint_url, state.config.proxy),
        )
        self.client = state.session.client(
            "s3", endpoint_url=endpoint_url, config=options, verify=state.ca_bundle
        )
        self.endpoint = Endpoint.from_url(self.client.meta.endpoint_url)
        self.url = self.endpoint.url
        self.region = region
        self.path_style = state.path_style(self.url)
        self._state = state
        self._pools: dict[str, ConnectionPool] = {}
        self._routes: dict[str, tuple[ConnectionPool, str]] = {}
        self._lock = threading.Lock()
        # A service dropped without close() closes boto3's sockets when it is collected (the
        # data-path pools close their own).
        weakref.finalize(self, self.client.close)

    def pool_for(self, bucket: str) -> tuple[ConnectionPool, str]:
        """The pool serving ``bucket`` and the path prefix of its objects."""
        found = self._routes.get(bucket)
        if found is not None:
            return found
        virtual = not self.path_style and _dns_bucket(bucket)
        host = f"{bucket}.{self.endpoint.host}" if virtual else self.endpoint.host
        with self._lock:
            pool = self._pools.get(host)
            if pool is None:
                cfg = self._state.network
                endpoint = Endpoint(self.endpoint.scheme, host, self.endpoint.port)
                pool = ConnectionPool(
                    endpoint,
                    maxsize=cfg.connections,
                    connect_timeout=cfg.connect_timeout,
                    read_timeout=cfg.operation_timeout,
                    ssl_context=self._state.ssl_context,
                    proxy=http_proxy.proxy_for(endpoint, self._state.config.proxy),
                )
                self._pools[host] = pool
            route = (pool, "/" if virtual else f"/{bucket}/")
            if len(self._routes) < 4096:
                self._routes[bucket] = route
        return route

    def prepare(
        self,
        method: str,
        uri: ObjectURI,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: memoryview | None = None,
    ) -> tuple[ConnectionPool, str, list[tuple[str, str]]]:
        """Sign one data-path request: its pool, request target and headers."""
        pool, prefix = self.pool_for(uri.bucket)
        path = quote_path(prefix + uri.key)
        q = canonical_query(query)
        fields = headers or {}
        auth = self._state.signer.sign(
            method,
            pool.endpoint.host_header,
            path,
            q,
            fields,
            region=self.region,
            payload_hash=EMPTY_SHA256 if body is None else UNSIGNED_PAYLOAD,
        )
        return pool, f"{path}?{q}" if q else path, [*fields.items(), *auth]

    def request(
        self,
        method: str,
        uri: ObjectURI,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: memoryview | None = None,
    ) -> Response:
        """Sign and send one data-path request; returns the answer whatever its status."""
        pool, target, fields = self.prepare(method, uri, query=query, headers=headers, body=body)
        return pool.request(method, target, fields, body)

    def close(self) -> None:
        """Close the idle connections of every pool, and the control-plane client's."""
        for pool in list(self._pools.values()):
            pool.close()
        self.client.close()


class State:
    """One client's boto3 session, credentials, signer and services (one per endpoint), for
    this process."""

    def __init__(self, config: ClientConfig) -> None:
        import boto3

        self.config = config
        self.network: Network = config.network()
        self.session = boto3.session.Session(
            profile_name=config.profile,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            aws_session_token=config.session_token,
        )
        credentials = self.session.get_credentials()
        self.anonymous = credentials is None
        self.signer = SigV4Signer(
            (lambda: None) if credentials is None else credentials.get_frozen_credentials
        )
        self.region = (
            config.region
            or _env("AWS_REGION", "AWS_DEFAULT_REGION")
            or self.session.region_name
            or "us-east-1"
        )
        self.endpoint_url = config.endpoint_url or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        self.ca_bundle = config.ca_bundle or _env("AWS_CA_BUNDLE")
        try:
            self.ssl_context = ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError) as exc:  # a setting to fix, not a fault to retry
            setting = "ca_bundle" if config.ca_bundle else "AWS_CA_BUNDLE"
            raise InvalidArgumentError(
                f"{setting}={self.ca_bundle!r} is not a readable CA bundle: {exc}"
            ) from exc
        self._services: dict[tuple[str | None, str], Service] = {}
        self._bucket_regions: dict[tuple[str | None, str], str] = {}
        self._lock = threading.Lock()

    def path_style(self, endpoint_url: str | None) -> bool:
        """Whether requests to ``endpoint_url`` (``None`` = AWS) use path-style addressing."""
        style = self.config.addressing_style
        if style != "auto":
            return style == "path"
        if endpoint_url is None:
            return False
        host = Endpoint.from_url(endpoint_url).host
        return not host.endswith((".amazonaws.com", ".amazonaws.com.cn"))

    def endpoint_for(self, uri: ObjectURI) -> str | None:
        """The endpoint URL serving ``uri`` (``None``: let botocore resolve AWS's)."""
        if uri.endpoint is None:
            return self.endpoint_url
        if self.endpoint_url and Endpoint.from_url(self.endpoint_url).host_header == uri.endpoint:
            return self.endpoint_url
        return f"http://{uri.endpoint}"

    def service(self, uri: ObjectURI) -> Service:
        """The service for ``uri``'s endpoint and its bucket's region."""
        region = self.region
        if self._bucket_regions:
            region = self._bucket_regions.get((uri.endpoint, uri.bucket), region)
        key = (uri.endpoint, region)
        svc = self._services.get(key)
        if svc is None:
            with self._lock:
                svc = self._services.get(key)
                if svc is None:
                    svc = Service(self, self.endpoint_for(uri), region)
                    self._services[key] = svc
        return svc

    def learn_region(self, uri: ObjectURI, region: str) -> bool:
        """Remember that ``uri``'s bucket lives in ``region``; False if that was known."""
        key = (uri.endpoint, uri.bucket)
        if self._bucket_regions.get(key, self.region) == region:
            return False
        self._bucket_regions[key] = region
        return True

    def close(self) -> None:
        """Close every pool's idle connections."""
        for svc in list(self._services.values()):
            svc.close()
