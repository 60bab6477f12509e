"""Parquet over range requests: one column of one row group, the loader, the original's names.

python examples/parquet.py [URI_PREFIX]        (needs pyarrow: pip install 's3dlio[parquet]')
"""

from __future__ import annotations

import shutil
import sys
import tempfile

import pyarrow as pa

import s3dlio
from s3dlio.formats.parquet import ParquetObject, read_parquet


def show(root: str) -> None:
    """Write a few Parquet files under ``root`` and read parts of them back."""
    # 4 files of 8 float32 columns, 4 row groups of 65,536 rows (256 KiB per column chunk);
    # the streamed generator sends row groups as parts while the next is generated
    for i in range(4):
        s3dlio.generate_and_write_parquet_streaming(f"{root}train/part-{i}.parquet", 8, 65536, 4)
    uri = root + "train/part-0.parquet"
    print("row offsets:", s3dlio.parquet_rg_row_offsets(uri))

    # one column of one row group: the footer (cached now) and that chunk only
    obj = ParquetObject(uri)
    table = obj.read_row_group(2, ["col5"])
    size = s3dlio.stat(uri)["size"]
    print(
        f"row group 2, col5: {table.num_rows} rows; fetched {obj.stats.bytes_fetched:,} bytes "
        f"of a {size:,}-byte file in {obj.stats.requests} request(s)"
    )

    # the original's names: Arrow IPC bytes, or the raw column-chunk bytes
    ipc = s3dlio.parquet_get_rg(uri, 1, col_indices=[0, 3])
    print("parquet_get_rg ->", pa.ipc.open_stream(ipc).read_all().column_names)

    # every row group of every file, shuffled and sharded like any loader
    opts = {"format": "parquet", "decode": "numpy", "columns": ["col0"], "shuffle": True}
    with s3dlio.create_async_loader(root + "train/", opts) as loader:
        rows = sum(len(item.data["col0"]) for item in loader)
    print("loader:", len(loader), "row groups,", rows, "rows")
    print("read_parquet:", read_parquet(root + "train/", columns=["col1"]).num_rows, "rows")
    s3dlio.delete(root, recursive=True)


def main() -> None:
    """Run on ``sys.argv[1]`` or on a temp directory."""
    if len(sys.argv) > 1:
        show(sys.argv[1].rstrip("/") + "/")
        return
    base = tempfile.mkdtemp(prefix="s3dlio-parquet-")
    try:
        show(f"file://{base}/")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
