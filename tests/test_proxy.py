"""``s3://`` through HTTP(S) proxies: a real forward proxy on loopback in front of moto (plain
http, absolute-form requests) and of moto behind a TLS relay (https, ``CONNECT`` tunnels);
``NO_PROXY`` matching, credentials in the proxy URL, refusals as typed errors."""

from __future__ import annotations

import base64
import os
import socket
import ssl
from collections.abc import Callable, Iterator

import pytest

import s3dlio
from s3dlio.errors import InvalidArgumentError, PermissionDeniedError, TransientError
from s3dlio.io.config import RetryConfig
from s3dlio.io.http import Endpoint
from s3dlio.io.http.connection import Connection
from s3dlio.io.http.proxy import (
    Proxy,
    ProxyDeniedError,
    ProxyUnavailableError,
    botocore_proxies,
    no_proxy_matches,
    proxy_for,
)
from s3dlio.io.store import backend_for
from s3dlio.io.uri import parse_uri
from s3dlio.io.writer import WriterOptions
from tests.servers.common import free_port
from tests.servers.forward_proxy import ForwardProxy
from tests.servers.moto import MotoS3
from tests.servers.proxy import FaultProxy
from tests.servers.tls import Certificates, Relay, make_certificates, openssl_available

PASSWORD = "s3cret-Pa55"
ONE_TRY = RetryConfig(max_attempts=1)
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")

needs_openssl = pytest.mark.skipif(not openssl_available(), reason="needs the openssl command")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with none of the proxy variables set."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as server:
        yield server


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("proxy-tls"))


@pytest.fixture
def tls_endpoint(
    moto_s3: MotoS3, certs: Certificates, fault_proxy: Callable[..., FaultProxy]
) -> Iterator[Relay]:
    """moto as an https endpoint that keeps connections alive (moto closes each one: the
    fault proxy, without faults, keeps the client side alive)."""
    front = fault_proxy(moto_s3.port)
    with Relay(front.port, tls=certs.server_context()) as relay:
        yield relay


