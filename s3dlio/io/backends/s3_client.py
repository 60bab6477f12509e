"""Who ``s3://`` talks to: its configuration, and this process's clients and connection pools.

:func:`configure_s3` (or the environment) says where the service is and how to sign for it;
:func:`current_state` builds, once per process (again after ``fork``, after
:func:`configure_s3`, and when the pool size or timeouts change), the boto3 session and
credentials, the SigV4 signer of the data path, and one :class:`Service` per endpoint and
signing region: a boto3 client for the control plane and keep-alive connection pools for the
data path. The backend itself is :mod:`s3dlio.io.backends.s3`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import ssl
import threading
from dataclasses import dataclass

from ...errors import InvalidURIError
from ..config import Settings, settings
from ..executor import PerProcess
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
from ..uri import ObjectURI

__all__ = ["S3Config", "Service", "State", "configure_s3", "current_state"]

if importlib.util.find_spec("boto3") is None:  # imported on first use; missing: say so now
    raise ImportError(
        "the s3:// backend needs boto3; install it with: pip install 's3dlio[s3]'", name="boto3"
    )

_ADDRESSING = ("auto", "path", "virtual")


@dataclass(frozen=True, kw_only=True)
class S3Config:
    """How ``s3://`` reaches its service; ``None`` fields come from the environment.

    Attributes:
        endpoint_url: ``http(s)://host[:port]`` of an S3-compatible service.
        region: Signing region.
        ca_bundle: PEM file of certificate authorities to trust for ``https`` endpoints
            (default: ``AWS_CA_BUNDLE``, else the system's).
        profile: Named profile of the shared config/credentials files (default:
            ``AWS_PROFILE``).
        addressing_style: ``"auto"`` (path-style for custom endpoints and for bucket names that
            are not DNS-compatible, virtual-hosted on AWS), ``"path"`` or ``"virtual"``.
    """

    endpoint_url: str | None = None
    region: str | None = None
    ca_bundle: str | None = None
    profile: str | None = None
    addressing_style: str = "auto"

    def __post_init__(self) -> None:
        if self.addressing_style not in _ADDRESSING:
            raise InvalidURIError(
                f"addressing_style must be one of {_ADDRESSING}, got {self.addressing_style!r}"
            )
        if self.endpoint_url is not None:
            try:
                Endpoint.from_url(self.endpoint_url)
            except ValueError as exc:
                raise InvalidURIError(str(exc)) from None


_config = S3Config()


def configure_s3(
    endpoint_url: str | None = None,
    region: str | None = None,
    ca_bundle: str | None = None,
    *,
    profile: str | None = None,
    addressing_style: str = "auto",
) -> None:
    """Set how ``s3://`` URIs reach their service, for this process (and children forked later).

    Arguments left ``None`` come from the environment (see :class:`S3Config`); calling
    ``configure_s3()`` with none goes back to the environment entirely. Clients and connections
    are rebuilt on the next request.

    Args:
        endpoint_url: ``http(s)://host[:port]`` of an S3-compatible service (MinIO, Ceph, a
            local test server). Default: ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, or AWS.
        region: Signing region. Default: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
            region, else ``us-east-1``.
        ca_bundle: PEM file of trusted certificate authorities. Default: ``AWS_CA_BUNDLE``.
        profile: Shared-config profile to take credentials and settings from.
            Default: ``AWS_PROFILE``.
        addressing_style: ``"auto"``, ``"path"`` or ``"virtual"``.

    Raises:
        InvalidURIError: a malformed endpoint URL or addressing style.
    """
    global _config
    _config = S3Config(
        endpoint_url=endpoint_url,
        region=region,
        ca_bundle=ca_bundle,
        profile=profile,
        addressing_style=addressing_style,
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

        cfg = state.settings
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
                cfg = self._state.settings
                pool = ConnectionPool(
                    Endpoint(self.endpoint.scheme, host, self.endpoint.port),
                    maxsize=cfg.connections,
                    connect_timeout=cfg.connect_timeout,
                    read_timeout=cfg.operation_timeout,
                    ssl_context=self._state.ssl_context,
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
        """Close the idle connections of every pool."""
        for pool in list(self._pools.values()):
            pool.close()


class State:
    """This process's boto3 session, credentials, signer and services (one per endpoint)."""

    def __init__(self) -> None:
        import boto3

        self.config = config = _config
        self.settings: Settings = settings()
        self.session = boto3.session.Session(profile_name=config.profile)
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
        self.ssl_context = ssl.create_default_context(cafile=self.ca_bundle)
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


def _build_state() -> State:
    return State()


STATE: PerProcess[State] = PerProcess(_build_state)


def _network(cfg: Settings) -> tuple[int, float, float]:
    """The settings the clients and pools are built from."""
    return cfg.connections, cfg.connect_timeout, cfg.operation_timeout


def current_state() -> State:
    """This process's state, rebuilt after :func:`configure_s3` or a change of the network
    settings (pool size, timeouts).

    Raises:
        Exception: whatever building the boto3 session or client raises (the backend maps it).
    """
    state = STATE.get()
    current = settings()
    if state.config is not _config or (
        state.settings is not current and _network(state.settings) != _network(current)
    ):
        STATE.reset()
        state.close()
        state = STATE.get()
    return state
