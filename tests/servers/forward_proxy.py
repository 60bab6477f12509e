"""A small forward proxy on loopback: absolute-form HTTP requests and ``CONNECT`` tunnels.

What a corporate proxy does, in threads over plain sockets::

    with ForwardProxy(auth=("alice", "s3cret")) as proxy:
        ...  # HTTPS_PROXY=proxy.url_with_auth
        proxy.tunnels, proxy.requests, proxy.accepted

* ``GET http://host:port/path HTTP/1.1`` (any method): forwarded to ``host:port`` with an
  origin-form target, ``Proxy-Authorization`` and ``Proxy-Connection`` removed; the answer is
  passed back. Client connections are kept alive (HTTP/1.1), and so is the connection to each
  upstream; bodies (``Content-Length`` or chunked) are streamed, never held whole.
  ``Expect: 100-continue`` is answered by the proxy itself.
* ``CONNECT host:port``: a TCP tunnel to ``host:port`` after ``200 Connection established``.
* ``auth=(user, password)``: requests without the matching ``Proxy-Authorization: Basic``
  get ``407`` with ``Proxy-Authenticate``; ``refuse=403`` (or any status) answers everything
  with that status. Only loopback upstreams are allowed (anything else gets ``403``).
* ``close_after_answer=True``: close the client connection after each forwarded answer
  without announcing it (no ``Connection: close``), as tinyproxy does.
* ``nagle=True``: leave Nagle's algorithm on for client sockets (no ``TCP_NODELAY``) and pass
  what comes out of a tunnel on in 2 KiB writes, as tinyproxy 1.11 does: each write after the
  first waits in the kernel for the ACK of the one before.

Counters: :attr:`accepted` (client connections), :attr:`requests` (absolute-form requests
forwarded), :attr:`tunnels` (tunnels opened), :attr:`refused` (answers 403/407 sent);
:attr:`seen` lists ``(method, target, headers)`` of every request head received. Stop with
:meth:`stop` (closes the listener and every open socket, joins the threads).
"""

from __future__ import annotations

import base64
import select
import socket
import threading
from urllib.parse import urlsplit

__all__ = ["ForwardProxy"]