def _payload(size: int, seed: int = 0) -> bytes:
    block = seed.to_bytes(2, "little") + os.urandom(30)
    return (block * (size // len(block) + 1))[:size]


# -- which proxy (no servers) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("s3.example.com", 443, "*", True),
        ("s3.example.com", 443, "other.org, *", True),
        ("s3.example.com", 443, "example.com", True),
        ("example.com", 443, "example.com", True),
        ("s3.example.com", 443, ".example.com", True),
        ("example.com", 443, ".example.com", True),
        ("s3.example.com", 443, "*.example.com", True),
        ("S3.Example.COM.", 443, "EXAMPLE.com", True),
        ("badexample.com", 443, "example.com", False),
        ("example.com.evil.org", 443, "example.com", False),
        ("s3.example.com", 443, "s3.example.com:443", True),
        ("s3.example.com", 9000, "s3.example.com:443", False),
        ("s3.example.com", 443, "a.org  b.org,s3.example.com", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("127.0.0.1", 9000, "127.0.0.1", True),
        ("127.0.0.1", 9000, "127.0.0.1:9000", True),
        ("127.0.0.1", 9001, "127.0.0.1:9000", False),
        ("127.0.0.2", 9000, "127.0.0.1", False),
        ("::1", 9000, "::1", True),
        ("::1", 9000, "[::1]:9000", True),
        ("::1", 9001, "[::1]:9000", False),
        ("fd00::5", 443, "fd00::/8", True),
        ("s3.example.com", 443, "10.0.0.0/8", False),  # names are not resolved
        ("10.1.2.3", 80, "example.com", False),
        ("s3.example.com", 443, "", False),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert no_proxy_matches(host, port, no_proxy) is expected


def test_proxy_for_reads_the_variables_per_scheme() -> None:
    https = Endpoint("https", "s3.example.com", 443)
    http = Endpoint("http", "10.0.0.5", 9000)
    env = {
        "https_proxy": "http://tls-proxy:3128",
        "HTTPS_PROXY": "http://ignored:1",
        "HTTP_PROXY": "plain-proxy:8080",
    }
    assert proxy_for(https, None, env) == Proxy("tls-proxy", 3128)
    assert proxy_for(http, None, env) == Proxy("plain-proxy", 8080)  # no scheme: http://
    assert proxy_for(http, None, {"HTTPS_PROXY": "http://p:1"}) is None
    assert proxy_for(https, None, {}) is None
    assert proxy_for(https, None, {**env, "NO_PROXY": ".example.com"}) is None
    assert proxy_for(http, None, {**env, "no_proxy": "10.0.0.0/24"}) is None
    # the option wins over the variables and ignores NO_PROXY, as botocore's proxies do
    assert proxy_for(https, "http://opt:1", {**env, "NO_PROXY": "*"}) == Proxy("opt", 1)
    assert proxy_for(http, "http://opt", {}) == Proxy("opt", 80)


def test_proxy_url_credentials_are_decoded_and_masked() -> None:
    proxy = Proxy.from_url(f"http://al%40ice:{PASSWORD}%21@proxy.local:3128")
    assert (proxy.username, proxy.password) == ("al@ice", PASSWORD + "!")
    assert proxy.display == "http://al@ice:***@proxy.local:3128"
    assert PASSWORD not in repr(proxy) and PASSWORD not in proxy.display
    line = proxy.header_lines()
    assert line.startswith("Proxy-Authorization: Basic ") and line.endswith("\r\n")
    assert base64.b64decode(line.split()[-1]) == f"al@ice:{PASSWORD}!".encode()
    assert Proxy.from_url("http://proxy.local:3128").header_lines() == ""


@pytest.mark.parametrize("url", [f"https://u:{PASSWORD}@p:443", "socks5://p:1080", "http://:80"])
def test_unsupported_proxy_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Proxy.from_url(url)
    assert PASSWORD not in str(info.value)


def test_botocore_gets_the_same_decision() -> None:
    env = {"HTTP_PROXY": "http://p:3128", "NO_PROXY": "10.0.0.0/8"}
    assert botocore_proxies("http://s3.local:9000", "http://opt:1", env) == {
        "http": "http://opt:1",
        "https": "http://opt:1",
    }
    assert botocore_proxies("http://s3.local:9000", None, env) == {"http": "http://p:3128"}
    assert botocore_proxies("http://10.1.1.1:9000", None, env) == {}  # CIDR: botocore can't
    assert botocore_proxies("http://s3.local:9000", None, {}) is None
    assert botocore_proxies(None, None, env) is None  # AWS: botocore resolves it


# -- plain http through the proxy (absolute-form) ------------------------------------------------


def test_http_get_put_range_multipart_through_proxy(
    proxy: ForwardProxy, moto_s3: MotoS3, s3_root: str
) -> None:
    small, big = _payload(70_000, 1), _payload(11 << 20, 2)
    with s3dlio.Client(proxy=proxy.url) as client:
        client.put_bytes(f"{s3_root}small", small)
        assert bytes(client.get(f"{s3_root}small")) == small
        assert bytes(client.get_range(f"{s3_root}small", 1000, 5000)) == small[1000:6000]
        with client.open_writer(f"{s3_root}big", WriterOptions(part_size="5MiB")) as writer:
            writer.write(big)
        assert bytes(client.get(f"{s3_root}big")) == big
    # what moto holds, read without the proxy
    key = s3_root.split("/", 3)[3]
    body = moto_s3.client().get_object(Bucket=moto_s3.bucket, Key=f"{key}big")["Body"].read()
    assert body == big
    origin = f"http://127.0.0.1:{moto_s3.port}/"
    assert proxy.seen and all(target.startswith(origin) for _, target, _ in proxy.seen)
    parts = [t for m, t, _ in proxy.seen if m == "PUT" and "partNumber=" in t]
    assert len(parts) == 3
    ranged = [h["range"] for m, _, h in proxy.seen if m == "GET" and "range" in h]
    assert "bytes=1000-5999" in ranged
    # the Host header and the signature stay the origin's (moto checks nothing, the proxy sees)
    assert all(h["host"] == f"127.0.0.1:{moto_s3.port}" for _, _, h in proxy.seen)
    assert proxy.tunnels == 0


def test_range_engine_and_get_many_through_proxy(
    proxy: ForwardProxy, s3_root: str, split_ranges: None
) -> None:
    data = {f"{s3_root}obj_{i}": _payload(size, i) for i, size in enumerate([5 << 20, 10, 300_000])}
    with s3dlio.Client(proxy=proxy.url) as client:
        for uri, body in data.items():
            client.put_bytes(uri, body)
        before = len(proxy.seen)
        assert bytes(client.get(f"{s3_root}obj_0")) == data[f"{s3_root}obj_0"]
        ranges = [h.get("range") for m, _, h in proxy.seen[before:] if m == "GET"]
        assert len([r for r in ranges if r]) >= 5  # 1 MiB ranges of a 5 MiB object
        got = dict(client.get_many(list(data), max_in_flight=4))
        assert {uri: bytes(body) for uri, body in got.items()} == data


def test_http_keep_alive_through_proxy(proxy: ForwardProxy, s3_root: str) -> None:
    uri = f"{s3_root}ka"
    with s3dlio.Client(proxy=proxy.url) as client:
        client.put_bytes(uri, b"x" * 1000)
        assert bytes(client.get(uri)) == b"x" * 1000
        connections, requests = proxy.accepted, proxy.requests
        for _ in range(30):
            assert bytes(client.get_range(uri, 10, 20)) == b"x" * 20
    assert proxy.requests == requests + 30
    assert proxy.accepted == connections  # every GET reused a connection to the proxy


def test_proxy_that_closes_after_each_answer_unannounced(s3_root: str) -> None:
    """tinyproxy closes plain-http client connections after each answer without a
    ``Connection: close``: every reuse is checked, so no request goes out on a connection the
    proxy closed (with one attempt allowed, any such request would fail the test)."""
    uris = [f"{s3_root}c{i}" for i in range(8)]
    with (
        ForwardProxy(close_after_answer=True) as proxy,
        s3dlio.Client(proxy=proxy.url, retry=ONE_TRY) as client,
    ):
        for i, uri in enumerate(uris):
            client.put_bytes(uri, bytes([i]) * 5000)
            proxy.wait_closed(i + 1)  # the proxy's close has reached our socket
        for i, uri in enumerate(uris):
            assert bytes(client.get(uri)) == bytes([i]) * 5000
            proxy.wait_closed(len(uris) + i + 1)
        assert proxy.accepted == 2 * len(uris)


def test_environment_proxy_and_no_proxy_bypass(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, s3_root: str
) -> None:
    uri = f"{s3_root}env"
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with s3dlio.Client() as client:
        client.put_bytes(uri, b"through")
        assert bytes(client.get(uri)) == b"through"
    assert proxy.requests >= 2
    for no_proxy in ("127.0.0.1", "localhost, 127.0.0.0/8", "*"):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        seen = len(proxy.seen)
        with s3dlio.Client() as client:
            client.put_bytes(uri, b"direct")
            assert bytes(client.get(uri)) == b"direct"
            assert client.list(s3_root) == [uri]
        assert len(proxy.seen) == seen, no_proxy  # neither half went through the proxy


def test_proxy_credentials_are_sent_and_never_shown(moto_s3: MotoS3, s3_root: str) -> None:
    uri = f"{s3_root}auth"
    with ForwardProxy(auth=("alice", PASSWORD)) as proxy:
        with s3dlio.Client(proxy=proxy.url_with("alice", PASSWORD)) as client:
            client.put_bytes(uri, b"ok")
            assert bytes(client.get(uri)) == b"ok"
        assert proxy.requests >= 2 and proxy.refused == 0
        config = s3dlio.Client(proxy=proxy.url_with("alice", "wrong"), retry=ONE_TRY)
        with config as client, pytest.raises(PermissionDeniedError) as info:
            client.get(uri)
    err = info.value
    assert isinstance(err, ProxyDeniedError)
    text = str(err)
    assert f"http://alice:***@127.0.0.1:{proxy.port}" in text
    assert f"http://127.0.0.1:{moto_s3.port}" in text and "407" in text
    assert "wrong" not in text and PASSWORD not in text and "wrong" not in repr(config.config)
    assert err.uri == uri and err.op == "GET"


def test_http_proxy_that_forbids(moto_s3: MotoS3, s3_root: str) -> None:
    with ForwardProxy(refuse=403) as proxy, s3dlio.Client(proxy=proxy.url, retry=ONE_TRY) as c:
        with pytest.raises(ProxyDeniedError) as info:
            c.put_bytes(f"{s3_root}x", b"x")
    assert proxy.refused >= 1
    assert proxy.url in str(info.value) and f"127.0.0.1:{moto_s3.port}" in str(info.value)


def test_unreachable_proxy(moto_s3: MotoS3, s3_root: str) -> None:
    dead = f"http://bob:{PASSWORD}@127.0.0.1:{free_port()}"
    with s3dlio.Client(proxy=dead, retry=ONE_TRY) as client:
        with pytest.raises(TransientError) as info:
            client.get(f"{s3_root}x")
    assert isinstance(info.value, ProxyUnavailableError)
    text = str(info.value)
    assert "ConnectionRefusedError" in text and "bob:***@127.0.0.1" in text
    assert f"http://127.0.0.1:{moto_s3.port}" in text and PASSWORD not in text


# -- https through CONNECT tunnels ---------------------------------------------------------------


@needs_openssl
def test_https_through_tunnels(
    proxy: ForwardProxy, tls_endpoint: Relay, certs: Certificates, s3_root: str, split_ranges: None
) -> None:
    small, big = _payload(40_000, 3), _payload(11 << 20, 4)
    with s3dlio.Client(
        endpoint_url=tls_endpoint.url, ca_bundle=certs.ca, proxy=proxy.url
    ) as client:
        client.put_bytes(f"{s3_root}small", small)
        assert bytes(client.get(f"{s3_root}small")) == small
        assert bytes(client.get_range(f"{s3_root}small", 7, 100)) == small[7:107]
        with client.open_writer(f"{s3_root}big", WriterOptions(part_size="5MiB")) as writer:
            writer.write(big)
        assert bytes(client.get(f"{s3_root}big")) == big  # 1 MiB ranges
        got = dict(client.get_many([f"{s3_root}small", f"{s3_root}big"], max_in_flight=4))
        assert bytes(got[f"{s3_root}big"]) == big
        tunnels = proxy.tunnels
        for _ in range(20):
            assert bytes(client.get_range(f"{s3_root}small", 0, 10)) == small[:10]
        assert proxy.tunnels == tunnels  # kept alive
    assert tunnels >= 1 and proxy.requests == 0  # nothing went through in the clear
    assert {t for m, t, _ in proxy.seen} == {f"127.0.0.1:{tls_endpoint.port}"}
    assert tls_endpoint.accepted == proxy.tunnels  # every endpoint connection was a tunnel


@needs_openssl
@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_reads_through_a_nagle_proxy_are_acknowledged_at_once(
    tls_endpoint: Relay, certs: Certificates, s3_root: str
) -> None:
    """A proxy that leaves Nagle's algorithm on and writes 2 KiB at a time (tinyproxy) holds
    each piece until the previous one is acknowledged, and the client's kernel delays that
    ACK 40 ms once it is in delayed-ACK ("pingpong") mode, which every request sent puts it
    in: 40 ms per GET. The connection leaves that mode (``TCP_QUICKACK``) before it waits
    for more of an answer, so after every GET, blocking or multiplexed, its socket is out of
    it; without that it stays in (``getsockopt(TCP_QUICKACK)`` reads 0). The state is
    asserted, not the time (each GET takes 40+ ms here without the ACKs)."""
    data = _payload(100_000, 5)
    uris = [f"{s3_root}nagle{i}" for i in range(4)]
    with (
        ForwardProxy(nagle=True) as proxy,
        s3dlio.Client(endpoint_url=tls_endpoint.url, ca_bundle=certs.ca, proxy=proxy.url) as client,
    ):
        for uri in uris:
            client.put_bytes(uri, data)
        parsed = parse_uri(uris[0])
        pool = backend_for(parsed, client)._state().service(parsed).pool_for(parsed.bucket)[0]  # type: ignore[attr-defined]

        def quick() -> list[int]:
            return [c._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) for c in pool._idle]

        for uri in uris:
            assert bytes(client.get(uri)) == data
            assert quick() and all(quick())
        got = client.get_many(uris, max_in_flight=4)
        assert [bytes(body) for _, body in got] == [data] * len(uris)
        assert quick() and all(quick())
        assert proxy.tunnels == pool.opened


@needs_openssl
def test_a_silent_endpoint_behind_a_proxy_times_out(certs: Certificates) -> None:
    """Through a proxy a TLS connection waits by itself (non-blocking socket, ``poll``): a
    server that never answers still ends the read after ``read_timeout``."""
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        with (
            Relay(silent.getsockname()[1], tls=certs.server_context()) as relay,
            ForwardProxy(nagle=True) as proxy,
        ):
            conn = Connection(
                Endpoint.from_url(relay.url),
                connect_timeout=5,
                read_timeout=0.2,
                ssl_context=ssl.create_default_context(cafile=certs.ca),
                proxy=Proxy.from_url(proxy.url),
            )
            try:
                conn.send(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
                with pytest.raises(TimeoutError):
                    conn.read_head()
            finally:
                conn.close()
    finally:
        silent.close()


@needs_openssl
def test_https_environment_and_no_proxy(
    proxy: ForwardProxy,
    tls_endpoint: Relay,
    certs: Certificates,
    monkeypatch: pytest.MonkeyPatch,
    s3_root: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the http variable is not used
    monkeypatch.setenv("https_proxy", proxy.url)
    options = {"endpoint_url": tls_endpoint.url, "ca_bundle": certs.ca}
    with s3dlio.Client(**options) as client:
        client.put_bytes(f"{s3_root}e", b"env")
        assert bytes(client.get(f"{s3_root}e")) == b"env"
    assert proxy.tunnels >= 1
    monkeypatch.setenv("no_proxy", f"127.0.0.1:{tls_endpoint.port}")
    seen = len(proxy.seen)
    with s3dlio.Client(**options) as client:
        assert bytes(client.get(f"{s3_root}e")) == b"env"
    assert len(proxy.seen) == seen


@needs_openssl
def test_tls_inside_the_tunnel_checks_the_endpoint(
    proxy: ForwardProxy, tls_endpoint: Relay, s3_root: str
) -> None:
    """Without the test CA the endpoint's certificate is refused: TLS is the endpoint's."""
    with s3dlio.Client(endpoint_url=tls_endpoint.url, proxy=proxy.url, retry=ONE_TRY) as client:
        with pytest.raises(s3dlio.S3DlioError) as info:
            client.get_range(f"{s3_root}x", 0, 1)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate" in str(info.value)
    assert proxy.tunnels >= 1


@needs_openssl
@pytest.mark.parametrize("refusal", [407, 403])
def test_tunnel_refused(
    refusal: int, tls_endpoint: Relay, certs: Certificates, s3_root: str
) -> None:
    server = ForwardProxy(auth=("alice", PASSWORD)) if refusal == 407 else ForwardProxy(refuse=403)
    with server as proxy:
        url = proxy.url_with("alice", "bad-" + PASSWORD) if refusal == 407 else proxy.url
        with s3dlio.Client(
            endpoint_url=tls_endpoint.url, ca_bundle=certs.ca, proxy=url, retry=ONE_TRY
        ) as client:
            with pytest.raises(ProxyDeniedError) as info:
                client.get_range(f"{s3_root}x", 0, 1)
    text = str(info.value)
    assert f"CONNECT 127.0.0.1:{tls_endpoint.port}" in text and str(refusal) in text
    assert f"127.0.0.1:{proxy.port}" in text and tls_endpoint.url in text
    assert PASSWORD not in text
    assert info.value.op == "GET" and info.value.uri == f"{s3_root}x"
