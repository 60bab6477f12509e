"""The same code on every backend: write, list, read (range-split when large) and delete.

    python examples/backends.py                     # file:// and direct:// in a temp dir
    python examples/backends.py s3://b/p/ az://devstoreaccount1/c/p/ gs://b/p/

For the emulators, set AWS_ENDPOINT_URL (moto), AZURE_STORAGE_CONNECTION_STRING (Azurite) and
STORAGE_EMULATOR_HOST (fake-gcs-server) as the README shows.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time

import s3dlio


def round_trip(root: str) -> None:
    """Write 16 small objects and one 40 MiB object under ``root``, read them back, clean up."""
    small = [(f"{root}small/{i:02d}", s3dlio.generate_data(64 << 10, seed=i)) for i in range(16)]
    s3dlio.put_many(small)
    big = s3dlio.generate_data("40MiB", seed=99)
    with s3dlio.open_writer(root + "big.bin") as writer:  # multipart / blocks / resumable
        for offset in range(0, len(big), 8 << 20):
            writer.write(memoryview(big)[offset : offset + (8 << 20)])
    started = time.perf_counter()
    assert s3dlio.get(root + "big.bin") == big  # split into concurrent ranges above 32 MiB
    seconds = time.perf_counter() - started
    got = s3dlio.get_many([uri for uri, _ in small])
    assert all(data == src for (_, data), (_, src) in zip(got, small, strict=True))
    listed = s3dlio.list(root, recursive=True)
    s3dlio.delete(root, recursive=True)
    print(f"{root:<45} {len(listed)} objects; 40 MiB read in {seconds * 1000:.0f} ms")


def main() -> None:
    """Run on each URI given, or on file:// and direct:// temp directories."""
    roots = [r.rstrip("/") + "/" for r in sys.argv[1:]]
    if roots:
        for root in roots:
            round_trip(root)
        return
    base = tempfile.mkdtemp(prefix="s3dlio-backends-", dir="/tmp")
    try:
        round_trip(f"file://{base}/f/")
        round_trip(f"direct://{base}/d/")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
