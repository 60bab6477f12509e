"""``gs://`` (alias ``gcs://``): Google Cloud Storage over its JSON API.

``google-cloud-storage`` supplies the credentials and the authorized HTTP session
(``client._http``) and knows the endpoint: ``STORAGE_EMULATOR_HOST`` selects an emulator (used
with anonymous credentials and project ``GOOGLE_CLOUD_PROJECT`` or ``"test"``); otherwise
``GOOGLE_APPLICATION_CREDENTIALS`` or the other Application Default Credentials apply. Every
request then goes through that session as a plain JSON-API call: the client's object layer costs
several times more per request and checksums whole downloads (see ``docs/performance.md``), and
a raw response can be read straight into the caller's buffer.

The etag token is the object's *generation*: ranged reads carry ``ifGenerationMatch`` and also
compare the ``X-Goog-Generation`` response header, so a replaced object fails with
``IntegrityError`` even on an emulator that ignores the precondition. Writers use a resumable
upload session: chunks in order, multiples of 256 KiB, nothing visible until the final chunk;
abort cancels the session. Deletes go one request per object (concurrently): fake-gcs-server
answers JSON batch requests wrongly. Errors map through one table, :func:`map_gcs_error`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import quote

import requests
import urllib3
from google.auth import exceptions as auth_errors

from ...errors import (
    HTTP_STATUS_ERRORS,
    IntegrityError,
    PermissionDeniedError,
    S3DlioError,
    TransientError,
    redact,
)
from ..client_config import ClientConfig
from ..config import MiB
from ..executor import PerProcess, run_claimed
from ..http.headers import content_range_total
from ..store import ObjectMeta, ObjectStore, ReadStream, Upload
from ..uri import ObjectURI
from ._http import tune_session

__all__ = ["GCSStore", "map_gcs_error"]

#: Objects per listing page (the service's maximum).
PAGE = 1000
#: Largest slice read from the socket per ``readinto`` call (bounds urllib3's temporary).
READ_SLICE = MiB
#: Concurrent single deletes in :meth:`GCSStore.delete_many`.
DELETE_CONCURRENCY = 16
_LIST_FIELDS = "items(name,size,updated,generation,contentType,metadata),prefixes,nextPageToken"

# -- errors ------------------------------------------------------------------------------------

#: The one table: HTTP statuses, then exception classes (first match wins).
_BY_STATUS = HTTP_STATUS_ERRORS
_BY_EXCEPTION: tuple[tuple[type[BaseException], type[S3DlioError]], ...] = (
    (auth_errors.RefreshError, PermissionDeniedError),
    (auth_errors.DefaultCredentialsError, PermissionDeniedError),
    (auth_errors.TransportError, TransientError),
    (requests.RequestException, TransientError),  # connect/read errors, timeouts, short bodies
    (urllib3.exceptions.HTTPError, TransientError),
    (OSError, TransientError),
)


def map_gcs_error(
    failure: requests.Response | BaseException, uri: ObjectURI | str, op: str
) -> S3DlioError:
    """The s3dlio error for an error response or a transport exception (messages redacted)."""
    if isinstance(failure, requests.Response):
        cls = _BY_STATUS.get(failure.status_code, S3DlioError)
        message = f"{failure.status_code} {_error_message(failure)}".strip()
    else:
        cls = next((c for e, c in _BY_EXCEPTION if isinstance(failure, e)), S3DlioError)
        first_line = (str(failure).strip().splitlines() or [""])[0]
        message = f"{type(failure).__name__}: {first_line[:300]}"
    return cls(redact(message), uri=str(uri), op=op)


def _error_message(response: requests.Response) -> str:
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - the body itself may be cut short
        return response.reason or ""
    try:
        return str(json.loads(text)["error"]["message"])[:300] or response.reason or ""
    except (ValueError, KeyError, TypeError):
        return (text.strip().splitlines() or [response.reason or ""])[0][:300]


def _fail(failure: requests.Response | BaseException, uri: ObjectURI | str, op: str) -> NoReturn:
    error = map_gcs_error(failure, uri, op)  # reads an error body before closing
    if isinstance(failure, requests.Response):
        failure.close()
    raise error from None


def _json(response: requests.Response, uri: ObjectURI | str, op: str) -> dict[str, Any]:
    """The JSON body of a successful answer (a garbled or cut body is a TransientError)."""
    try:
        body = response.json()
    except Exception as exc:  # noqa: BLE001 - JSON errors and broken bodies alike
        raise TransientError(
            f"unreadable answer: {type(exc).__name__}", uri=str(uri), op=op
        ) from None
    return body if isinstance(body, dict) else {}


# -- the session -------------------------------------------------------------------------------


class _Session:
    """One client's authorized HTTP session, API root and project, for this process."""

    def __init__(self, config: ClientConfig) -> None:
        from google.cloud import storage

        emulator = config.gcs_emulator()
        project = (
            config.gcs_project
            or os.environ.get("GOOGLE_CLOUD_PROJECT")
            or os.environ.get("GCLOUD_PROJECT")
        )
        try:
            if emulator:
                from google.api_core.client_options import ClientOptions
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(
                    project=project or "test",
                    credentials=AnonymousCredentials(),
                    client_options=ClientOptions(api_endpoint=emulator),
                )
            else:
                client = storage.Client(project=project)
        except auth_errors.GoogleAuthError as exc:
            raise map_gcs_error(exc, "gs://", "CONNECT") from None
        cfg = config.network()
        self.emulator = bool(emulator)
        self.project = client.project
        self.base = client._connection.API_BASE_URL.rstrip("/")
        self.http: requests.Session = tune_session(client._http, self.base, cfg.connections)
        # A session dropped without close() closes its pooled sockets when it is collected.
        weakref.finalize(self, self.http.close)
        self.timeout = (cfg.connect_timeout, cfg.operation_timeout)
        if config.ca_bundle:
            self.http.verify = config.ca_bundle

    def request(
        self,
        method: str,
        url: str,
        uri: ObjectURI | str,
        op: str,
        *,
        ok: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; an answer outside ``ok`` raises the mapped error."""
        try:
            response = self.http.request(method, url, timeout=self.timeout, **kwargs)
        except Exception as exc:  # noqa: BLE001 - mapped (unknown kinds become S3DlioError)
            _fail(exc, uri, op)
        if response.status_code not in ok:
            _fail(response, uri, op)
        return response

    def object_url(self, uri: ObjectURI, *, media: bool = False) -> str:
        """The JSON-API URL of ``uri``'s object (``media``: its download URL)."""
        path = f"/storage/v1/b/{quote(uri.bucket, safe='')}/o/{quote(uri.key, safe='')}"
        return f"{self.base}/download{path}?alt=media" if media else self.base + path

    def bucket_url(self, bucket: str = "") -> str:
        """The JSON-API URL of a bucket (or of the bucket collection)."""
        return f"{self.base}/storage/v1/b" + (f"/{quote(bucket, safe='')}" if bucket else "")

    def upload_url(self, uri: ObjectURI) -> str:
        """The upload endpoint of ``uri``'s bucket."""
        return f"{self.base}/upload/storage/v1/b/{quote(uri.bucket, safe='')}/o"


def _timestamp(text: str | None) -> datetime | None:
    """Parse RFC 3339 (``2026-01-02T03:04:05.123456789Z``) on every supported Python."""
    if not text:
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    if match is None:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone in (None, 'Z') else zone}")
    return parsed.astimezone(timezone.utc)


