"""``az://``: Azure Blob Storage through ``azure-storage-blob``.

URIs are ``az://account/container/key`` or ``az://container/key`` with the account taken from
the environment (the parser in :mod:`s3dlio.io.uri` tells the two apart). Credentials, in the
order tried for an account:

1. ``AZURE_STORAGE_CONNECTION_STRING`` when it names the account (its ``BlobEndpoint=`` is
   honoured, which is how Azurite is reached);
2. ``AZURE_STORAGE_ACCOUNT_KEY`` (with ``AZURE_STORAGE_ACCOUNT_NAME``);
3. ``AZURE_STORAGE_SAS_TOKEN``;
4. ``DefaultAzureCredential`` when ``azure-identity`` is installed;
5. anonymous access (public containers).

``AZURE_STORAGE_ACCOUNT_URL`` overrides the default ``https://<account>.blob.core.windows.net``.

Reads use ``download_blob`` with a byte range and, for the RangeEngine's later ranges, the
first response's etag with ``MatchConditions.IfNotModified``; the body is copied straight into
the caller's buffer. Writers stage blocks (``stage_block``, ids unique per upload and of one
width) and make the blob visible with ``commit_block_list``; an aborted upload commits nothing,
and the service discards uncommitted blocks. The SDK's own retries are off: the library's retry
policy (with its op-log records) is the only one. Every SDK error is mapped in
:func:`map_azure_error`.
"""

from __future__ import annotations

import functools
import os
import secrets
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobPrefix,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
)
from requests import Session

from ...errors import (
    HTTP_STATUS_ERRORS,
    IntegrityError,
    InvalidArgumentError,
    InvalidURIError,
    NotFoundError,
    PermissionDeniedError,
    S3DlioError,
    ThrottledError,
    TransientError,
    redact,
)
from ..client_config import ClientConfig
from ..executor import PerProcess
from ..http.headers import content_range_total
from ..store import ObjectMeta, ObjectStore, ReadStream, Upload
from ..uri import ObjectURI, azure_account_from_env
from ._http import tune_session

__all__ = ["AzureStore", "map_azure_error"]

#: Blobs per listing page and per batch delete (the service's maxima: 5000 and 256).
PAGE = 5000
BATCH = 256
#: A ranged GET up to this size is one request (the RangeEngine does the splitting).
SINGLE_GET = 1 << 32
#: Blob clients kept per process (recently used keys).
BLOB_CLIENTS = 4096
#: Bytes the transport reads from the socket at a time (its default, without the SDK's own
#: transport, is 4 KiB).
READ_BLOCK = 1 << 20

# -- errors ------------------------------------------------------------------------------------

#: The one table: Azure error codes first (they are more precise), then HTTP statuses.
_BY_CODE: dict[str, type[S3DlioError]] = {
    "ServerBusy": ThrottledError,
    "OperationTimedOut": TransientError,
    "InternalError": TransientError,
    "ConditionNotMet": IntegrityError,
    "TargetConditionNotMet": IntegrityError,
    "BlobNotFound": NotFoundError,
    "ContainerNotFound": NotFoundError,
    "ResourceNotFound": NotFoundError,
    "AuthenticationFailed": PermissionDeniedError,
    "AuthorizationFailure": PermissionDeniedError,
    "AuthorizationPermissionMismatch": PermissionDeniedError,
    "InsufficientAccountPermissions": PermissionDeniedError,
    "InvalidResourceName": InvalidURIError,
    "InvalidUri": InvalidURIError,
    "OutOfRangeInput": InvalidURIError,
}
_BY_STATUS = HTTP_STATUS_ERRORS


