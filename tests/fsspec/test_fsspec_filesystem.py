"""S3dlioFileSystem beyond fsspec's abstract suite: listings, reads, writes, options, register.

Runs on real servers (moto, Azurite, fake-gcs-server) and on file://.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import uuid
from typing import Any

import fsspec
import pytest
from fsspec.registry import _registry

import s3dlio
from s3dlio.errors import InvalidArgumentError, IsDirectoryError, NotFoundError
from s3dlio.fsspec import S3dlioFileSystem, register, registered_protocols
from s3dlio.io.backends.file import FileStore
from s3dlio.io.oplog import read_op_log
from s3dlio.io.store import ReadStream, register_backend
from s3dlio.io.uri import ObjectURI

REMOTE = ["s3", "az", "gs"]


@pytest.fixture(params=["file", *REMOTE])
def root(request: pytest.FixtureRequest) -> str:
    """A fresh prefix on each backend, without the trailing ``/`` (fsspec style)."""
    return request.getfixturevalue(f"{request.param}_root").rstrip("/")


@pytest.fixture
def fs() -> S3dlioFileSystem:
    return S3dlioFileSystem(skip_instance_cache=True)


@pytest.fixture
def restore_registry() -> Any:
    """Put fsspec's registry back as it was after a test that calls ``register``."""
    before = dict(_registry)
    yield
    _registry.clear()
    _registry.update(before)


def make_tree(fs: S3dlioFileSystem, root: str) -> None:
    fs.pipe({f"{root}/a.bin": b"A" * 10, f"{root}/d/b.bin": b"BB", f"{root}/d/e/c.bin": b"C"})


# -- metadata -------------------------------------------------------------------------------------


def test_ls_info_find_glob(fs: S3dlioFileSystem, root: str) -> None:
    make_tree(fs, root)
    assert fs.ls(root, detail=False) == [f"{root}/a.bin", f"{root}/d"]
    entries = {e["name"]: e for e in fs.ls(root + "/")}
    assert entries[f"{root}/a.bin"]["type"] == "file"
    assert entries[f"{root}/a.bin"]["size"] == 10
    assert entries[f"{root}/a.bin"]["etag"]
    assert entries[f"{root}/d"]["type"] == "directory"

    assert fs.info(f"{root}/d")["type"] == "directory"
    assert fs.info(f"{root}/d/")["name"] == f"{root}/d"
    assert fs.info(f"{root}/d/b.bin")["size"] == 2
    assert fs.isdir(f"{root}/d/e") and fs.isfile(f"{root}/d/e/c.bin")
    assert not fs.isdir(f"{root}/a.bin")
    assert fs.ls(f"{root}/a.bin", detail=False) == [f"{root}/a.bin"]

    assert fs.find(root) == [f"{root}/a.bin", f"{root}/d/b.bin", f"{root}/d/e/c.bin"]
    assert fs.find(root, withdirs=True) == [
        root,
        f"{root}/a.bin",
        f"{root}/d",
        f"{root}/d/b.bin",
        f"{root}/d/e",
        f"{root}/d/e/c.bin",
    ]
    assert fs.find(root, maxdepth=1) == [f"{root}/a.bin"]
    assert fs.glob(f"{root}/**/*.bin") == [
        f"{root}/a.bin",
        f"{root}/d/b.bin",
        f"{root}/d/e/c.bin",
    ]
    assert fs.glob(f"{root}/d/*") == [f"{root}/d/b.bin", f"{root}/d/e"]
    assert fs.du(root) == 13
    assert fs.exists(f"{root}/d") and not fs.exists(f"{root}/dd")


def test_missing_paths_raise_file_not_found(fs: S3dlioFileSystem, root: str) -> None:
    missing = f"{root}/nothing/here.bin"
    for call in (fs.info, fs.cat_file, fs.ls, fs.rm_file, fs.open, fs.modified):
        with pytest.raises(FileNotFoundError) as info:
            call(missing)
        assert isinstance(info.value, NotFoundError), call
        assert "nothing/here.bin" in str(info.value)
    with pytest.raises(FileNotFoundError):
        fs.rm(missing, recursive=True)
    assert fs.find(missing) == []
    assert fs.glob(f"{root}/nothing/*") == []