def _meta(uri: ObjectURI, item: dict[str, Any]) -> ObjectMeta:
    return ObjectMeta(
        uri=uri,
        size=int(item.get("size", 0)),
        last_modified=_timestamp(item.get("updated")),
        etag=str(item["generation"]) if item.get("generation") else None,
        content_type=item.get("contentType"),
        metadata=dict(item.get("metadata") or {}),
        extra={"generation": item.get("generation"), "md5": item.get("md5Hash")},
    )


# -- reads -------------------------------------------------------------------------------------


class GCSReadStream(ReadStream):
    """One (ranged) media download, read from the socket into caller buffers."""

    def __init__(
        self,
        response: requests.Response | None,
        uri: ObjectURI,
        size: int,
        etag: str | None,
        offset: int,
        length: int,
    ) -> None:
        self._response = response
        self.uri = uri
        self.size, self.etag, self.offset, self.length = size, etag, offset, length
        self._left = length

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0 or self._response is None:
            return 0
        want = min(len(buf), self._left, READ_SLICE)
        try:
            got = self._response.raw.readinto(buf[:want])
        except Exception as exc:  # noqa: BLE001 - urllib3 raises several kinds
            self.close()
            raise map_gcs_error(exc, self.uri, "GET") from None
        self._left -= got
        return got

    def skip(self, count: int) -> None:
        """Read and drop ``count`` bytes (a server that ignored the Range header)."""
        scratch = memoryview(bytearray(min(count, READ_SLICE)))
        self._left += count
        while count:
            got = self.readinto(scratch[: min(count, len(scratch))])
            if not got:
                raise TransientError("body ended early", uri=str(self.uri), op="GET")
            count -= got

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None