def map_azure_error(exc: AzureError, uri: ObjectURI | str, op: str) -> S3DlioError:
    """The s3dlio error for an Azure SDK error raised while doing ``op`` on ``uri``.

    Connection failures and bodies cut short are :class:`TransientError`; messages are
    redacted so no key or SAS signature reaches an error.
    """
    status = getattr(exc, "status_code", None)
    raw_code = getattr(exc, "error_code", None) or ""
    code = str(getattr(raw_code, "value", raw_code))  # StorageErrorCode members hold the name
    cls: type[S3DlioError]
    if code in _BY_CODE:
        cls = _BY_CODE[code]
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif isinstance(exc, ClientAuthenticationError):
        cls = PermissionDeniedError
    elif isinstance(exc, (ServiceRequestError, ServiceResponseError)) or (
        isinstance(exc, HttpResponseError) and status is None
    ):
        cls = TransientError  # connection refused/reset, timeout, truncated body
    else:
        cls = S3DlioError
    if status is not None:
        reason = getattr(exc, "reason", None) or ""
        message = " ".join(str(p) for p in (status, code, reason) if p)
    else:
        first_line = (str(getattr(exc, "message", None) or exc).strip().splitlines() or [""])[0]
        message = f"{type(exc).__name__}: {first_line[:300]}"
    return cls(redact(message), uri=str(uri), op=op)


@contextmanager
def _mapped(uri: ObjectURI | str, op: str) -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        raise map_azure_error(exc, uri, op) from None


# -- clients -----------------------------------------------------------------------------------


def _connection_string_fields(conn: str) -> dict[str, str]:
    fields = {}
    for part in conn.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        return None
    return DefaultAzureCredential()


def configured_account(config: ClientConfig) -> str | None:
    """The account of ``az://container/key`` URIs: the client's, else the environment's."""
    return config.azure_account() or azure_account_from_env()


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _close_sessions(sessions: list[Session]) -> None:
    for session in sessions:
        session.close()


class _Clients:
    """One client's service clients (each with its own HTTP session), one per account, for
    this process."""

    def __init__(self, config: ClientConfig) -> None:
        cfg = config.network()
        self.config = config
        self.pool_size = cfg.connections
        self.options: dict[str, Any] = {
            "retry_total": 0,
            "max_single_get_size": SINGLE_GET,
            "connection_timeout": cfg.connect_timeout,
            "read_timeout": cfg.operation_timeout,
        }
        self.services: dict[str, BlobServiceClient] = {}
        self.sessions: list[Session] = []
        # Sessions of a client dropped without close() are closed when it is collected.
        weakref.finalize(self, _close_sessions, self.sessions)
        self.containers: dict[tuple[str, str], ContainerClient] = {}
        self.lock = threading.Lock()
        # Building a BlobClient costs ~0.2 ms; a GET split into ranges asks for one many times.
        self.blob = functools.lru_cache(maxsize=BLOB_CLIENTS)(self._blob)

    def _transport(self, session: Session) -> RequestsTransport:
        return RequestsTransport(
            session=session,
            session_owner=False,
            connection_data_block_size=READ_BLOCK,
            connection_timeout=self.options["connection_timeout"],
            read_timeout=self.options["read_timeout"],
        )

    def service(self, account: str) -> BlobServiceClient:
        svc = self.services.get(account)
        if svc is None:
            with self.lock:
                svc = self.services.get(account)
                if svc is None:
                    session = Session()
                    if self.config.ca_bundle:
                        session.verify = self.config.ca_bundle
                    try:
                        svc = self._build(account, session)
                    except ValueError as exc:  # a malformed connection string or URL
                        raise InvalidArgumentError(
                            redact(f"Azure settings for account {account!r}: {exc}")
                        ) from None
                    tune_session(session, _strip_query(svc.url), self.pool_size)
                    self.sessions.append(session)
                    self.services[account] = svc
        return svc

    def close(self) -> None:
        """Close every pooled connection."""
        _close_sessions(self.sessions)

    def _build(self, account: str, session: Session) -> BlobServiceClient:
        opts = {**self.options, "transport": self._transport(session)}
        cfg = self.config
        conn = cfg.azure_connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
        if conn and _connection_string_fields(conn).get("accountname") == account:
            return BlobServiceClient.from_connection_string(conn, **opts)
        env_account = configured_account(cfg)
        url = (
            cfg.azure_account_url or os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
            if account == env_account
            else None
        )
        url = url or f"https://{account}.blob.core.windows.net"
        key = (
            cfg.azure_account_key
            or os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
            or os.environ.get("AZURE_STORAGE_KEY")
        )
        sas = os.environ.get("AZURE_STORAGE_SAS_TOKEN")
        credential: Any
        if key and account == env_account:
            credential = {"account_name": account, "account_key": key}
        elif sas:
            from azure.core.credentials import AzureSasCredential

            credential = AzureSasCredential(sas.lstrip("?"))
        else:
            credential = _default_credential()
        return BlobServiceClient(url, credential=credential, **opts)

    def container(self, account: str, name: str) -> ContainerClient:
        client = self.containers.get((account, name))
        if client is None:
            client = self.service(account).get_container_client(name)
            self.containers[(account, name)] = client
        return client

    def _blob(self, account: str, container: str, key: str) -> BlobClient:
        return self.container(account, container).get_blob_client(key)