def test_etag_based_keys_and_modified(fs: S3dlioFileSystem, root: str) -> None:
    path = f"{root}/k.bin"
    fs.pipe_file(path, b"one")
    key, checksum = fs.ukey(path), fs.checksum(path)
    assert key == fs.ukey(path)
    assert fs.modified(path).tzinfo is not None
    fs.pipe_file(path, b"two, longer")
    assert fs.ukey(path) != key
    assert fs.checksum(path) != checksum


def test_bucket_root_is_a_directory_and_mkdir_creates_buckets(moto_s3: Any) -> None:
    fs = S3dlioFileSystem(skip_instance_cache=True)
    bucket = f"s3://fsspec-{uuid.uuid4().hex[:8]}"
    assert not fs.exists(bucket)
    fs.mkdir(bucket)
    assert fs.isdir(bucket) and fs.ls(bucket) == []
    fs.mkdir(bucket + "/inside/a/bucket")  # s3fs semantics: nothing to create
    assert fs.ls(bucket) == []
    fs.pipe_file(bucket + "/x", b"1")
    assert fs.ls(bucket, detail=False) == [bucket + "/x"]
    fs.rm(bucket + "/x")
    fs.rmdir(bucket)
    assert not fs.exists(bucket)


def test_local_directories_are_real(fs: S3dlioFileSystem, tmp_path: Any) -> None:
    root = f"file://{tmp_path}"
    fs.makedirs(f"{root}/x/y")
    assert os.path.isdir(tmp_path / "x" / "y")
    with pytest.raises(FileExistsError):
        fs.mkdir(f"{root}/x")
    assert fs.ls(f"{root}/x", detail=False) == [f"{root}/x/y"]
    fs.rmdir(f"{root}/x/y")
    assert not os.path.exists(tmp_path / "x" / "y")
    with pytest.raises(IsDirectoryError):
        fs.open(f"{root}/x", "rb")


# -- reads ----------------------------------------------------------------------------------------


def test_random_reads_fetch_only_what_is_read(fs: S3dlioFileSystem, root: str) -> None:
    data = os.urandom(3 * 1024 * 1024)
    path = f"{root}/big.bin"
    fs.pipe_file(path, data)
    with fs.open(path, "rb") as f:
        assert f.size == len(data) and f.path == path
        f.seek(2_000_000)
        assert f.read(100) == data[2_000_000:2_000_100]
        f.seek(-50, os.SEEK_END)
        assert f.read() == data[-50:]
        f.seek(10)
        assert bytes(f.read_buffer(1000)) == data[10:1010]
        assert f.tell() == 1010
        assert f.bytes_fetched < len(data) // 4  # blocks, not the object
    assert fs.cat_file(path, 5, 25) == data[5:25]
    assert fs.cat_file(path, -10) == data[-10:]
    assert fs.cat_file(path, 100, -100) == data[100:-100]
    assert fs.cat_file(path) == data
    assert fs.head(path, 7) == data[:7] and fs.tail(path, 7) == data[-7:]
    with fs.open(path, "r", encoding="latin-1") as text:
        assert text.read(5) == data[:5].decode("latin-1")


