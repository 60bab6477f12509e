"""A lean HTTP/1.1 data path: keep-alive connection pools and SigV4 signing.

Used by the ``s3://`` backend for request bodies (GET, PUT, upload parts), where botocore's
per-request cost would dominate; see ``docs/performance.md``.
"""

from .connection import Connection, Endpoint, IncompleteBody, ProtocolError, Response
from .pool import ConnectionPool
from .sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Credentials,
    SigV4Signer,
    canonical_query,
    quote_path,
)

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Connection",
    "ConnectionPool",
    "Credentials",
    "Endpoint",
    "IncompleteBody",
    "ProtocolError",
    "Response",
    "SigV4Signer",
    "canonical_query",
    "quote_path",
]