_HEAD_LIMIT = 1 << 16
_SLICE = 1 << 18
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Size of the writes to a client in ``nagle`` mode (tinyproxy's buffer pieces).
_NAGLE_WRITE = 2048


class _Closed(Exception):
    """The client went away (or sent something unusable): end its connection."""


class ForwardProxy:
    """A forward HTTP proxy on ``127.0.0.1`` (a free port).

    Args:
        auth: ``(user, password)`` the proxy demands (``None``: open proxy).
        refuse: Answer every request and ``CONNECT`` with this status (``403``, ``407``...).
        close_after_answer: Close client connections after each answer, unannounced.
        nagle: No ``TCP_NODELAY`` on client sockets, tunnels written to them 2 KiB at a time.
        timeout: Seconds any socket may wait.

    Attributes:
        port: The proxy's port.
        accepted: Client connections accepted.
        requests: Absolute-form requests forwarded.
        tunnels: ``CONNECT`` tunnels opened.
        refused: Refusals (``403``/``407``) sent.
        seen: ``(method, target, headers)`` of every request head (names in lower case).
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        refuse: int | None = None,
        close_after_answer: bool = False,
        nagle: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.auth = auth
        self.nagle = nagle
        self.refuse = refuse
        self.close_after_answer = close_after_answer
        self.timeout = timeout
        self.accepted = self.requests = self.tunnels = self.refused = 0
        self.closed_after_answer = 0
        self._closes = threading.Condition()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._expected = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """``http://user:password@127.0.0.1:<port>`` (no escaping: test values only)."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    # -- serving ----------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopped:
                    client.close()
                    return
                self.accepted += 1
                self._open.add(client)
                thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstreams: dict[tuple[str, int], socket.socket] = {}
        buf = bytearray()
        try:
            client.settimeout(self.timeout)
            # as squid does (tinyproxy does not: Nagle there holds each answer's last segment
            # until the client's delayed ACK, 40 ms per small answer; docs/performance.md)
            if not self.nagle:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while not self._stopped:
                head = _read_head(client, buf)
                if head is None:
                    return
                method, target, headers = head
                with self._lock:
                    self.seen.append((method, target, headers))
                status = self._refusal(headers)
                if status is not None:
                    self._refuse(client, status)
                    if method == "CONNECT" or _body_follows(headers):
                        return  # what follows is not ours to read
                    continue
                if method == "CONNECT":
                    self._tunnel(client, target, buf)
                    return
                if not self._forward(client, method, target, headers, buf, upstreams):
                    return
        except (OSError, _Closed, ValueError):
            return
        finally:
            for sock in upstreams.values():
                self._forget(sock)
            self._forget(client)

    def _refusal(self, headers: dict[str, str]) -> int | None:
        if self.refuse is not None:
            return self.refuse
        if self._expected is not None and headers.get("proxy-authorization") != self._expected:
            return 407
        return None

    def _refuse(self, client: socket.socket, status: int) -> None:
        with self._lock:
            self.refused += 1
        reason = {403: "Forbidden", 407: "Proxy Authentication Required"}.get(status, "Refused")
        body = f"<html><body>{status} {reason} (test proxy)</body></html>".encode()
        extra = 'Proxy-Authenticate: Basic realm="test"\r\n' if status == 407 else ""
        client.sendall(
            f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def _connect(self, host: str, port: int) -> socket.socket:
        if host.strip("[]") not in _LOOPBACK:
            raise _Closed(f"upstream {host} is not on loopback")
        sock = socket.create_connection((host.strip("[]"), port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._stopped:
                sock.close()
                raise _Closed("stopped")
            self._open.add(sock)
        return sock

    def _tunnel(self, client: socket.socket, target: str, buf: bytearray) -> None:
        host, _, port = target.rpartition(":")
        try:
            upstream = self._connect(host, int(port))
        except (OSError, ValueError, _Closed):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with self._lock:
            self.tunnels += 1
        try:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if buf:
                upstream.sendall(buf)
                buf.clear()
            pair = {client: upstream, upstream: client}
            while not self._stopped:
                ready, _, _ = select.select(list(pair), [], [], self.timeout)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(_SLICE)
                    if not data:
                        return
                    if self.nagle and sock is upstream:
                        for at in range(0, len(data), _NAGLE_WRITE):
                            client.sendall(data[at : at + _NAGLE_WRITE])
                    else:
                        pair[sock].sendall(data)
        finally:
            self._forget(upstream)

    def _forward(
        self,
        client: socket.socket,
        method: str,
        target: str,
        headers: dict[str, str],
        buf: bytearray,
        upstreams: dict[tuple[str, int], socket.socket],
    ) -> bool:
        """One absolute-form request and its answer; False when the client connection ends."""
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            self._refuse(client, 400)
            return False
        key = (parts.hostname, parts.port or 80)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        if headers.get("expect", "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        lines = [f"{method} {path} HTTP/1.1\r\n"]
        for name, value in headers.items():
            if name not in ("proxy-authorization", "proxy-connection", "expect"):
                lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n")
        upstream = upstreams.get(key)
        if upstream is not None and select.select([upstream], [], [], 0)[0]:
            self._forget(upstreams.pop(key))  # closed by the upstream while idle
            upstream = None
        if upstream is None:
            upstream = upstreams[key] = self._connect(*key)
        with self._lock:
            self.requests += 1
        upstream.sendall("".join(lines).encode("latin-1"))
        _copy_body(client, buf, upstream, headers)
        ubuf = bytearray()
        # closing after the answer: the whole answer in one send, the close right after it
        out: socket.socket | _Collect = _Collect() if self.close_after_answer else client
        while True:
            answer = _read_head(upstream, ubuf, status_line=True)
            if answer is None:
                raise _Closed("upstream closed")
            line, _, answer_headers = answer
            version, code_text, reason = (line.split(" ", 2) + [""])[:3]
            code = int(code_text)
            # hop-by-hop headers are the proxy's own: the client connection is kept alive
            # (HTTP/1.1) whatever the upstream does with its own
            upstream_close = "close" in answer_headers.get("connection", "").lower() or (
                version == "HTTP/1.0"
                and "keep-alive" not in answer_headers.get("connection", "").lower()
            )
            framed = method == "HEAD" or code in (204, 304) or code < 200
            framed = framed or "content-length" in answer_headers
            framed = framed or "chunked" in answer_headers.get("transfer-encoding", "").lower()
            forwarded = {
                n: v
                for n, v in answer_headers.items()
                if n not in ("connection", "keep-alive", "proxy-connection")
            }
            if not framed:
                forwarded["connection"] = "close"
            out.sendall(_format(f"HTTP/1.1 {code} {reason}", forwarded))
            if code >= 200:
                break
        if method == "HEAD" or code in (204, 304):
            keep = True
        elif "chunked" in answer_headers.get("transfer-encoding", "").lower() or (
            "content-length" in answer_headers
        ):
            _copy_body(upstream, ubuf, out, answer_headers)
            keep = True
        else:  # the body ends with the upstream connection
            out.sendall(ubuf)
            while data := upstream.recv(_SLICE):
                out.sendall(data)
            keep = False
        if ubuf or upstream_close or not keep:
            self._forget(upstreams.pop(key))
        if isinstance(out, _Collect):
            client.sendall(out.data)
            client.shutdown(socket.SHUT_RDWR)  # at once, as tinyproxy does
            with self._closes:
                self.closed_after_answer += 1
                self._closes.notify_all()
            return False
        return keep and "close" not in headers.get("connection", "").lower()

    def wait_closed(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` client connections were closed after their answer.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        with self._closes:
            if not self._closes.wait_for(lambda: self.closed_after_answer >= count, timeout):
                raise TimeoutError(f"{self.closed_after_answer} of {count} closes")

    # -- stopping ---------------------------------------------------------------------------
    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.close()
        except OSError:
            pass

    def stop(self) -> None:
        """Stop accepting, close every open connection and wait for the threads."""
        with self._lock:
            self._stopped = True
            open_now = list(self._open)
            threads = list(self._threads)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)
        for thread in threads:
            thread.join(timeout=10)

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Collect:
    """Collects what would be sent (an answer sent whole, then the connection closed)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data


def _read_head(
    sock: socket.socket, buf: bytearray, *, status_line: bool = False
) -> tuple[str, str, dict[str, str]] | None:
    """One head from ``sock`` (bytes after it stay in ``buf``): ``(method, target, headers)``
    or, with ``status_line``, ``(status line, "", headers)``; ``None`` at a clean end."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > _HEAD_LIMIT:
            raise _Closed("head too long")
        data = sock.recv(_SLICE)
        if not data:
            if buf:
                raise _Closed("closed inside a head")
            return None
        buf += data
    text = buf[:end].decode("latin-1")
    del buf[: end + 4]
    first, *rest = text.split("\r\n")
    headers: dict[str, str] = {}
    for line in rest:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status_line:
        return first, "", headers
    method, target, _ = first.split(" ", 2)
    return method, target, headers


def _format(status_line: str, headers: dict[str, str]) -> bytes:
    lines = [f"{status_line}\r\n", *(f"{n}: {v}\r\n" for n, v in headers.items()), "\r\n"]
    return "".join(lines).encode("latin-1")


def _body_follows(headers: dict[str, str]) -> bool:
    return int(headers.get("content-length", "0") or 0) > 0 or "transfer-encoding" in headers


def _copy_body(
    src: socket.socket, buf: bytearray, dst: socket.socket | _Collect, headers: dict[str, str]
) -> None:
    """Pass one body (``Content-Length`` or chunked) from ``src`` (``buf`` first) to ``dst``."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = _read_line(src, buf)
            dst.sendall(line)
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = _read_line(src, buf)
                    dst.sendall(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return
            _copy_exact(src, buf, dst, size + 2)
    _copy_exact(src, buf, dst, int(headers.get("content-length", "0") or 0))


def _read_line(src: socket.socket, buf: bytearray) -> bytes:
    while True:
        end = buf.find(b"\n")
        if end >= 0:
            line = bytes(buf[: end + 1])
            del buf[: end + 1]
            return line
        data = src.recv(_SLICE)
        if not data:
            raise _Closed("closed inside a chunked body")
        buf += data


def _copy_exact(
    src: socket.socket, buf: bytearray, dst: socket.socket | _Collect, count: int
) -> None:
    if buf:
        take = min(count, len(buf))
        dst.sendall(buf[:take])
        del buf[:take]
        count -= take
    while count:
        data = src.recv(min(count, _SLICE))
        if not data:
            raise _Closed("closed inside a body")
        dst.sendall(data)
        count -= len(data)
