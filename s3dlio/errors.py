"""The one exception hierarchy of s3dlio.

Every error raised by the library derives from :class:`S3DlioError` and names the URI and the
operation that failed (and, where known, the byte range and how many attempts were made).
Errors that have a natural built-in counterpart also derive from it, so ``except
FileNotFoundError`` keeps working for users coming from local files.

Nothing outside a backend module ever sees a botocore, Azure or Google exception: each backend
maps its provider's errors onto these classes in one table.
"""

from __future__ import annotations

import re

__all__ = [
    "HTTP_STATUS_ERRORS",
    "ArgumentTypeError",
    "BatchError",
    "CancelledError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidURIError",
    "IsDirectoryError",
    "NotFoundError",
    "OperationTimeoutError",
    "PermissionDeniedError",
    "S3DlioError",
    "ThrottledError",
    "TransientError",
    "UnsupportedOperationError",
]


_SECRET_RE = re.compile(
    r"(?i)\b(sig|signature|accountkey|sharedaccesssignature|access_token|token|"
    r"x-amz-security-token|x-amz-signature|x-goog-signature|key)=([^&;\s'\"]+)"
)
_BEARER_RE = re.compile(r"(?i)\b(bearer|sharedkey)\s+[^\s'\"]+")


def redact(text: str) -> str:
    """``text`` with credential-looking values (signatures, account keys, tokens) masked.

    Backends pass provider messages through this before putting them in an error.
    """
    return _BEARER_RE.sub(r"\1 ***", _SECRET_RE.sub(r"\1=***", text))


class S3DlioError(Exception):
    """Base class of every error raised by s3dlio.

    Args:
        message: What went wrong, in words.
        uri: The object or prefix the operation was working on.
        op: The operation (``"GET"``, ``"PUT"``, ``"LIST"``, ...).
        byte_range: ``(offset, length)`` of a ranged operation, if any.
        attempts: How many attempts were made before giving up, if retried.
    """

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        op: str | None = None,
        byte_range: tuple[int, int | None] | None = None,
        attempts: int | None = None,
    ) -> None:
        self.message = message
        self.uri = uri
        self.op = op
        self.byte_range = byte_range
        self.attempts = attempts
        super().__init__(message)

    def __str__(self) -> str:
        parts = []
        if self.op:
            parts.append(self.op)
        if self.uri:
            parts.append(self.uri)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.byte_range is not None:
            offset, length = self.byte_range
            text += f" (bytes {offset}-{'' if length is None else offset + length - 1})"
        if self.attempts is not None and self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __reduce__(self) -> tuple[object, ...]:  # picklable across DataLoader workers
        return (
            _rebuild,
            (type(self), self.message, self.uri, self.op, self.byte_range, self.attempts),
        )

    def with_context(self, **fields: object) -> S3DlioError:
        """Fill in fields (``uri``, ``op``, ``byte_range``, ``attempts``) that are still unset.

        Returns:
            ``self``, for ``raise err.with_context(...)``.
        """
        for name, value in fields.items():
            if getattr(self, name, None) is None:
                setattr(self, name, value)
        return self


def _rebuild(
    cls: type[S3DlioError],
    message: str,
    uri: str | None,
    op: str | None,
    byte_range: tuple[int, int | None] | None,
    attempts: int | None,
) -> S3DlioError:
    err = cls.__new__(cls)
    S3DlioError.__init__(err, message, uri=uri, op=op, byte_range=byte_range, attempts=attempts)
    return err


class NotFoundError(S3DlioError, FileNotFoundError):
    """The object, bucket or container does not exist."""


class PermissionDeniedError(S3DlioError, PermissionError):
    """The credentials in use may not perform the operation."""


class InvalidArgumentError(S3DlioError, ValueError):
    """An argument, option or setting that is not valid (unknown name, wrong type or value)."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (a ``str`` where bytes are needed, ...); also a
    ``TypeError``, as Python code expects."""


class InvalidURIError(InvalidArgumentError):
    """A URI cannot be understood (bad scheme, bucket, key or endpoint)."""


class IsDirectoryError(S3DlioError, IsADirectoryError):
    """A single-object operation named a directory (prefix); ``recursive=True`` is needed."""


class TransientError(S3DlioError):
    """A fault that may pass: connection reset, timeout, truncated body, 5xx. Retried."""


class ThrottledError(TransientError):
    """The service asked us to slow down (S3 503 SlowDown, Azure ServerBusy, GCS 429). Retried."""


class IntegrityError(S3DlioError):
    """Data failed a check: CRC or length mismatch, or the object changed during a read."""


class CancelledError(S3DlioError):
    """The operation or loader was cancelled through a :class:`CancellationToken`."""


class OperationTimeoutError(S3DlioError, TimeoutError):
    """Nothing arrived within a configured time limit (e.g. a loader's ``timeout``)."""


class UnsupportedOperationError(S3DlioError, NotImplementedError):
    """The backend cannot perform this operation (e.g. buckets on ``file://``)."""


class BatchError(S3DlioError):
    """Some objects of a many-object operation failed; the others were done.

    Attributes:
        failures: ``(uri, exception)`` for each object that failed.
        succeeded: How many objects succeeded.
    """

    def __init__(
        self,
        op: str,
        *,
        failures: list[tuple[str, BaseException]],
        succeeded: int = 0,
    ) -> None:
        self.failures = failures
        self.succeeded = succeeded
        shown = "; ".join(f"{uri}: {exc}" for uri, exc in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        total = len(failures) + succeeded
        super().__init__(f"{len(failures)} of {total} objects failed: {shown}{more}", op=op)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_batch, (self.op, self.failures, self.succeeded))


def _rebuild_batch(
    op: str, failures: list[tuple[str, BaseException]], succeeded: int
) -> BatchError:
    return BatchError(op, failures=failures, succeeded=succeeded)


#: The error class of an HTTP status, shared by the HTTP backends (each adds its service's error
#: codes, which take precedence).
HTTP_STATUS_ERRORS: dict[int, type[S3DlioError]] = {
    401: PermissionDeniedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TransientError,
    412: IntegrityError,
    429: ThrottledError,
    500: TransientError,
    502: TransientError,
    503: ThrottledError,
    504: TransientError,
}
