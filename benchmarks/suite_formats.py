"""Formats: HDF5 dataset slices and NPZ members, through our range-read file objects.

The references read the same local file with h5py and ``np.load``; the ``s3://`` rows read the
same file from nginx on loopback (the original's ``read_npz`` works on ``s3://`` only).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .data import MiB
from .harness import Case, Context, ours, peer
from .servers import Nginx, nginx_binary, s3_env

FILE = "formats.py"
S3_NEEDS = ("s3dlio.io.backends.s3",)


def _hdf5(path, rows: int, cols: int, chunk_rows: int) -> None:
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", (rows, cols), dtype="f4", chunks=(chunk_rows, cols))
        block = rng.random((chunk_rows * 64, cols), dtype=np.float32)
        for start in range(0, rows, len(block)):
            ds[start : start + len(block)] = block[: rows - start]


def suite(ctx: Context) -> Iterator[Case]:
    """HDF5 slices (local file; s3:// too), then NPZ members (local file and s3://)."""
    bucket = ctx.workdir / "www" / "formats"
    bucket.mkdir(parents=True)
    nginx = ctx.stack.enter_context(Nginx(ctx.workdir / "www")) if nginx_binary() else None
    env = s3_env(nginx.endpoint) if nginx else {}

    rows, cols, chunk = ctx.scale(65536, 8192), 1024, 64
    h5 = bucket / "data.h5"
    _hdf5(h5, rows, cols, chunk)
    slices, per = ctx.scale(512, 64), 64
    common = {"dataset": "data", "slices": slices, "rows": per}
    contenders = [
        ours(
            "ours open_hdf5 file://",
            FILE,
            "ours_hdf5_slices",
            needs=("s3dlio.formats.hdf5",),
            uri=f"file://{h5}",
            **common,
        ),
        peer(
            "h5py local file",
            FILE,
            "h5py_slices",
            needs=("h5py",),
            venv="ours",
            path=str(h5),
            **common,
        ),
    ]
    if nginx:
        contenders.insert(
            1,
            ours(
                "ours open_hdf5 s3://",
                FILE,
                "ours_hdf5_slices",
                needs=("s3dlio.formats.hdf5", *S3_NEEDS),
                env=env,
                uri="s3://formats/data.h5",
                **common,
            ),
        )
    yield Case(
        f"HDF5: {slices} random slices of {per} x {cols} float32 rows "
        f"({rows * cols * 4 // MiB} MiB dataset, {chunk}-row chunks)",
        "slices/s",
        contenders,
        bytes=slices * per * cols * 4,
        objects=slices,
        note="h5py runs in our venv (the same h5py opens our file object); a slice spans two "
        "chunks at most. Files are warm in the page cache.",
    )

    member_bytes = ctx.scale(32, 2) * MiB
    members = {
        f"a{i}": np.random.default_rng(i).random(member_bytes // 4, dtype=np.float32)
        for i in range(8)
    }
    npz = bucket / "data.npz"
    np.savez(npz, **members)
    total = sum(a.nbytes for a in members.values())
    names = list(members)
    del members
    contenders = [
        ours(
            "ours read_npz file://",
            FILE,
            "read_npz",
            needs=("s3dlio.formats.npz",),
            uri=f"file://{npz}",
            members=names,
        ),
        peer(
            "numpy np.load local file", FILE, "numpy_npz", venv="ours", path=str(npz), members=names
        ),
    ]
    if nginx:
        contenders += [
            ours(
                "ours read_npz s3://",
                FILE,
                "read_npz",
                needs=("s3dlio.formats.npz", *S3_NEEDS),
                env=env,
                uri="s3://formats/data.npz",
                members=names,
            ),
            peer(
                "original read_npz s3://",
                FILE,
                "read_npz",
                needs=("s3dlio",),
                env=env,
                uri="s3://formats/data.npz",
                members=names,
            ),
        ]
    yield Case(
        f"NPZ: read each of {len(names)} members ({total // len(names) // MiB} MiB each)",
        "GB/s",
        contenders,
        bytes=total,
        objects=len(names),
    )