# -- reads -------------------------------------------------------------------------------------


class _ViewWriter:
    """A write-only file object over a memoryview (the SDK's ``readinto`` target)."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.pos = 0

    def write(self, data: bytes) -> int:
        n = len(data)
        if self.pos + n > len(self.view):
            raise TransientError(f"response longer than requested ({self.pos + n} bytes)")
        self.view[self.pos : self.pos + n] = data
        self.pos += n
        return n


class AzureReadStream(ReadStream):
    """One ranged ``download_blob`` response, copied into caller buffers."""

    def __init__(
        self,
        downloader: Any,
        uri: ObjectURI,
        size: int,
        etag: str | None,
        offset: int,
        length: int,
    ) -> None:
        self._downloader = downloader
        self.uri = uri
        self.size, self.etag, self.offset, self.length = size, etag, offset, length
        self._left = length

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0 or self._downloader is None:
            return 0
        with _mapped(self.uri, "GET"):
            if len(buf) >= self._left:
                got = self._downloader.readinto(_ViewWriter(buf[: self._left]))
            else:
                chunk = self._downloader.read(len(buf))
                got = len(chunk)
                buf[:got] = chunk
        self._left -= got
        return got

    def close(self) -> None:
        self._downloader = None


# -- uploads -----------------------------------------------------------------------------------


class AzureBlockUpload(Upload):
    """Staged blocks, committed as one block list; nothing is visible before :meth:`commit`."""

    def __init__(
        self,
        blob: BlobClient,
        uri: ObjectURI,
        content_type: str | None,
        metadata: dict[str, str] | None,
    ) -> None:
        self.blob = blob
        self.uri = uri
        self.content_type = content_type
        self.metadata = metadata
        self._prefix = secrets.token_hex(8)  # ids unique to this upload, all of one width
        self._parts: set[int] = set()
        self._lock = threading.Lock()

    def block_id(self, number: int) -> str:
        """The block id of part ``number`` (the SDK base64-encodes it)."""
        return f"{self._prefix}-{number:08d}"

    def write_part(self, number: int, offset: int, data: memoryview, last: bool) -> None:
        if not len(data):
            return  # an empty final part: the block list ends with the previous block
        with _mapped(self.uri, "PUT_PART"):
            self.blob.stage_block(self.block_id(number), data, length=len(data))  # type: ignore[arg-type]
        with self._lock:
            self._parts.add(number)

    def commit(self) -> str | None:
        blocks = [BlobBlock(block_id=self.block_id(n)) for n in sorted(self._parts)]
        settings_ = ContentSettings(content_type=self.content_type) if self.content_type else None
        with _mapped(self.uri, "PUT_COMPLETE"):
            result = self.blob.commit_block_list(
                blocks, content_settings=settings_, metadata=self.metadata
            )
        return _etag(result)

    def abort(self) -> None:
        # Uncommitted blocks are never visible and the service discards them; there is no
        # call that deletes them without committing a blob, so there is nothing to send.
        with self._lock:
            self._parts.clear()


def _etag(result: dict[str, Any]) -> str | None:
    etag = result.get("etag")
    return etag if isinstance(etag, str) else None


def _as_bytes(data: memoryview) -> bytes:
    """``bytes`` for ``upload_blob`` (which takes no memoryview), without a copy when possible."""
    owner = data.obj
    if isinstance(owner, bytes) and len(owner) == data.nbytes:
        return owner
    return data.tobytes()


# -- the store ---------------------------------------------------------------------------------


class AzureStore(ObjectStore):
    """The ``az://`` backend."""

    scheme = "az"

    def __init__(self, config: ClientConfig | None = None) -> None:
        super().__init__(config)
        self._clients: PerProcess[_Clients] = PerProcess(lambda: _Clients(self.config))
        self._batch_refused: set[str] = set()

    # -- clients -----------------------------------------------------------------------------
    def account(self, uri: ObjectURI) -> str:
        """The storage account ``uri`` lives in (written in it, or the client's)."""
        account = uri.account or configured_account(self.config)
        if not account:
            raise PermissionDeniedError(
                "no Azure storage account: write az://account/container/key or set "
                "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME",
                uri=str(uri),
            )
        return account

    def container_client(self, uri: ObjectURI) -> ContainerClient:
        """The SDK client of ``uri``'s container."""
        return self._clients.get().container(self.account(uri), uri.bucket)

    def blob_client(self, uri: ObjectURI) -> BlobClient:
        """The SDK client of ``uri``'s blob."""
        return self._clients.get().blob(self.account(uri), uri.bucket, uri.key)

    def close(self) -> None:
        """Close this process's pooled connections (clients are rebuilt on next use)."""
        clients = self._clients.peek()
        self._clients.reset()
        if clients is not None:
            clients.close()

    def endpoint(self, uri: ObjectURI) -> str:
        try:
            return _strip_query(self._clients.get().service(self.account(uri)).url)
        except S3DlioError:
            return "az://"

    # -- data path ---------------------------------------------------------------------------
    def open_read(
        self,
        uri: ObjectURI,
        offset: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
    ) -> ReadStream:
        blob = self.blob_client(uri)
        condition: dict[str, Any] = {}
        if if_match is not None:
            condition = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        if length == 0:
            meta = self._properties(blob, uri, "GET", condition)
            return AzureReadStream(None, uri, meta.size, meta.etag, offset, 0)
        try:
            downloader = blob.download_blob(offset=offset, length=length, **condition)
        except HttpResponseError as exc:
            if exc.status_code != 416:  # 416: the range starts past the end
                raise map_azure_error(exc, uri, "GET") from None
            headers = getattr(exc.response, "headers", None) or {}
            size = content_range_total(headers.get("Content-Range"))
            if size is None:
                size = self._properties(blob, uri, "GET", {}).size
            return AzureReadStream(None, uri, size, None, offset, 0)
        except AzureError as exc:
            raise map_azure_error(exc, uri, "GET") from None
        props = downloader.properties
        size = content_range_total(props.content_range)
        if size is None:
            size = offset + downloader.size
        return AzureReadStream(downloader, uri, size, props.etag, offset, downloader.size)

    def _properties(
        self, blob: BlobClient, uri: ObjectURI, op: str, condition: dict[str, Any]
    ) -> ObjectMeta:
        with _mapped(uri, op):
            props = blob.get_blob_properties(**condition)
        return ObjectMeta(
            uri=uri,
            size=props.size,
            last_modified=props.last_modified,
            etag=props.etag,
            content_type=props.content_settings.content_type,
            metadata=dict(props.metadata or {}),
            extra={"blob_type": str(getattr(props.blob_type, "value", props.blob_type))},
        )

    def put(
        self,
        uri: ObjectURI,
        data: memoryview,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        settings_ = ContentSettings(content_type=content_type) if content_type else None
        with _mapped(uri, "PUT"):
            result = self.blob_client(uri).upload_blob(
                _as_bytes(data),
                length=len(data),
                overwrite=True,
                content_settings=settings_,
                metadata=metadata,
            )
        return _etag(result)

    def begin_upload(
        self,
        uri: ObjectURI,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Upload:
        return AzureBlockUpload(self.blob_client(uri), uri, content_type, metadata)

    # -- metadata ----------------------------------------------------------------------------
    def stat(self, uri: ObjectURI) -> ObjectMeta:
        return self._properties(self.blob_client(uri), uri, "HEAD", {})

    def list_pages(self, prefix: ObjectURI, *, recursive: bool) -> Iterator[list[ObjectMeta]]:
        container = self.container_client(prefix)
        pager: Any
        with _mapped(prefix, "LIST"):
            if recursive:
                pager = container.list_blobs(
                    name_starts_with=prefix.key or None, results_per_page=PAGE
                )
            else:
                pager = container.walk_blobs(
                    name_starts_with=prefix.key or None, delimiter="/", results_per_page=PAGE
                )
            pages = pager.by_page()
        while True:
            with _mapped(prefix, "LIST"):
                try:
                    items = list(next(pages))
                except StopIteration:
                    return
            page = [self._listed(prefix, item) for item in items]
            page.sort(key=lambda meta: meta.key)
            if page:
                yield page

    @staticmethod
    def _listed(prefix: ObjectURI, item: Any) -> ObjectMeta:
        if isinstance(item, BlobPrefix):
            return ObjectMeta(uri=prefix.with_key(item.name), is_prefix=True)
        return ObjectMeta(
            uri=prefix.with_key(item.name),
            size=item.size,
            last_modified=item.last_modified,
            etag=item.etag,
            content_type=item.content_settings.content_type if item.content_settings else None,
        )

    def delete(self, uri: ObjectURI) -> None:
        with _mapped(uri, "DELETE"):
            self.blob_client(uri).delete_blob()

    def delete_many(self, uris: Sequence[ObjectURI]) -> list[tuple[ObjectURI, Exception]]:
        """Batch deletes (256 blobs per request), one by one where the service refuses batches."""
        groups: dict[tuple[str, str], list[ObjectURI]] = {}
        for uri in uris:
            groups.setdefault((self.account(uri), uri.bucket), []).append(uri)
        failed: list[tuple[ObjectURI, Exception]] = []
        for (account, _), group in groups.items():
            for start in range(0, len(group), BATCH):
                chunk = group[start : start + BATCH]
                if account in self._batch_refused or len(chunk) == 1:
                    failed += super().delete_many(chunk)
                else:
                    failed += self._delete_batch(account, chunk)
        return failed

    def _delete_batch(
        self, account: str, chunk: list[ObjectURI]
    ) -> list[tuple[ObjectURI, Exception]]:
        container = self.container_client(chunk[0])
        try:
            responses = list(
                container.delete_blobs(*(u.key for u in chunk), raise_on_any_failure=False)
            )
        except HttpResponseError as exc:
            if exc.status_code in (400, 403, 404, 405, 501) and exc.status_code is not None:
                self._batch_refused.add(account)  # e.g. an emulator or a SAS without batch
                return super().delete_many(chunk)
            raise map_azure_error(exc, chunk[0], "DELETE") from None
        except AzureError as exc:
            raise map_azure_error(exc, chunk[0], "DELETE") from None
        failed: list[tuple[ObjectURI, Exception]] = []
        for uri, response in zip(chunk, responses, strict=False):
            if response.status_code >= 300:
                cls = _BY_STATUS.get(response.status_code, S3DlioError)
                reason = f"{response.status_code} {response.reason or ''}".strip()
                failed.append((uri, cls(redact(reason), uri=str(uri), op="DELETE")))
        return failed

    # -- containers --------------------------------------------------------------------------
    def create_bucket(self, uri: ObjectURI) -> None:
        with _mapped(uri.root, "CREATE_BUCKET"):
            try:
                self.container_client(uri).create_container()
            except HttpResponseError as exc:
                if exc.status_code != 409:  # already there: creating is idempotent
                    raise

    def delete_bucket(self, uri: ObjectURI) -> None:
        container = self.container_client(uri)
        with _mapped(uri.root, "DELETE_BUCKET"):
            if next(iter(container.list_blobs(results_per_page=1)), None) is not None:
                raise S3DlioError("container is not empty", uri=uri.root, op="DELETE_BUCKET")
            container.delete_container()

    def list_containers(self, uri: ObjectURI) -> list[ObjectURI]:
        """Containers of the account (``az://account/``, or the environment's for ``az://``)."""
        named = uri.bucket if uri.bucket not in ("", "_") else None  # az://account/
        account = uri.account or named or self.account(uri)
        service = self._clients.get().service(account)
        with _mapped(f"az://{account}/", "LIST_BUCKETS"):
            names = sorted(c.name for c in service.list_containers())
        return [ObjectURI("az", name, "", account=account) for name in names]

    def bucket_exists(self, uri: ObjectURI) -> bool:
        with _mapped(uri.root, "HEAD_BUCKET"):
            return bool(self.container_client(uri).exists())
