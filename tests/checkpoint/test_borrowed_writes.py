"""ObjectWriter.write_borrowed (zero-copy parts from caller memory), on every backend."""

from __future__ import annotations

import crc32c
import numpy as np

import s3dlio
from s3dlio.io.writer import WriterOptions, open_writer

MiB = 1 << 20


def test_borrowed_and_copied_writes_mix(store_root: str) -> None:
    rng = np.random.default_rng(7)
    # write(1000) buffers; write_borrowed tops that part up, sends one 5 MiB part straight
    # from the array and buffers the rest; a borrowed write under a part size is a copy.
    pieces = [rng.integers(0, 255, n, dtype=np.uint8) for n in (1000, 10 * MiB + 3, 700, MiB)]
    writer = open_writer(store_root + "mixed.bin", WriterOptions(part_size="5MiB"))
    with writer:
        for i, piece in enumerate(pieces):
            (writer.write_borrowed if i % 2 else writer.write)(piece)
            assert writer.tell() == sum(len(p) for p in pieces[: i + 1])
    expected = b"".join(p.tobytes() for p in pieces)
    assert writer.finalize() == (len(expected), len(expected))
    assert writer.checksum() == f"crc32c:{crc32c.crc32c(expected):08x}"
    assert bytes(s3dlio.get(store_root + "mixed.bin")) == expected


def test_borrowed_writes_with_compression(store_root: str) -> None:
    data = np.tile(np.arange(4096, dtype=np.uint32), 768)  # 12 MiB, compressible
    writer = open_writer(store_root + "z.bin", WriterOptions(compression="zstd", part_size="5MiB"))
    with writer:
        writer.write(b"head")
        writer.write_borrowed(data)
    written, stored = writer.finalize()
    assert written == 4 + data.nbytes and stored < data.nbytes // 10
    assert s3dlio.exists(store_root + "z.bin.zst")
