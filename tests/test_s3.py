"""What only ``s3://`` has: cross-checks with plain boto3 on a moto server, multipart writers,
range-split reads with ``If-Match``, listings past one page, explicit-endpoint URIs, buckets,
the op-log, credentials kept out of errors and logs, and fork safety.

The backend-agnostic behaviour is in ``tests/contract/``; injected faults in ``test_faults.py``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crc32c
import pytest
import zstandard

import s3dlio
from s3dlio import IntegrityError, NotFoundError, PermissionDeniedError, RangeEngineConfig
from s3dlio.io.backends import s3 as s3mod
from s3dlio.io.buffers import buffer_address
from s3dlio.io.config import Settings, reset_settings, settings
from s3dlio.io.store import backend_for
from s3dlio.io.uri import parse_uri
from tests.helpers import MiB, check_bucket_lifecycle, key_of, log_rows, random_payload
from tests.servers.moto import MotoS3
from tests.servers.proxy import FaultProxy

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture(scope="module")
def boto(moto_s3: MotoS3) -> Any:
    """A plain boto3 client of the moto server."""
    return moto_s3.client()


@pytest.fixture
def split_at_8mib() -> Iterator[None]:
    """Split GETs above 8 MiB (the rest in 4 MiB ranges, the default for objects this size)."""
    old = settings()
    reset_settings(Settings(range=RangeEngineConfig(threshold="8MiB")))
    yield
    reset_settings(old)


@pytest.fixture
def proxied(moto_s3: MotoS3, fault_proxy: Callable[..., FaultProxy]) -> tuple[FaultProxy, str]:
    """A proxy in front of moto and a fresh prefix that reaches the session bucket through it."""
    proxy = fault_proxy(moto_s3.port)
    return proxy, f"s3://{proxy.endpoint}/{moto_s3.bucket}/{uuid.uuid4().hex[:12]}/"


# -- cross-checks with plain boto3 -------------------------------------------------------------


def test_what_we_write_boto3_reads(s3_root: str, moto_s3: MotoS3, boto: Any) -> None:
    small, big = random_payload(1000, 1), random_payload(6 * MiB + 7, 2)
    s3dlio.put_bytes(s3_root + "small.bin", small)
    opts = s3dlio.WriterOptions(
        part_size="5MiB", content_type="application/x-test", metadata={"Origin": "s3dlio"}
    )
    with s3dlio.open_writer(s3_root + "big.bin", opts) as writer:
        for start in range(0, len(big), 300_000):
            writer.write(big[start : start + 300_000])
    bucket = moto_s3.bucket
    assert boto.get_object(Bucket=bucket, Key=key_of(s3_root + "small.bin"))["Body"].read() == small
    answer = boto.get_object(Bucket=bucket, Key=key_of(s3_root + "big.bin"))
    assert answer["Body"].read() == big
    assert answer["ContentType"] == "application/x-test"
    assert answer["Metadata"] == {"origin": "s3dlio"}
    assert answer["ETag"].endswith('-2"')  # two parts: 5 MiB and the rest
    assert writer.etag == answer["ETag"]


def test_what_boto3_writes_we_read(s3_root: str, moto_s3: MotoS3, boto: Any) -> None:
    payload = random_payload(100_000, 3)
    key = key_of(s3_root + "dir/boto.bin")
    put = boto.put_object(
        Bucket=moto_s3.bucket,
        Key=key,
        Body=payload,
        ContentType="text/x-boto",
        Metadata={"k": "v"},
    )
    assert s3dlio.get(s3_root + "dir/boto.bin") == payload
    assert s3dlio.get_range(s3_root + "dir/boto.bin", 99_990, 100) == payload[99_990:]
    info = s3dlio.stat(s3_root + "dir/boto.bin")
    assert info["size"] == 100_000
    assert info["etag"] == put["ETag"]
    assert info["content_type"] == "text/x-boto"
    assert info["metadata"] == {"k": "v"}
    assert s3dlio.list(s3_root) == [s3_root + "dir/"]


def test_put_with_content_type_and_metadata(s3_root: str, moto_s3: MotoS3, boto: Any) -> None:
    uri = parse_uri(s3_root + "meta.json")
    etag = backend_for(uri).put(
        uri, memoryview(b"{}"), content_type="application/json", metadata={"Run": "7"}
    )
    head = boto.head_object(Bucket=moto_s3.bucket, Key=uri.key)
    assert head["ETag"] == etag == f'"{hashlib.md5(b"{}").hexdigest()}"'
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"run": "7"}
    with pytest.raises(s3dlio.InvalidArgumentError, match="ASCII"):
        backend_for(uri).put(uri, memoryview(b"x"), metadata={"k": "caf\u00e9"})


# -- multipart writers -------------------------------------------------------------------------


def test_streamed_40mib_upload_is_multipart(s3_root: str, moto_s3: MotoS3, boto: Any) -> None:
    uri = s3_root + "stream/40mib.bin"
    payload = random_payload(40 * MiB, 4)
    writer = s3dlio.create_s3_writer(uri)  # 16 MiB parts by default
    for start in range(0, len(payload), MiB):
        writer.write_chunk(payload[start : start + MiB])
        if start == 20 * MiB:
            assert not s3dlio.exists(uri)  # parts are not an object
    assert writer.finalize() == (40 * MiB, 40 * MiB)
    head = boto.head_object(Bucket=moto_s3.bucket, Key=key_of(uri), PartNumber=1)
    assert head["PartsCount"] == 3
    body = boto.get_object(Bucket=moto_s3.bucket, Key=key_of(uri))["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    assert writer.checksum() == f"crc32c:{crc32c.crc32c(payload):08x}"


def _pending_uploads(boto: Any, bucket: str, prefix: str) -> list[str]:
    answer = boto.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in answer.get("Uploads", [])]


def test_exception_in_writer_leaves_no_object_and_no_upload(
    s3_root: str, moto_s3: MotoS3, boto: Any
) -> None:
    uri = s3_root + "failed.bin"
    with pytest.raises(RuntimeError, match="stop"):
        with s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="5MiB")) as writer:
            writer.write(random_payload(12 * MiB, 5))
            assert _pending_uploads(boto, moto_s3.bucket, key_of(s3_root)) == [key_of(uri)]
            raise RuntimeError("stop")
    assert not s3dlio.exists(uri)
    assert _pending_uploads(boto, moto_s3.bucket, key_of(s3_root)) == []


def test_abort_leaves_no_upload_and_keeps_the_old_object(
    s3_root: str, moto_s3: MotoS3, boto: Any
) -> None:
    uri = s3_root + "kept.bin"
    s3dlio.put_bytes(uri, b"old")
    writer = s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="5MiB"))
    writer.write(random_payload(11 * MiB, 6))
    assert _pending_uploads(boto, moto_s3.bucket, key_of(s3_root)) == [key_of(uri)]
    writer.abort()
    writer.abort()  # idempotent
    assert _pending_uploads(boto, moto_s3.bucket, key_of(s3_root)) == []
    assert s3dlio.get(uri) == b"old"


def test_zstd_writer(s3_root: str, moto_s3: MotoS3, boto: Any) -> None:
    uri = s3_root + "logs/events.jsonl"
    payload = b"".join(b'{"step": %d, "loss": 0.5}\n' % i for i in range(400_000))
    opts = s3dlio.WriterOptions().with_compression("zstd", 3).with_part_size("5MiB")
    writer = s3dlio.create_s3_writer(uri, opts)
    for start in range(0, len(payload), 1_000_000):
        writer.write_chunk(payload[start : start + 1_000_000])
    written, stored = writer.finalize()
    assert written == len(payload) and stored < written
    head = boto.head_object(Bucket=moto_s3.bucket, Key=key_of(uri) + ".zst")
    assert head["ContentLength"] == stored
    data = s3dlio.get(uri + ".zst")
    assert zstandard.ZstdDecompressor().stream_reader(bytes(data)).read() == payload
    assert writer.checksum() == f"crc32c:{crc32c.crc32c(payload):08x}"
    assert not s3dlio.exists(uri)


# -- range-split reads -------------------------------------------------------------------------


def test_24mib_get_is_split_into_ranges_with_if_match(
    proxied: tuple[FaultProxy, str], split_at_8mib: None, tmp_path: Path
) -> None:
    proxy, root = proxied
    uri = root + "big.bin"
    payload = random_payload(24 * MiB, 7)
    s3dlio.put_bytes(uri, payload)
    etag = s3dlio.stat(uri)["etag"]
    proxy.clear()
    s3dlio.init_op_log(tmp_path / "ops.zst")
    data = s3dlio.get(uri)
    s3dlio.finalize_op_log()
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    assert buffer_address(data) % 4096 == 0  # page-aligned: see docs/performance.md
    gets = [r for r in proxy.requests if r.method == "GET"]
    # the first request asks for the threshold (8 MiB), the rest comes in 4 MiB ranges
    assert gets[0].headers["range"] == f"bytes=0-{8 * MiB - 1}"
    assert sorted(r.headers["range"] for r in gets[1:]) == sorted(
        f"bytes={o}-{o + 4 * MiB - 1}" for o in range(8 * MiB, 24 * MiB, 4 * MiB)
    )
    assert "if-match" not in gets[0].headers
    assert all(r.headers["if-match"] == etag for r in gets[1:])
    ops = [row[2] for row in log_rows(tmp_path / "ops.zst")]
    assert ops.count("GET") == 1 and ops.count("GET_RANGE") == 4


def test_object_replaced_mid_read_fails(
    proxied: tuple[FaultProxy, str], moto_s3: MotoS3, boto: Any, split_at_8mib: None
) -> None:
    proxy, root = proxied
    uri = root + "replaced.bin"
    s3dlio.put_bytes(uri, random_payload(12 * MiB, 8))
    replaced: list[str] = []

    def replace_once(method: str, path: str, headers: dict[str, str]) -> bool:
        """On the first conditional range, overwrite the object (before it is forwarded)."""
        if "if-match" in headers and not replaced:
            answer = boto.put_object(Bucket=moto_s3.bucket, Key=key_of(uri), Body=b"new version")
            replaced.append(answer["ETag"])
        return False

    proxy.add_fault("latency", match=replace_once, seconds=0)
    with pytest.raises(IntegrityError) as info:
        s3dlio.get(uri)
    assert replaced and key_of(uri) in str(info.value)
    assert s3dlio.get(uri) == b"new version"


def test_range_requests_past_the_end(s3_root: str) -> None:
    uri = parse_uri(s3_root + "short.bin")
    s3dlio.put_bytes(uri, b"0123456789")
    stream = backend_for(uri).open_read(uri, 10, 5)
    assert (stream.size, stream.length) == (10, 0)
    stream = backend_for(uri).open_read(uri, 50)
    assert (stream.size, stream.length) == (10, 0)
    stream = backend_for(uri).open_read(uri, 4, 0)
    assert (stream.size, stream.length, stream.etag) == (10, 0, s3dlio.stat(uri)["etag"])


# -- listings ----------------------------------------------------------------------------------


def test_listing_past_one_page(s3_root: str) -> None:
    keys = [f"{s3_root}many/{i:05d}" for i in range(1500)]
    s3dlio.put_many([(k, b"") for k in keys], max_in_flight=32)
    assert s3dlio.list(s3_root + "many/") == keys
    pages = list(backend_for(s3_root).list_pages(parse_uri(s3_root + "many/"), recursive=True))
    assert [len(p) for p in pages] == [1000, 500]
    assert s3dlio.delete(s3_root + "many/", recursive=True) == 1500  # two DeleteObjects calls
    assert s3dlio.list(s3_root, recursive=True) == []


def test_name_that_is_both_object_and_directory(s3_root: str) -> None:
    s3dlio.put_many([(s3_root + k, b"x") for k in ("b/dl", "b/dl/one", "b/dlx")])
    assert s3dlio.list(s3_root + "b/dl") == [s3_root + "b/dl", s3_root + "b/dl/"]
    s3dlio.put_many([(s3_root + k, b"x") for k in ("c/file.txt", "c/file.txt.bak")])
    assert s3dlio.list(s3_root + "c/file.txt") == [s3_root + "c/file.txt"]
    assert s3dlio.list(s3_root + "c/file.txt", recursive=True) == [s3_root + "c/file.txt"]


# -- endpoints and buckets ---------------------------------------------------------------------


def test_explicit_endpoint_uris(moto_s3: MotoS3) -> None:
    root = f"s3://{moto_s3.endpoint}/{moto_s3.bucket}/{uuid.uuid4().hex[:12]}/"
    s3dlio.put_bytes(root + "a/x.bin", b"explicit")
    assert s3dlio.get(root + "a/x.bin") == b"explicit"
    assert s3dlio.list(root, recursive=True) == [root + "a/x.bin"]
    assert s3dlio.stat(root + "a/x.bin")["size"] == 8
    implicit = root.replace(f"{moto_s3.endpoint}/", "")
    assert s3dlio.get(implicit + "a/x.bin") == b"explicit"  # the same server
    assert backend_for(root).endpoint(parse_uri(root)) == moto_s3.url
    s3dlio.delete(root + "a/x.bin")
    assert not s3dlio.exists(implicit + "a/x.bin")


def test_buckets(moto_s3: MotoS3) -> None:
    name = f"b-{uuid.uuid4().hex[:10]}"
    root = f"s3://{name}/"
    s3dlio.create_bucket(name)  # a bare name works too; one we already own is fine
    assert root in s3dlio.list_buckets()
    assert f"s3://{moto_s3.endpoint}/{name}/" in s3dlio.list_buckets(f"s3://{moto_s3.endpoint}/x/")
    check_bucket_lifecycle(root, "s3://", not_empty="BucketNotEmpty")
    assert root not in s3dlio.list_buckets()


def test_bucket_in_another_region(moto_s3: MotoS3, boto: Any) -> None:
    name = f"eu-{uuid.uuid4().hex[:10]}"
    s3dlio.configure_s3(region="eu-west-1")
    try:
        s3dlio.create_bucket(name)
        location = boto.get_bucket_location(Bucket=name)["LocationConstraint"]
        assert location == "eu-west-1"
        s3dlio.put_bytes(f"s3://{name}/k", b"v")
        assert s3dlio.get(f"s3://{name}/k") == b"v"
        s3dlio.delete(f"s3://{name}/k")
        s3dlio.delete_bucket(name)
    finally:
        s3dlio.configure_s3()


def test_configure_s3_endpoint(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3dlio.configure_s3(endpoint_url=moto_s3.url)
    try:
        uri = f"s3://{moto_s3.bucket}/configured/{uuid.uuid4().hex[:8]}"
        s3dlio.put_bytes(uri, b"via configure_s3")
        assert s3dlio.get(uri) == b"via configure_s3"
        assert backend_for(uri).endpoint(parse_uri(uri)) == moto_s3.url
        s3dlio.delete(uri)
    finally:
        monkeypatch.undo()
        s3dlio.configure_s3()
    with pytest.raises(s3dlio.InvalidURIError):
        s3dlio.configure_s3(endpoint_url="localhost:9000")
    with pytest.raises(s3dlio.InvalidArgumentError, match="addressing_style"):
        s3dlio.configure_s3(addressing_style="sideways")


def test_credentials_from_a_profile_and_anonymous(
    proxied: tuple[FaultProxy, str],
    moto_s3: MotoS3,
    boto: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    proxy, root = proxied
    (tmp_path / "credentials").write_text(
        "[training]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n"
    )
    (tmp_path / "config").write_text("[profile training]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "training")
    try:
        s3dlio.configure_s3()
        s3dlio.put_bytes(root + "p.bin", b"profile")
        s3dlio.put_bytes(root + "private.bin", b"private")
        assert s3dlio.list(root) == [root + "p.bin", root + "private.bin"]
        signed = [r.headers.get("authorization", "") for r in proxy.requests]
        assert signed and all("Credential=AKIDPROFILE/" in a for a in signed)
        boto.put_object_acl(Bucket=moto_s3.bucket, Key=key_of(root + "p.bin"), ACL="public-read")
        monkeypatch.delenv("AWS_PROFILE")  # no credentials anywhere: anonymous requests
        s3dlio.configure_s3()
        proxy.clear()
        assert s3dlio.get(root + "p.bin") == b"profile"
        with pytest.raises(PermissionDeniedError):
            s3dlio.get(root + "private.bin")
        assert [r.method for r in proxy.requests] == ["GET", "GET"]
        assert not any("authorization" in r.headers for r in proxy.requests)
    finally:
        monkeypatch.undo()
        s3dlio.configure_s3()


def test_errors_name_the_uri_and_keep_credentials_out(
    s3_root: str, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    access, secret = "AKIDSECRETPROBE1", "sEcReT/ProbeValue+42"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    s3dlio.configure_s3()
    s3dlio.init_op_log(tmp_path / "ops.zst")
    texts = []
    try:
        s3dlio.put_bytes(s3_root + "present", b"x")
        for action in (
            lambda: s3dlio.get(s3_root + "missing"),
            lambda: s3dlio.stat(s3_root + "missing"),
            lambda: s3dlio.get("s3://no-such-bucket-s3dlio/k"),
            lambda: s3dlio.list("s3://no-such-bucket-s3dlio/", recursive=True),
        ):
            with pytest.raises(NotFoundError) as info:
                action()
            texts.append(f"{info.value} {info.value!r}")
    finally:
        s3dlio.finalize_op_log()
        monkeypatch.undo()
        s3dlio.configure_s3()
    assert texts[0].startswith(f"GET {s3_root}missing")
    assert "no-such-bucket-s3dlio" in texts[2]
    rows = log_rows(tmp_path / "ops.zst")
    assert any(row[8] for row in rows)  # errors were logged
    blob = "\n".join(texts) + "\n".join("\t".join(row) for row in rows)
    assert access not in blob and secret not in blob


# -- op-log ------------------------------------------------------------------------------------


def test_op_log_file(s3_root: str, moto_s3: MotoS3, tmp_path: Path) -> None:
    path = tmp_path / "s3-ops.tsv.zst"
    s3dlio.init_op_log(path)
    s3dlio.put_bytes(s3_root + "a.bin", b"a" * 1000)
    assert s3dlio.get(s3_root + "a.bin") == b"a" * 1000
    assert s3dlio.get_range(s3_root + "a.bin", 10, 20) == b"a" * 20
    s3dlio.stat(s3_root + "a.bin")
    s3dlio.list(s3_root)
    s3dlio.delete(s3_root + "a.bin")
    s3dlio.finalize_op_log()
    with open(path, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    header = "idx thread op client_id n_objects bytes endpoint file error start first_byte end duration_ns"
    assert text.splitlines()[0] == header.replace(" ", "\t")
    rows = log_rows(path)
    assert all(len(row) == 13 for row in rows)
    assert [int(row[0]) for row in rows] == list(range(len(rows)))
    by_op = {row[2]: row for row in rows}
    assert {"PUT", "GET", "GET_RANGE", "HEAD", "LIST", "DELETE"} <= set(by_op)
    assert by_op["PUT"][5] == "1000" and by_op["GET"][5] == "1000" and by_op["GET_RANGE"][5] == "20"
    for row in rows:
        assert row[6] == moto_s3.url
        assert TIMESTAMP.match(row[9]) and TIMESTAMP.match(row[11])
        assert int(row[12]) >= 0
    for op in ("GET", "GET_RANGE"):
        assert TIMESTAMP.match(by_op[op][10])
        assert by_op[op][9] <= by_op[op][10] <= by_op[op][11]
    for op in ("HEAD", "LIST", "DELETE"):
        assert by_op[op][10] == ""
    assert by_op["GET"][7] == key_of(s3_root + "a.bin")


def test_get_many_logs_every_request(s3_root: str, split_at_8mib: None, tmp_path: Path) -> None:
    root = s3_root
    items = {root + f"m/{i}.bin": random_payload(1000 * (i + 1), 40 + i) for i in range(5)}
    items[root + "m/big.bin"] = random_payload(12 * MiB, 50)
    s3dlio.put_many(items.items())
    missing = root + "m/missing.bin"
    s3dlio.init_op_log(tmp_path / "ops.zst")
    with pytest.raises(s3dlio.BatchError) as info:
        s3dlio.get_many([*items, missing], max_in_flight=3)
    s3dlio.finalize_op_log()
    assert info.value.succeeded == len(items) and info.value.failures[0][0] == missing
    rows = log_rows(tmp_path / "ops.zst")
    gets = {row[7]: row for row in rows if row[2] == "GET"}
    assert set(gets) == {key_of(u) for u in [*items, missing]}
    for uri, payload in items.items():
        row = gets[key_of(uri)]
        assert row[5] == str(min(len(payload), 8 * MiB)) and row[8] == ""
        assert TIMESTAMP.match(row[10]) and row[9] <= row[10] <= row[11]
    assert "NoSuchKey" in gets[key_of(missing)][8]
    ranges = [row for row in rows if row[2] == "GET_RANGE"]
    assert sum(int(row[5]) for row in ranges) == 4 * MiB  # the rest of big.bin, pinned


# -- server-side copies ------------------------------------------------------------------------


def test_copy_on_one_endpoint_stays_on_the_server(
    proxied: tuple[FaultProxy, str], moto_s3: MotoS3, boto: Any
) -> None:
    proxy, root = proxied
    src, dst = parse_uri(root + "src.bin"), root + "copies/src.bin"
    payload = random_payload(3 * MiB, 9)
    backend_for(src).put(
        src, memoryview(payload), content_type="application/x-src", metadata={"m": "1"}
    )
    proxy.clear()
    assert s3dlio.copy(str(src), root + "copies/") == [dst]
    assert [r.method for r in proxy.requests] == ["HEAD", "PUT"]  # no GET: no bytes moved
    assert proxy.requests[1].headers["x-amz-copy-source"].endswith(src.key)
    head = boto.head_object(Bucket=moto_s3.bucket, Key=key_of(dst))
    assert head["ContentType"] == "application/x-src" and head["Metadata"] == {"m": "1"}
    assert s3dlio.get(dst) == payload


def test_large_server_side_copy_goes_in_parts(
    s3_root: str, boto: Any, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3mod, "COPY_SINGLE_MAX", 6 * MiB)
    monkeypatch.setattr(s3mod, "COPY_PART_SIZE", 5 * MiB)
    payload = random_payload(12 * MiB + 3, 10)
    s3dlio.put_bytes(s3_root + "big.bin", payload)
    s3dlio.copy(s3_root + "big.bin", s3_root + "big-copy.bin")
    head = boto.head_object(Bucket=moto_s3.bucket, Key=key_of(s3_root + "big-copy.bin"))
    assert head["ETag"].endswith('-3"')  # three UploadPartCopy parts
    assert s3dlio.get(s3_root + "big-copy.bin") == payload
    assert _pending_uploads(boto, moto_s3.bucket, key_of(s3_root)) == []


def test_copy_between_endpoints_streams(proxied: tuple[FaultProxy, str], moto_s3: MotoS3) -> None:
    proxy, root = proxied
    direct = root.replace(proxy.endpoint, moto_s3.endpoint)  # the same bucket, another endpoint
    s3dlio.put_bytes(root + "a.bin", b"through the client")
    proxy.clear()
    s3dlio.copy(root + "a.bin", direct + "b.bin")
    assert [r.method for r in proxy.requests] == ["GET"]
    assert s3dlio.get(root + "b.bin") == b"through the client"


# -- fork safety -------------------------------------------------------------------------------


def _child_get(uri: str, queue: Any) -> None:
    import os

    try:
        data = s3dlio.get(uri)
        store = backend_for(uri)
        states = store._states  # type: ignore[attr-defined]
        pool = store._state().service(parse_uri(uri)).pool_for(parse_uri(uri).bucket)[0]  # type: ignore[attr-defined]
        queue.put((bytes(data), states._pid == os.getpid(), pool.opened))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", repr(exc), 0))


# JAX, once another test has started its runtime in this process, warns at every fork; the
# child here never uses JAX.
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_forked_child_uses_its_own_client_and_connections(
    proxied: tuple[FaultProxy, str],
) -> None:
    proxy, root = proxied  # the proxy keeps connections alive, so they would be shared
    uri = root + "fork.bin"
    s3dlio.put_bytes(uri, b"from the parent")
    assert s3dlio.get(uri) == b"from the parent"
    parsed = parse_uri(uri)
    pool = backend_for(parsed)._state().service(parsed).pool_for(parsed.bucket)[0]  # type: ignore[attr-defined]
    opened, idle = pool.opened, pool.idle
    assert idle >= 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_get, args=(uri, queue))
    child.start()
    data, rebuilt, child_opened = queue.get(timeout=30)
    child.join(timeout=30)
    assert (data, rebuilt, child_opened) == (b"from the parent", True, 1)
    assert child.exitcode == 0
    for _ in range(3):  # the parent's kept connections still work, and no new one was needed
        assert s3dlio.get(uri) == b"from the parent"
    assert pool.opened == opened
