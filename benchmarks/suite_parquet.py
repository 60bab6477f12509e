"""Parquet from S3 (nginx on loopback): row groups of selected columns, and whole files.

Ours (footer in one suffix read and cached, chunks coalesced and fetched concurrently, pyarrow
decoding from our buffers) against pyarrow's own ``S3FileSystem`` (C++ AWS SDK) and the
original s3dlio's ``parquet_get_rg`` (Rust, Arrow IPC out). SPEC section 15 targets: one row
group of selected columns >= 1.0x both; whole-file read >= 1.0x pyarrow's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .data import MiB
from .harness import Case, Context, Target, ours, peer
from .servers import Nginx, nginx_binary, s3_env

FILE = "parquet.py"
NEEDS = ("s3dlio.io.backends.s3", "s3dlio.formats.parquet")
COLUMNS = 8
CHUNK_ROWS = 262_144  # 1 MiB of float32 per column chunk


def _write(path: object, row_groups: int) -> None:
    rng = np.random.default_rng(0)
    schema = pa.schema([pa.field(f"c{i}", pa.float32(), False) for i in range(COLUMNS)])
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False) as writer:  # type: ignore[arg-type]
        for _ in range(row_groups):
            cols = [pa.array(rng.random(CHUNK_ROWS, dtype=np.float32)) for _ in range(COLUMNS)]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))


def suite(ctx: Context) -> Iterator[Case]:
    """Row groups of 2 of 8 columns, one call each; then the whole file in one call."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed: run benchmarks/setup.sh")
    www = ctx.workdir / "www"
    (www / "pq").mkdir(parents=True)
    groups = ctx.scale(16, 4)
    _write(www / "pq" / "data.parquet", groups)
    nginx = ctx.stack.enter_context(Nginx(www))
    env = s3_env(nginx.endpoint)
    common = {"endpoint": nginx.endpoint, "bucket": "pq", "key": "data.parquet", "env": env}
    picked = {"columns": ["c1", "c5"], "col_indices": [1, 5], "row_groups": list(range(groups))}

    yield Case(
        f"Parquet: {groups} row groups x 2 of {COLUMNS} float32 columns (1 MiB chunks), "
        "one call per row group, s3:// (nginx)",
        "obj/s",
        [
            ours(
                "ours read_row_group", FILE, "ours_read_row_group", needs=NEEDS, **common, **picked
            ),
            ours(
                "ours parquet_get_rg (IPC)",
                FILE,
                "s3dlio_parquet_get_rg",
                needs=NEEDS,
                **common,
                **picked,
            ),
            peer(
                "original parquet_get_rg (IPC)",
                FILE,
                "s3dlio_parquet_get_rg",
                needs=("s3dlio",),
                **common,
                **picked,
            ),
            peer(
                "pyarrow S3FileSystem",
                FILE,
                "pyarrow_s3fs_row_groups",
                needs=("pyarrow",),
                **common,
                **picked,
            ),
        ],
        bytes=groups * 2 * CHUNK_ROWS * 4,
        objects=groups,
        targets=[
            Target("ours read_row_group", "pyarrow S3FileSystem", 1.0),
            Target("ours parquet_get_rg (IPC)", "original parquet_get_rg (IPC)", 1.0),
        ],
        note="Each contender keeps the footer after the first round (our cache, the original's "
        "cache, pyarrow's ParquetFile opened once); a row group is two 1 MiB ranges. "
        "parquet_get_rg also serialises the Arrow IPC stream it returns.",
    )

    yield Case(
        f"Parquet: whole file, {groups} row groups x {COLUMNS} columns "
        f"({groups * COLUMNS * CHUNK_ROWS * 4 // MiB} MiB), s3:// (nginx)",
        "GB/s",
        [
            ours("ours read_parquet", FILE, "ours_read_parquet", needs=NEEDS, **common),
            peer(
                "pyarrow read_table S3FileSystem",
                FILE,
                "pyarrow_s3fs_read_table",
                needs=("pyarrow",),
                **common,
            ),
        ],
        bytes=groups * COLUMNS * CHUNK_ROWS * 4,
        objects=groups * CHUNK_ROWS,
        targets=[Target("ours read_parquet", "pyarrow read_table S3FileSystem", 1.0)],
        note="Both read the footer every round (our footer cache is cleared) and decode every "
        "column; pyarrow's read_table pre-buffers (coalesces) ranges with its I/O threads.",
    )
