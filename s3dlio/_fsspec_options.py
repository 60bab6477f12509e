"""``storage_options`` of :class:`s3dlio.fsspec.S3dlioFileSystem`, mapped to a Client.

Users hand storage options to pandas, Dask and fsspec in the spellings of the filesystem they
know (s3fs: ``key``/``secret``/``token``/``client_kwargs={"endpoint_url": ...,
"region_name": ...}``; gcsfs: ``project``; adlfs: ``connection_string``/``account_name``/
``account_key``), or as :class:`s3dlio.Client` options. This module turns them into one of
each: the Client's options, the file options of ``open()``, and fsspec's own options (which the
filesystem passes on to fsspec). Anything else is refused by name, so a typo is an error and not
a silently ignored setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InvalidArgumentError
from .io.client_config import ClientConfig
from .io.config import parse_size

__all__ = ["FsOptions", "split_storage_options"]

#: Every option of :class:`s3dlio.Client`, taken as is.
CLIENT_OPTIONS = frozenset(f.name for f in fields(ClientConfig))

#: Other filesystems' spellings of Client options (s3fs, gcsfs, adlfs, botocore).
ALIASES = {
    "key": "access_key_id",
    "secret": "secret_access_key",
    "token": "session_token",
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "region_name": "region",
    "profile_name": "profile",
    "project": "gcs_project",
    "connection_string": "azure_connection_string",
    "account_name": "azure_account_name",
    "account_key": "azure_account_key",
}

#: Keys of s3fs's ``client_kwargs`` (botocore client arguments) that map to Client options.
CLIENT_KWARGS = {
    "endpoint_url": "endpoint_url",
    "region_name": "region",
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "verify": "ca_bundle",
}

#: fsspec's own options, passed to ``AbstractFileSystem.__init__``.
FSSPEC_OPTIONS = frozenset({"use_listings_cache", "listings_expiry_time", "max_paths"})

#: Options of the files ``open()`` returns, and of the filesystem's concurrency.
FILE_OPTIONS = frozenset(
    {"block_size", "cache_size", "max_readahead", "direct_threshold", "max_in_flight"}
)

#: Accepted when they ask for what we do anyway (the value listed), refused otherwise.
NEUTRAL = {"anon": False, "asynchronous": False, "use_ssl": True, "loop": None}


@dataclass
class FsOptions:
    """Storage options sorted by who uses them.

    Attributes:
        client: Options of the :class:`s3dlio.Client` to build (empty: the default client).
        files: ``block_size``/``cache_size``/``max_readahead``/``direct_threshold`` of the
            read files (:class:`~s3dlio.io.rangefile.RangeFile`) and ``max_in_flight``.
        fsspec: Options for fsspec's ``AbstractFileSystem``.
        target_protocol: The inner protocol of a chained URL (``s3dlio::s3://...``).
    """

    client: dict[str, Any] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    fsspec: dict[str, Any] = field(default_factory=dict)
    target_protocol: str | None = None


def split_storage_options(options: dict[str, Any]) -> FsOptions:
    """Sort ``options`` (the filesystem's keyword arguments) into :class:`FsOptions`.

    Raises:
        InvalidArgumentError: an unknown option, an option given twice under two names, or a
            value s3dlio cannot honour (``anon=True``, ``asynchronous=True``, ...), named.
    """
    out = FsOptions()

    def set_client(name: str, value: Any, spelled: str) -> None:
        if value is None:
            return
        if name in out.client and out.client[name] != value:
            raise InvalidArgumentError(
                f"storage option {spelled!r} repeats {name!r} with another value", op="FSSPEC"
            )
        out.client[name] = value

    for key, value in options.items():
        if key in CLIENT_OPTIONS:
            set_client(key, value, key)
        elif key in ALIASES:
            set_client(ALIASES[key], value, key)
        elif key == "client_kwargs":
            for inner, inner_value in (value or {}).items():
                if inner not in CLIENT_KWARGS:
                    raise InvalidArgumentError(
                        f"storage option client_kwargs[{inner!r}] is not supported by s3dlio "
                        f"(supported: {', '.join(sorted(CLIENT_KWARGS))})",
                        op="FSSPEC",
                    )
                if inner == "verify":
                    if inner_value is True or inner_value is None:
                        continue
                    if not isinstance(inner_value, str):
                        raise InvalidArgumentError(
                            "client_kwargs['verify'] must be True or a CA bundle path "
                            "(s3dlio always verifies TLS)",
                            op="FSSPEC",
                        )
                set_client(CLIENT_KWARGS[inner], inner_value, f"client_kwargs[{inner!r}]")
        elif key in FSSPEC_OPTIONS:
            out.fsspec[key] = value
        elif key in FILE_OPTIONS:
            if value is not None:
                out.files[key] = parse_size(value)
        elif key == "target_protocol":
            out.target_protocol = value
        elif key in ("target_options", "fo"):
            continue  # chained URLs: the inner bit's options and path (see the filesystem)
        elif key in NEUTRAL:
            if value != NEUTRAL[key] and value is not None:
                raise InvalidArgumentError(
                    f"storage option {key}={value!r} is not supported by s3dlio", op="FSSPEC"
                )
        else:
            raise InvalidArgumentError(
                f"unknown storage option {key!r} for the s3dlio filesystem (Client options, "
                "s3fs's key/secret/token/client_kwargs/endpoint_url, or "
                f"{', '.join(sorted(FILE_OPTIONS))})",
                op="FSSPEC",
            )
    if "max_in_flight" in out.files and out.files["max_in_flight"] < 1:
        raise InvalidArgumentError("storage option max_in_flight must be >= 1", op="FSSPEC")
    return out
