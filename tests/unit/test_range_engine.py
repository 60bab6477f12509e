"""RangeEngine: splitting, consistency and retries, on the local backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import s3dlio
from s3dlio import RangeEngineConfig
from s3dlio.io import range_engine
from s3dlio.io.config import Settings, reset_settings, settings
from s3dlio.io.store import backend_for
from s3dlio.io.uri import parse_uri
from tests.helpers import logged_ops


@pytest.fixture
def small_threshold():
    old = settings()
    reset_settings(Settings(range=RangeEngineConfig(threshold="1MiB", chunk_size="256KiB")))
    yield
    reset_settings(old)


def test_large_get_is_split(store_root: str, small_threshold: None, tmp_path: Path) -> None:
    data = s3dlio.generate_data(5 * 2**20 + 777, seed=3)
    s3dlio.put_bytes(store_root + "big", data)
    s3dlio.init_op_log(tmp_path / "ops.zst")
    got = s3dlio.get(store_root + "big")
    s3dlio.finalize_op_log()
    assert got == data
    ops = logged_ops(tmp_path / "ops.zst")
    # 1 MiB first request, then 4 MiB + 777 bytes in 256 KiB ranges
    assert ops.count("GET") == 1 and ops.count("GET_RANGE") == 17


def test_get_range_and_into_split(store_root: str, small_threshold: None) -> None:
    data = s3dlio.generate_data(4 * 2**20, seed=4)
    s3dlio.put_bytes(store_root + "big", data)
    assert s3dlio.get_range(store_root + "big", 1000, 3 * 2**20) == data[1000 : 1000 + 3 * 2**20]
    buf = bytearray(5 * 2**20)
    assert s3dlio.get_into(store_root + "big", buf) == len(data)
    assert buf[: len(data)] == data


def test_replaced_mid_read_fails(disk_dir: Path, small_threshold: None) -> None:
    uri = parse_uri(f"file://{disk_dir}/obj")
    s3dlio.put_bytes(str(uri), s3dlio.generate_data(3 * 2**20, seed=1))
    backend = backend_for(uri)
    first = backend.open_read(uri, 0, 2**20)
    s3dlio.put_bytes(str(uri), s3dlio.generate_data(3 * 2**20, seed=2))
    with pytest.raises(s3dlio.IntegrityError) as info:
        backend.open_read(uri, 2**20, 2**20, if_match=first.etag)
    first.close()
    assert str(uri) in str(info.value)
    with pytest.raises(s3dlio.IntegrityError):
        range_engine.fetch(backend, uri, 0, None, if_match=first.etag)


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_RANGE_THRESHOLD_MB", "8")
    monkeypatch.setenv("S3DLIO_RANGE_CONCURRENCY", "3")
    monkeypatch.setenv("S3DLIO_CHUNK_SIZE", "2MiB")
    cfg = RangeEngineConfig.from_env()
    assert (cfg.threshold, cfg.concurrency, cfg.chunk_size) == (8 * 2**20, 3, 2 * 2**20)
    assert cfg.concurrency_for(100 * 2**20, 2**20) == 3


def test_defaults() -> None:
    cfg = RangeEngineConfig()
    assert cfg.threshold_for(local=False) == 32 * 2**20
    assert cfg.threshold_for(local=True) == 64 * 2**20
    assert cfg.chunk_for(8 * 2**20, local=False) == 2**20
    assert cfg.chunk_for(100 * 2**20, local=False) == 4 * 2**20
    assert cfg.chunk_for(1 << 30, local=False) == 8 * 2**20
    assert cfg.chunk_for(160 * 2**20, local=True) == 10 * 2**20
    with pytest.raises(ValueError):
        RangeEngineConfig(chunk_size=100)


def test_parse_size() -> None:
    assert s3dlio.parse_size("20MiB") == 20 * 2**20
    assert s3dlio.parse_size("1.5 GB") == 1_500_000_000
    assert s3dlio.parse_size(4096) == 4096
    for bad in ("abc", "-1", "12 parsecs", -5):
        with pytest.raises(ValueError):
            s3dlio.parse_size(bad)  # type: ignore[arg-type]


def test_direct_unaligned_reads(disk_dir: Path) -> None:
    data = os.urandom(3 * 4096 + 123)
    s3dlio.put_bytes(f"direct://{disk_dir}/d.bin", data)
    assert os.path.getsize(disk_dir / "d.bin") == len(data)
    for offset, length in [(0, 1), (1, 4096), (4095, 2), (4096, 4096), (100, None), (12000, 500)]:
        end = None if length is None else offset + length
        assert s3dlio.get_range(f"direct://{disk_dir}/d.bin", offset, length) == data[offset:end]


def test_configure_changes_only_what_is_given(store_root: str, tmp_path: Path) -> None:
    old = settings()
    try:
        new = s3dlio.configure(range=RangeEngineConfig(threshold="1MiB", chunk_size="512KiB"))
        assert new.retry == old.retry and new.threads == old.threads
        data = s3dlio.generate_data(3 * 2**20, seed=5)
        s3dlio.put_bytes(store_root + "cfg", data)
        s3dlio.init_op_log(tmp_path / "ops.zst")
        assert s3dlio.get(store_root + "cfg") == data
        s3dlio.finalize_op_log()
        assert logged_ops(tmp_path / "ops.zst").count("GET_RANGE") == 4
        with pytest.raises(ValueError, match="unknown setting"):
            s3dlio.configure(threadz=3)
    finally:
        reset_settings(old)
