"""TLS on loopback: certificates made with ``openssl``, and a TLS-terminating relay.

:func:`make_certificates` creates a private CA and a server certificate it signs for
``127.0.0.1``/``localhost`` (clients trust the CA through their usual setting, nothing is left
unverified). :class:`Relay` forwards TCP connections to an upstream port, optionally
terminating TLS on the accepting side (``moto`` behind it becomes an ``https`` endpoint) and
optionally passing what goes back to the client in small slices, so that a TLS record reaches
the client in several pieces (a multiplexed reader then sees a readable socket that does not
hold a whole record). Threads, one pair per connection; stop with :meth:`Relay.stop`.
"""

from __future__ import annotations

import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["Certificates", "Relay", "make_certificates", "openssl_available"]


class Certificates:
    """Files made by :func:`make_certificates`.

    Attributes:
        ca: The CA certificate (PEM): what clients trust.
        chain: The server's certificate followed by the CA's (PEM): what the server presents.
        key: The server's private key (PEM).
    """

    def __init__(self, ca: Path, chain: Path, key: Path) -> None:
        self.ca, self.chain, self.key = str(ca), str(chain), str(key)

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting :attr:`chain`."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.chain, self.key)
        return context


def openssl_available() -> bool:
    """Whether the ``openssl`` command is installed."""
    return shutil.which("openssl") is not None


def make_certificates(directory: Path, *, days: int = 2) -> Certificates:
    """A private CA and a server certificate for ``127.0.0.1``/``localhost`` (ECDSA P-256).

    rustls (obstore's TLS) refuses a CA certificate presented as the server's own, so the
    server gets a certificate of its own, signed by the CA.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert, key, csr = directory / "cert.pem", directory / "key.pem", directory / "cert.csr"
    ext = directory / "cert.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for argv in (
        ["req", "-x509", *ec, "-days", str(days), "-subj", "/CN=s3dlio test CA"]
        + ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"]
        + ["-keyout", str(ca_key), "-out", str(ca)],
        ["req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr)],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key)]
        + ["-CAcreateserial", "-days", str(days), "-extfile", str(ext), "-out", str(cert)],
    ):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)
    chain = directory / "chain.pem"
    chain.write_text(cert.read_text() + ca.read_text())
    return Certificates(ca, chain, key)


class Relay:
    """Forward connections from a loopback port to ``127.0.0.1:upstream``.

    Args:
        upstream: The port to forward to.
        tls: Terminate TLS on the accepting side with this server context.
        slice_bytes: Pass the upstream's bytes to the client at most this many at a time,
            ``pause`` seconds apart (``None``: as they come).
        pause: Seconds between slices.

    Attributes:
        port: Where clients connect.
        accepted: Connections accepted so far.
    """

    def __init__(
        self,
        upstream: int,
        *,
        tls: ssl.SSLContext | None = None,
        slice_bytes: int | None = None,
        pause: float = 0.0005,
    ) -> None:
        self.upstream = upstream
        self.tls = tls
        self.slice_bytes = slice_bytes
        self.pause = pause
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>`` (``http`` without :attr:`tls`)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One connection, both directions in this thread (an SSL object must not be read and
        written by two threads at once)."""
        try:
            client.settimeout(30)
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
        except OSError:
            client.close()
            return
        if self.slice_bytes:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._stopped:
                client.close()
                upstream.close()
                return
            self._open.update((client, upstream))
        try:
            self._pump(client, upstream)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(client)
                self._open.discard(upstream)
            client.close()
            upstream.close()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        tls = isinstance(client, ssl.SSLSocket)
        while not self._stopped:
            if tls and client.pending():  # type: ignore[attr-defined]
                ready = [client]
            else:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
            for sock in ready:
                data = sock.recv(1 << 16)
                if not data:
                    return
                if sock is client:
                    upstream.sendall(data)
                elif self.slice_bytes:
                    for at in range(0, len(data), self.slice_bytes):
                        client.sendall(data[at : at + self.slice_bytes])
                        time.sleep(self.pause)  # pacing, so that the pieces arrive apart
                else:
                    client.sendall(data)

    def stop(self) -> None:
        """Stop accepting and close every open connection."""
        with self._lock:
            self._stopped = True
            open_now = list(self._open)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        except OSError:
            pass
        self._listener.close()
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
