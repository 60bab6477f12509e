"""Record every storage request in a warp-compatible op-log, then read it back.

python examples/oplog.py [URI_PREFIX]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter

import s3dlio
from s3dlio.io.oplog import HEADER, read_op_log


def record(root: str, logdir: str) -> None:
    """Do a few operations under ``root`` with the op-log on; print what it recorded."""
    log = os.path.join(logdir, "ops.tsv.zst")
    s3dlio.init_op_log(log)
    s3dlio.put_many([(f"{root}obj-{i}", s3dlio.generate_data(4096)) for i in range(8)])
    s3dlio.get_many([f"{root}obj-{i}" for i in range(8)])
    s3dlio.stat(root + "obj-0")
    s3dlio.list(root)
    s3dlio.delete(root, recursive=True)
    print("live stats:", s3dlio.op_log_stats()["by_op"])
    s3dlio.finalize_op_log()
    rows = list(read_op_log(log))
    print("header:", HEADER.strip().replace("\t", " | "))
    first = rows[0]
    print("first row:", {k: first[k] for k in ("op", "bytes", "file", "start", "duration_ns")})
    print("by op:", dict(Counter(row["op"] for row in rows)))
    print(f"replay it elsewhere: s3-cli replay {log} --target {root}replayed/")


def main() -> None:
    """Run on ``sys.argv[1]`` or on a temp directory."""
    logdir = tempfile.mkdtemp(prefix="s3dlio-oplog-")
    base = None
    try:
        if len(sys.argv) > 1:
            record(sys.argv[1].rstrip("/") + "/", logdir)
        else:
            base = tempfile.mkdtemp(prefix="s3dlio-oplog-data-")
            record(f"file://{base}/", logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
        if base:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
