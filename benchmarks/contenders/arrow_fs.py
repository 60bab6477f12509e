"""``pyarrow.parquet.read_table`` from S3 (nginx) through three filesystems: ours
(``s3dlio.fsspec.arrow_filesystem``), pyarrow's own ``S3FileSystem`` (C++ AWS SDK) and s3fs
(wrapped by pyarrow in ``PyFileSystem(FSSpecHandler(...))``, as pandas does).

Params: ``endpoint``, ``bucket``, ``key``, ``columns`` (names; ``None``: every column). Each
round reads the file (footer included) and returns the decoded bytes and rows.
"""

from __future__ import annotations

from _common import result

REGION = "us-east-1"
KEY, SECRET = "bench", "bench-secret"


def _reader(filesystem: object, path: str, columns: list[str] | None) -> object:
    import pyarrow.parquet as pq

    def run() -> dict:
        table = pq.read_table(path, filesystem=filesystem, columns=columns)
        return result(table.nbytes, table.num_rows)

    return run


def ours_arrow_fs(params: dict) -> object:
    """``pq.read_table("s3://bucket/key", filesystem=s3dlio.fsspec.arrow_filesystem(...))``."""
    from s3dlio.fsspec import arrow_filesystem

    fs = arrow_filesystem(
        endpoint_url=params["endpoint"], region=REGION, access_key_id=KEY, secret_access_key=SECRET
    )
    path = f"s3://{params['bucket']}/{params['key']}"
    return _reader(fs, path, params.get("columns"))


def pyarrow_s3fs(params: dict) -> object:
    """``pq.read_table("bucket/key", filesystem=pyarrow.fs.S3FileSystem(...))``."""
    from pyarrow import fs

    scheme, _, host = params["endpoint"].partition("://")
    s3 = fs.S3FileSystem(
        access_key=KEY,
        secret_key=SECRET,
        region=REGION,
        scheme=scheme,
        endpoint_override=host,
        force_virtual_addressing=False,
    )
    return _reader(s3, f"{params['bucket']}/{params['key']}", params.get("columns"))


def s3fs_fsspec(params: dict) -> object:
    """``pq.read_table("bucket/key", filesystem=s3fs.S3FileSystem(...))`` (default block size
    and cache; instance cache off so each process builds its own)."""
    import s3fs

    s3 = s3fs.S3FileSystem(
        key=KEY,
        secret=SECRET,
        client_kwargs={"endpoint_url": params["endpoint"], "region_name": REGION},
        skip_instance_cache=True,
    )
    return _reader(s3, f"{params['bucket']}/{params['key']}", params.get("columns"))
