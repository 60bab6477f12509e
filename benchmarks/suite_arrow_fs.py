"""pyarrow reading Parquet from S3 (nginx on loopback) through a filesystem object.

``pyarrow.parquet.read_table(path, filesystem=...)`` with ours
(``s3dlio.fsspec.arrow_filesystem()``: a ``PyFileSystem`` over our fsspec filesystem, reads
through RangeFile and the RangeEngine, zero-copy ``read_buffer``) against pyarrow's own
``S3FileSystem`` (C++ AWS SDK) and s3fs (aiobotocore, wrapped by pyarrow in
``PyFileSystem(FSSpecHandler)``: what pandas and Dask use for ``s3://`` by default). Target
(SPEC section 15, the whole-file Parquet read): >= 1.0x pyarrow's.
"""

from __future__ import annotations

from collections.abc import Iterator

from .data import MiB
from .harness import Case, Context, Target, ours, peer
from .servers import Nginx, nginx_binary, s3_env
from .suite_parquet import CHUNK_ROWS, COLUMNS, _write

FILE = "arrow_fs.py"
NEEDS = ("s3dlio.fsspec", "pyarrow.parquet")


def suite(ctx: Context) -> Iterator[Case]:
    """The whole file, then 2 of 8 columns, each a ``read_table`` per round."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed: run benchmarks/setup.sh")
    www = ctx.workdir / "www"
    (www / "pq").mkdir(parents=True)
    groups = ctx.scale(16, 4)
    _write(www / "pq" / "data.parquet", groups)
    nginx = ctx.stack.enter_context(Nginx(www))
    env = s3_env(nginx.endpoint)
    common = {"endpoint": nginx.endpoint, "bucket": "pq", "key": "data.parquet", "env": env}
    size = groups * COLUMNS * CHUNK_ROWS * 4

    for columns, label in ((None, f"all {COLUMNS} columns"), (["c1", "c5"], "2 columns")):
        picked = {"columns": columns}
        nbytes = size if columns is None else size * len(columns) // COLUMNS
        yield Case(
            f"pyarrow read_table through a filesystem: {groups} row groups, {label} "
            f"({nbytes // MiB} MiB of {size // MiB} MiB), s3:// (nginx)",
            "GB/s",
            [
                ours(
                    "ours arrow_filesystem", FILE, "ours_arrow_fs", needs=NEEDS, **common, **picked
                ),
                peer(
                    "pyarrow S3FileSystem",
                    FILE,
                    "pyarrow_s3fs",
                    needs=("pyarrow",),
                    **common,
                    **picked,
                ),
                peer("s3fs (fsspec)", FILE, "s3fs_fsspec", needs=("s3fs",), **common, **picked),
            ],
            bytes=nbytes,
            objects=groups * CHUNK_ROWS,
            targets=[
                Target("ours arrow_filesystem", "pyarrow S3FileSystem", 1.0),
                Target("ours arrow_filesystem", "s3fs (fsspec)", 1.0),
            ],
            note="Each round opens the file and reads its footer; pyarrow pre-buffers "
            "(coalesces) the column chunk ranges and reads them on its I/O threads, which call "
            "into Python for ours and s3fs (one PythonFile, its reads serialised by a lock).",
        )
