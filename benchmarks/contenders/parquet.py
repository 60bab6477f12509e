"""Parquet reads from S3 (nginx): ours, the original's ``parquet_get_rg``, and pyarrow's own
``S3FileSystem`` (its C++ AWS SDK client).

Params: ``endpoint``, ``bucket``, ``key``, ``row_groups`` (indices read per round, in order),
``columns`` (names) / ``col_indices`` (their indices), ``whole`` (read every row group and
column in one call instead). Each round returns the decoded bytes (Arrow buffers, or IPC
bytes for ``parquet_get_rg``) and the row groups read.
"""

from __future__ import annotations

from _common import result

REGION = "us-east-1"


def _uri(params: dict) -> str:
    return f"s3://{params['bucket']}/{params['key']}"


def ours_read_row_group(params: dict) -> object:
    """``s3dlio.formats.parquet.read_row_group(uri, i, columns)`` -> ``pyarrow.Table``."""
    from s3dlio.formats.parquet import read_row_group

    uri, groups, cols = _uri(params), params["row_groups"], params["columns"]

    def run() -> dict:
        size = sum(read_row_group(uri, i, cols).nbytes for i in groups)
        return result(size, len(groups))

    return run


def s3dlio_parquet_get_rg(params: dict) -> object:
    """``s3dlio.parquet_get_rg(uri, i, col_indices)`` -> Arrow IPC bytes (ours or the
    original's, by venv; both keep the footer cached)."""
    import s3dlio

    uri, groups, cols = _uri(params), params["row_groups"], params["col_indices"]

    def run() -> dict:
        size = sum(len(s3dlio.parquet_get_rg(uri, i, cols)) for i in groups)
        return result(size, len(groups))

    return run


def _pyarrow_fs(params: dict) -> object:
    from pyarrow import fs

    scheme, _, host = params["endpoint"].partition("://")
    return fs.S3FileSystem(
        access_key="bench",
        secret_key="bench-secret",
        region=REGION,
        scheme=scheme,
        endpoint_override=host,
        force_virtual_addressing=False,
    )


def pyarrow_s3fs_row_groups(params: dict) -> object:
    """``pq.ParquetFile(S3FileSystem.open_input_file(...)).read_row_group(i, columns)``,
    the file opened once (its footer read once), as a training loop would."""
    import pyarrow.parquet as pq

    s3 = _pyarrow_fs(params)
    pfile = pq.ParquetFile(s3.open_input_file(f"{params['bucket']}/{params['key']}"))
    groups, cols = params["row_groups"], params["columns"]

    def run() -> dict:
        size = sum(pfile.read_row_group(i, columns=cols).nbytes for i in groups)
        return result(size, len(groups))

    return run


def ours_read_parquet(params: dict) -> object:
    """``s3dlio.read_parquet(uri)``: the whole file (footer cache cleared each round)."""
    import s3dlio

    uri = _uri(params)

    def run() -> dict:
        s3dlio.parquet_cache_clear()
        table = s3dlio.read_parquet(uri)
        return result(table.nbytes, table.num_rows)

    return run


def pyarrow_s3fs_read_table(params: dict) -> object:
    """``pq.read_table("bucket/key", filesystem=S3FileSystem(...))``: the whole file."""
    import pyarrow.parquet as pq

    s3 = _pyarrow_fs(params)
    path = f"{params['bucket']}/{params['key']}"

    def run() -> dict:
        table = pq.read_table(path, filesystem=s3)
        return result(table.nbytes, table.num_rows)

    return run
