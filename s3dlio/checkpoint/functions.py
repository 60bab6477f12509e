"""The original s3dlio's one-call checkpoint functions."""

from __future__ import annotations

import re
from typing import Any

from ..errors import IntegrityError, InvalidArgumentError, NotFoundError
from ..io import ops
from ..io.buffers import BytesView
from ..io.store import HasStores
from ..io.uri import ObjectURI, parse_uri
from .manifest import SHARD_DIR, ManifestName
from .shards import decompress, read_shard
from .store import CheckpointStore, object_exists

__all__ = [
    "load_checkpoint",
    "load_checkpoint_with_validation",
    "load_checkpoint_with_validation_view",
    "save_checkpoint",
]

_SHARD_RE = re.compile(r"(?:^|/)(ckpt-\d+-[^/]+)/rank-\d+\.bin(?:\.zst)?$")


def save_checkpoint(
    uri: str | ObjectURI,
    step: int,
    epoch: int,
    framework: str,
    data: Any,
    user_meta: Any = None,
    *,
    client: HasStores | None = None,
) -> str:
    """Save a single-rank checkpoint under the base ``uri``; returns the manifest key."""
    return CheckpointStore(uri, client=client).save(step, epoch, framework, data, user_meta)


def load_checkpoint(
    uri: str | ObjectURI, *, weights_only: bool = True, client: HasStores | None = None
) -> Any:
    """Load the newest checkpoint under the base ``uri`` (``None`` if there is none)."""
    return CheckpointStore(uri, client=client).load_latest(weights_only=weights_only)


def load_checkpoint_with_validation_view(
    uri: str | ObjectURI, validate_integrity: bool = True, *, client: HasStores | None = None
) -> BytesView:
    """One shard, by its URI ``<base>/shards/.../rank-<r>.bin[.zst]``, as a zero-copy buffer.

    With ``validate_integrity`` the bytes are checked against the manifest that lists the
    shard (size and CRC32C); a shard no manifest lists, or one without a recorded checksum,
    is an error: the check is never skipped silently. A ``.zst`` shard is decompressed.

    Raises:
        InvalidArgumentError: ``uri`` is not a checkpoint shard URI (when validating).
        IntegrityError: no manifest lists the shard, or it fails the check.
    """
    shard = parse_uri(uri)
    key = shard.key
    if not validate_integrity:
        data = ops.get(shard, client)
        return decompress(data, shard) if key.endswith(".zst") else data
    found = key.rfind("/" + SHARD_DIR)
    cut = found + 1 if found >= 0 else (0 if key.startswith(SHARD_DIR) else -1)
    match = _SHARD_RE.search(key)
    if cut < 0 or match is None:
        raise InvalidArgumentError(
            "not a checkpoint shard URI (expected '<base>/shards/.../rank-<r>.bin'); pass "
            "validate_integrity=False to read it without verification",
            uri=str(uri),
            op="GET",
        )
    store = CheckpointStore(shard.with_key(key[:cut]), client=client)
    relative = key[cut:]
    dirname = ManifestName.parse_dir(match.group(1))
    assert dirname is not None
    names = [n for n in store.manifest_names() if n.step == dirname.step]
    names.sort(key=lambda n: n != dirname)  # the manifest of the same <ts> first
    for name in names:
        manifest = store.manifest(name)
        for meta in manifest.shards if manifest is not None else ():
            if meta.key == relative:
                return read_shard(store.base, meta, verify=True, client=client)
    if not object_exists(shard, client):
        raise NotFoundError("no such shard", uri=str(uri), op="GET")
    raise IntegrityError(
        "no manifest lists this shard, so it cannot be verified (an unfinished save?)",
        uri=str(uri),
        op="GET",
    )


def load_checkpoint_with_validation(
    uri: str | ObjectURI, validate_integrity: bool = True, *, client: HasStores | None = None
) -> bytes:
    """Like :func:`load_checkpoint_with_validation_view`, returning ``bytes`` (one copy)."""
    return bytes(load_checkpoint_with_validation_view(uri, validate_integrity, client=client))
