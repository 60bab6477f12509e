"""DLIO's ``DataStorage`` over s3dlio, for every scheme.

:class:`S3dlioStorage` is what DLIO's ``StorageFactory.get_storage`` returns once
:func:`s3dlio.integrations.dlio.install` has run, whatever ``storage_type`` says. Its namespace
(DLIO's storage root, or the checkpoint folder) and the ids DLIO passes may be URIs on any
backend or local paths; see :mod:`s3dlio.integrations.dlio.paths` for how they are joined.
Every operation goes through the storage layer (a local path as ``file://``), and names are
handed back in the form DLIO gave them (a local path stays a local path).

Importing this module imports DLIO.
"""

from __future__ import annotations

import os
from typing import Any

from dlio_benchmark.common.enumerations import MetadataType, NamespaceType, StorageType
from dlio_benchmark.storage.storage_handler import DataStorage, Namespace

from ...client import Client, default_client
from ...errors import (
    InvalidArgumentError,
    IsDirectoryError,
    NotFoundError,
    UnsupportedOperationError,
)
from ...io.config import MiB
from .clients import client_for, uri_scheme
from .paths import has_scheme, join, to_local

__all__ = ["S3dlioStorage", "context", "io_uri"]

#: Payloads from this size on are streamed through a multipart writer instead of one PUT.
MULTIPART_THRESHOLD = 16 * MiB


def io_uri(name: str) -> str:
    """``name`` as a URI for the storage layer (a local path becomes ``file://<abs path>``)."""
    return name if has_scheme(name) else "file://" + os.path.abspath(name)


def context(args: Any) -> tuple[Client | None, str | None]:
    """The client and the default scheme for a bare storage root, from DLIO's arguments."""
    options = getattr(args, "storage_options", None)
    s3 = getattr(StorageType, "S3", None)
    default = "s3" if s3 is not None and args.storage_type == s3 else None
    return client_for(options), uri_scheme(options, default)


def resolve(args: Any, name: str) -> str:
    """A DLIO path (data or checkpoint folder, a file under them) as a URI or local path.

    A bare name is relative to DLIO's storage root, as DLIO's own storages take it.
    """
    _, scheme = context(args)
    root = args.storage_root or "./"
    if has_scheme(name) or has_scheme(root) or scheme:
        return join(root, name, scheme)
    return name


