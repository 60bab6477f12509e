"""A store configuration as a value: what one :class:`~s3dlio.Client` talks to, and how.

:class:`ClientConfig` holds every option of ``s3dlio.Client(...)``. Fields left ``None`` come
from the environment (the standard cloud variables and the ``S3DLIO_*`` variables of
:mod:`s3dlio.io.config`) when the client first needs them, so ``ClientConfig()`` is "configured
by the environment", which is what the flat functions (``s3dlio.get``...) use by default.

Each backend instance is built from one ``ClientConfig``
(:class:`~s3dlio.io.store.StoreSet`), so two clients with two configurations never share a
connection, a credential or a timeout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from ..errors import InvalidArgumentError, InvalidURIError
from .config import RangeEngineConfig, RetryConfig, Settings, settings

__all__ = ["ClientConfig", "Network"]

_ADDRESSING = ("auto", "path", "virtual")


@dataclass(frozen=True)
class Network:
    """The resolved connection limits of one client.

    Attributes:
        connections: HTTP connections kept per endpoint.
        connect_timeout: Seconds to open a TCP connection.
        operation_timeout: Socket read timeout of one request, in seconds.
    """

    connections: int
    connect_timeout: float
    operation_timeout: float


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Every option of :class:`s3dlio.Client`; ``None`` = from the environment.

    Attributes:
        endpoint_url: ``http(s)://host[:port]`` of an S3-compatible service (default:
            ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS).
        region: S3 signing region (default: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
            profile's, else ``us-east-1``).
        profile: Shared-config profile for credentials and settings (default: ``AWS_PROFILE``).
        access_key_id: S3 access key (with ``secret_access_key``; default: the standard chain).
        secret_access_key: S3 secret key.
        session_token: S3 session token of temporary credentials.
        ca_bundle: PEM file of certificate authorities trusted for ``https`` endpoints, every
            backend (default: ``AWS_CA_BUNDLE`` for S3, the system's elsewhere).
        addressing_style: S3 ``"auto"``, ``"path"`` or ``"virtual"``.
        proxy: ``http://[user:pass@]host:port`` proxy for the S3 data path (default: the
            ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` variables).
        azure_connection_string: Azure connection string (default:
            ``AZURE_STORAGE_CONNECTION_STRING``).
        azure_account_name: Azure storage account (default: ``AZURE_STORAGE_ACCOUNT_NAME``).
        azure_account_key: Key of ``azure_account_name`` (default: ``AZURE_STORAGE_ACCOUNT_KEY``).
        azure_account_url: Service URL of the account (default: ``AZURE_STORAGE_ACCOUNT_URL``,
            else ``https://<account>.blob.core.windows.net``).
        gcs_project: Google Cloud project (default: ``GOOGLE_CLOUD_PROJECT``).
        gcs_emulator_host: ``http://host:port`` of a GCS emulator (default:
            ``STORAGE_EMULATOR_HOST``); requests are then sent unauthenticated.
        range_engine: When and how large GETs are split (default: from ``S3DLIO_*``).
        retry: Backoff policy (default: from ``S3DLIO_MAX_RETRY_ATTEMPTS`` ...).
        max_connections: HTTP connections kept per endpoint (default:
            ``S3DLIO_MAX_HTTP_CONNECTIONS``, else the I/O pool size).
        connect_timeout: Seconds to open a connection (default:
            ``S3DLIO_CONNECT_TIMEOUT_SECS``, else 10).
        operation_timeout: Socket read timeout of one request in seconds (default:
            ``S3DLIO_OPERATION_TIMEOUT_SECS``, else 60).
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    ca_bundle: str | None = None
    addressing_style: str = "auto"
    proxy: str | None = None
    azure_connection_string: str | None = None
    azure_account_name: str | None = None
    azure_account_key: str | None = None
    azure_account_url: str | None = None
    gcs_project: str | None = None
    gcs_emulator_host: str | None = None
    range_engine: RangeEngineConfig | None = None
    retry: RetryConfig | None = None
    max_connections: int | None = None
    connect_timeout: float | None = None
    operation_timeout: float | None = None

    def __post_init__(self) -> None:
        hints = get_type_hints(ClientConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            expected = _runtime_type(hints[f.name])
            if isinstance(value, bool) or not isinstance(value, expected):
                if expected == (float,) and isinstance(value, int) and not isinstance(value, bool):
                    object.__setattr__(self, f.name, float(value))
                    continue
                names = " or ".join(t.__name__ for t in expected)
                raise InvalidArgumentError(
                    f"client option {f.name}={_shown(f.name, value)} must be {names}",
                    op="CONFIGURE",
                )
        if self.addressing_style not in _ADDRESSING:
            raise InvalidArgumentError(
                f"client option addressing_style must be one of {_ADDRESSING}, "
                f"got {self.addressing_style!r}",
                op="CONFIGURE",
            )
        for name in ("max_connections", "connect_timeout", "operation_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidArgumentError(
                    f"client option {name} must be > 0, got {value}", op="CONFIGURE"
                )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise InvalidArgumentError(
                "client options access_key_id and secret_access_key go together", op="CONFIGURE"
            )
        if self.endpoint_url is not None:
            _check_url("endpoint_url", self.endpoint_url)
        if self.gcs_emulator_host is not None:
            _check_url("gcs_emulator_host", _with_scheme(self.gcs_emulator_host))
        if self.proxy is not None:
            _check_url("proxy", self.proxy)

    @classmethod
    def from_options(cls, **options: Any) -> ClientConfig:
        """Build from keyword options, naming any unknown one.

        Raises:
            InvalidArgumentError: an option that does not exist, or has the wrong type.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidArgumentError(
                f"unknown client option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                op="CONFIGURE",
            )
        return cls(**options)

    def replace(self, **changes: Any) -> ClientConfig:
        """A copy with ``changes`` applied (validated as :meth:`from_options` does)."""
        return ClientConfig.from_options(**{**self.options(), **changes})

    def options(self) -> dict[str, Any]:
        """The options that differ from the defaults (what rebuilds an equal client)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }

    # -- resolved values (environment for what is not set) ----------------------------------
    def network(self, current: Settings | None = None) -> Network:
        """Connections and timeouts, the unset ones from the process settings."""
        cfg = current or settings()
        return Network(
            connections=self.max_connections or cfg.connections,
            connect_timeout=cfg.connect_timeout
            if self.connect_timeout is None
            else self.connect_timeout,
            operation_timeout=cfg.operation_timeout
            if self.operation_timeout is None
            else self.operation_timeout,
        )

    def range_config(self) -> RangeEngineConfig:
        """The range-engine configuration in force."""
        return self.range_engine or settings().range

    def retry_config(self) -> RetryConfig:
        """The retry policy in force."""
        return self.retry or settings().retry

    def azure_account(self) -> str | None:
        """The Azure account named by ``azure_account_name`` or the connection string."""
        if self.azure_account_name:
            return self.azure_account_name
        for part in (self.azure_connection_string or "").split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() == "accountname" and value.strip():
                return value.strip()
        return None

    def gcs_emulator(self) -> str | None:
        """The GCS emulator URL (``http://host:port``), if one is configured."""
        host = self.gcs_emulator_host or os.environ.get("STORAGE_EMULATOR_HOST")
        return _with_scheme(host) if host else None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_shown(k, v)}" for k, v in self.options().items())
        return f"ClientConfig({shown})"


_SECRETS = ("secret_access_key", "session_token", "azure_account_key", "azure_connection_string")


def _shown(name: str, value: Any) -> str:
    """``value`` as it may appear in a message: secrets masked."""
    if name in _SECRETS:
        return "'***'"
    if name == "proxy" and isinstance(value, str) and "@" in value:
        scheme, _, rest = value.partition("://")
        return repr(f"{scheme}://***@{rest.rsplit('@', 1)[1]}")
    return repr(value)


def _runtime_type(hint: Any) -> tuple[type, ...]:
    """The classes an ``X | None`` annotation admits (``None`` aside)."""
    args = getattr(hint, "__args__", None) or (hint,)
    return tuple(a for a in args if isinstance(a, type) and a is not type(None))


def _with_scheme(host: str) -> str:
    return host if "://" in host else f"http://{host}"


def _check_url(name: str, url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = None  # type: ignore[assignment]
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidURIError(
            f"client option {name}={_shown(name, url)} is not an http(s)://host[:port] URL",
            op="CONFIGURE",
        )
