"""AWS Signature Version 4 for S3 requests, with the derived signing key cached.

Deriving the signing key takes four HMACs; it changes only with the secret, the day and the
region, so it is computed once per (secret, day, region). What remains per request is one
SHA-256 of the canonical request and one HMAC: a few microseconds, against the ~1 ms botocore
spends building, signing and parsing one request.

Signed headers are ``host``, every ``x-amz-*`` header, ``content-type`` and ``content-md5``;
other headers (``range``, ``if-match``, ``content-length``) travel unsigned, as S3 allows.
Request bodies are sent as ``UNSIGNED-PAYLOAD`` (see ``docs/performance.md``); requests without
a body sign the SHA-256 of the empty string.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "SigV4Signer",
    "canonical_query",
    "quote_path",
]

#: ``x-amz-content-sha256`` of a request without a body.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: ``x-amz-content-sha256`` of a body that is not hashed.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"


class CredentialsLike(Protocol):
    """Anything with the three credential attributes (botocore's frozen credentials too)."""

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def token(self) -> str | None: ...


@dataclass(frozen=True)
class Credentials:
    """An access key pair and an optional session token (secrets are kept out of ``repr``).

    Attributes:
        access_key: The access key id.
        secret_key: The secret access key.
        token: The session token of temporary credentials.
    """

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def quote_path(path: str) -> str:
    """Percent-encode a request path as S3 signs it (``/`` kept, everything else but the
    unreserved characters encoded, UTF-8)."""
    return quote(path, safe="/" + _UNRESERVED)


def canonical_query(params: Mapping[str, str] | None) -> str:
    """The query string in SigV4 canonical form (encoded, sorted); ``""`` for none.

    The same string is used in the request target, so what is signed is what is sent.
    """
    if not params:
        return ""
    pairs = sorted(
        (quote(k, safe=_UNRESERVED), quote(v, safe=_UNRESERVED)) for k, v in params.items()
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


class SigV4Signer:
    """Signs requests for one service with credentials fetched per request.

    Args:
        credentials: Returns the current credentials (``None`` = anonymous: nothing is signed).
            Called once per request, so refreshed temporary credentials take effect at once.
        service: The signing name (``"s3"``).
    """

    def __init__(
        self, credentials: Callable[[], CredentialsLike | None], *, service: str = "s3"
    ) -> None:
        self._credentials = credentials
        self.service = service
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._clock: tuple[int, str] = (0, "")

    def _amz_date(self) -> str:
        now = int(time.time())
        clock = self._clock
        if clock[0] != now:
            clock = (now, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)))
            self._clock = clock
        return clock[1]

    def _signing_key(self, secret: str, day: str, region: str) -> bytes:
        cache_key = (secret, day, region)
        key = self._keys.get(cache_key)
        if key is None:
            key = _hmac(("AWS4" + secret).encode(), day)
            for part in (region, self.service, "aws4_request"):
                key = _hmac(key, part)
            if len(self._keys) > 64:
                self._keys.clear()
            self._keys[cache_key] = key
        return key

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        *,
        region: str,
        payload_hash: str = EMPTY_SHA256,
        amz_date: str | None = None,
    ) -> list[tuple[str, str]]:
        """The headers that authenticate one request.

        Args:
            method: The HTTP method.
            host: The ``Host`` header value.
            path: The percent-encoded path (:func:`quote_path`).
            query: The canonical query (:func:`canonical_query`).
            headers: The other headers to be sent, names in lower case.
            region: The signing region.
            payload_hash: Hex SHA-256 of the body, or :data:`UNSIGNED_PAYLOAD`.
            amz_date: The request time as ``YYYYmmddTHHMMSSZ`` (default: now).

        Returns:
            ``x-amz-date``, ``x-amz-content-sha256``, ``x-amz-security-token`` (temporary
            credentials) and ``authorization``, to be sent with ``headers``. Empty when the
            credentials are anonymous.
        """
        creds = self._credentials()
        if creds is None:
            return []
        amz_date = amz_date or self._amz_date()
        added = [("x-amz-date", amz_date), ("x-amz-content-sha256", payload_hash)]
        extra = [
            (name, " ".join(value.split()))
            for name, value in headers.items()
            if name.startswith("x-amz-") or name in ("content-type", "content-md5")
        ]
        if creds.token:
            added.append(("x-amz-security-token", creds.token))
            extra.append(("x-amz-security-token", creds.token))
        if extra:
            signed = sorted([("host", host), *added[:2], *extra])
            names = ";".join(name for name, _ in signed)
            lines = "".join(f"{name}:{value}\n" for name, value in signed)
        else:  # the common case (GET, HEAD): a fixed layout
            names = "host;x-amz-content-sha256;x-amz-date"
            lines = f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n"
        canonical = f"{method}\n{path}\n{query}\n{lines}\n{names}\n{payload_hash}"
        day = amz_date[:8]
        scope = f"{day}/{region}/{self.service}/aws4_request"
        to_sign = (
            f"{_ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = self._signing_key(creds.secret_key, day, region)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        added.append(
            (
                "authorization",
                f"{_ALGORITHM} Credential={creds.access_key}/{scope}, "
                f"SignedHeaders={names}, Signature={signature}",
            )
        )
        return added


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
