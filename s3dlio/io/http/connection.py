"""One HTTP/1.1 client connection and the response read from it, with nothing in between.

The request head is formatted once and sent with the body in at most two ``sendall`` calls; the
response head is parsed from one read-ahead buffer; the body is read with ``recv_into`` straight
into the caller's buffer (only bytes that arrived together with the head are copied, from the
read-ahead buffer). Bodies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the
end of the connection are all understood; interim ``1xx`` answers are skipped.

Errors are ``OSError`` subclasses: :class:`ProtocolError` for a peer that does not speak HTTP/1.1
or ends a body early, and the socket's own ``ConnectionResetError``, ``TimeoutError``, ...
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .pool import ConnectionPool
    from .proxy import Proxy

__all__ = ["Connection", "Endpoint", "IncompleteBody", "ProtocolError", "Response", "WouldBlock"]

#: Size of a connection's read-ahead buffer (also the largest response head accepted).
READ_AHEAD = 64 * 1024
#: Bodies up to this size are sent in the same ``sendall`` as the head.
COALESCE_BODY = 64 * 1024
#: Largest error body :meth:`Response.read` keeps.
READ_LIMIT = 1 << 20
#: What a blocking socket raises when ``SO_RCVTIMEO``/``SO_SNDTIMEO`` expire.
_EXPIRED = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: ``TCP_QUICKACK`` where the platform has it (Linux): see :class:`Connection`, ``proxy``.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class ProtocolError(ConnectionError):
    """The peer's answer is not valid HTTP/1.1 (or the connection ended inside the head)."""


class IncompleteBody(ProtocolError):
    """The connection ended before the body the head announced was complete."""


class WouldBlock(BlockingIOError):
    """A connection in non-blocking mode has nothing more to read right now."""


