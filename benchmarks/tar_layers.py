"""CPU per WebDataset sample of the tar readers, from bytes in memory (no I/O).

    .venv/bin/python benchmarks/tar_layers.py [--rounds 9] [--samples 20000]

Writes ``--samples`` samples (a 4,000-byte ``jpg`` and an integer ``cls``, as the streaming
suite's) into ~32 MiB tar shards with :class:`~s3dlio.formats.shards.ShardWriter`, holds them in
8 MiB parts (the dataset's default ``part_size``, with its 64 KiB headroom), then runs each
variant once per round, interleaved, and prints the median CPU time (``time.process_time``)
per sample:

- ``bare loop``: the floor of any Python reader: the samples' dicts built from offsets known in
  advance (each file's bytes copied out once, nothing parsed or checked);
- ``iter_samples``: ours, the path ``StreamingDataset(format="webdataset")`` takes;
- ``iter_members + group_samples``: ours, the member-level API;
- ``webdataset (tarfile)``: the ``webdataset`` package's own stages (``tar_file_expander`` +
  ``group_by_keys``, Python's ``tarfile``) over the same bytes;
- ``StreamingDataset file://``: the whole dataset over the shards on local disk.

Not part of ``make bench``: a diagnostic for ``docs/performance.md`` ("Streaming shard
datasets").
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3dlio.datasets.shardio import HEADROOM  # noqa: E402
from s3dlio.datasets.streaming import StreamingDataset  # noqa: E402
from s3dlio.formats.blocks import Window  # noqa: E402
from s3dlio.formats.shards import ShardWriter  # noqa: E402
from s3dlio.formats.tar import group_samples, iter_members, iter_samples  # noqa: E402

SAMPLE = 4000
PART = 8 << 20


def write(top: Path, count: int) -> list[Path]:
    """``count`` samples in ~32 MiB tar shards under ``top``."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, SAMPLE + 4096, dtype=np.uint8).tobytes()
    with ShardWriter(f"file://{top}/train-%05d.tar", max_size=32 << 20) as sink:
        for i in range(count):
            sink.write(
                {"__key__": f"s{i:08d}", "jpg": base[i % 4096 : i % 4096 + SAMPLE], "cls": i}
            )
    return [Path(uri[len("file://") :]) for uri in sink.shards]


def parts(blob: bytes) -> list[Window]:
    """``blob`` as the dataset's part buffers: ``PART`` bytes after ``HEADROOM`` free ones."""
    out: list[Window] = []
    for at in range(0, len(blob), PART):
        chunk = blob[at : at + PART]
        buf = bytearray(HEADROOM + len(chunk))
        buf[HEADROOM:] = chunk
        out.append((buf, HEADROOM, HEADROOM + len(chunk)))
    return out


def variants(paths: list[Path]) -> dict[str, Callable[[], int]]:
    """The loops to time; each returns the samples it read."""
    blobs = [p.read_bytes() for p in paths]
    windows = [parts(b) for b in blobs]
    urls = [str(p) for p in paths]
    layout = []  # (key, (jpg start, end), (cls start, end)) of each sample: the bare loop's input
    for blob, url in zip(blobs, urls, strict=True):
        spans = [
            (m.name, m.offset + 512, m.offset + 512 + len(m.data))
            for m in iter_members(parts(blob), uri=url)
        ]
        layout.append(
            [(a[0][:-4], a[1:], b[1:]) for a, b in zip(spans[::2], spans[1::2], strict=True)]
        )

    def bare_loop() -> int:
        n = 0
        for blob, url, samples in zip(blobs, urls, layout, strict=True):
            view = memoryview(blob)
            for key, (a, b), (c, d) in samples:
                sample = {
                    "__key__": key,
                    "__url__": url,
                    "jpg": bytes(view[a:b]),
                    "cls": bytes(view[c:d]),
                }
                n += sample is not None
        return n

    def ours_samples() -> int:
        n = 0
        for ws, url in zip(windows, urls, strict=True):
            for _ in iter_samples(iter(ws), uri=url):
                n += 1
        return n

    def ours_members() -> int:
        n = 0
        for ws, url in zip(windows, urls, strict=True):
            for _ in group_samples(iter_members(iter(ws), uri=url), url=url):
                n += 1
        return n

    def webdataset_tarfile() -> int:
        from webdataset.tariterators import group_by_keys, tar_file_expander

        n = 0
        for blob, url in zip(blobs, urls, strict=True):
            source = [{"stream": io.BytesIO(blob), "url": url}]
            for _ in group_by_keys(tar_file_expander(source)):
                n += 1
        return n

    dataset = StreamingDataset([f"file://{p}" for p in paths], format="webdataset")

    def ours_dataset() -> int:
        return sum(1 for _ in dataset)

    return {
        "bare loop (dicts from known offsets)": bare_loop,
        "ours iter_samples": ours_samples,
        "ours iter_members + group_samples": ours_members,
        "webdataset (tarfile)": webdataset_tarfile,
        "ours StreamingDataset file://": ours_dataset,
    }


def rounds(loops: dict[str, Callable[[], int]], count: int, n: int) -> Iterator[tuple[str, float]]:
    """Median CPU µs per sample of each loop over ``n`` interleaved rounds (after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(n + 1):
        for name, loop in loops.items():
            start = time.process_time()
            got = loop()
            spent = time.process_time() - start
            if got != count:
                raise SystemExit(f"{name}: {got} samples, expected {count}")
            if r:
                times[name].append(spent)
    for name, spent in times.items():
        yield name, statistics.median(spent) * 1e6 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tar-layers-") as top:
        loops = variants(write(Path(top), args.samples))
        results = list(rounds(loops, args.samples, args.rounds))
    floor = results[0][1]
    print(
        f"{args.samples:,} samples of {SAMPLE:,} B + cls, {args.rounds} rounds, median CPU per sample"
    )
    for name, us in results:
        print(f"  {name:40s} {us:6.2f} µs  ({us / floor:4.1f}x the bare loop)")


if __name__ == "__main__":
    main()
