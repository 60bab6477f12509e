"""Format readers over range requests: TFRecord (index, random access, Examples), NPZ, HDF5, raw.

python examples/formats.py [URI_PREFIX]
"""

from __future__ import annotations

import shutil
import sys
import tempfile

import numpy as np

import s3dlio
from s3dlio.formats.hdf5 import open_hdf5
from s3dlio.formats.raw import RawRecords
from s3dlio.formats.tfrecord import TFRecordReader, TFRecordWriter, decode_example


def show(root: str) -> None:
    """Write one object of each format under ``root`` and read parts of them back."""
    # TFRecord: write Examples, index them (DALI/tfrecord2idx format), read record 500 alone
    with TFRecordWriter(root + "train.tfrecord") as writer:
        for i in range(1000):
            writer.write_example({"label": i % 10, "feature": np.full(8, i, np.float32)})
    print("tfrecord index:", s3dlio.create_tfrecord_index(root + "train.tfrecord"), "records")
    reader = TFRecordReader(root + "train.tfrecord")
    example = decode_example(reader.read_record(500))  # one range GET
    print("record 500:", {k: v.tolist()[:3] for k, v in example.items()}, "of", len(reader))
    assert sum(1 for _ in reader) == 1000  # CRC32C verified while iterating
    if root.startswith("file://"):  # local files can also be read through a mapping: no copies
        assert sum(1 for _ in TFRecordReader(root + "train.tfrecord", mmap=True)) == 1000

    # NPZ: one member through the zip central directory
    s3dlio.put_bytes(root + "sample.npz", s3dlio.generate_npz_bytes([64, 64], "<f4", 4))
    x = s3dlio.read_npz(root + "sample.npz", "x")
    print("npz member x:", x.shape, x.dtype)

    # HDF5: write through a temp file + upload; read a slice fetching only its chunks
    with open_hdf5(root + "grid.h5", "w") as f:
        f.create_dataset(
            "grid", data=np.arange(1000 * 1000, dtype=np.int32).reshape(1000, 1000), chunks=(50, 50)
        )
    with open_hdf5(root + "grid.h5") as f:
        tile = f["grid"][100:110, 200:260]
        fetched = f.rangefile.bytes_fetched
    size = s3dlio.stat(root + "grid.h5")["size"]
    print(f"hdf5 slice {tile.shape}: fetched {fetched / 1e3:.0f} kB of a {size / 1e6:.1f} MB file")

    # raw fixed-size records
    s3dlio.put_bytes(root + "recs.bin", np.arange(4096, dtype=np.float32))
    recs = RawRecords(root + "recs.bin", record_size=64, dtype="<f4")
    print("raw record 3:", recs[3][:4], "of", len(recs))
    s3dlio.delete(root, recursive=True)


def main() -> None:
    """Run on ``sys.argv[1]`` or on a temp directory."""
    if len(sys.argv) > 1:
        show(sys.argv[1].rstrip("/") + "/")
        return
    base = tempfile.mkdtemp(prefix="s3dlio-formats-")
    try:
        show(f"file://{base}/")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