def test_cat_ranges_and_cat(fs: S3dlioFileSystem, root: str) -> None:
    blob = bytes(range(256)) * 40
    fs.pipe({f"{root}/r{i}": blob for i in range(4)})
    paths = [f"{root}/r{i % 4}" for i in range(12)] + [f"{root}/missing"]
    starts = [i * 100 for i in range(12)] + [0]
    ends = [i * 100 + 50 for i in range(12)] + [10]
    out = fs.cat_ranges(paths, starts, ends)
    assert out[:12] == [blob[s:e] for s, e in zip(starts[:12], ends[:12], strict=True)]
    assert isinstance(out[12], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges(paths, starts, ends, on_error="raise")
    assert fs.cat(f"{root}/r*") == {f"{root}/r{i}": blob for i in range(4)}


class GateStore(FileStore):
    """The file backend, where every read request waits until ``parties`` are in flight at
    once (a barrier with a timeout): serial reads fail instead of passing."""

    scheme = "gatefile"
    local = True
    barrier: threading.Barrier | None = None

    def local_path(self, uri: ObjectURI) -> str | None:
        return None  # every read is a request through open_read

    def open_read(self, uri: ObjectURI, offset: int = 0, length: int | None = None, **kw: Any):
        if GateStore.barrier is not None:
            GateStore.barrier.wait()
        stream: ReadStream = super().open_read(uri, offset, length, **kw)
        return stream


def test_cat_ranges_runs_concurrently(tmp_path: Any) -> None:
    register_backend("gatefile", GateStore)
    (tmp_path / "obj").write_bytes(bytes(range(200)))
    fs = S3dlioFileSystem(skip_instance_cache=True, max_in_flight=8)
    GateStore.barrier = threading.Barrier(4, timeout=10)
    try:
        out = fs.cat_ranges([f"gatefile://{tmp_path}/obj"] * 8, list(range(8)), list(range(1, 9)))
    finally:
        GateStore.barrier = None
    assert out == [bytes([i]) for i in range(8)]


# -- writes ---------------------------------------------------------------------------------------


def test_writes_are_atomic(fs: S3dlioFileSystem, root: str) -> None:
    path = f"{root}/w.bin"
    f = fs.open(path, "wb")
    f.write(b"x" * 1000)
    assert not fs.exists(path)
    f.close()
    assert fs.cat_file(path) == b"x" * 1000

    with pytest.raises(RuntimeError), fs.open(f"{root}/broken.bin", "wb") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert not fs.exists(f"{root}/broken.bin")

    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with pytest.raises(NotImplementedError):
        fs.open(path, "ab")
    with fs.open(f"{root}/t.txt", "w") as text:
        text.write("héllo\n")
    assert fs.cat_file(f"{root}/t.txt") == "héllo\n".encode()


def test_transaction_commits_at_the_end_and_discards_on_error(fs: S3dlioFileSystem, root: str):
    with fs.transaction:
        with fs.open(f"{root}/t1", "wb") as f:
            f.write(b"1")
        assert not fs.exists(f"{root}/t1")
    assert fs.cat_file(f"{root}/t1") == b"1"
    with pytest.raises(RuntimeError), fs.transaction:
        with fs.open(f"{root}/t2", "wb") as f:
            f.write(b"2")
        raise RuntimeError("abandon")
    assert not fs.exists(f"{root}/t2")


def test_put_get_copy_move_remove(fs: S3dlioFileSystem, root: str, tmp_path: Any) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "f1").write_bytes(b"one")
    (tmp_path / "up" / "sub").mkdir()
    (tmp_path / "up" / "sub" / "f2").write_bytes(b"two")
    fs.put(str(tmp_path / "up"), f"{root}/up", recursive=True)
    assert fs.find(f"{root}/up") == [f"{root}/up/f1", f"{root}/up/sub/f2"]
    fs.get(f"{root}/up", str(tmp_path / "down"), recursive=True)
    assert (tmp_path / "down" / "sub" / "f2").read_bytes() == b"two"
    fs.cp_file(f"{root}/up/f1", f"{root}/copy")
    assert fs.cat_file(f"{root}/copy") == b"one"
    fs.mv(f"{root}/copy", f"{root}/moved")
    assert fs.cat_file(f"{root}/moved") == b"one" and not fs.exists(f"{root}/copy")
    fs.rm(f"{root}/up", recursive=True)
    assert not fs.exists(f"{root}/up")
    assert fs.find(root) == [f"{root}/moved"]


def test_copy_inside_s3_is_server_side(moto_s3: Any, s3_root: str, tmp_path: Any) -> None:
    fs = S3dlioFileSystem(skip_instance_cache=True)
    src, dst = f"{s3_root}src.bin", f"{s3_root}dst.bin"
    fs.pipe_file(src, b"s" * 4096)
    log = tmp_path / "ops.tsv"
    s3dlio.init_op_log(str(log))
    try:
        fs.cp_file(src, dst)
    finally:
        s3dlio.finalize_op_log()
    ops = [row["op"] for row in read_op_log(log)]
    assert "COPY" in ops and "GET" not in ops and "PUT" not in ops, ops
    assert fs.cat_file(dst) == b"s" * 4096


# -- options, pickling, registration --------------------------------------------------------------


