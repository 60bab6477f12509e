"""DLIO's ``storage_options`` as an :class:`s3dlio.Client`.

Newer DLIO (and the MLPerf Storage fork) read a ``storage: storage_options:`` mapping from the
workload; DLIO 2.0.0 ignores it, and this integration reads it itself. Its keys:

* every :class:`s3dlio.Client` option by name (``endpoint_url``, ``region``,
  ``access_key_id``, ``secret_access_key``, ``session_token``, ``ca_bundle``,
  ``addressing_style``, ``proxy``, ``azure_*``, ``gcs_*``, ``max_connections``,
  ``connect_timeout``, ``operation_timeout``);
* DLIO's and MLPerf's spellings: ``s3_force_path_style: true`` (path-style addressing),
  ``s3_max_attempts`` (attempts per request), ``s3_profile`` (profile);
* ``uri_scheme`` (the scheme of a bare ``storage_root``, MLPerf's key; default ``s3`` with
  ``storage_type: s3``);
* keys that only choose a library in the MLPerf fork (``storage_library``,
  ``use_full_object_uri``), accepted and ignored.

Without options the default client (the environment: ``AWS_ENDPOINT_URL``, ...) is used.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from ...client import Client
from ...errors import InvalidArgumentError
from ...io.client_config import ClientConfig
from ...io.config import RetryConfig

__all__ = ["client_for", "uri_scheme"]

_IGNORED = frozenset({"storage_library", "use_full_object_uri", "uri_scheme"})
_NUMBERS: dict[str, type] = {
    "max_connections": int,
    "connect_timeout": float,
    "operation_timeout": float,
}
_NAMES = frozenset(
    f.name for f in dataclasses.fields(ClientConfig) if f.name not in ("range_engine", "retry")
)
_lock = threading.Lock()
_clients: dict[tuple[tuple[str, str], ...], Client] = {}


def _truth(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


def client_options(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :class:`s3dlio.Client` keywords that ``storage_options`` spells.

    Raises:
        InvalidArgumentError: an unknown key, or a value of the wrong type (both named).
    """
    options: dict[str, Any] = {}
    for key, value in (storage_options or {}).items():
        if key in _IGNORED or value is None:
            continue
        if key == "s3_force_path_style":
            options["addressing_style"] = "path" if _truth(value) else "auto"
        elif key == "s3_max_attempts":
            options["retry"] = RetryConfig(max_attempts=_number(key, value, int))
        elif key == "s3_profile":
            options["profile"] = str(value)
        elif key in _NUMBERS:
            options[key] = _number(key, value, _NUMBERS[key])
        elif key in _NAMES:
            options[key] = str(value)
        else:
            known = ", ".join(
                sorted(_NAMES | _IGNORED | {"s3_force_path_style", "s3_max_attempts"})
            )
            raise InvalidArgumentError(
                f"unknown DLIO storage option {key!r} (s3dlio understands: {known})",
                op="CONFIGURE",
            )
    return options


def _number(key: str, value: Any, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"storage option {key!r} must be a number, not {value!r}", op="CONFIGURE"
        ) from None


def client_for(storage_options: Mapping[str, Any] | None) -> Client | None:
    """The client for DLIO's ``storage_options`` (one per distinct set, per process), or
    ``None`` (the default client) when they set nothing for s3dlio."""
    options = client_options(storage_options)
    if not options:
        return None
    key = tuple(sorted((k, repr(v)) for k, v in options.items()))
    with _lock:
        client = _clients.get(key)
        if client is None or client.closed:
            client = _clients[key] = Client(**options)
        return client


def uri_scheme(storage_options: Mapping[str, Any] | None, default: str | None) -> str | None:
    """The scheme of a storage root written without one (``uri_scheme``, else ``default``)."""
    value = (storage_options or {}).get("uri_scheme")
    return str(value).rstrip(":/") if value else default