@dataclass(frozen=True)
class Endpoint:
    """Where to connect: scheme, host and port of an HTTP service.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: Host name or address (IPv6 without brackets).
        port: TCP port.
    """

    scheme: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """Parse ``http(s)://host[:port][/...]``.

        Raises:
            ValueError: not an http(s) URL with a host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, parts.port or default)

    @property
    def host_header(self) -> str:
        """The ``Host`` header value (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == (443 if self.scheme == "https" else 80):
            return host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``scheme://host[:port]``."""
        return f"{self.scheme}://{self.host_header}"


class Connection:
    """One keep-alive connection to an :class:`Endpoint`.

    Args:
        endpoint: Where to connect.
        connect_timeout: Seconds to establish the TCP (and TLS) connection.
        read_timeout: Seconds any single socket operation may wait afterwards.
        ssl_context: Used for ``https`` endpoints.
        proxy: Connect through this proxy (a ``CONNECT`` tunnel for ``https``).

    Through a proxy (on Linux) the connection acknowledges what it has read before each wait
    for more (``TCP_QUICKACK``, which the kernel forgets with every request sent): a proxy
    that leaves Nagle's algorithm on (tinyproxy) holds the last segment of an answer until
    the previous one is acknowledged, and the kernel otherwise delays that ACK 40 ms when two
    segments in a row have the same size (tinyproxy writes 2 KiB at a time). OpenSSL's reads
    wait inside the library, so such a TLS connection is non-blocking at the socket level and
    does its own waiting (``poll``), the ACK sent first; :meth:`set_nonblocking` then only
    changes whether a read waits, and a multiplexer calls :meth:`before_wait`. A plain
    connection acknowledges after each read that emptied the socket.
    """

    __slots__ = (
        "_acking",
        "_buf",
        "_end",
        "_nonblocking",
        "_pos",
        "_sock",
        "_sslread",
        "_sslwrite",
        "_timeout",
        "_view",
        "endpoint",
        "idle_since",
        "requests",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self.endpoint = endpoint
        if proxy is None:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=connect_timeout)
        else:  # proxy.py: to the proxy, tunnelled to the endpoint for https
            sock = proxy.connect(endpoint, connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.scheme == "https":
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=endpoint.host)
            _set_io_timeout(sock, read_timeout)
            acking = proxy is not None and _QUICKACK is not None
            if acking and isinstance(sock, ssl.SSLSocket):
                sock.settimeout(0.0)  # waits in _wait, the ACK sent first
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket | None = sock
        # TLS: read records with the SSL object's own ``read(n, buffer)``, which is what
        # ``SSLSocket.recv_into`` ends in after two Python-level calls (one record per call).
        sslobj = getattr(sock, "_sslobj", None)
        self._sslread = getattr(sslobj, "read", None)
        self._sslwrite = getattr(sslobj, "write", None)
        self._nonblocking = False
        self._acking = acking
        self._timeout = read_timeout
        self._buf = bytearray(READ_AHEAD)
        self._view = memoryview(self._buf)
        self._pos = 0
        self._end = 0
        #: Requests sent on this connection so far.
        self.requests = 0
        #: ``time.monotonic()`` when the connection last went back to its pool.
        self.idle_since = 0.0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the connection failed)."""
        return self._sock is None

    def fileno(self) -> int:
        """The socket's file descriptor (for ``select``)."""
        return self._sock.fileno() if self._sock is not None else -1

    def send(self, head: bytes, body: memoryview | None = None) -> None:
        """Send a request head and its body."""
        sendall = self._sendall
        self.requests += 1
        try:
            if body is None or not len(body):
                sendall(head)
            elif len(body) <= COALESCE_BODY:
                sendall(head + body.tobytes())
            else:
                sendall(head)
                sendall(body)
        except _EXPIRED:
            raise TimeoutError("timed out sending a request") from None

    def _sendall(self, data: bytes | memoryview) -> None:
        sock = self._live()
        write = self._sslwrite
        if write is None:
            sock.sendall(data)
            return
        view = memoryview(data)
        if self._acking:  # a non-blocking socket: wait here until OpenSSL has written it all
            sent = 0
            while sent < len(view):
                try:
                    sent += write(view[sent:])
                except _EXPIRED as exc:
                    self._wait(exc)  # and retry the same bytes (as OpenSSL requires)
            return
        sent = write(view)  # blocking: OpenSSL writes it all (no partial-write mode)
        while sent < len(view):
            sent += write(view[sent:])

    def read_head(self) -> tuple[str, int, str, dict[str, str]]:
        """Read one response head: ``(version, status, reason, headers)``.

        Header names are lower case; repeated headers are joined with ``", "``.

        Raises:
            ProtocolError: malformed head, or the peer closed before a whole head arrived.
        """
        head = self._take_head()
        while head is None:
            self._receive()
            head = self._take_head()
        return head

    def poll_head(self) -> tuple[str, int, str, dict[str, str]] | None:
        """Like :meth:`read_head`, for a socket that has turned readable: the head if it is
        complete after one receive (more if TLS holds decrypted bytes), else ``None``."""
        head = self._take_head()
        if head is None:
            try:
                self._receive()
                head = self._take_head()
                while head is None and (self._nonblocking or self._tls_pending()):
                    self._receive()
                    head = self._take_head()
            except WouldBlock:
                return None
        return head

    @property
    def tls(self) -> bool:
        """Whether this is a TLS connection."""
        return isinstance(self._sock, ssl.SSLSocket)

    def set_nonblocking(self, on: bool) -> None:
        """Switch a TLS connection's reads to non-blocking (for a multiplexer) or back.

        In non-blocking mode :meth:`readinto`, :meth:`poll_head` and the head and line reads
        raise :class:`WouldBlock` instead of waiting, and :meth:`readinto` goes on reading
        every TLS record that has already arrived: a socket that turned readable may hold many
        records, and each would otherwise cost a trip through the multiplexer's ``epoll``.
        """
        if on != self._nonblocking and self._sock is not None:
            if not (self._acking and self.tls):  # those stay non-blocking: _recv waits
                self._sock.settimeout(0.0 if on else None)  # SO_RCVTIMEO/SO_SNDTIMEO stay set
            self._nonblocking = on

    def pending(self) -> bool:
        """Whether body bytes can be read without waiting for the socket (already received)."""
        return self._end > self._pos or self._tls_pending()

    def _tls_pending(self) -> bool:
        sock = self._sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def _take_head(self) -> tuple[str, int, str, dict[str, str]] | None:
        """Parse a complete head from the read-ahead buffer, if one is there."""
        found = self._buf.find(b"\r\n\r\n", self._pos, self._end)
        if found < 0:
            return None
        text = self._view[self._pos : found].tobytes().decode("latin-1")
        self._pos = found + 4
        self._compact()
        return _parse_head(text)

    def _receive(self) -> None:
        """Append what the socket has to the read-ahead buffer (one receive)."""
        if self._end == READ_AHEAD:
            if self._pos == 0:
                raise ProtocolError(f"response head larger than {READ_AHEAD} bytes")
            kept = self._end - self._pos
            self._buf[:kept] = self._view[self._pos : self._end]
            self._pos, self._end = 0, kept
        got = self._recv(self._view[self._end :])
        if not got:
            received = self._end - self._pos
            raise ProtocolError(
                f"connection closed after {received} bytes of a response head"
                if received
                else "connection closed before a response"
            )
        self._end += got

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` body bytes (``0`` only at the end of the connection)."""
        avail = self._end - self._pos
        if avail:
            n = min(avail, len(view))
            view[:n] = self._view[self._pos : self._pos + n]
            self._pos += n
            self._compact()
            return n
        got = self._recv(view)
        if self._nonblocking and got:
            want, read = len(view), self._sslread
            assert read is not None
            try:
                while got < want:
                    more = read(want - got, view[got:])
                    if not more:
                        break
                    got += more
            except (*_EXPIRED, ssl.SSLEOFError):
                pass  # nothing more has arrived yet (or the end): the next call says which
        return got

    def _recv(self, view: memoryview) -> int:
        """One receive into ``view`` (one TLS record at most); ``0`` at the end."""
        sock = self._live()
        while True:
            try:
                if self._sslread is not None:
                    return self._sslread(len(view), view)
                got = sock.recv_into(view)
                if self._acking and got < len(view):
                    self._ack()  # drained: the caller waits next, here or in a multiplexer
                return got
            except _EXPIRED as exc:
                if self._nonblocking:
                    raise WouldBlock("nothing to read yet") from None
                if not (self._acking and self.tls):
                    raise TimeoutError("timed out waiting for the server") from None
                self._wait(exc)
            except ssl.SSLEOFError:
                return 0  # an end without close_notify, as SSLSocket (suppress_ragged_eofs)

    def before_wait(self) -> None:
        """Say that the caller is about to wait for this socket to turn readable (a
        multiplexer, with the connection in non-blocking mode): through a proxy, what was read
        is acknowledged now (see the class's notes)."""
        if self._acking and self._nonblocking:
            self._ack()

    def _ack(self) -> None:
        """Acknowledge what was read now, not after the kernel's delayed-ACK timer."""
        sock = self._sock
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
            except OSError:
                pass  # closed meanwhile: the next read says so

    def _wait(self, why: BaseException) -> None:
        """Wait (up to the read timeout) until a non-blocking TLS socket can go on with what
        ``why`` (``SSLWantReadError``/``SSLWantWriteError``) says, acknowledging first."""
        self._ack()
        poller = select.poll()
        poller.register(
            self.fileno(),
            select.POLLOUT if isinstance(why, ssl.SSLWantWriteError) else select.POLLIN,
        )
        if not poller.poll(self._timeout * 1000 if self._timeout > 0 else None):
            raise TimeoutError("timed out waiting for the server") from None

    def readline(self) -> bytes:
        """One line ending in ``\\n`` (with it), for chunk sizes and trailers.

        Raises:
            ProtocolError: the line is longer than the read-ahead buffer, or the peer closed.
        """
        while True:
            found = self._buf.find(b"\n", self._pos, self._end)
            if found >= 0:
                line = self._view[self._pos : found + 1].tobytes()
                self._pos = found + 1
                self._compact()
                return line
            if self._end == READ_AHEAD:
                if self._pos == 0:
                    raise ProtocolError("line too long in a chunked body")
                kept = self._end - self._pos
                self._buf[:kept] = self._view[self._pos : self._end]
                self._pos, self._end = 0, kept
            got = self._recv(self._view[self._end :])
            if not got:
                raise IncompleteBody("connection closed inside a chunked body")
            self._end += got

    def has_buffered_bytes(self) -> bool:
        """Whether bytes beyond the last response were received (the connection is unusable)."""
        return self._end > self._pos

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _compact(self) -> None:
        if self._pos == self._end:
            self._pos = self._end = 0

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise ProtocolError("connection is closed")
        return self._sock


def _set_io_timeout(sock: socket.socket, seconds: float) -> None:
    """Block in socket calls, each limited to ``seconds`` by the kernel (0 = no limit).

    ``SO_RCVTIMEO``/``SO_SNDTIMEO`` instead of ``settimeout``: a Python socket with a timeout
    polls before every ``recv`` and ``send``, one system call more per operation.
    """
    sock.settimeout(None)
    whole = int(seconds)
    limit = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)


def _parse_head(text: str) -> tuple[str, int, str, dict[str, str]]:
    lines = text.split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line: {line[:100]!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return version, int(code), reason, headers


class Response:
    """The answer to one request; the body is read with :meth:`readinto` or :meth:`read`.

    The connection goes back to its pool as soon as the whole body has been read (when the
    peer allows keep-alive); :meth:`close` before that closes the connection instead.

    Attributes:
        status: The HTTP status code.
        reason: The reason phrase.
        headers: Lower-case header names to values.
        length: Body bytes still to come when the head announced a ``Content-Length``
            (``None`` for chunked or read-to-close bodies).
    """

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_conn",
        "_done",
        "_keep_alive",
        "_pool",
        "headers",
        "length",
        "reason",
        "status",
    )

    def __init__(
        self,
        pool: ConnectionPool | None,
        conn: Connection,
        version: str,
        status: int,
        reason: str,
        headers: dict[str, str],
        *,
        head_request: bool,
    ) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        if status in (403, 407) and pool is not None and pool.proxy_check is not None:
            # proxy.py: a plain-http proxy's own refusal raises
            pool.proxy_check(conn, status, reason, headers, pool.endpoint)
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self._keep_alive = "keep-alive" in connection
        else:
            self._keep_alive = "close" not in connection
        self._chunked = False
        self._chunk_left = 0
        self.length: int | None = None
        if head_request or status in (204, 304):
            self.length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            try:
                self.length = int(headers["content-length"])
            except ValueError:
                conn.close()
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
        else:
            self._keep_alive = False  # the body ends with the connection
        self._done = False
        if self.length == 0:
            self._finish()

    @property
    def complete(self) -> bool:
        """Whether the whole body has been read."""
        return self._done

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` body bytes; ``0`` once the body is complete.

        Raises:
            IncompleteBody: the connection ended before the announced body did.
        """
        if self._done or not len(view):
            return 0
        conn = self._conn
        assert conn is not None
        try:
            if self._chunked:
                return self._readinto_chunked(conn, view)
            if self.length is None:  # until the peer closes
                got = conn.readinto(view)
                if not got:
                    self._finish()
                return got
            got = conn.readinto(view[: self.length] if len(view) > self.length else view)
            if not got:
                raise IncompleteBody(f"body ended with {self.length} bytes missing")
            self.length -= got
            if not self.length:
                self._finish()
            return got
        except WouldBlock:
            raise  # non-blocking mode, nothing arrived yet: the connection stays as it is
        except BaseException:
            self.close()
            raise

    def _readinto_chunked(self, conn: Connection, view: memoryview) -> int:
        if not self._chunk_left:
            line = conn.readline()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while conn.readline() not in (b"\r\n", b"\n"):  # trailers
                    pass
                self._finish()
                return 0
            self._chunk_left = size
        got = conn.readinto(view[: self._chunk_left] if len(view) > self._chunk_left else view)
        if not got:
            raise IncompleteBody(f"chunk ended with {self._chunk_left} bytes missing")
        self._chunk_left -= got
        if not self._chunk_left and conn.readline() not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")
        return got

    def read(self, limit: int = READ_LIMIT) -> bytes:
        """The rest of the body (at most ``limit`` bytes; a longer body is cut and dropped)."""
        out = bytearray()
        scratch = memoryview(bytearray(min(limit, READ_AHEAD) or 1))
        while not self._done and len(out) < limit:
            got = self.readinto(scratch[: min(len(scratch), limit - len(out))])
            if not got:
                break
            out += scratch[:got]
        self.close()
        return bytes(out)

    def _finish(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._keep_alive and self._pool is not None and not conn.has_buffered_bytes():
            self._pool.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Stop reading: a connection whose body was not read to the end is closed (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._done = True

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"
