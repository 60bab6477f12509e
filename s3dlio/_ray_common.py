"""What the pieces of :mod:`s3dlio.ray` share: Ray's import, clients in workers, listings.

Ray is an optional, heavy dependency (the ``ray`` extra); importing this module without it
raises an ``ImportError`` that names the extra.
"""

from __future__ import annotations

import math
import os
import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

try:
    import ray  # noqa: F401 - imported here so that every _ray_* module fails the same way
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "s3dlio.ray needs Ray Data; install it with: pip install 's3dlio[ray]'", name="ray"
    ) from exc

from .client import Client, default_client
from .errors import InvalidArgumentError, NotFoundError
from .io.config import parse_size
from .io.listing import Selection, has_glob, select
from .io.uri import ObjectURI, parse_uri

__all__ = [
    "Listed",
    "group_by_bytes",
    "list_objects",
    "resolve_client",
    "size_arg",
    "worker_client",
]

URI = str | ObjectURI | os.PathLike[str]

_clients: dict[bytes, Client] = {}
_clients_lock = threading.Lock()


def resolve_client(client: Client | None) -> Client:
    """The client to ship to tasks: ``client``, or the driver's default client.

    A client pickles as its options, so what :func:`s3dlio.configure` set in the driver reaches
    the workers; options left unset come from each worker's own environment.
    """
    if client is None:
        return default_client()
    if not isinstance(client, Client):
        raise InvalidArgumentError(
            f"client must be an s3dlio.Client, not {type(client).__name__}", op="RAY"
        )
    return client


def worker_client(client: Client) -> Client:
    """One client per set of options in each worker process, so tasks share connections.

    Each task unpickles its own copy of the driver's client; the first copy seen with given
    options is kept and used by every later task of the process.
    """
    key = pickle.dumps(client.config.options())
    with _clients_lock:
        kept = _clients.get(key)
        if kept is None or kept.closed:
            _clients[key] = kept = client
        return kept


def size_arg(name: str, value: int | str) -> int:
    """A positive size (``int`` or ``"64MiB"``), or ``InvalidArgumentError`` naming ``name``."""
    size = parse_size(value)
    if size < 1:
        raise InvalidArgumentError(f"{name} must be at least 1 byte, got {value!r}", op="RAY")
    return size


@dataclass(frozen=True)
class Listed:
    """One object selected for a job: its URI, size, and key relative to the selection."""

    uri: str
    size: int
    relative: str


def list_objects(
    uri: URI | Sequence[URI],
    client: Client,
    *,
    pattern: str | None = None,
    skip_suffixes: tuple[str, ...] = (),
    keep_suffixes: tuple[str, ...] = (),
) -> list[Listed]:
    """The objects ``uri`` selects, in key order, with their sizes.

    ``uri`` names one object (no listing: one ``stat``), a prefix ending in ``/`` or a glob
    (everything below, recursively), or is a list of object URIs (each ``stat``-ed).

    Raises:
        NotFoundError: nothing is selected.
    """
    if not isinstance(uri, (str, ObjectURI, os.PathLike)):
        uris = [str(parse_uri(u, allow_bare=True)) for u in uri]
        metas = client.stat_many(uris)
        return [
            Listed(u, int(m["size"]), parse_uri(u).name) for u, m in zip(uris, metas, strict=True)
        ]
    parsed = parse_uri(uri, allow_bare=True)
    if parsed.key and not parsed.key.endswith("/") and not has_glob(parsed.key):
        if not (parsed.is_local and os.path.isdir(parsed.key)):
            return [Listed(str(parsed), int(client.stat(parsed)["size"]), parsed.name)]
        parsed = parsed.with_key(parsed.key + "/")
    selection = Selection.of(parsed.key, True)
    found = []
    for meta in select(parsed, recursive=True, pattern=pattern, client=client):
        if meta.is_prefix:
            continue
        key = meta.key.lower()
        if skip_suffixes and key.endswith(skip_suffixes):
            continue
        if keep_suffixes and not key.endswith(keep_suffixes):
            continue
        found.append(Listed(str(meta.uri), meta.size, selection.relative(meta.key)))
    if not found:
        raise NotFoundError("selects no objects", uri=str(parsed), op="LIST")
    return found


def group_by_bytes(sizes: Sequence[int], budget: int, max_items: int | None = None) -> list[range]:
    """Split items ``0..len(sizes)-1`` into contiguous groups of about ``budget`` bytes.

    There are ``ceil(total / budget)`` groups (at least one per ``max_items`` items, at most one
    per item), cut where the running total is nearest to an equal share, so items of uneven
    sizes still give that many groups. A group over ``max_items`` items is split further.
    """
    n = len(sizes)
    if n == 0:
        return []
    cum = np.cumsum(np.asarray(sizes, dtype=np.int64))
    total = int(cum[-1])
    parts = math.ceil(total / max(1, budget)) if total else 1
    if max_items:
        parts = max(parts, math.ceil(n / max_items))
    parts = max(1, min(parts, n))
    cuts = [0]
    for k in range(1, parts):
        target = total * k / parts
        j = int(np.searchsorted(cum, target))  # first item whose running total reaches target
        before = int(cum[j - 1]) if j else 0
        cut = j if target - before <= int(cum[j]) - target else j + 1
        cuts.append(min(max(cut, cuts[-1] + 1), n - (parts - k)))
    cuts.append(n)
    groups = []
    for start, stop in zip(cuts, cuts[1:], strict=False):
        step = max_items or stop - start
        groups += [range(a, min(a + step, stop)) for a in range(start, stop, step)]
    return groups


def budget_for(total: int, tasks: int, target: int, floor: int = 1) -> int:
    """Bytes per task to make about ``tasks`` tasks of ``total`` bytes, within
    ``[floor, target]``."""
    share = math.ceil(total / max(1, tasks)) if total else 1
    return max(floor, min(target, share), 1)
