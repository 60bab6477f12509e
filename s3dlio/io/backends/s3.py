"""``s3://``: Amazon S3 and S3-compatible services (MinIO, Ceph RGW, moto, ...).

Two halves, each with one code path:

* **Control plane: boto3.** Credentials (the standard chain: environment, profiles and
  ``AWS_PROFILE``, SSO, instance roles), the endpoint and region, listings
  (ListObjectsV2, 1,000 keys a page), HEAD, deletes (DeleteObjects, 1,000 keys a request),
  multipart create/complete/abort and buckets.
* **Data plane: :mod:`s3dlio.io.http`.** Bodies (GET, PUT, UploadPart) are SigV4-signed with a
  cached signing key and sent over keep-alive connections that read straight into the caller's
  buffer. botocore spends about 1 ms of CPU per request, which caps it near 900 small GETs/s
  per process; this path costs a small fraction of that (figures in ``docs/performance.md``).

The endpoint comes from an ``s3://host:port/bucket/key`` URI (plain http), else the client's
``endpoint_url`` (``s3dlio.Client(endpoint_url=...)``, ``configure_s3``), else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (or the profile's
``endpoint_url``), else AWS. Custom endpoints use path-style addressing; AWS uses
virtual-hosted addressing for DNS-compatible bucket names. The region comes from
the client's ``region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile, else
``us-east-1``; a bucket that answers with another region (``x-amz-bucket-region``) is
remembered and the request re-sent once. Clients and connections are built once per process
per client (again after ``fork``):
see :mod:`s3dlio.io.backends.s3_client`.

All provider errors map through one table, :data:`ERROR_TABLE`; credentials never appear in
errors or in the op-log.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

from ...errors import (
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
from .. import retry
from ..client_config import ClientConfig
from ..config import GiB, MiB
from ..executor import PerProcess, run_claimed
from ..http import Response
from ..http.headers import content_range_total
from ..http.multiplex import Exchange, available, exchange
from ..store import ObjectMeta, ObjectStore, PartRead, ReadStream, Upload
from ..uri import ObjectURI
from .s3_client import State

__all__ = [
    "ERROR_TABLE",
    "S3ReadStream",
    "S3Store",
    "S3Upload",
    "error_for_exception",
    "error_for_status",
]

T = TypeVar("T")

#: Keys per listing page and per batch delete (the service's maxima).
PAGE = 1000
DELETE_BATCH = 1000
#: Largest error body read from the data path.
ERROR_BODY_LIMIT = 64 * 1024
#: Scratch size for skipping the head of a body (a server that ignored ``Range``).
SKIP_SLICE = MiB
#: Largest object copied server-side with one CopyObject (the service's limit is 5 GiB).
COPY_SINGLE_MAX = 5 * GiB
#: Part size of larger server-side copies (UploadPartCopy), and how many run at once.
COPY_PART_SIZE = 512 * MiB
COPY_PARALLEL = 8

# -- errors ------------------------------------------------------------------------------------

#: The one error table: ``(s3dlio class, HTTP statuses, S3 error codes)``. An error code found
#: here wins over its status; a status found here is used when the code is unknown; anything
#: else is a plain (not retried) :class:`S3DlioError`. A ``416`` is not an error at all: a read
#: at or past the end of an object yields an empty stream.
ERROR_TABLE: tuple[tuple[type[S3DlioError], tuple[int, ...], tuple[str, ...]], ...] = (
    (
        NotFoundError,
        (404,),
        ("NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NoSuchVersion", "NotFound"),
    ),
    (
        PermissionDeniedError,
        (401, 403),
        (
            "AccessDenied",
            "AllAccessDisabled",
            "AccountProblem",
            "ExpiredToken",
            "InvalidAccessKeyId",
            "InvalidToken",
            "SignatureDoesNotMatch",
            "TokenRefreshRequired",
        ),
    ),
    (
        ThrottledError,
        (429,),
        (
            "SlowDown",
            "Throttling",
            "ThrottlingException",
            "TooManyRequests",
            "RequestLimitExceeded",
            "RequestThrottled",
        ),
    ),
    (
        TransientError,
        (408, 500, 502, 503, 504),
        ("InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted"),
    ),
    (
        IntegrityError,
        (412,),
        (
            "PreconditionFailed",
            "BadDigest",
            "InvalidDigest",
            "XAmzContentSHA256Mismatch",
            "IncompleteBody",
        ),
    ),
    (
        InvalidURIError,
        (),
        (
            "InvalidBucketName",
            "KeyTooLongError",
            "InvalidArgument",
            "InvalidURI",
            "InvalidRequest",
            "MetadataTooLarge",
            "EntityTooSmall",
            "EntityTooLarge",
        ),
    ),
)
_CLASS_BY_CODE = {code: cls for cls, _, codes in ERROR_TABLE for code in codes}
_CLASS_BY_STATUS = {status: cls for cls, statuses, _ in ERROR_TABLE for status in statuses}


@functools.cache
def _exception_table() -> tuple[tuple[tuple[type[BaseException], ...], type[S3DlioError]], ...]:
    """Transport and client-side exceptions -> s3dlio classes (first match wins).

    Built on first use so that importing this module does not import botocore.
    """
    from botocore import exceptions as bx

    return (
        (
            (
                bx.NoCredentialsError,
                bx.PartialCredentialsError,
                bx.CredentialRetrievalError,
                bx.ProfileNotFound,
                bx.TokenRetrievalError,
            ),
            PermissionDeniedError,
        ),
        ((bx.ParamValidationError, ValueError), InvalidURIError),
        ((bx.SSLError, ssl.SSLCertVerificationError), S3DlioError),  # not worth retrying
        (
            (
                bx.ConnectionError,
                bx.HTTPClientError,
                bx.IncompleteReadError,
                bx.ResponseStreamingError,
                OSError,
            ),
            TransientError,
        ),
    )


def error_for_status(
    status: int | None,
    code: str | None,
    message: str,
    uri: ObjectURI | str,
    op: str,
    byte_range: tuple[int, int | None] | None = None,
) -> S3DlioError:
    """The s3dlio error for an S3 error answer (``code`` from its XML body, if any)."""
    cls = _CLASS_BY_CODE.get(code or "") or _CLASS_BY_STATUS.get(status or 0, S3DlioError)
    head = " ".join(str(part) for part in (status, code) if part)
    text = f"{head}: {message}" if head and message else head or message
    return cls(redact(text.strip()), uri=str(uri), op=op, byte_range=byte_range)


def error_for_exception(exc: BaseException, uri: ObjectURI | str, op: str) -> S3DlioError:
    """The s3dlio error for an exception of botocore or of the data path (messages redacted)."""
    if isinstance(exc, S3DlioError):
        return exc.with_context(uri=str(uri), op=op)
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        error = response["Error"]
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or "")
        if code.isdigit():  # HEAD answers carry no body: botocore puts the status there
            code = ""
        return error_for_status(status, code, message, uri, op)
    cls = next((c for kinds, c in _exception_table() if isinstance(exc, kinds)), S3DlioError)
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return cls(redact(f"{type(exc).__name__}: {first_line[:300]}"), uri=str(uri), op=op)


def _xml_field(body: bytes, name: str) -> str | None:
    match = re.search(rb"<" + name.encode() + rb">([^<]*)</", body)
    return match.group(1).decode("utf-8", "replace") if match else None


def _raise_for(
    response: Response, uri: ObjectURI, op: str, byte_range: tuple[int, int | None] | None = None
) -> NoReturn:
    """Read an error answer's body and raise the mapped error."""
    try:
        body = response.read(ERROR_BODY_LIMIT)
    except OSError:
        body = b""
    code = _xml_field(body, "Code")
    message = _xml_field(body, "Message") or response.reason
    raise error_for_status(response.status, code, message, uri, op, byte_range)


