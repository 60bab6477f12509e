"""``get_many`` of ``file://`` objects: read by the calling thread's share of workers without the
range engine, with the general path (retries, error mapping, op-log) for anything else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import s3dlio
from s3dlio.errors import BatchError, IsDirectoryError, NotFoundError
from s3dlio.io import transfer
from s3dlio.io.buffers import ALIGN, BytesView, buffer_address
from s3dlio.io.oplog import read_op_log


def _files(root: Path, sizes: list[int]) -> dict[str, bytes]:
    out = {}
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        path = root / f"f{i:03d}.bin"
        path.write_bytes(data)
        out[f"file://{path}"] = data
    return out


@pytest.mark.parametrize("max_in_flight", [1, 3, 64])
def test_contents_in_input_order(tmp_path: Path, max_in_flight: int) -> None:
    objects = _files(tmp_path, [0, 1, 4096, 300_000, 2_500_000] * 3)
    uris = list(reversed(objects))
    got = s3dlio.get_many(uris, max_in_flight=max_in_flight)
    assert [u for u, _ in got] == uris
    assert all(isinstance(data, BytesView) and data == objects[u] for u, data in got)
    large = dict(got)[uris[0]]  # 2.5 MB: a page-aligned buffer, as every GET allocates
    assert buffer_address(large) % ALIGN == 0


def test_failures_are_reported_per_object(tmp_path: Path) -> None:
    objects = _files(tmp_path, [10, 20])
    (tmp_path / "adir").mkdir()
    missing, directory = f"file://{tmp_path}/nope.bin", f"file://{tmp_path}/adir"
    with pytest.raises(BatchError) as caught:
        s3dlio.get_many([*objects, missing, directory])
    failures = dict(caught.value.failures)
    assert set(failures) == {missing, directory}
    assert isinstance(failures[missing], NotFoundError)
    assert isinstance(failures[directory], IsDirectoryError)
    assert caught.value.succeeded == 2
    assert {failures[u].uri for u in (missing, directory)} == {missing, directory}
    assert {failures[u].op for u in (missing, directory)} == {"GET"}


def test_buffers_outlive_the_batch_and_are_independent(tmp_path: Path) -> None:
    """Each object gets its own buffer: valid after the call, writable, not shared."""
    objects = _files(tmp_path, [128 * 1024] * 8)
    got = s3dlio.get_many(list(objects))
    for path in tmp_path.iterdir():
        path.unlink()
    got[0][1][:4] = b"XXXX"
    assert bytes(got[0][1][:4]) == b"XXXX"
    assert all(data == objects[u] for u, data in got[1:])
    assert len({buffer_address(data) for _, data in got}) == len(got)


def test_the_calling_thread_reads_on_two_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker per two CPUs: on two, no file is handed to the pool."""
    import threading

    objects = _files(tmp_path, [1000] * 6)
    seen: set[int] = set()
    real = transfer.BytesView.allocate

    def spy(size: int) -> BytesView:
        seen.add(threading.get_ident())
        return real(size)

    monkeypatch.setattr(transfer.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(transfer.BytesView, "allocate", staticmethod(spy))
    assert dict(s3dlio.get_many(list(objects))) == objects
    assert seen == {threading.get_ident()}


def test_op_log_records_every_read(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    objects = _files(tmp_path / "d", [5, 6, 7])
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(str(log))
    try:
        s3dlio.get_many(list(objects))
    finally:
        s3dlio.finalize_op_log()
    gets = [row for row in read_op_log(log) if row["op"] == "GET"]
    assert sorted(int(row["bytes"]) for row in gets) == [5, 6, 7]
    assert len(gets) == 3