def test_s3fs_style_storage_options_reach_the_client(moto_s3: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(moto_s3.port)
    fs = fsspec.filesystem(
        "s3dlio",
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": proxy.url, "region_name": "us-east-1"},
        skip_instance_cache=True,
    )
    config = fs.client.config
    assert (config.endpoint_url, config.region) == (proxy.url, "us-east-1")
    assert config.access_key_id == "testing"
    path = f"s3://{moto_s3.bucket}/{uuid.uuid4().hex}/via-proxy"
    fs.pipe_file(path, b"through the proxy")
    assert fs.cat_file(path) == b"through the proxy"
    assert proxy.requests_matching("PUT") and proxy.requests_matching("GET")

    native = S3dlioFileSystem(endpoint_url=proxy.url, region="us-east-1", skip_instance_cache=True)
    assert native.client.config.endpoint_url == proxy.url


def test_bad_storage_options_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match="requester_pays"):
        S3dlioFileSystem(requester_pays=True, skip_instance_cache=True)
    with pytest.raises(InvalidArgumentError, match="anon"):
        S3dlioFileSystem(anon=True, skip_instance_cache=True)
    with pytest.raises(InvalidArgumentError, match="config_kwargs|client_kwargs"):
        S3dlioFileSystem(client_kwargs={"config": 1}, skip_instance_cache=True)
    with s3dlio.Client() as client, pytest.raises(InvalidArgumentError, match="not both"):
        S3dlioFileSystem(client=client, region="x", skip_instance_cache=True)
    with pytest.raises(InvalidArgumentError, match="'http'"):
        register(["s3", "http"])


def test_pickles_as_its_storage_options(moto_s3: Any) -> None:
    fs = fsspec.filesystem("s3dlio", endpoint_url=moto_s3.url, region="us-east-1")
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.storage_options == fs.storage_options
    assert clone.client.config.endpoint_url == moto_s3.url
    with s3dlio.Client(endpoint_url=moto_s3.url) as client:
        with_client = S3dlioFileSystem(client=client, skip_instance_cache=True)
        copied = pickle.loads(pickle.dumps(with_client))
        assert copied.client is not client
        assert copied.client.config.endpoint_url == moto_s3.url
        copied.client.close()


def test_entry_point_and_unpickling_in_a_fresh_process(moto_s3: Any, s3_root: str) -> None:
    """A fresh interpreter finds the "s3dlio" protocol through the entry point, and unpickles
    a registered protocol's filesystem without calling register()."""
    register_fs = s3dlio.fsspec._protocol_class("s3")(
        endpoint_url=moto_s3.url, region="us-east-1", skip_instance_cache=True
    )
    register_fs.pipe_file(s3_root + "p.bin", b"pickled")
    code = (
        "import pickle, sys, fsspec\n"
        "cls = fsspec.get_filesystem_class('s3dlio')\n"
        "print(cls.__module__, cls.__name__)\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        f"print(type(fs).__name__, fs.cat_file({s3_root + 'p.bin'!r}).decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps(register_fs),
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.decode().split() == [
        "s3dlio.fsspec",
        "S3dlioFileSystem",
        "S3dlioFileSystem_s3",
        "pickled",
    ]


@pytest.mark.usefixtures("restore_registry")
def test_register_routes_plain_and_chained_urls(fs: S3dlioFileSystem, root: str) -> None:
    scheme = root.split("://")[0]
    protocols = ["s3", "gs", "gcs", "az"] if scheme != "file" else ["file"]
    register(protocols)
    assert set(protocols) <= set(registered_protocols())
    path = f"{root}/plain.txt"
    with fsspec.open(path, "wt") as f:
        f.write("plain url")
    routed, stripped = fsspec.core.url_to_fs(path)
    assert isinstance(routed, S3dlioFileSystem) and stripped == path
    assert fs.cat_file(path) == b"plain url"
    with fsspec.open(f"s3dlio::{path}", "rb") as f:
        assert f.read() == b"plain url"
    chained, chained_path = fsspec.core.url_to_fs(f"s3dlio::{path}")
    assert type(chained) is S3dlioFileSystem and chained_path == path
    if scheme != "file":  # bare bucket/key paths take the registered scheme
        bare = path.split("://", 1)[1]
        assert fsspec.filesystem(scheme).cat_file(bare) == b"plain url"
