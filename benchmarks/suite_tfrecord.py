"""TFRecord reading: records/s and GB/s, CRC-verified and not, and ``tf.train.Example``
decoding, against the ``tfrecord`` package (whose iterator never checks CRCs) and the machine's
raw CRC32C speed on the same payloads. Files are local (``file://``), warm in the page cache;
ours reads them into buffers (the default) and through a mapping (``mmap=True``, verified only:
unverified, a mapped record is not even read until its consumer touches it). A last case has the
loop read every byte of each 1 MiB payload, as a consumer does, with the mapping unverified too.
"""

from __future__ import annotations

from collections.abc import Iterator

from .data import KiB, MiB, example_payloads, raw_payloads, write_tfrecord
from .harness import Case, Context, Target, limit, ours, peer

FILE = "tfrecord_read.py"
NEEDS = ("s3dlio.formats.tfrecord",)
PKG = ("tfrecord",)


def suite(ctx: Context) -> Iterator[Case]:
    """1 KiB Example records, then 1 MiB raw records."""
    small = ctx.workdir / "small.tfrecord"
    count = ctx.scale(100_000, 20_000)
    records, size = write_tfrecord(small, example_payloads(count, KiB - 24))
    p = str(small)
    yield Case(
        f"{records:,} records of ~1 KiB (tf.train.Example), iterate",
        "rec/s",
        [
            ours("ours verified", FILE, "ours_reader", needs=NEEDS, path=p, verify=True),
            ours("ours unverified", FILE, "ours_reader", needs=NEEDS, path=p, verify=False),
            ours(
                "ours verified, mmap",
                FILE,
                "ours_reader",
                needs=NEEDS,
                path=p,
                verify=True,
                mmap=True,
            ),
            peer("tfrecord pkg iterator (no CRC)", FILE, "package_iterator", needs=PKG, path=p),
            limit("crc32c per record (in memory)", FILE, "raw_crc32c", path=p),
        ],
        bytes=size,
        objects=records,
        targets=[
            Target("ours verified", "tfrecord pkg iterator (no CRC)", 1.4),
            Target("ours unverified", "tfrecord pkg iterator (no CRC)", 4.0),
        ],
    )
    yield Case(
        f"{records:,} records of ~1 KiB, decode tf.train.Example to NumPy",
        "rec/s",
        [
            ours("ours decode_example", FILE, "ours_examples", needs=NEEDS, path=p),
            peer("tfrecord pkg tfrecord_loader", FILE, "package_loader", needs=PKG, path=p),
        ],
        bytes=size,
        objects=records,
        targets=[Target("ours decode_example", "tfrecord pkg tfrecord_loader", 2.0)],
    )
    small.unlink()

    large = ctx.workdir / "large.tfrecord"
    records, size = write_tfrecord(large, raw_payloads(ctx.scale(1000, 128), MiB))
    p = str(large)
    yield Case(
        f"{records:,} records of 1 MiB, iterate",
        "GB/s",
        [
            ours("ours verified", FILE, "ours_reader", needs=NEEDS, path=p, verify=True),
            ours("ours unverified", FILE, "ours_reader", needs=NEEDS, path=p, verify=False),
            ours(
                "ours verified, mmap",
                FILE,
                "ours_reader",
                needs=NEEDS,
                path=p,
                verify=True,
                mmap=True,
            ),
            peer("tfrecord pkg iterator (no CRC)", FILE, "package_iterator", needs=PKG, path=p),
            limit("crc32c per record (in memory)", FILE, "raw_crc32c", path=p),
        ],
        bytes=size,
        objects=records,
        targets=[
            Target("ours verified", "crc32c per record (in memory)", 0.8),
            Target("ours verified, mmap", "crc32c per record (in memory)", 0.8),
            Target("ours unverified", "tfrecord pkg iterator (no CRC)", 1.0),
        ],
    )
    yield Case(
        f"{records:,} records of 1 MiB, iterate, the loop reading every payload byte once",
        "GB/s",
        [
            ours(
                "ours verified", FILE, "ours_reader", needs=NEEDS, path=p, verify=True, consume=True
            ),
            ours(
                "ours unverified",
                FILE,
                "ours_reader",
                needs=NEEDS,
                path=p,
                verify=False,
                consume=True,
            ),
            ours(
                "ours verified, mmap",
                FILE,
                "ours_reader",
                needs=NEEDS,
                path=p,
                verify=True,
                mmap=True,
                consume=True,
            ),
            ours(
                "ours unverified, mmap",
                FILE,
                "ours_reader",
                needs=NEEDS,
                path=p,
                verify=False,
                mmap=True,
                consume=True,
            ),
            peer(
                "tfrecord pkg iterator (no CRC)",
                FILE,
                "package_iterator",
                needs=PKG,
                path=p,
                consume=True,
            ),
        ],
        bytes=size,
        objects=records,
        targets=[Target("ours unverified, mmap", "tfrecord pkg iterator (no CRC)", 1.0)],
        note="The loop takes NumPy's max over each payload (~50 GB/s from cache), as a consumer "
        "decoding records reads them: a mapped record is then read from the page cache by the "
        "consumer instead of by a copy.",
    )