class S3dlioStorage(DataStorage):
    """DLIO's storage interface on every s3dlio backend.

    Args:
        namespace: DLIO's storage root (or checkpoint folder): a URI, a bucket name (with
            ``storage_type: s3`` or ``storage_options.uri_scheme``), or a local directory.
        framework: DLIO's framework type (kept for DLIO's base class).
    """

    def __init__(self, namespace: str | None, framework: Any = None) -> None:
        super().__init__(framework)
        self.client, scheme = context(self._args)
        root = self._args.storage_root or "./"
        name = namespace or "./"
        if not has_scheme(name):
            if name == root:
                name = f"{scheme}://{name.strip('/')}" if scheme else name
            elif has_scheme(root) or scheme:
                name = join(root, name, scheme)  # a folder (checkpoints) under the root
        self.root = name
        self.remote = has_scheme(name) and not name.lower().startswith("file://")
        kind = NamespaceType.FLAT if self.remote else NamespaceType.HIERARCHICAL
        self.namespace = Namespace(name, kind)

    # -- helpers ------------------------------------------------------------------------------
    def _client(self) -> Client:
        return self.client or default_client()

    def _back(self, asked: str, uri: str) -> str:
        """A listed URI in the form of the name DLIO asked about."""
        return uri if has_scheme(asked) else to_local(uri)

    # -- DLIO's interface -----------------------------------------------------------------------
    def get_uri(self, id: str | None) -> str:  # noqa: A002 - DLIO's parameter name
        """The URI (or local path) of DLIO's ``id`` under the namespace."""
        return join(self.root, id or "")

    def create_namespace(self, exist_ok: bool = False) -> bool:
        """Create the root directory (local); object stores need nothing."""
        if not self.remote:
            self._client().mkdir(io_uri(self.root))
        return True

    def get_namespace(self) -> str:
        """The namespace's name."""
        return self.namespace.name

    def create_node(self, id: str, exist_ok: bool = False) -> bool:  # noqa: A002
        """Create a directory (local); object stores have none to create."""
        target = self.get_uri(id)
        if not (has_scheme(target) and not target.lower().startswith(("file://", "direct://"))):
            self._client().mkdir(io_uri(target))
        return True

    def get_node(self, id: str = "") -> Any:  # noqa: A002
        """``MetadataType.FILE``, ``MetadataType.DIRECTORY`` or ``None`` (nothing there)."""
        uri = io_uri(self.get_uri(id))
        client = self._client()
        key = uri.rstrip("/")
        if not uri.endswith("/"):
            try:
                if not client.stat(key).get("is_dir"):
                    return MetadataType.FILE
                return MetadataType.DIRECTORY
            except (NotFoundError, IsDirectoryError):
                pass
        return MetadataType.DIRECTORY if client.exists(key + "/") else None

    def walk_node(self, id: str, use_pattern: bool = False) -> list[str]:  # noqa: A002
        """The names directly under ``id`` (as ``os.listdir``), or with ``use_pattern`` the
        full names matching the glob ``id`` (its extension in lower and upper case)."""
        target = self.get_uri(id)
        client = self._client()
        if not use_pattern:
            entries = client.list(io_uri(target).rstrip("/") + "/")
            return [os.path.basename(e.rstrip("/")) for e in entries]
        ext = target.rsplit(".", 1)[-1]
        if ext != ext.lower():
            raise InvalidArgumentError(f"unknown file format {ext!r}", uri=target, op="LIST")
        found = client.list(io_uri(target))
        upper = target[: len(target) - len(ext)] + ext.upper()
        if upper != target:
            found += client.list(io_uri(upper))
        return [self._back(target, uri) for uri in found]

    def delete_node(self, id: str) -> bool:  # noqa: A002
        """Delete an object, or everything under a directory/prefix."""
        uri = io_uri(self.get_uri(id))
        if self.get_node(id) == MetadataType.FILE:
            self._client().delete(uri)
        else:
            self._client().delete(uri.rstrip("/") + "/", recursive=True)
        return True

    def put_data(
        self,
        id: str,  # noqa: A002
        data: Any,
        offset: int | None = None,
        length: int | None = None,
    ) -> None:
        """Store ``data`` (bytes-like, ``BytesIO`` or text) as the object ``id``, atomically."""
        uri = io_uri(self.get_uri(id))
        if offset:
            raise UnsupportedOperationError(
                "objects are written whole (no offset)", uri=uri, op="PUT"
            )
        if isinstance(data, str):
            data = data.encode()
        elif hasattr(data, "getbuffer"):
            data = data.getbuffer()
        view = memoryview(data).cast("B")
        if length is not None:
            view = view[:length]
        client = self._client()
        if view.nbytes < MULTIPART_THRESHOLD:
            client.put_bytes(uri, view)
            return
        with client.open_writer(uri) as writer:
            writer.write(view)

    def get_data(
        self,
        id: str,  # noqa: A002
        data: Any = None,
        offset: int | None = None,
        length: int | None = None,
    ) -> Any:
        """The object's bytes (a zero-copy ``BytesView``), or ``length`` bytes from
        ``offset`` in one range request."""
        uri = io_uri(self.get_uri(id))
        if offset is not None or length is not None:
            return self._client().get_range(uri, offset or 0, length)
        return self._client().get(uri)

    def isfile(self, id: str) -> bool:  # noqa: A002
        """Whether ``id`` is an object (a file)."""
        return self.get_node(id) == MetadataType.FILE

    def islocalfs(self) -> bool:
        """Whether DLIO's own code may open the names as local files (a local namespace)."""
        return not has_scheme(self.root)

    def get_basename(self, id: str) -> str:  # noqa: A002
        """The last component of ``id``."""
        return os.path.basename(id.rstrip("/"))
