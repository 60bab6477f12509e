"""Paths and cached listings of :class:`s3dlio.fsspec.S3dlioFileSystem` (its base class).

Paths are full URIs without a trailing ``/`` (``s3://bucket/dir/key``, ``file:///abs/path``);
``s3dlio::`` and ``s3dlio://`` prefixes are removed and bare paths take the scheme of the class
(the per-protocol classes :func:`s3dlio.fsspec.register` makes) or of a chained URL.

On object stores listings are cached as s3fs caches them (fsspec's ``DirCache``: ``info`` of a
path whose parent was listed costs no request; ``use_listings_cache=False`` turns it off,
``listings_expiry_time`` bounds it); every write, copy and delete through the filesystem
forgets the listings of the paths it touches and of their parents.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec.spec import AbstractFileSystem
from fsspec.utils import stringify_path

try:  # fsspec >= 2025.10: "s3dlio::s3://b/k" hands the inner path to a ChainedFileSystem
    from fsspec.implementations.chained import ChainedFileSystem as _Base
except ImportError:  # pragma: no cover - older fsspec
    _Base = AbstractFileSystem

from .errors import NotFoundError
from .io.uri import LOCAL_SCHEMES, ObjectURI, parse_uri

__all__ = ["PROTOCOL", "PathsFileSystem", "normalize"]

#: The fsspec protocol of :class:`s3dlio.fsspec.S3dlioFileSystem`.
PROTOCOL = "s3dlio"
_PREFIXES = (PROTOCOL + "::", PROTOCOL + "://")


class PathsFileSystem(_Base):
    """Path handling and the listings cache, shared by every S3dlioFileSystem class."""

    protocol: str | tuple[str, ...] = PROTOCOL
    root_marker = ""
    #: The scheme of bare paths (``"bucket/key"``) for the classes ``register`` makes.
    default_scheme: str | None = None
    #: The inner protocol of a chained URL (``s3dlio::s3://...``), set by the subclass.
    target_protocol: str | None = None
    _chained_path: str | None = None

    # -- paths ------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """The path as a full URI without a trailing ``/`` (``s3dlio::`` removed, bare paths
        given this class's scheme when it has one)."""
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        for prefix in _PREFIXES:
            if text.startswith(prefix):
                text = text[len(prefix) :]
        if "://" not in text:
            scheme = cls.default_scheme
            if scheme is None:
                return text.rstrip("/")
            if scheme in LOCAL_SCHEMES:
                text = f"{scheme}://{os.path.abspath(os.path.expanduser(text or '.'))}"
            else:
                text = f"{scheme}://{text.lstrip('/')}"
        return normalize(text)

    def unstrip_protocol(self, name: str) -> str:
        """Paths are already full URIs."""
        return name if "://" in name else super().unstrip_protocol(name)

    @classmethod
    def _parent(cls, path: Any) -> str:
        text = cls._strip_protocol(path)
        scheme, sep, rest = text.partition("://")
        if not sep:
            return text.rsplit("/", 1)[0] if "/" in text else ""
        if scheme in LOCAL_SCHEMES:
            return f"{scheme}://{os.path.dirname(rest) or '/'}"
        return f"{scheme}://{rest.rsplit('/', 1)[0]}" if "/" in rest else f"{scheme}://"

    def _uri(self, path: Any) -> ObjectURI:
        """The parsed URI of ``path`` (bare paths: the chained protocol's, else local)."""
        text = self._strip_protocol(path)
        if text == "" and self._chained_path:
            text = self._strip_protocol(self._chained_path)
        if "://" not in text:
            target = self.target_protocol
            if target and target not in (PROTOCOL, "file", "local"):
                text = f"{target}://{text.lstrip('/')}"
            else:
                text = "file://" + os.path.abspath(os.path.expanduser(text or "."))
        return parse_uri(text)

    @staticmethod
    def _dir(uri: ObjectURI) -> ObjectURI:
        return uri if uri.key == "" or uri.key.endswith("/") else uri.with_key(uri.key + "/")

    def _entry(self, meta: dict[str, Any]) -> dict[str, Any]:
        """fsspec's info dictionary from an s3dlio stat/listing dictionary."""
        uri = meta["uri"]
        is_dir = bool(meta.get("is_dir")) or uri.endswith("/")
        entry: dict[str, Any] = {
            "name": normalize(uri),
            "size": 0 if is_dir else meta["size"],
            "type": "directory" if is_dir else "file",
        }
        if meta.get("etag"):
            entry["etag"] = meta["etag"]
        if meta.get("mtime") is not None:
            entry["mtime"] = meta["mtime"]
        if meta.get("content_type"):
            entry["content_type"] = meta["content_type"]
        return entry

    # -- the listings cache (object stores; s3fs's behaviour) -------------------------------
    def _cached_info(self, uri: ObjectURI, name: str) -> dict[str, Any] | None:
        """``info`` from cached listings: ``None`` when they do not tell.

        Raises:
            NotFoundError: the parent's complete listing is cached and lacks ``name``.
        """
        if uri.is_local or not self.dircache.use_listings_cache:
            return None
        if name in self.dircache:
            return {"name": name, "size": 0, "type": "directory"}
        parent = self._parent(name)
        if parent == name or parent not in self.dircache:
            return None
        for entry in self.dircache[parent]:
            if entry["name"] == name:
                return dict(entry)
        raise NotFoundError("no such file or directory (cached listing)", uri=name, op="INFO")

    def _cache_tree(self, base: str, found: dict[str, dict[str, Any]]) -> None:
        """Cache the listing of every directory of a complete recursive listing of ``base``."""
        if not self.dircache.use_listings_cache:
            return
        children: dict[str, list[dict[str, Any]]] = {}
        for name, entry in found.items():
            if name != base:
                children.setdefault(self._parent(name), []).append(entry)
        for directory, entries in children.items():
            self.dircache[directory] = sorted(entries, key=lambda e: e["name"])

    def invalidate_cache(self, path: Any = None) -> None:
        """Forget cached listings: all of them, or those of ``path`` and its parents."""
        if path is None:
            self.dircache.clear()
        else:
            name = self._strip_protocol(path)
            while name:
                self.dircache._cache.pop(name, None)
                parent = self._parent(name)
                if parent == name:
                    break
                name = parent
        super().invalidate_cache(path)


def normalize(uri: str) -> str:
    """A full URI without the trailing ``/`` (local paths absolute; ``file:///`` kept)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri.rstrip("/")
    if scheme in LOCAL_SCHEMES:
        if not rest.startswith("/"):
            rest = os.path.abspath(os.path.expanduser(rest or "."))
        return f"{scheme}://{rest.rstrip('/') or '/'}"
    return f"{scheme}://{rest.rstrip('/')}"
