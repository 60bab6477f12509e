"""The lean HTTP data path of ``s3://``: SigV4 signatures against botocore's, and the
connection pool against a real loopback server that answers with scripted bytes (chunked
bodies, bodies ended by close, interim answers, early closes, stalls)."""

from __future__ import annotations

import gc
import select
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from s3dlio.io.http import (
    ConnectionPool,
    Credentials,
    Endpoint,
    IncompleteBody,
    ProtocolError,
    SigV4Signer,
    canonical_query,
    quote_path,
)
from s3dlio.io.http.multiplex import Exchange, exchange

# -- signing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "session-token/+="])
@pytest.mark.parametrize(
    "headers",
    [{}, {"x-amz-meta-run": "  seven   days ", "content-type": "text/plain", "range": "bytes=0-9"}],
    ids=["plain", "meta"],
)
def test_signature_matches_botocore(token: str | None, headers: dict[str, str]) -> None:
    path = quote_path("/bucket/dir with space/naïve ü+€=&~.txt")
    query = canonical_query({"partNumber": "3", "uploadId": "abc/+= x~"})
    signed_by_boto = {k: v for k, v in headers.items() if k != "range"}  # botocore signs Range
    request = AWSRequest(
        method="PUT", url=f"http://127.0.0.1:9000{path}?{query}", headers=dict(signed_by_boto)
    )
    S3SigV4Auth(BotoCredentials("AKID", "secret/key", token), "s3", "eu-west-1").add_auth(request)
    signer = SigV4Signer(lambda: Credentials("AKID", "secret/key", token))
    ours = dict(
        signer.sign(
            "PUT",
            "127.0.0.1:9000",
            path,
            query,
            headers,
            region="eu-west-1",
            amz_date=request.headers["X-Amz-Date"],
        )
    )
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == token


def test_anonymous_requests_are_not_signed() -> None:
    assert SigV4Signer(lambda: None).sign("GET", "h", "/b/k", "", {}, region="us-east-1") == []


def test_credentials_stay_out_of_repr() -> None:
    text = repr(Credentials("AKID", "very-secret", "tok-secret"))
    assert "very-secret" not in text and "tok-secret" not in text


def test_path_and_query_encoding() -> None:
    assert quote_path("/b/a b/ü~-_.+") == "/b/a%20b/%C3%BC~-_.%2B"
    assert canonical_query({"b": "2", "a": "x y/z"}) == "a=x%20y%2Fz&b=2"
    assert canonical_query(None) == ""


# -- the connection pool against a scripted server ---------------------------------------------


CLOSE = b"\x00close"


class ScriptedServer:
    """Answers each request on a connection with the next scripted reply (raw bytes).

    ``replies`` is a list (used in the order requests arrive) or a function of the request head.
    A reply of ``None`` closes the connection without answering; ``b"STALL"`` waits until the
    test ends; a reply ending in :data:`CLOSE` is sent and the connection closed. Records how
    many connections were accepted.
    """

    def __init__(self, replies: list[bytes | None] | Callable[[bytes], bytes | None]) -> None:
        self.replies = replies if callable(replies) else list(replies)
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                with self._lock:
                    self.requests.append(head)
                    if callable(self.replies):
                        reply = self.replies(head)
                    else:
                        reply = self.replies.pop(0) if self.replies else None
                if reply is None:
                    return
                if reply == b"STALL":
                    self._done.wait()
                    return
                if reply.endswith(CLOSE):
                    conn.sendall(reply[: -len(CLOSE)])
                    return
                conn.sendall(reply)

    def close(self) -> None:
        self._done.set()
        self._sock.close()


_POOLS: list[ConnectionPool] = []


@pytest.fixture
def scripted() -> Iterator[type[ScriptedServer]]:
    """A factory of scripted servers; servers and the pools made in the test are closed after."""
    made: list[ScriptedServer] = []

    def make(replies: list[bytes | None] | Callable[[bytes], bytes | None]) -> ScriptedServer:
        server = ScriptedServer(replies)
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    while _POOLS:
        _POOLS.pop().close()
    for server in made:
        server.close()


def _pool(server: ScriptedServer, read_timeout: float = 5.0) -> ConnectionPool:
    endpoint = Endpoint.from_url(f"http://127.0.0.1:{server.port}")
    pool = ConnectionPool(endpoint, maxsize=4, connect_timeout=5, read_timeout=read_timeout)
    _POOLS.append(pool)
    return pool


def _body(response: object) -> bytes:
    return response.read()  # type: ignore[attr-defined]


