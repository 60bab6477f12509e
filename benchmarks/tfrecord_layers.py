"""Where the default TFRecord reader's time goes on 1 MiB records, layer by layer.

    .venv/bin/python benchmarks/tfrecord_layers.py [--rounds 15] [--records 1000]

Writes a file of 1 MiB records, reads it back into the page cache (as an earlier epoch leaves
it), then runs each variant once per round, interleaved, and prints medians: GB/s and µs per
record. The variants peel the reader apart: a bare ``preadv`` loop, ``BlockSource`` alone, then
with the framing parser, then the payload generator, then the reader itself; the reader with
its per-read version ``stat`` answered from the first result (an experiment, not a mode);
``prefetch=True``; and the cost of handing work to another thread on this machine. Not part of
``make bench``: a diagnostic for ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.data import MiB, raw_payloads, write_tfrecord  # noqa: E402
from s3dlio.formats.blocks import BlockSource  # noqa: E402
from s3dlio.formats.framing import iter_payloads, scan_windows  # noqa: E402
from s3dlio.formats.tfrecord import TFRecordReader  # noqa: E402
from s3dlio.io import rangefile  # noqa: E402
from s3dlio.io.uri import parse_uri  # noqa: E402


def variants(path: Path) -> dict[str, Callable[[], None]]:
    """The loops to time, each reading every record of ``path`` once."""
    uri = parse_uri(f"file://{path}")

    def package() -> None:
        from tfrecord.reader import tfrecord_iterator

        for _ in tfrecord_iterator(str(path)):
            pass

    def bare_preadv() -> None:  # each read: a record's payload and footer, then the next header
        fd = os.open(path, os.O_RDONLY)
        try:
            size, offset = os.fstat(fd).st_size, 0
            buffers = [memoryview(bytearray(MiB + 4096)) for _ in range(2)]
            header: memoryview | bytearray = bytearray(12)
            os.preadv(fd, [header], 0)
            while offset < size:
                (length,) = struct.unpack_from("<Q", header)
                buf = buffers[offset // (length + 16) % 2]
                os.preadv(fd, [buf[: length + 16]], offset + 12)
                header = buf[length + 4 : length + 16]
                offset += length + 16
        finally:
            os.close(fd)

    def blocks() -> None:  # windows only; the consumer announces each next record by hand
        source = BlockSource(uri, block_size=MiB, announced=True)
        first = True
        for buf, lo, hi in source:
            if first:
                (length,) = struct.unpack_from("<Q", buf, lo)
                source.expect(length + 16 - (hi - lo) + 12, hi - lo)
                first = False
            else:
                (length,) = struct.unpack_from("<Q", buf, hi - 12)
                source.expect(length + 16, 12)

    def framing() -> None:
        source = BlockSource(uri, block_size=MiB, announced=True)
        for _ in scan_windows(
            source,
            uri=str(uri),
            check_header=False,
            limit=lambda: source.size,
            expect=source.expect,
        ):
            pass

    def payloads() -> None:
        source = BlockSource(uri, block_size=MiB, announced=True)
        for _ in iter_payloads(
            source, uri=str(uri), verify=False, limit=lambda: source.size, expect=source.expect
        ):
            pass

    def reader(**options: bool) -> Callable[[], None]:
        def run() -> None:
            for _ in TFRecordReader(uri, **options):
                pass

        return run

    def reader_without_stat() -> None:
        with _stat_answered_once(path):
            reader(verify=False)()

    return {
        "tfrecord package iterator": package,
        "bare preadv loop": bare_preadv,
        "BlockSource only": blocks,
        "+ framing (scan_windows)": framing,
        "+ payloads (iter_payloads)": payloads,
        "TFRecordReader unverified": reader(verify=False),
        "  the same, version stat answered": reader_without_stat,
        "TFRecordReader verified": reader(verify=True),
        "  the same, prefetch=True": reader(verify=True, prefetch=True),
    }


@contextmanager
def _stat_answered_once(path: Path) -> Iterator[None]:
    """``RangeReader``'s per-read ``os.stat`` answered with one earlier result (what the check
    costs; the reader would then miss a replaced file)."""
    first = os.stat(path)

    class _OS:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def stat(_path: str) -> os.stat_result:
            return first

    rangefile.os = _OS()  # type: ignore[assignment]
    try:
        yield
    finally:
        rangefile.os = os


def handoffs(n: int = 20_000) -> dict[str, float]:
    """µs per hand-off of work to another thread and back."""
    to_worker: queue.SimpleQueue[int] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        for _ in range(n):
            back.put(to_worker.get())

    worker = threading.Thread(target=echo)
    worker.start()
    start = time.perf_counter()
    for i in range(n):
        to_worker.put(i)
        back.get()
    simple = (time.perf_counter() - start) / n * 1e6
    worker.join()
    with ThreadPoolExecutor(1) as pool:
        start = time.perf_counter()
        for _ in range(n):
            pool.submit(int).result()
        futures = (time.perf_counter() - start) / n * 1e6
    return {"SimpleQueue round trip": simple, "ThreadPoolExecutor submit().result()": futures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("S3DLIO_TEST_DISK_DIR", "/tmp")) as d:
        path = Path(d) / "large.tfrecord"
        records, _ = write_tfrecord(path, raw_payloads(args.records, MiB))
        size = path.stat().st_size
        loops = variants(path)
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, loop in loops.items():
                start = time.perf_counter()
                loop()
                rates[name].append(size / (time.perf_counter() - start) / 1e9)
    print(
        f"{records:,} records of 1 MiB, medians of {args.rounds} interleaved rounds, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'loop':40s} {'GB/s':>7s} {'µs/record':>10s}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:40s} {rate:7.2f} {size / records / rate / 1e3:10.1f}")
    for name, micros in handoffs().items():
        print(f"{name:40s} {micros:18.1f} µs")


if __name__ == "__main__":
    main()
