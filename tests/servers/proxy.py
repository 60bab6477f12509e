"""A fault-injecting HTTP/1.1 proxy on loopback, in front of any real HTTP server.

Tests point a client at :attr:`FaultProxy.url` instead of the server and tell the proxy which
requests to break and how::

    proxy = FaultProxy("127.0.0.1", server_port).start()
    proxy.add_fault("status", count=2, match="GET /bucket/key", status=503, body=b"...")
    proxy.add_fault("reset", match=lambda method, path, headers: method == "PUT")
    ...
    proxy.stop()

Fault kinds (``params`` in brackets):

* ``"status"`` [``status=503``, ``body=b""``, ``headers={}``]: answer with this status instead of
  forwarding the request (the connection stays open).
* ``"reset"`` [``forward=False``]: close the client's connection with a TCP reset instead of
  answering. With ``forward=True`` the request reaches the server first (its answer is lost).
* ``"truncate"`` [``after=0``]: forward, then send the answer's head and only ``after`` bytes of
  its body, and close the connection.
* ``"stall_first_byte"`` [``seconds``]: forward, then wait ``seconds`` before the first byte of
  the answer (an interrupted wait when the proxy stops).
* ``"latency"`` [``seconds``]: wait before forwarding; applies to every matching request unless
  ``count`` is given.

``count`` is how many matching requests a fault applies to (``None`` = all of them); the first
matching fault with uses left wins. ``match`` is ``None`` (every request), a substring of
``"METHOD /path?query"``, or a predicate ``(method, path, headers) -> bool`` with header names in
lower case. :attr:`FaultProxy.requests` lists every request seen, :meth:`FaultProxy.clear`
removes the faults and forgets the requests.

The client side keeps connections alive (HTTP/1.1, ``Content-Length`` and chunked bodies); the
server side is reconnected whenever the server closes. Bodies are forwarded byte for byte, each
request and answer held in memory whole, so keep payloads to test sizes.
"""

from __future__ import annotations

import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest

from s3dlio.io.config import RetryConfig, Settings, reset_settings, settings

from .moto import MotoS3

__all__ = [
    "FAST_RETRIES",
    "KINDS",
    "FaultProxy",
    "SeenRequest",
    "fast_retries",
    "fault_proxy",
    "moto_proxy",
    "moto_proxy_root",
]

#: Retries for fault tests: 4 attempts, 10-50 ms apart.
FAST_RETRIES = RetryConfig(max_attempts=4, base_delay=0.01, max_delay=0.05)

KINDS = ("status", "reset", "truncate", "stall_first_byte", "latency")
_HEAD_LIMIT = 1 << 16
_UNLIMITED: Any = object()


class SeenRequest(NamedTuple):
    """One request the proxy received (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]


Matcher = Callable[[str, str, dict[str, str]], bool]


@dataclass
class _Fault:
    kind: str
    remaining: int | None
    match: Matcher
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0


class _Reader:
    """Buffered reads from a socket: a head, a line, ``n`` bytes, or everything until close."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self.buf += chunk
        return bool(chunk)

    def head(self) -> bytes | None:
        """Bytes up to and including the blank line; ``None`` if the peer closed first."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > _HEAD_LIMIT or not self._fill():
                return None

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[: end + 1])
                del self.buf[: end + 1]
                return line
            if not self._fill():
                raise ConnectionError("peer closed inside a chunked body")

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("peer closed inside a body")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def until_close(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def body(self, headers: dict[str, str]) -> bytes:
        """A message body framed by ``headers`` (chunked bodies are returned with framing)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size_line = self.line()
                out += size_line
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.line()
                        out += trailer
                        if trailer in (b"\r\n", b"\n"):
                            return bytes(out)
                out += self.exact(size)
                out += self.line()
        return self.exact(int(headers.get("content-length", "0")))