def test_keep_alive_reuses_one_connection(scripted: type[ScriptedServer]) -> None:
    ok = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e"\r\n\r\nhello'
    server = scripted([ok, ok, ok])
    pool = _pool(server)
    for _ in range(3):
        response = pool.request("GET", "/b/k", [("x-test", "1")])
        assert response.status == 200 and response.headers["etag"] == '"e"'
        buf = bytearray(5)
        assert response.readinto(memoryview(buf)) == 5 and buf == b"hello"
        assert response.complete and pool.idle == 1
    assert server.connections == 1 and pool.opened == 1
    assert server.requests[0].startswith(b"GET /b/k HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nx-test: 1" in server.requests[0]


def test_chunked_body_with_extensions_and_trailers(scripted: type[ScriptedServer]) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = scripted([reply, b"HTTP/1.1 204 No Content\r\n\r\n"])
    pool = _pool(server)
    response = pool.request("GET", "/chunked")
    assert response.length is None and _body(response) == b"hello, world"
    assert pool.request("DELETE", "/x").status == 204  # the same connection, still in sync
    assert server.connections == 1


def test_body_until_close_and_connection_close(scripted: type[ScriptedServer]) -> None:
    server = scripted([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it" + CLOSE])
    pool = _pool(server)
    assert _body(pool.request("GET", "/x")) == b"all of it"
    assert pool.idle == 0


def test_interim_answer_is_skipped_and_head_has_no_body(scripted: type[ScriptedServer]) -> None:
    server = scripted(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        ]
    )
    pool = _pool(server)
    assert _body(pool.request("PUT", "/x", [("content-length", "3")], memoryview(b"abc"))) == b"ok"
    head = pool.request("HEAD", "/x")
    assert head.complete and head.headers["content-length"] == "1000" and pool.idle == 1


def test_short_body_raises_incomplete(scripted: type[ScriptedServer]) -> None:
    server = scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" + CLOSE])
    pool = _pool(server)
    response = pool.request("GET", "/x")
    buf = memoryview(bytearray(10))
    assert response.readinto(buf) == 3
    with pytest.raises(IncompleteBody):
        response.readinto(buf[3:])
    assert pool.idle == 0


@pytest.mark.parametrize(
    "reply", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", None]
)
def test_malformed_or_missing_answer(scripted: type[ScriptedServer], reply: bytes | None) -> None:
    server = scripted([reply])
    with pytest.raises(ProtocolError):
        _pool(server).request("GET", "/x")


def test_stalled_answer_times_out(scripted: type[ScriptedServer]) -> None:
    server = scripted([b"STALL"])
    with pytest.raises(TimeoutError):
        _pool(server, read_timeout=0.2).request("GET", "/x")


def test_connection_closed_while_idle_is_not_reused(scripted: type[ScriptedServer]) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted([ok + CLOSE, ok])  # the server drops the connection after answering
    pool = _pool(server)
    assert _body(pool.request("GET", "/x")) == b"ok"
    conn = pool._idle[-1]
    conn.idle_since -= 60  # as if idle for a minute: checked before reuse
    assert select.select([conn.fileno()], [], [], 5)[0]  # the server's close has arrived
    assert _body(pool.request("GET", "/x")) == b"ok"
    assert pool.opened == 2 and server.connections == 2


def test_endpoint_parsing() -> None:
    assert Endpoint.from_url("https://s3.amazonaws.com").host_header == "s3.amazonaws.com"
    assert Endpoint.from_url("http://127.0.0.1:9000/x").host_header == "127.0.0.1:9000"
    assert Endpoint.from_url("http://[::1]:9000").host_header == "[::1]:9000"
    with pytest.raises(ValueError):
        Endpoint.from_url("localhost:9000")


# -- many requests from one thread (multiplex.exchange) ----------------------------------------


def _exchanges(pool: ConnectionPool, paths: list[str], method: str = "GET") -> list[Exchange]:
    return [Exchange(pool, method, pool.format_head(method, p, []), p) for p in paths]


def _into_new_buffer(ex: Exchange) -> memoryview | None:
    response = ex.response
    assert response is not None
    if response.status != 200 or response.length is None:
        return None
    return memoryview(bytearray(response.length))


def _payload_for(path: bytes) -> bytes:
    return path * (1 + len(path) * 997 % 5000)  # a different length for every path


def test_exchange_reads_every_body_into_its_buffer(scripted: type[ScriptedServer]) -> None:
    def reply(head: bytes) -> bytes:
        path = head.split(b" ")[1]
        body = _payload_for(path)
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    server = scripted(reply)
    pool = _pool(server)
    paths = [f"/b/k{i}" for i in range(40)]
    done = list(exchange(_exchanges(pool, paths), 4, _into_new_buffer))
    assert sorted(ex.tag for ex in done) == sorted(paths)
    for ex in done:
        assert ex.error is None and ex.response is not None and ex.response.complete
        assert ex.target is not None and bytes(ex.target) == _payload_for(ex.tag.encode())
        assert ex.nbytes == len(ex.target) and ex.start_ns <= ex.first_byte_ns <= ex.end_ns
    assert server.connections <= 4 and pool.idle == server.connections  # all kept alive
    list(exchange(_exchanges(pool, paths[:8]), 4, _into_new_buffer))
    assert pool.opened == server.connections  # the second batch reused them


def test_exchange_hands_back_what_it_does_not_read(scripted: type[ScriptedServer]) -> None:
    replies = {
        b"/missing": b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"/empty": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"/interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    }
    server = scripted(lambda head: replies[head.split(b" ")[1]])
    pool = _pool(server)
    done = {
        ex.tag: ex
        for ex in exchange(_exchanges(pool, [p.decode() for p in replies]), 8, _into_new_buffer)
    }
    missing, chunked = done["/missing"], done["/chunked"]
    assert missing.target is None and missing.response.status == 404  # type: ignore[union-attr]
    assert _body(missing.response) == b"not found"
    assert chunked.target is None and _body(chunked.response) == b"abc"
    empty = done["/empty"]
    assert empty.response.complete and empty.target is None  # type: ignore[union-attr]
    assert bytes(done["/interim"].target) == b"ok"  # type: ignore[arg-type]
    assert all(ex.error is None for ex in done.values())


def test_exchange_failures_stay_with_their_request(scripted: type[ScriptedServer]) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    replies = {
        b"/short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" + CLOSE,
        b"/dropped": None,
        b"/stalled": b"STALL",
    }
    server = scripted(lambda head: replies.get(head.split(b" ")[1], ok))
    pool = _pool(server, read_timeout=0.3)
    paths = ["/short", "/a", "/dropped", "/b", "/stalled", "/c"]
    done = {ex.tag: ex for ex in exchange(_exchanges(pool, paths), 6, _into_new_buffer)}
    assert isinstance(done["/short"].error, IncompleteBody)
    assert isinstance(done["/dropped"].error, ProtocolError)
    assert isinstance(done["/stalled"].error, TimeoutError)
    for path in ("/a", "/b", "/c"):
        assert done[path].error is None and bytes(done[path].target) == b"ok"  # type: ignore[arg-type]
    assert pool.idle == 3  # the failed ones were closed, not pooled


def test_head_answers_have_no_body(scripted: type[ScriptedServer]) -> None:
    server = scripted(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    pool = _pool(server)
    (ex,) = exchange(_exchanges(pool, ["/x"], "HEAD"), 1, _into_new_buffer)
    assert ex.response.complete and ex.target is None and pool.idle == 1  # type: ignore[union-attr]


def test_abandoned_exchange_closes_what_is_in_flight(scripted: type[ScriptedServer]) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted(lambda head: b"STALL" if b"/slow" in head else ok)
    pool = _pool(server)
    fast, *slow = _exchanges(pool, ["/fast", "/slow1", "/slow2"])
    run = exchange([fast, *slow], 3, _into_new_buffer)
    assert next(run) is fast
    run.close()
    assert pool.opened == 3 and pool.idle == 1  # the stalled two were closed, not pooled
    assert all(isinstance(ex.error, ConnectionAbortedError) for ex in slow)


def test_abandoned_exchange_closes_finished_answers_not_handed_out(
    scripted: type[ScriptedServer],
) -> None:
    """Answers that finished in the same round as the one handed out, with their bodies left
    for the caller, are closed when the caller stops there (as a failed ranged read does)."""
    server = scripted(lambda head: b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
    pool = _pool(server)
    exchanges = _exchanges(pool, ["/a", "/b", "/c"])

    def requests() -> Iterator[Exchange]:
        yield from exchanges
        deadline = time.monotonic() + 10
        while len(server.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # all three answers are waiting on their sockets: one round reads them

    run = exchange(requests(), 4, _into_new_buffer)
    first = next(run)
    assert first.response is not None and first.response.status == 404
    run.close()
    rest = [ex for ex in exchanges if ex is not first]
    assert all(ex.error is None and ex.response is not None for ex in rest)  # they had finished
    assert all(ex.response.complete for ex in rest)  # type: ignore[union-attr]
    assert _body(first.response) == b"not found"  # the one handed out is the caller's to read
    assert pool.opened == 3 and pool.idle == 1


def test_a_pool_dropped_without_close_closes_its_connections(
    scripted: type[ScriptedServer],
) -> None:
    """A pool nobody closed (a dropped Client, an fsspec filesystem evicted from its cache)
    closes its idle sockets as it goes, instead of leaving each to the garbage collector."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted(lambda head: ok)
    endpoint = Endpoint.from_url(f"http://127.0.0.1:{server.port}")
    pool = ConnectionPool(endpoint, maxsize=4, connect_timeout=5, read_timeout=5)
    list(exchange(_exchanges(pool, ["/a", "/b", "/c"]), 3, _into_new_buffer))
    assert pool.idle == 3
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        del pool
        gc.collect()
    assert [w for w in seen if issubclass(w.category, ResourceWarning)] == []
