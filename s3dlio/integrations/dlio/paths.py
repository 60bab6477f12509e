"""Where DLIO's names point: DLIO ids under a namespace, as s3dlio URIs or local paths.

DLIO names everything with ``os.path`` strings: the storage root (its "namespace"), the data
and checkpoint folders, and file names joined from them. Any of them may be a URI here
(``s3://bucket/unet3d``, ``az://container/x``, ``gs://...``, ``file:///...``,
``direct:///...``); a plain path stays a local path. DLIO 2.0.0 also passes every file name of
its sample maps through ``os.path.abspath``, which turns ``s3://b/k`` into
``<cwd>/s3:/b/k``: :func:`unmangle` undoes that.

Nothing here imports DLIO.
"""

from __future__ import annotations

import os
import re

from ...io.uri import SCHEMES

__all__ = ["has_scheme", "join", "to_local", "unmangle"]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_LOCAL = ("file", "direct")


def has_scheme(name: str) -> bool:
    """Whether ``name`` is written as a URI (``scheme://...``), known scheme or not."""
    return _SCHEME_RE.match(name) is not None


def _clean(uri: str) -> str:
    """``uri`` with empty and ``.`` segments of its path dropped (a trailing ``/`` is kept)."""
    match = _SCHEME_RE.match(uri)
    if match is None:
        return uri
    head, rest = uri[: match.end()], uri[match.end() :]
    leading = "/" if rest.startswith("/") else ""
    trailing = "/" if rest.endswith("/") and rest.strip("/") else ""
    parts = [p for p in rest.split("/") if p not in ("", ".")]
    return head + leading + "/".join(parts) + trailing


def join(namespace: str, name: str, default_scheme: str | None = None) -> str:
    """DLIO's ``name`` under DLIO's ``namespace``.

    Args:
        namespace: The storage root (a URI, a bucket name when ``default_scheme`` is given, or a
            local directory).
        name: A DLIO id: a URI (kept as it is), or a path relative to the namespace.
        default_scheme: The scheme of a namespace written without one (DLIO's
            ``storage_type: s3`` takes a bare bucket name), or ``None`` for local paths.

    Returns:
        A URI, or a local path when neither names a scheme.
    """
    if has_scheme(name):
        return _clean(name)
    if has_scheme(namespace):
        return _clean(namespace.rstrip("/") + "/" + name)
    if default_scheme:
        return _clean(f"{default_scheme}://{namespace.strip('/')}/{name}")
    return os.path.join(namespace, name)


def to_local(uri: str) -> str:
    """A ``file://`` URI as the plain path DLIO's own code expects; any other text unchanged."""
    match = _SCHEME_RE.match(uri)
    if match is not None and match.group(1).lower() == "file":
        return uri[match.end() :]
    return uri


def unmangle(path: str, cwd: str | None = None) -> str:
    """Undo ``os.path.abspath`` on a URI (``<cwd>/s3:/b/k`` -> ``s3://b/k``).

    Only a path directly under ``cwd`` (default: the current directory) whose first component
    is a scheme s3dlio knows followed by ``:`` is changed; anything else is returned as it is.
    """
    base = (cwd or os.getcwd()).rstrip("/") + "/"
    if not path.startswith(base):
        return path
    rest = path[len(base) :]
    scheme, sep, tail = rest.partition(":/")
    if not sep or scheme.lower() not in SCHEMES or "/" in scheme:
        return path
    if SCHEMES[scheme.lower()] in _LOCAL:
        return f"{scheme}:///{tail.lstrip('/')}"
    return f"{scheme}://{tail}"
