"""HTTP(S) proxies for the data path: which proxy an endpoint goes through, and how.

:func:`proxy_for` decides once per endpoint (per connection pool), from the client's ``proxy=``
option or the standard variables, which :class:`Proxy` serves it (``None``: connect directly):

* ``proxy=`` (``s3dlio.Client(proxy=...)`` / ``configure(proxy=...)``) applies to every
  endpoint, as botocore's ``proxies`` setting does (``NO_PROXY`` is not consulted).
* Otherwise ``https_proxy`` / ``HTTPS_PROXY`` for ``https`` endpoints and ``http_proxy`` /
  ``HTTP_PROXY`` for ``http`` ones (lower case first, as curl and ``urllib`` read them), unless
  ``no_proxy`` / ``NO_PROXY`` names the endpoint (:func:`no_proxy_matches`).

Plain ``http`` endpoints are reached by sending requests to the proxy with absolute-form
targets (``GET http://host:port/bucket/key HTTP/1.1``, the ``Host`` header and the SigV4
signature still the origin's) and the proxy's credentials in each head; ``https`` endpoints
through a ``CONNECT host:port`` tunnel opened with each connection, TLS to the endpoint inside
it (SNI and certificate checked for the endpoint's host). Either way a connection is kept
alive and pooled as a direct one is.

Credentials in the proxy URL (``http://user:pass@host:port``, percent-encoded) become a
``Proxy-Authorization: Basic`` header; the password never appears in a ``repr``, a log line or
an error (:attr:`Proxy.display`). A proxy that refuses (``407``, ``403``) raises
:class:`ProxyDeniedError` (a :class:`~s3dlio.errors.PermissionDeniedError`, not retried); one
that cannot be reached or cannot reach the endpoint (``5xx`` to ``CONNECT``) raises
:class:`ProxyUnavailableError` (a :class:`~s3dlio.errors.TransientError`, retried). Both name
the proxy and the endpoint.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ...errors import InvalidArgumentError, PermissionDeniedError, TransientError, redact

if TYPE_CHECKING:
    from .connection import Connection, Endpoint

__all__ = [
    "Proxy",
    "ProxyDeniedError",
    "ProxyUnavailableError",
    "botocore_proxies",
    "mask",
    "no_proxy_matches",
    "proxy_for",
]

#: Largest answer head to ``CONNECT`` accepted.
_HEAD_LIMIT = 64 * 1024


class ProxyDeniedError(PermissionDeniedError):
    """The proxy refused the request or the tunnel (``407``, ``403``, another ``4xx``)."""


class ProxyUnavailableError(TransientError, ConnectionError):
    """The proxy could not be reached, or could not reach the endpoint (``5xx``)."""


@dataclass(frozen=True)
class Proxy:
    """One forward proxy (``http://[user:pass@]host[:port]``).

    Attributes:
        host: The proxy's host name or address (IPv6 without brackets).
        port: Its port (80 when the URL has none, as urllib3 and botocore assume).
        username: The user name of Basic authentication, if any.
        password: Its password (kept out of ``repr``).
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """Parse a proxy URL; one without a scheme is taken as ``http://``.

        Raises:
            InvalidArgumentError: not an ``http://`` URL with a host (``https://`` proxies,
                TLS to the proxy itself, and SOCKS are not supported).
        """
        text = url.strip()
        if "://" not in text:
            text = f"http://{text.removeprefix('//')}"
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port, parts = None, None  # type: ignore[assignment]
        if parts is None or parts.scheme.lower() != "http" or not parts.hostname:
            raise InvalidArgumentError(
                f"proxy {mask(url)!r} is not an http://[user:pass@]host[:port] URL "
                "(https:// and SOCKS proxies are not supported)",
                op="CONNECT",
            )
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port or 80, username, password)

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """The proxy as errors name it: ``http://user:***@host:port`` (password masked)."""
        if self.username is None:
            return f"http://{self.address}"
        secret = ":***" if self.password is not None else ""
        return f"http://{self.username}{secret}@{self.address}"

    def header_lines(self) -> str:
        """``Proxy-Authorization`` line(s) to add to each head sent to the proxy (or ``""``)."""
        if self.username is None:
            return ""
        token = f"{self.username}:{self.password or ''}".encode()
        return f"Proxy-Authorization: Basic {base64.b64encode(token).decode('ascii')}\r\n"

    def __repr__(self) -> str:
        return f"Proxy({self.display!r})"

    # -- connecting -------------------------------------------------------------------------
    def connect(self, endpoint: Endpoint, timeout: float) -> socket.socket:
        """A socket to the proxy, tunnelled to ``endpoint`` with ``CONNECT`` when it is
        ``https`` (the caller then starts TLS with the endpoint through it).

        The socket is returned as :func:`socket.create_connection` returns one (timeout
        ``timeout``); the tunnel's ``CONNECT`` exchange runs under the same timeout.

        Raises:
            ProxyUnavailableError: the proxy cannot be reached, times out, or answers ``5xx``.
            ProxyDeniedError: the proxy refuses the tunnel (``407``, ``403``, other ``4xx``).
        """
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise ProxyUnavailableError(
                f"cannot connect to proxy {self.display} for {endpoint.url}: {_reason(exc)}"
            ) from None
        if endpoint.scheme != "https":
            return sock
        try:
            host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
            authority = f"{host}:{endpoint.port}"
            head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{self.header_lines()}\r\n"
            sock.sendall(head.encode("latin-1"))
            status, reason = _read_connect_answer(sock)
        except ProxyUnavailableError as exc:
            sock.close()
            raise ProxyUnavailableError(
                f"proxy {self.display}, tunnel to {endpoint.url}: {exc.message}"
            ) from None
        except OSError as exc:
            sock.close()
            raise ProxyUnavailableError(
                f"proxy {self.display}, tunnel to {endpoint.url}: {_reason(exc)}"
            ) from None
        if status == 200:
            return sock
        sock.close()
        raise self.refusal(status, reason, f"CONNECT {authority}", endpoint)

    def refusal(
        self, status: int, reason: str, what: str, endpoint: Endpoint
    ) -> ProxyDeniedError | ProxyUnavailableError:
        """The error for a proxy's refusal of ``what`` (its ``status`` and ``reason``)."""
        said = redact(f"{status} {reason}".strip())[:200]
        if status == 407:
            hint = "credentials missing" if self.username is None else "credentials refused"
            return ProxyDeniedError(
                f"proxy {self.display} answered {said} to {what} ({hint}) for {endpoint.url}"
            )
        if status >= 500:
            return ProxyUnavailableError(
                f"proxy {self.display} answered {said} to {what} for {endpoint.url}"
            )
        return ProxyDeniedError(f"proxy {self.display} refused {what} for {endpoint.url}: {said}")

    def check_answer(
        self,
        conn: Connection,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        endpoint: Endpoint,
    ) -> None:
        """Raise if a ``403``/``407`` answer to a plain-http request is the proxy's own.

        ``407`` always is; a ``403`` is when it has no ``x-amz*`` header (S3 and the
        S3-compatible servers send a request id as ``x-amz-request-id`` or
        ``x-amzn-requestid`` with every answer). The connection is closed first.

        Raises:
            ProxyDeniedError: the proxy refused the request.
        """
        if status == 407 or (status == 403 and not any(n.startswith("x-amz") for n in headers)):
            conn.close()
            raise self.refusal(status, reason, "the request", endpoint)