# -- uploads -----------------------------------------------------------------------------------


class GCSResumableUpload(Upload):
    """A resumable upload session: ordered chunks; the final one makes the object visible.

    A chunk re-sent after a fault skips what the service already holds. After a fault that
    leaves the session's state unknown (no answer, or a 5xx) the next chunk first asks the
    service how much it holds; an emulator cannot answer that, so there the upload fails
    instead of risking duplicated bytes (an answered 429/5xx was not applied and is re-sent).
    """

    def __init__(self, session: _Session, uri: ObjectURI, url: str) -> None:
        self.session = session
        self.uri = uri
        self.url = url
        self._persisted = 0
        self._unknown = False
        self._generation: str | None = None
        self._lock = threading.Lock()

    def write_part(self, number: int, offset: int, data: memoryview, last: bool) -> None:
        with self._lock:
            if self._unknown:
                self._query_state()
            if self._generation is not None:
                return  # the final chunk was already accepted
            end = offset + len(data)
            if offset > self._persisted:
                raise IntegrityError(
                    f"chunk at {offset} would leave a gap after {self._persisted} bytes",
                    uri=str(self.uri),
                    op="PUT_PART",
                )
            if end <= self._persisted and not last:
                return
            start = max(offset, self._persisted)
            body = data[start - offset :]
            total = str(end) if last else "*"
            span = f"{start}-{end - 1}" if len(body) else "*"
            self._send(body, f"bytes {span}/{total}")

    def _send(self, body: memoryview, content_range: str) -> None:
        try:
            response = self.session.http.put(
                self.url,
                data=body if len(body) else b"",
                timeout=self.session.timeout,
                headers={"Content-Range": content_range},
            )
        except Exception as exc:  # noqa: BLE001
            self._unknown = True
            if self.session.emulator:
                raise S3DlioError(
                    f"chunk outcome unknown ({type(exc).__name__}) and the emulator cannot "
                    "report a session's state",
                    uri=str(self.uri),
                    op="PUT_PART",
                ) from None
            _fail(exc, self.uri, "PUT_PART")
        if response.status_code in (200, 201, 308):
            self._record(response)
        else:
            self._unknown = response.status_code >= 500 and not self.session.emulator
            _fail(response, self.uri, "PUT_PART")

    def _query_state(self) -> None:
        """Ask the service how many bytes it holds (or whether the upload is complete)."""
        response = self.session.request(
            "PUT",
            self.url,
            self.uri,
            "PUT_PART",
            ok=(200, 201, 308),
            data=b"",
            headers={"Content-Range": "bytes */*"},
        )
        self._unknown = False
        self._record(response)

    def _record(self, response: requests.Response) -> None:
        if response.status_code == 308:
            held = re.match(r"bytes=0-(\d+)", response.headers.get("Range", ""))
            self._persisted = int(held.group(1)) + 1 if held else 0
            response.close()
        else:
            self._generation = str(_json(response, self.uri, "PUT").get("generation", ""))

    def commit(self) -> str | None:
        if self._generation is None:
            raise IntegrityError("the final chunk was not accepted", uri=str(self.uri), op="PUT")
        return self._generation or None

    def abort(self) -> None:
        if self._generation is not None:
            return
        response = self.session.request(
            "DELETE", self.url, self.uri, "PUT_ABORT", ok=(200, 204, 404, 410, 499)
        )
        response.close()


# -- the store ---------------------------------------------------------------------------------