# -- reads -------------------------------------------------------------------------------------


class S3ReadStream(ReadStream):
    """The body of one (ranged) GET, read from the socket into caller buffers.

    The connection returns to its pool once the body has been read to its end; closing the
    stream earlier closes the connection.
    """

    def __init__(
        self,
        response: Response | None,
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
        left = self._left
        response = self._response
        if left <= 0 or response is None:
            return 0
        try:
            got = response.readinto(buf if len(buf) <= left else buf[:left])
        except OSError as exc:
            self.close()
            raise error_for_exception(exc, self.uri, "GET") from None
        if not got:
            self.close()
            raise TransientError(
                f"body ended with {left} of {self.length} bytes missing",
                uri=str(self.uri),
                op="GET",
            )
        self._left = left - got
        return got

    def skip(self, count: int) -> None:
        """Read and drop ``count`` bytes (a server that ignored the ``Range`` header)."""
        scratch = memoryview(bytearray(min(count, SKIP_SLICE)))
        self._left += count
        while count:
            count -= self.readinto(scratch[: min(count, len(scratch))])

    def close(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()


# -- uploads -----------------------------------------------------------------------------------


class S3Upload(Upload):
    """One S3 multipart upload: parts go over the data path, the bookkeeping through boto3.

    Parts may arrive in any order and be re-sent (a retry replaces the part). An empty final
    part after others is not sent (S3 accepts a short last part, not an empty one).
    """

    def __init__(self, store: S3Store, uri: ObjectURI, upload_id: str) -> None:
        self.store = store
        self.uri = uri
        self.upload_id = upload_id
        self._etags: dict[int, str] = {}

    def write_part(self, number: int, offset: int, data: memoryview, last: bool) -> None:
        if last and number and not len(data):
            return
        response = self.store._send(
            "PUT",
            self.uri,
            "PUT_PART",
            query={"partNumber": str(number + 1), "uploadId": self.upload_id},
            headers={"content-length": str(len(data))},
            body=data,
        )
        etag = _etag_of(response, self.uri, "PUT_PART")
        if not etag:
            raise TransientError("no ETag in the UploadPart answer", uri=str(self.uri), op="PUT")
        self._etags[number + 1] = etag

    def copy_part(self, number: int, source: ObjectMeta, offset: int, length: int) -> None:
        """Fill part ``number`` (0-based) with a byte range of ``source`` (UploadPartCopy)."""
        src = source.uri
        answer = self.store._control(
            self.uri,
            "PUT_PART",
            lambda c: c.upload_part_copy(
                Bucket=self.uri.bucket,
                Key=self.uri.key,
                UploadId=self.upload_id,
                PartNumber=number + 1,
                CopySource={"Bucket": src.bucket, "Key": src.key},
                CopySourceRange=f"bytes={offset}-{offset + length - 1}",
                CopySourceIfMatch=source.etag,
            ),
        )
        self._etags[number + 1] = answer["CopyPartResult"]["ETag"]

    @property
    def parts(self) -> int:
        """Parts uploaded so far."""
        return len(self._etags)

    def commit(self) -> str | None:
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in sorted(self._etags.items())]
        answer = self.store._control(
            self.uri,
            "PUT_COMPLETE",
            lambda c: c.complete_multipart_upload(
                Bucket=self.uri.bucket,
                Key=self.uri.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )
        return answer.get("ETag")

    def abort(self) -> None:
        try:
            self.store._control(
                self.uri,
                "PUT_ABORT",
                lambda c: c.abort_multipart_upload(
                    Bucket=self.uri.bucket, Key=self.uri.key, UploadId=self.upload_id
                ),
            )
        except NotFoundError:
            pass  # already aborted or completed


def _etag_of(response: Response, uri: ObjectURI, op: str) -> str | None:
    """The ETag of a PUT answer (raising the mapped error for any other than 200)."""
    if response.status != 200:
        _raise_for(response, uri, op)
    etag = response.headers.get("etag")
    if not response.complete:
        response.read(ERROR_BODY_LIMIT)
    return etag


def _object_headers(
    uri: ObjectURI, content_type: str | None, metadata: dict[str, str] | None
) -> dict[str, str]:
    """``content-type`` and ``x-amz-meta-*`` headers, checked to be printable ASCII."""
    headers: dict[str, str] = {}
    if content_type:
        headers["content-type"] = content_type
    for name, value in (metadata or {}).items():
        headers[f"x-amz-meta-{name.lower()}"] = str(value)
    for name, value in headers.items():
        if not (name + value).isascii() or not (name + value).isprintable():
            raise InvalidArgumentError(
                f"S3 metadata and content types must be printable ASCII: {name}={value!r}",
                uri=str(uri),
                op="PUT",
            )
    return headers


def _delete_objects(client: Any, *, bucket: str, request: dict[str, Any]) -> dict[str, Any]:
    return client.delete_objects(Bucket=bucket, Delete=request)


def _meta(uri: ObjectURI, item: dict[str, Any]) -> ObjectMeta:
    """ObjectMeta from a HeadObject answer or a listing entry."""
    size = item.get("ContentLength", item.get("Size", 0))
    return ObjectMeta(
        uri=uri,
        size=int(size or 0),
        last_modified=item.get("LastModified"),
        etag=item.get("ETag"),
        content_type=item.get("ContentType"),
        metadata=dict(item.get("Metadata") or {}),
        extra={
            "storage_class": item.get("StorageClass", "STANDARD"),
            "version_id": item.get("VersionId"),
        },
    )


# -- the store ---------------------------------------------------------------------------------


class S3Store(ObjectStore):
    """The ``s3://`` backend."""

    scheme = "s3"
    min_part_size = 5 * MiB
    max_parallel_parts = 32
    multiplexed = available()

    def __init__(self, config: ClientConfig | None = None) -> None:
        super().__init__(config)
        self._states: PerProcess[State] = PerProcess(lambda: State(self.config))

    def _state(self) -> State:
        """This client's boto3 clients and pools in this process."""
        try:
            return self._states.get()
        except Exception as exc:  # noqa: BLE001 - mapped: no botocore exception leaves
            raise error_for_exception(exc, "s3://", "CONNECT") from None

    def close(self) -> None:
        """Close the idle connections of every pool (rebuilt on next use)."""
        states, self._states = self._states, PerProcess(lambda: State(self.config))
        value = states.peek()
        if value is not None:
            value.close()

    def endpoint(self, uri: ObjectURI) -> str:
        try:
            return self._state().service(uri).url
        except S3DlioError:
            return "s3://"

    def _send(
        self,
        method: str,
        uri: ObjectURI,
        op: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: memoryview | None = None,
    ) -> Response:
        """One data-path request (re-sent once to the bucket's own region if told so)."""
        state = self._state()
        try:
            response = state.service(uri).request(
                method, uri, query=query, headers=headers, body=body
            )
            region = response.headers.get("x-amz-bucket-region")
            if region and response.status in (301, 307, 400) and state.learn_region(uri, region):
                response.close()
                response = state.service(uri).request(
                    method, uri, query=query, headers=headers, body=body
                )
        except Exception as exc:  # noqa: BLE001 - mapped
            raise error_for_exception(exc, uri, op) from None
        return response

    def _control(
        self, uri: ObjectURI, op: str, call: Callable[[Any], T], *, accept: tuple[str, ...] = ()
    ) -> T:
        """One boto3 call on ``uri``'s client; errors mapped (codes in ``accept`` give None)."""
        client = self._state().service(uri).client
        try:
            return call(client)
        except Exception as exc:  # noqa: BLE001 - mapped: no botocore exception leaves
            response = getattr(exc, "response", None)
            code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
            if code is not None and code in accept:
                return None  # type: ignore[return-value]
            raise error_for_exception(exc, uri, op) from None

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
            meta = self._head(uri, "GET", if_match)
            return S3ReadStream(None, uri, meta.size, meta.etag, offset, 0)
        headers: dict[str, str] = {}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            headers["range"] = f"bytes={offset}-{last}"
        if if_match:
            headers["if-match"] = if_match
        response = self._send("GET", uri, "GET", headers=headers)
        return self._answer(response, uri, offset, length, if_match)

    def _answer(
        self,
        response: Response,
        uri: ObjectURI,
        offset: int,
        length: int | None,
        if_match: str | None,
    ) -> S3ReadStream:
        """The stream of a GET answer (``[offset, offset + length)`` asked), or its error."""
        status = response.status
        fields = response.headers
        etag = fields.get("etag")
        if if_match and etag and status in (200, 206) and etag.strip('"') != if_match.strip('"'):
            response.close()  # a server that ignores If-Match must not mix versions either
            raise IntegrityError(
                f"object changed during the read (ETag {etag}, expected {if_match})",
                uri=str(uri),
                op="GET",
                byte_range=(offset, length),
            )
        if status == 206:
            delivered = response.length
            total = content_range_total(fields.get("content-range"))
            if delivered is None or total is None:
                response.close()
                raise TransientError(
                    "206 answer without Content-Length or Content-Range", uri=str(uri), op="GET"
                )
            return S3ReadStream(response, uri, total, etag, offset, delivered)
        if status == 200:
            size = response.length
            if size is None:
                response.close()
                raise TransientError("200 answer without Content-Length", uri=str(uri), op="GET")
            start = min(offset, size)
            end = size if length is None else min(size, offset + length)
            stream = S3ReadStream(response, uri, size, etag, start, end - start)
            if start:
                stream.skip(start)  # the server ignored Range: drop the head
            return stream
        if status == 416:  # the range starts at or past the end
            total = content_range_total(fields.get("content-range"))
            body = response.read(ERROR_BODY_LIMIT)
            if total is None:
                actual = _xml_field(body, "ActualObjectSize")
                total = int(actual) if actual and actual.isdigit() else None
            if total is None:
                meta = self._head(uri, "GET", if_match)
                return S3ReadStream(None, uri, meta.size, meta.etag, offset, 0)
            return S3ReadStream(None, uri, total, etag, offset, 0)
        _raise_for(response, uri, "GET", (offset, length))

    def read_parts(self, parts: Iterator[PartRead | None], width: int) -> Iterator[PartRead]:
        """Run ranged GETs from this thread, ``width`` in flight on as many keep-alive
        connections (:func:`s3dlio.io.http.multiplex.exchange`).

        Answers the fast path does not take (errors, ``416``, region redirects, a ``200`` to a
        ranged read, bodies without a length, another version than ``if_match``) are read as
        :meth:`open_read` reads them.
        """
        for ex in exchange(map(self._part_exchange, parts), width, self._part_target):
            part: PartRead = ex.tag
            part.start_ns, part.first_byte_ns, part.end_ns = (
                ex.start_ns,
                ex.first_byte_ns,
                ex.end_ns,
            )
            if ex.error is not None:
                part.error = error_for_exception(ex.error, part.uri, part.op)
            elif ex.target is not None:
                part.nbytes = ex.nbytes
            else:
                assert ex.response is not None
                try:
                    self._read_answer(part, ex.response)
                except S3DlioError as exc:
                    part.error = exc
            yield part

    def _part_exchange(self, part: PartRead | None) -> Exchange | None:
        """The signed request of one part (``None`` passes through)."""
        if part is None:
            return None
        headers: dict[str, str] = {}
        if part.offset or part.length is not None:
            last = "" if part.length is None else str(part.offset + part.length - 1)
            headers["range"] = f"bytes={part.offset}-{last}"
        if part.if_match:
            headers["if-match"] = part.if_match
        try:
            pool, target, fields = (
                self._state().service(part.uri).prepare("GET", part.uri, headers=headers)
            )
        except S3DlioError as exc:
            ex = Exchange(None, "GET", b"", part)
            ex.error = exc
            return ex
        return Exchange(pool, "GET", pool.format_head("GET", target, fields), part)

    def _part_target(self, ex: Exchange) -> memoryview | None:
        """Where the body of a part's answer goes (``None``: read it as :meth:`open_read`)."""
        response = ex.response
        assert response is not None
        part: PartRead = ex.tag
        delivered = response.length
        if delivered is None:
            return None
        etag = response.headers.get("etag")
        if response.status == 206:
            size = content_range_total(response.headers.get("content-range"))
            if size is None or size < delivered:
                return None
        elif response.status == 200 and not part.offset:
            size = delivered
        else:
            return None
        if part.if_match and etag and etag.strip('"') != part.if_match.strip('"'):
            return None
        part.size, part.etag = size, etag
        if part.into is None:
            part.data = self.allocate(size)
            return memoryview(part.data)[:delivered]
        if delivered > len(part.into):  # a 200 to a ranged read: more than asked for
            return None
        return part.into[:delivered]

    def _read_answer(self, part: PartRead, response: Response) -> None:
        """Read an answer :meth:`_part_target` did not take, as :meth:`open_read` would."""
        uri = part.uri
        state = self._state()
        region = response.headers.get("x-amz-bucket-region")
        if region and response.status in (301, 307, 400) and state.learn_region(uri, region):
            response.close()  # again, to the bucket's own region
            stream = self.open_read(uri, part.offset, part.length, if_match=part.if_match)
        else:
            stream = self._answer(response, uri, part.offset, part.length, part.if_match)
        with stream:
            part.size, part.etag = stream.size, stream.etag
            if part.into is None:
                part.data = self.allocate(stream.size)
                view = memoryview(part.data)[: stream.length]
            else:
                view = part.into[: stream.length]
            while part.nbytes < len(view):
                part.nbytes += stream.readinto(view[part.nbytes :])

    def put(
        self,
        uri: ObjectURI,
        data: memoryview,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        headers = {"content-length": str(len(data))}
        headers.update(_object_headers(uri, content_type, metadata))
        response = self._send("PUT", uri, "PUT", headers=headers, body=data)
        return _etag_of(response, uri, "PUT")

    def begin_upload(
        self,
        uri: ObjectURI,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> S3Upload:
        _object_headers(uri, content_type, metadata)
        kwargs: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
        if content_type:
            kwargs["ContentType"] = content_type
        if metadata:
            kwargs["Metadata"] = {k.lower(): str(v) for k, v in metadata.items()}
        answer = self._control(uri, "PUT_START", lambda c: c.create_multipart_upload(**kwargs))
        return S3Upload(self, uri, answer["UploadId"])

    # -- metadata ----------------------------------------------------------------------------
    def _head(self, uri: ObjectURI, op: str, if_match: str | None = None) -> ObjectMeta:
        kwargs = {"Bucket": uri.bucket, "Key": uri.key}
        if if_match:
            kwargs["IfMatch"] = if_match
        return _meta(uri, self._control(uri, op, lambda c: c.head_object(**kwargs)))

    def stat(self, uri: ObjectURI) -> ObjectMeta:
        return self._head(uri, "HEAD")

    def list_pages(self, prefix: ObjectURI, *, recursive: bool) -> Iterator[list[ObjectMeta]]:
        params: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key, "MaxKeys": PAGE}
        if not recursive:
            params["Delimiter"] = "/"

        def one_page() -> dict[str, Any]:
            return self._control(prefix, "LIST", lambda c: c.list_objects_v2(**params))

        while True:
            body = retry.call(one_page, op="LIST", uri=str(prefix), config=self.retry_config)
            page = [_meta(prefix.with_key(item["Key"]), item) for item in body.get("Contents", ())]
            page += [
                ObjectMeta(uri=prefix.with_key(p["Prefix"]), is_prefix=True)
                for p in body.get("CommonPrefixes", ())
            ]
            page.sort(key=lambda meta: meta.key)
            if page:
                yield page
            token = body.get("NextContinuationToken")
            if not body.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    def delete(self, uri: ObjectURI) -> None:
        self._control(uri, "DELETE", lambda c: c.delete_object(Bucket=uri.bucket, Key=uri.key))

    def can_copy_within(self, src: ObjectURI, dst: ObjectURI) -> bool:
        """Server-side copies need both objects on one endpoint."""
        return src.endpoint == dst.endpoint

    def copy_within(self, src: ObjectURI, dst: ObjectURI) -> int:
        """CopyObject (up to :data:`COPY_SINGLE_MAX`), else UploadPartCopy in parts; the source
        is pinned by its ETag and content type and metadata go along."""
        source = self._head(src, "COPY")
        if source.size <= COPY_SINGLE_MAX:
            self._control(
                dst,
                "COPY",
                lambda c: c.copy_object(
                    Bucket=dst.bucket,
                    Key=dst.key,
                    CopySourceIfMatch=source.etag,
                    CopySource={"Bucket": src.bucket, "Key": src.key},
                ),
            )
            return source.size
        upload = self.begin_upload(dst, content_type=source.content_type, metadata=source.metadata)
        pieces = [
            (offset, min(COPY_PART_SIZE, source.size - offset))
            for offset in range(0, source.size, COPY_PART_SIZE)
        ]

        def copy_part(index: int) -> None:
            offset, length = pieces[index]
            retry.call(
                lambda: upload.copy_part(index, source, offset, length),
                op="PUT_PART",
                uri=str(dst),
                byte_range=(offset, length),
                config=self.retry_config,
            )

        try:
            run_claimed(len(pieces), copy_part, COPY_PARALLEL)
            upload.commit()
        except BaseException:
            upload.abort()
            raise
        return source.size

    def delete_many(self, uris: Sequence[ObjectURI]) -> list[tuple[ObjectURI, Exception]]:
        """DeleteObjects, 1,000 keys per request (keys already gone count as deleted)."""
        failed: list[tuple[ObjectURI, Exception]] = []
        groups: dict[tuple[str | None, str], list[ObjectURI]] = {}
        for uri in uris:
            groups.setdefault((uri.endpoint, uri.bucket), []).append(uri)
        for group in groups.values():
            for start in range(0, len(group), DELETE_BATCH):
                batch = group[start : start + DELETE_BATCH]
                request = {"Objects": [{"Key": u.key} for u in batch], "Quiet": True}
                answer = self._control(
                    batch[0],
                    "DELETE",
                    functools.partial(_delete_objects, bucket=batch[0].bucket, request=request),
                )
                by_key = {u.key: u for u in batch}
                for error in answer.get("Errors", ()):
                    uri = by_key.get(error.get("Key", ""), batch[0])
                    exc = error_for_status(
                        None, error.get("Code"), error.get("Message", ""), uri, "DELETE"
                    )
                    failed.append((uri, exc))
        return failed

    # -- buckets -----------------------------------------------------------------------------
    def list_incomplete(self, prefix: ObjectURI) -> list[ObjectURI]:
        """Keys below ``prefix`` with a multipart upload still open."""
        return [upload.uri for upload in self._open_uploads(prefix)]

    def discard_incomplete(self, prefix: ObjectURI) -> int:
        """Abort the multipart uploads still open below ``prefix`` (a killed writer's parts,
        which S3 keeps, and bills, until aborted). Returns how many were aborted."""
        uploads = list(self._open_uploads(prefix))
        for upload in uploads:
            upload.abort()
        return len(uploads)

    def _open_uploads(self, prefix: ObjectURI) -> Iterator[S3Upload]:
        """The multipart uploads begun and neither completed nor aborted below ``prefix``."""
        params: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key}
        while True:
            page = self._control(
                prefix, "LIST_UPLOADS", lambda c: c.list_multipart_uploads(**params)
            )
            for upload in page.get("Uploads", ()):
                yield S3Upload(self, prefix.with_key(upload["Key"]), upload["UploadId"])
            if not page.get("IsTruncated"):
                return
            params["KeyMarker"] = page.get("NextKeyMarker", "")
            params["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def create_bucket(self, uri: ObjectURI) -> None:
        """Create the bucket (in the configured region); one we already own is fine."""
        region = self._state().service(uri).region
        kwargs: dict[str, Any] = {"Bucket": uri.bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._control(
            uri.with_key(""),
            "CREATE_BUCKET",
            lambda c: c.create_bucket(**kwargs),
            accept=("BucketAlreadyOwnedByYou",),
        )

    def delete_bucket(self, uri: ObjectURI) -> None:
        self._control(
            uri.with_key(""), "DELETE_BUCKET", lambda c: c.delete_bucket(Bucket=uri.bucket)
        )

    def list_containers(self, uri: ObjectURI) -> list[ObjectURI]:
        """Every bucket the credentials own on ``uri``'s endpoint."""
        names: list[str] = []
        kwargs: dict[str, Any] = {}
        while True:
            answer = self._control(
                uri.with_key(""), "LIST_BUCKETS", lambda c: c.list_buckets(**kwargs)
            )
            names += [bucket["Name"] for bucket in answer.get("Buckets", ())]
            token = answer.get("ContinuationToken")
            if not token:
                break
            kwargs["ContinuationToken"] = token
        return [ObjectURI("s3", name, "", endpoint=uri.endpoint) for name in sorted(names)]

    def bucket_exists(self, uri: ObjectURI) -> bool:
        try:
            self._control(
                uri.with_key(""), "HEAD_BUCKET", lambda c: c.head_bucket(Bucket=uri.bucket)
            )
        except NotFoundError:
            return False
        except PermissionDeniedError:
            return True  # it exists, it is just not ours to read
        return True
