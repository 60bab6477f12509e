"""Run by test_crash.py: start saving a large checkpoint, say so mid-save, wait to be killed.

``python crash_child.py BASE_URI STEP``: saves a 24 MiB NumPy tree through the real
``CheckpointStore.save`` path. Once 12 MiB have gone into the shard writer (its first parts are
uploading) it prints ``MIDSAVE`` and blocks on stdin, which the test never writes: the test
then SIGKILLs it. No sleeps: the line on stdout is the synchronisation.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from s3dlio.checkpoint import CheckpointStore
from s3dlio.io.writer import ObjectWriter

ANNOUNCE_AFTER = 12 << 20


def main() -> None:
    base, step = sys.argv[1], int(sys.argv[2])
    original = ObjectWriter.write_borrowed

    def write_borrowed(self: ObjectWriter, data: Any) -> int:
        written = original(self, data)
        if self.bytes_written >= ANNOUNCE_AFTER:
            print("MIDSAVE", flush=True)
            sys.stdin.read()  # blocks until the test kills us
        return written

    ObjectWriter.write_borrowed = write_borrowed  # type: ignore[method-assign]
    tree = {f"layer{i}": np.full(1 << 20, i, dtype=np.float32) for i in range(6)}
    CheckpointStore(base, multipart_threshold="5MiB").save(step, 0, "numpy", tree)
    print("FINISHED", flush=True)


if __name__ == "__main__":
    main()
