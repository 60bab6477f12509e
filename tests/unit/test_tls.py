"""``s3://`` over TLS: moto behind a TLS-terminating relay on loopback, trusted through
``ca_bundle``; a second relay passes the encrypted answers in small pieces, so that TLS records
reach the multiplexed reader split across several reads (its non-blocking path)."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3dlio
from s3dlio.errors import S3DlioError
from s3dlio.io.http import ConnectionPool, Endpoint
from s3dlio.io.http.multiplex import Exchange, exchange
from tests.servers.moto import MotoS3
from tests.servers.tls import Certificates, Relay, make_certificates, openssl_available

pytestmark = pytest.mark.skipif(not openssl_available(), reason="needs the openssl command")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_relay(moto_s3: MotoS3, certs: Certificates) -> Iterator[Relay]:
    with Relay(moto_s3.port, tls=certs.server_context()) as relay:
        yield relay


@pytest.fixture
def trickle_relay(tls_relay: Relay) -> Iterator[Relay]:
    """Encrypted answers passed on 4,000 bytes at a time (a 16 KiB record in 5 pieces)."""
    with Relay(tls_relay.port, slice_bytes=4000) as relay:
        yield relay


def _https(relay: Relay) -> str:
    return f"https://127.0.0.1:{relay.port}"


def _payload(size: int, seed: int) -> bytes:
    return (seed.to_bytes(2, "little") + os.urandom(16)) * (size // 18) + b"x" * (size % 18)


SIZES = [0, 1, 16_384, 70_000, 600_000]


def test_round_trip_over_tls(tls_relay: Relay, certs: Certificates, s3_root: str) -> None:
    with s3dlio.Client(endpoint_url=_https(tls_relay), ca_bundle=certs.ca) as client:
        objects = {f"{s3_root}obj_{i}": _payload(size, i) for i, size in enumerate(SIZES)}
        for uri, data in objects.items():
            client.put_bytes(uri, data)  # bodies above 64 KiB are sent apart from the head
        for uri, data in objects.items():
            assert client.get(uri) == data
        big = f"{s3_root}obj_{len(SIZES) - 1}"
        assert client.get_range(big, 100_000, 50_000) == objects[big][100_000:150_000]
        got = dict(client.get_many(list(objects)))
        assert got == objects
    assert tls_relay.accepted >= 1


def test_get_many_with_records_arriving_in_pieces(
    trickle_relay: Relay, certs: Certificates, s3_root: str, split_ranges: None
) -> None:
    sizes = [1, 40_000, 300_000, 1_300_000]  # the last one in two 1 MiB-split ranges
    objects = {f"{s3_root}piece_{i}": _payload(size, i) for i, size in enumerate(sizes)}
    with s3dlio.Client(endpoint_url=_https(trickle_relay), ca_bundle=certs.ca) as client:
        for uri, data in objects.items():
            client.put_bytes(uri, data)
        for _ in range(2):
            got = client.get_many(list(objects), max_in_flight=8)
            assert dict(got) == objects
        for uri, data in objects.items():
            assert client.get(uri) == data


def test_untrusted_certificate_is_refused(
    tls_relay: Relay, s3_root: str, tmp_path: Path, certs: Certificates
) -> None:
    other = make_certificates(tmp_path / "other")  # a CA that did not sign the server's
    with s3dlio.Client(
        endpoint_url=_https(tls_relay), ca_bundle=other.ca, retry=s3dlio.RetryConfig(max_attempts=1)
    ) as client:
        with pytest.raises(S3DlioError) as caught:
            client.get(f"{s3_root}missing")
    chain: list[BaseException] = []
    exc: BaseException | None = caught.value
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or (
        "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    )


# -- the connection pool and the multiplexer against a keep-alive TLS server -------------------
# (moto answers "Connection: close", so connection reuse is checked against this server.)


class ObjectServer:
    """HTTP/1.1 keep-alive over TLS: ``GET /<name>`` answers ``objects[name]``."""

    def __init__(self, objects: dict[str, bytes], context: ssl.SSLContext) -> None:
        self.objects = objects
        self.context = context
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(20)
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                data = b""
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    head, _, data = data.partition(b"\r\n\r\n")
                    name = head.split(b" ")[1].decode().lstrip("/")
                    body = self.objects.get(name)
                    if body is None:
                        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                        continue
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    conn.sendall(body)
        except OSError:
            return

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


@pytest.fixture
def object_server(certs: Certificates) -> Iterator[ObjectServer]:
    objects = {f"o{i}": _payload(size, i) for i, size in enumerate([0, 5, 16_384, 50_000, 400_000])}
    server = ObjectServer(objects, certs.server_context())
    yield server
    server.close()


def _tls_pool(port: int, cafile: str | None, **kw: object) -> ConnectionPool:
    context = ssl.create_default_context(cafile=cafile)
    return ConnectionPool(
        Endpoint("https", "127.0.0.1", port),
        maxsize=8,
        connect_timeout=5,
        read_timeout=10,
        ssl_context=context,
    )


def _into_new_buffer(ex: Exchange) -> memoryview | None:
    assert ex.response is not None and ex.response.length is not None
    return memoryview(bytearray(ex.response.length))


def test_exchange_over_tls_then_blocking_reuse(
    object_server: ObjectServer, certs: Certificates
) -> None:
    names = list(object_server.objects) * 3
    with Relay(object_server.port, slice_bytes=3000) as trickle:
        pool = _tls_pool(trickle.port, certs.ca)
        try:
            requests = [
                Exchange(pool, "GET", pool.format_head("GET", f"/{n}", []), n) for n in names
            ]
            done = list(exchange(requests, 4, _into_new_buffer))
            assert sorted(ex.tag for ex in done) == sorted(names)
            for ex in done:
                assert ex.error is None
                body = b"" if ex.target is None else bytes(ex.target[: ex.nbytes])
                assert body == object_server.objects[ex.tag]
            opened = pool.opened
            assert 1 <= opened <= 4 and pool.idle == opened  # every connection went back
            # Back in the pool, a connection blocks again: a blocking read of a body that
            # arrives in pieces waits for each piece instead of failing.
            assert all(conn._sock.gettimeout() is None for conn in pool._idle)
            for name in ("o4", "o2", "o0"):
                with pool.request("GET", f"/{name}") as response:
                    assert response.read() == object_server.objects[name]
            assert pool.opened == opened and trickle.accepted == opened
        finally:
            pool.close()


def test_exchange_answer_read_by_the_caller_blocks(
    object_server: ObjectServer, certs: Certificates
) -> None:
    """An answer handed back unread (``on_head`` returns None) is read in blocking mode."""
    with Relay(object_server.port, slice_bytes=3000) as trickle:
        pool = _tls_pool(trickle.port, certs.ca)
        try:
            requests = [Exchange(pool, "GET", pool.format_head("GET", "/o4", []), "o4")]
            (ex,) = list(exchange(requests, 2, lambda ex: None))
            assert ex.response is not None and ex.error is None
            assert ex.response.read() == object_server.objects["o4"]
        finally:
            pool.close()


def test_pool_refuses_an_untrusted_server(object_server: ObjectServer) -> None:
    pool = _tls_pool(object_server.port, None)  # the system's CAs only
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            pool.request("GET", "/o1")
    finally:
        pool.close()
