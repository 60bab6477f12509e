"""Keep-alive connections to one HTTP endpoint, reused last-in first-out.

The pool never blocks: when no idle connection is left a new one is opened, and a returned
connection beyond ``maxsize`` idle ones is closed (urllib3's non-blocking mode). A thread that
holds one response open while it waits for other requests (the RangeEngine's first range) can
therefore never starve the others. A connection idle for longer than :data:`STALE_AFTER`
seconds is checked before reuse, so one the server closed meanwhile is dropped instead of
failing a request. Requests are never retried here: the library's retry policy is the only one.
"""

from __future__ import annotations

import select
import ssl
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from .connection import Connection, Endpoint, ProtocolError, Response
from .proxy import Proxy

__all__ = ["STALE_AFTER", "ConnectionPool"]

#: Idle seconds after which a connection is checked for a server-side close before reuse.
STALE_AFTER = 1.0


class ConnectionPool:
    """Connections to one endpoint.

    Args:
        endpoint: The service.
        maxsize: Idle connections kept (more may be open while requests run).
        connect_timeout: Seconds to connect.
        read_timeout: Seconds a socket read or write may wait.
        ssl_context: TLS settings for ``https`` endpoints.
        proxy: Reach the endpoint through this proxy (:mod:`.proxy`; resolved by the caller).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        maxsize: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.maxsize = max(1, maxsize)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context
        self._idle: list[Connection] = []
        self._host_line = f"Host: {endpoint.host_header}\r\n"
        # Through a proxy (proxy.py): https tunnels per connection; plain http sends
        # absolute-form targets and the proxy's credentials, and checks answers for refusals.
        self.proxy = proxy
        plain = proxy is not None and endpoint.scheme == "http"
        self.proxy_check = proxy.check_answer if proxy is not None and plain else None
        self._target_prefix = endpoint.url if self.proxy_check is not None else ""
        # Some proxies (tinyproxy) close a plain-http client connection after each answer
        # without saying so: check every reuse, not only after STALE_AFTER idle seconds.
        self._stale_after = 0.0 if self.proxy_check is not None else STALE_AFTER
        if proxy is not None and self.proxy_check is not None:
            self._host_line += proxy.header_lines()
        self._closed = False
        self._lock = threading.Lock()
        # A pool dropped without close() (a Client nobody closed, an fsspec filesystem from
        # the instance cache) closes its idle sockets when it is collected, instead of leaving
        # each to the garbage collector and its ResourceWarning.
        self._finalizer = weakref.finalize(self, _close_all, self._idle)
        #: Connections opened so far.
        self.opened = 0

    def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, Any]] = (),
        body: memoryview | None = None,
    ) -> Response:
        """Send one request and read the head of its answer.

        Args:
            method: ``GET``, ``PUT``, ``HEAD``, ...
            target: The request target: an already percent-encoded path with its query.
            headers: Header names and values (``Host`` is added; values must be clean ASCII).
            body: The request body; ``Content-Length`` must be among ``headers``.

        Returns:
            The response, its body not read yet (any status: the caller interprets it).

        Raises:
            OSError: connecting, sending or reading the head failed (``ProtocolError``,
                ``ConnectionResetError``, ``TimeoutError``, ...).
        """
        head = self.format_head(method, target, headers)
        conn = self.acquire()
        try:
            try:
                conn.send(head, body)
            except (BrokenPipeError, ConnectionResetError) as exc:
                # The server may have answered early (an error) and closed: read that answer.
                try:
                    version, status, reason, fields = conn.read_head()
                except OSError:
                    raise exc from None
                fields["connection"] = "close"  # what we sent is in an unknown state
                return Response(
                    self, conn, version, status, reason, fields, head_request=method == "HEAD"
                )
            while True:
                version, status, reason, fields = conn.read_head()
                if status >= 200 or status == 101:
                    break
        except BaseException:
            conn.close()
            raise
        return Response(self, conn, version, status, reason, fields, head_request=method == "HEAD")

    def format_head(self, method: str, target: str, headers: Iterable[tuple[str, Any]]) -> bytes:
        """The request head :meth:`request` sends (``Host`` added), ready for :meth:`Connection.send`."""
        parts = [f"{method} {self._target_prefix}{target} HTTP/1.1\r\n", self._host_line]
        parts += [f"{name}: {value}\r\n" for name, value in headers]
        parts.append("\r\n")
        return "".join(parts).encode("latin-1")

    def acquire(self) -> Connection:
        """An idle connection (the most recently used), or a new one.

        Give it back with :meth:`put` once a response was read completely, or close it.

        Raises:
            OSError: connecting failed, or the pool is closed (``ProtocolError``).
        """
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            if time.monotonic() - conn.idle_since < self._stale_after or not _readable(conn):
                return conn
            conn.close()  # closed by the server (or unexpected bytes): drop it
        if self._closed:
            raise ProtocolError(f"connection pool for {self.endpoint.url} is closed")
        conn = Connection(
            self.endpoint,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            ssl_context=self.ssl_context,
            proxy=self.proxy,
        )
        self.opened += 1
        return conn

    def put(self, conn: Connection) -> None:
        """Return a connection whose last response was read completely."""
        if self._closed or conn.closed or len(self._idle) >= self.maxsize:
            conn.close()
            return
        conn.set_nonblocking(False)
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    @property
    def idle(self) -> int:
        """Idle connections held."""
        return len(self._idle)

    def close(self) -> None:
        """Close idle connections; connections returned later are closed too."""
        with self._lock:
            self._closed = True
        self._finalizer()


def _close_all(idle: list[Connection]) -> None:
    """Close and forget the connections of ``idle`` (the pool's own list, emptied in place)."""
    conns = idle[:]
    idle.clear()
    for conn in conns:
        conn.close()


def _readable(conn: Connection) -> bool:
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)
