"""Small helpers shared by the backend test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zstandard

import s3dlio
from s3dlio.errors import NotFoundError, S3DlioError
from s3dlio.io import oplog
from s3dlio.io.config import RetryConfig, Settings, reset_settings, settings
from s3dlio.io.store import backend_for, reset_backends
from s3dlio.io.uri import parse_uri

MiB = 1 << 20


def key_of(uri: str) -> str:
    """The object key (blob name) of ``uri``."""
    return parse_uri(uri).key


def random_payload(size: int, seed: int) -> bytes:
    """``size`` reproducible random bytes."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def log_rows(path: Path) -> list[list[str]]:
    """The lines of a zstd op-log after its header, split into columns."""
    with open(path, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    assert text.startswith(oplog.HEADER)
    return [line.split("\t") for line in text.splitlines()[1:]]


def logged_ops(path: Path) -> list[str]:
    """The operation column of each op-log line."""
    return [row[2] for row in log_rows(path)]


@contextmanager
def through_proxy(scheme: str, env: str, proxied: str, direct: str) -> Iterator[None]:
    """Point ``scheme``'s backend at a fault proxy by setting ``env`` to ``proxied``, with fast
    retries; afterwards set it back to ``direct`` (the server itself)."""
    old = settings()
    reset_settings(Settings(retry=RetryConfig(max_attempts=4, base_delay=0.001, max_delay=0.01)))
    os.environ[env] = proxied
    reset_backends()
    try:
        yield
    finally:
        backend_for(f"{scheme}://x/y").close()  # type: ignore[attr-defined]
        os.environ[env] = direct
        reset_backends()
        reset_settings(old)


def check_bucket_lifecycle(root: str, listing: str, not_empty: str = "not empty") -> None:
    """Create the bucket ``root`` (twice: idempotent), see it in ``list_containers(listing)``,
    refuse to delete it while it holds an object, delete it, and check it is gone."""
    s3dlio.create_bucket(root)
    s3dlio.create_bucket(root)
    assert root in s3dlio.list_containers(listing)
    assert backend_for(root).bucket_exists(parse_uri(root))
    s3dlio.put_bytes(root + "x", b"x")
    with pytest.raises(S3DlioError, match=not_empty):
        s3dlio.delete_bucket(root)
    s3dlio.delete(root + "x")
    s3dlio.delete_bucket(root)
    assert root not in s3dlio.list_containers(listing)
    assert not backend_for(root).bucket_exists(parse_uri(root))
    with pytest.raises(NotFoundError):
        s3dlio.get(root + "x")
    with pytest.raises(NotFoundError):
        s3dlio.delete_bucket(root)


def tfrecord_frame(payload: bytes) -> bytes:
    """``payload`` framed as one TFRecord record (header, data, data CRC)."""
    from s3dlio.formats.framing import frame_header, masked_crc

    return frame_header(len(payload)) + payload + masked_crc(payload).to_bytes(4, "little")


def write_tfrecord_file(path: Path, count: int = 400, size: int = 1000) -> list[bytes]:
    """Write ``count`` random records of ``size`` bytes to ``path``; return the payloads."""
    rng = np.random.default_rng(0)
    payloads = [rng.bytes(size) for _ in range(count)]
    path.write_bytes(b"".join(tfrecord_frame(p) for p in payloads))
    return payloads


def open_fds() -> set[str]:
    """The file descriptors this process has open."""
    return set(os.listdir("/proc/self/fd"))


def bump_mtime(path: Path) -> None:
    """Move ``path``'s modification time 1 ms forward (a change its version token sees)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def rewrite_in_place(path: Path, offset: int) -> None:
    """Overwrite 64 bytes of ``path`` at ``offset``: same size, same inode, new bytes."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    bump_mtime(path)