def _parse(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _without_connection_header(head: bytes) -> bytes:
    lines = head.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join(kept)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """The proxy (see the module notes).

    Args:
        upstream_host: The real server's host.
        upstream_port: The real server's port.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener: socket.socket | None = None
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        #: Every request seen, in arrival order.
        self.requests: list[SeenRequest] = []
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    # -- control -----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        """Listen on a free loopback port and serve in background threads; returns ``self``."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "fault-proxy-accept")
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and wait for the threads."""
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout=10)

    def add_fault(
        self,
        kind: str,
        count: int | None = _UNLIMITED,
        match: str | Matcher | None = None,
        **params: Any,
    ) -> None:
        """Break the next ``count`` requests that ``match`` (see the module notes).

        ``count`` defaults to 1, except for ``"latency"`` (every matching request).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")
        if count is _UNLIMITED:
            count = None if kind == "latency" else 1
        if match is None:
            matcher: Matcher = lambda method, path, headers: True  # noqa: E731
        elif isinstance(match, str):
            text = match
            matcher = lambda method, path, headers: text in f"{method} {path}"  # noqa: E731
        else:
            matcher = match
        with self._lock:
            self._faults.append(_Fault(kind, count, matcher, params))

    def clear(self) -> None:
        """Remove every fault and forget the requests seen."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def requests_matching(self, match: str) -> list[SeenRequest]:
        """The requests seen whose ``"METHOD /path?query"`` contains ``match``."""
        with self._lock:
            return [r for r in self.requests if match in f"{r.method} {r.path}"]

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -----------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.add(client)
            self._spawn(self._serve, "fault-proxy-conn", client)

    def _take_fault(self, method: str, path: str, headers: dict[str, str]) -> _Fault | None:
        with self._lock:
            self.requests.append(SeenRequest(method, path, dict(headers)))
            for fault in self._faults:
                if fault.remaining == 0 or not fault.match(method, path, headers):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.hits += 1
                return fault
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream: list[Any] = [None, None]  # socket, reader
        reader = _Reader(client)
        try:
            while not self._stopping.is_set():
                head = reader.head()
                if head is None:
                    return
                request_line, headers = _parse(head)
                method, _, rest = request_line.partition(" ")
                path = rest.rsplit(" ", 1)[0]
                body = reader.body(headers)
                fault = self._take_fault(method, path, headers)
                if not self._handle(client, upstream, fault, method, head + body, headers):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._sockets.discard(client)
            if upstream[0] is not None:
                upstream[0].close()
            try:
                client.close()
            except OSError:
                pass

    def _handle(
        self,
        client: socket.socket,
        upstream: list[Any],
        fault: _Fault | None,
        method: str,
        request: bytes,
        headers: dict[str, str],
    ) -> bool:
        """Answer one request; False when the client connection must end."""
        kind = fault.kind if fault else None
        params = fault.params if fault else {}
        if kind == "status":
            body = params.get("body", b"")
            extra = "".join(f"{k}: {v}\r\n" for k, v in params.get("headers", {}).items())
            status = int(params.get("status", 503))
            client.sendall(
                f"HTTP/1.1 {status} Injected\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
                + body
            )
            return "close" not in headers.get("connection", "").lower()
        if kind == "reset" and not params.get("forward", False):
            _reset(client)
            return False
        if kind == "latency":
            self._stopping.wait(float(params["seconds"]))
        response_head, response_body, keep = self._forward(upstream, method, request)
        if kind == "reset":
            _reset(client)
            return False
        if kind == "stall_first_byte":
            self._stopping.wait(float(params["seconds"]))
        if kind == "truncate":
            client.sendall(response_head + response_body[: int(params.get("after", 0))])
            client.shutdown(socket.SHUT_RDWR)
            return False
        client_keep = keep and "close" not in headers.get("connection", "").lower()
        client.sendall(response_head + response_body)
        return client_keep

    def _forward(
        self, upstream: list[Any], method: str, request: bytes
    ) -> tuple[bytes, bytes, bool]:
        """Send ``request`` upstream; the answer's head and body, and whether the client
        connection can stay open after it."""
        if upstream[0] is None:
            sock = socket.create_connection(self.upstream, timeout=60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream[0], upstream[1] = sock, _Reader(sock)
        sock, reader = upstream
        sock.sendall(request)
        while True:
            head = reader.head()
            if head is None:
                raise ConnectionError("upstream closed without answering")
            status_line, headers = _parse(head)
            status = int(status_line.split(" ", 2)[1])
            if status >= 200:
                break
        upstream_keep = "close" not in headers.get("connection", "").lower()
        framed = "chunked" in headers.get("transfer-encoding", "").lower() or (
            "content-length" in headers
        )
        if method == "HEAD" or status in (204, 304):
            body = b""
            framed = True
        elif framed:
            body = reader.body(headers)
        else:
            body = reader.until_close()
            upstream_keep = False
        if not upstream_keep:
            sock.close()
            upstream[0] = upstream[1] = None
        if framed:  # the client connection outlives the server's
            head = _without_connection_header(head)
        return head, body, framed


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """A factory: ``fault_proxy(upstream_port, upstream_host="127.0.0.1")`` starts a proxy;
    every proxy made is stopped after the test."""
    made: list[FaultProxy] = []

    def make(upstream_port: int, upstream_host: str = "127.0.0.1") -> FaultProxy:
        proxy = FaultProxy(upstream_host, upstream_port).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def moto_proxy(moto_s3: MotoS3, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    """A fault proxy in front of the session's moto server."""
    return fault_proxy(moto_s3.port)


@pytest.fixture
def moto_proxy_root(moto_proxy: FaultProxy, moto_s3: MotoS3) -> str:
    """A fresh prefix of the session bucket, reached through :func:`moto_proxy`."""
    return f"s3://{moto_proxy.endpoint}/{moto_s3.bucket}/{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def fast_retries() -> Iterator[None]:
    """Short backoffs (4 attempts, 10-50 ms) so that retried faults cost milliseconds."""
    old = settings()
    reset_settings(Settings(retry=FAST_RETRIES))
    yield
    reset_settings(old)