def mask(url: str) -> str:
    """``url`` with the password of its ``user:pass@`` part masked."""
    scheme, sep, rest = url.rpartition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{hostport}{slash}{path}"


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}")[:200]


def _read_connect_answer(sock: socket.socket) -> tuple[int, str]:
    """Read the proxy's answer head to ``CONNECT``: ``(status, reason)``.

    Nothing may follow a ``200`` head (the endpoint speaks only after the TLS hello).
    """
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _HEAD_LIMIT:
            raise ProxyUnavailableError(f"answer head to CONNECT longer than {_HEAD_LIMIT} bytes")
        more = sock.recv(4096)
        if not more:
            raise ProxyUnavailableError("connection closed before an answer to CONNECT")
        data += more
    head, _, extra = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProxyUnavailableError(f"not an HTTP/1.x answer to CONNECT: {line[:100]!r}")
    status = int(code)
    if status == 200 and extra:
        raise ProxyUnavailableError("bytes after the answer to CONNECT")
    return status, reason


# -- which proxy ------------------------------------------------------------------------------


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value and value.strip():
            return value.strip()
    return None


def proxy_for(
    endpoint: Endpoint, option: str | None = None, environ: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy that requests to ``endpoint`` go through, or ``None`` for none.

    Args:
        endpoint: The endpoint (one pool's host, e.g. ``bucket.s3.amazonaws.com``).
        option: The client's ``proxy=`` option: used for every endpoint when set.
        environ: The variables to read (default: ``os.environ``).

    Raises:
        InvalidArgumentError: the proxy URL is malformed or not ``http://``.
    """
    if option:
        return Proxy.from_url(option)
    env = os.environ if environ is None else environ
    if endpoint.scheme == "https":
        url = _env(env, "https_proxy", "HTTPS_PROXY")
    else:
        url = _env(env, "http_proxy", "HTTP_PROXY")
    if url is None:
        return None
    if no_proxy_matches(endpoint.host, endpoint.port, _env(env, "no_proxy", "NO_PROXY") or ""):
        return None
    return Proxy.from_url(url)


def botocore_proxies(
    endpoint_url: str | None, option: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """The ``proxies`` setting for botocore's ``Config``, so that the control plane goes where
    the data path goes.

    ``None`` (botocore reads the variables itself) when neither the option nor the variables
    name a proxy, or when the endpoint is AWS's (resolved by botocore); otherwise the data
    path's decision for ``endpoint_url`` (``{}``: no proxy, also when ``NO_PROXY`` matches by
    a CIDR or a port, which botocore's own matching does not understand).
    """
    from .connection import Endpoint

    if option:
        return {"http": option, "https": option}
    env = os.environ if environ is None else environ
    if endpoint_url is None or not _env(
        env, "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"
    ):
        return None
    try:
        endpoint = Endpoint.from_url(endpoint_url)
    except ValueError:
        return None
    if endpoint.scheme == "https":
        url = _env(env, "https_proxy", "HTTPS_PROXY")
    else:
        url = _env(env, "http_proxy", "HTTP_PROXY")
    if url is None or proxy_for(endpoint, None, env) is None:
        return {}
    return {endpoint.scheme: url}


def no_proxy_matches(host: str, port: int, no_proxy: str) -> bool:
    """Whether a ``NO_PROXY`` value exempts ``host:port``, as curl and requests read it.

    Entries are separated by commas or spaces, compared without case:

    * ``*`` exempts every host;
    * ``example.com`` and ``.example.com`` (or ``*.example.com``) exempt ``example.com``
      and every name under it;
    * an IP address exempts that address, a CIDR block (``10.0.0.0/8``, ``fd00::/8``) every
      address in it, when the endpoint is given as an address (names are not resolved);
    * ``host:port`` (``[::1]:9000`` for IPv6) exempts that host on that port only.
    """
    host = host.strip("[]").rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.replace(",", " ").split():
        entry = entry.lower()
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = name.removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``("host", port)`` of a ``NO_PROXY`` entry (``None`` without a port)."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return inside, int(port) if port.isdigit() else None
    if entry.count(":") == 1:  # name:port or v4:port (a bare IPv6 address has several)
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None