class GCSStore(ObjectStore):
    """The ``gs://`` backend."""

    scheme = "gs"
    part_multiple = 256 * 1024
    max_parallel_parts = 1

    def __init__(self, config: ClientConfig | None = None) -> None:
        super().__init__(config)
        self._session: PerProcess[_Session] = PerProcess(lambda: _Session(self.config))

    @property
    def session(self) -> _Session:
        """This process's authorized session."""
        return self._session.get()

    def close(self) -> None:
        """Close this process's pooled connections (the session is rebuilt on next use)."""
        session = self._session.peek()
        self._session.reset()
        if session is not None:
            session.http.close()

    def endpoint(self, uri: ObjectURI) -> str:
        try:
            return self.session.base
        except S3DlioError:
            return "gs://"

    # -- data path ---------------------------------------------------------------------------
    def open_read(
        self,
        uri: ObjectURI,
        offset: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
    ) -> ReadStream:
        if length == 0:
            meta = self._get_meta(uri, "GET", if_match)
            return GCSReadStream(None, uri, meta.size, meta.etag, offset, 0)
        s = self.session
        headers = {"Accept-Encoding": "identity"}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{last}"
        params = {"ifGenerationMatch": if_match} if if_match else None
        response = s.request(
            "GET",
            s.object_url(uri, media=True),
            uri,
            "GET",
            ok=(200, 206, 416),
            headers=headers,
            params=params,
            stream=True,
        )
        generation = response.headers.get("X-Goog-Generation")
        if if_match and generation and generation != if_match:
            response.close()
            raise IntegrityError(
                f"object changed during the read (generation {generation}, expected {if_match})",
                uri=str(uri),
                op="GET",
                byte_range=(offset, length),
            )
        if response.status_code == 416:  # the range starts past the end
            response.close()
            meta = self._get_meta(uri, "GET", if_match)
            return GCSReadStream(None, uri, meta.size, meta.etag, offset, 0)
        delivered = int(response.headers.get("Content-Length", 0))
        if response.status_code == 206:
            size = content_range_total(response.headers.get("Content-Range"))
            size = offset + delivered if size is None else size
            return GCSReadStream(response, uri, size, generation, offset, delivered)
        size = int(response.headers.get("X-Goog-Stored-Content-Length", delivered))
        start = min(offset, size)
        end = size if length is None else min(size, offset + length)
        stream = GCSReadStream(response, uri, size, generation, start, max(0, end - start))
        if start:
            stream.skip(start)  # the server ignored Range: drop the head
        return stream

    def put(
        self,
        uri: ObjectURI,
        data: memoryview,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        s = self.session
        kind = content_type or "application/octet-stream"
        body: Any
        if metadata:
            boundary = secrets.token_hex(16)
            resource = json.dumps({"name": uri.key, "contentType": kind, "metadata": metadata})
            body = b"".join(
                (
                    f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                    f"{resource}\r\n--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode(),
                    data,
                    f"\r\n--{boundary}--\r\n".encode(),
                )
            )
            params = {"uploadType": "multipart"}
            kind = f"multipart/related; boundary={boundary}"
        else:
            body = data if len(data) else b""
            params = {"uploadType": "media", "name": uri.key}
        response = s.request(
            "POST",
            s.upload_url(uri),
            uri,
            "PUT",
            params=params,
            data=body,
            headers={"Content-Type": kind},
        )
        generation = _json(response, uri, "PUT").get("generation")
        return str(generation) if generation else None

    def begin_upload(
        self,
        uri: ObjectURI,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Upload:
        s = self.session
        resource: dict[str, Any] = {"name": uri.key}
        if content_type:
            resource["contentType"] = content_type
        if metadata:
            resource["metadata"] = metadata
        response = s.request(
            "POST",
            s.upload_url(uri),
            uri,
            "PUT_START",
            ok=(200, 201),
            params={"uploadType": "resumable", "name": uri.key},
            json=resource,
        )
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise S3DlioError("no resumable session URL in the answer", uri=str(uri), op="PUT")
        return GCSResumableUpload(s, uri, location)

    # -- metadata ----------------------------------------------------------------------------
    def _get_meta(self, uri: ObjectURI, op: str, if_match: str | None = None) -> ObjectMeta:
        s = self.session
        params = {"ifGenerationMatch": if_match} if if_match else None
        response = s.request("GET", s.object_url(uri), uri, op, params=params)
        meta = _meta(uri, _json(response, uri, op))
        if if_match and meta.etag != if_match:
            raise IntegrityError("object changed during the read", uri=str(uri), op=op)
        return meta

    def stat(self, uri: ObjectURI) -> ObjectMeta:
        return self._get_meta(uri, "HEAD")

    def list_pages(self, prefix: ObjectURI, *, recursive: bool) -> Iterator[list[ObjectMeta]]:
        s = self.session
        params: dict[str, Any] = {"prefix": prefix.key, "maxResults": PAGE, "fields": _LIST_FIELDS}
        if not recursive:
            params["delimiter"] = "/"
        url = f"{s.bucket_url(prefix.bucket)}/o"
        seen_prefixes: set[str] = set()
        while True:
            body = _json(s.request("GET", url, prefix, "LIST", params=params), prefix, "LIST")
            page = [_meta(prefix.with_key(item["name"]), item) for item in body.get("items", ())]
            for name in body.get("prefixes", ()):
                if name not in seen_prefixes:  # a prefix may repeat across pages
                    seen_prefixes.add(name)
                    page.append(ObjectMeta(uri=prefix.with_key(name), is_prefix=True))
            page.sort(key=lambda meta: meta.key)
            if page:
                yield page
            token = body.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    def delete(self, uri: ObjectURI) -> None:
        s = self.session
        s.request("DELETE", s.object_url(uri), uri, "DELETE", ok=(200, 204)).close()

    def delete_many(self, uris: Sequence[ObjectURI]) -> list[tuple[ObjectURI, Exception]]:
        """Delete concurrently, one request per object (no JSON batch: see the module notes)."""
        failed: list[tuple[ObjectURI, Exception]] = []
        lock = threading.Lock()

        def one(index: int) -> None:
            try:
                self.delete(uris[index])
            except S3DlioError as exc:
                with lock:
                    failed.append((uris[index], exc))

        run_claimed(len(uris), one, min(DELETE_CONCURRENCY, self.network.connections))
        return failed

    # -- buckets -----------------------------------------------------------------------------
    def create_bucket(self, uri: ObjectURI) -> None:
        s = self.session
        response = s.request(
            "POST",
            s.bucket_url(),
            uri.root,
            "CREATE_BUCKET",
            ok=(200, 409),
            params={"project": s.project},
            json={"name": uri.bucket},
        )
        response.close()
        if response.status_code == 409 and not self.bucket_exists(uri):
            raise S3DlioError("bucket name is taken", uri=uri.root, op="CREATE_BUCKET")

    def delete_bucket(self, uri: ObjectURI) -> None:
        s = self.session
        response = s.request(
            "DELETE", s.bucket_url(uri.bucket), uri.root, "DELETE_BUCKET", ok=(200, 204, 409, 412)
        )
        response.close()
        if response.status_code in (409, 412):  # GCS says 409, the emulator 412
            raise S3DlioError("bucket is not empty", uri=uri.root, op="DELETE_BUCKET")

    def list_containers(self, uri: ObjectURI) -> list[ObjectURI]:
        """Buckets of the project (``GOOGLE_CLOUD_PROJECT``, or the credentials' project)."""
        s = self.session
        params: dict[str, Any] = {"project": s.project, "fields": "items(name),nextPageToken"}
        names: list[str] = []
        while True:
            answer = s.request("GET", s.bucket_url(), uri.root, "LIST_BUCKETS", params=params)
            body = _json(answer, uri.root, "LIST_BUCKETS")
            names += [item["name"] for item in body.get("items", ())]
            if not body.get("nextPageToken"):
                break
            params["pageToken"] = body["nextPageToken"]
        return [ObjectURI("gs", name, "", alias=uri.alias) for name in sorted(names)]

    def bucket_exists(self, uri: ObjectURI) -> bool:
        s = self.session
        response = s.request(
            "GET",
            s.bucket_url(uri.bucket),
            uri.root,
            "HEAD_BUCKET",
            ok=(200, 404),
            params={"fields": "name"},
        )
        response.close()
        return response.status_code == 200
