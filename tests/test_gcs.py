"""What only ``gs://`` has: cross-checks with the official client on fake-gcs-server, resumable
writers, the ``gcs://`` alias, buckets, generation checks, and faults injected by a proxy.

The backend-agnostic behaviour is in ``tests/contract/``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

import s3dlio
from s3dlio import IntegrityError, NotFoundError
from s3dlio.io.retry import retry_stats
from s3dlio.io.store import backend_for
from s3dlio.io.uri import parse_uri
from tests.helpers import (
    MiB,
    check_bucket_lifecycle,
    key_of,
    logged_ops,
    random_payload,
    through_proxy,
)
from tests.servers.gcs import FakeGCS
from tests.servers.proxy import FaultProxy


@pytest.fixture(scope="module")
def bucket(fake_gcs: FakeGCS) -> storage.Bucket:
    """The official client's handle on the session bucket."""
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    return client.bucket(fake_gcs.bucket)


# -- cross-checks with the official client -----------------------------------------------------


def test_what_we_write_the_client_reads(gs_root: str, bucket: storage.Bucket) -> None:
    small, big = random_payload(1000, 1), random_payload(MiB + 5, 2)
    s3dlio.put_bytes(gs_root + "small.bin", small)
    opts = s3dlio.WriterOptions(
        part_size="256KiB", content_type="application/x-test", metadata={"team": "ml"}
    )
    with s3dlio.open_writer(gs_root + "big.bin", opts) as writer:
        for start in range(0, len(big), 100_000):
            writer.write(big[start : start + 100_000])
    assert bucket.blob(key_of(gs_root + "small.bin")).download_as_bytes() == small
    blob = bucket.get_blob(key_of(gs_root + "big.bin"))
    assert blob.download_as_bytes() == big
    assert blob.content_type == "application/x-test" and blob.metadata == {"team": "ml"}
    assert s3dlio.stat(gs_root + "big.bin")["etag"] == str(blob.generation)


def test_what_the_client_writes_we_read(gs_root: str, bucket: storage.Bucket) -> None:
    payload = random_payload(100_000, 3)
    blob = bucket.blob(key_of(gs_root + "dir/client.bin"))
    blob.metadata = {"k": "v"}
    blob.upload_from_string(payload, content_type="image/png")
    assert s3dlio.get(gs_root + "dir/client.bin") == payload
    assert s3dlio.get_range(gs_root + "dir/client.bin", 99_990, 100) == payload[99_990:]
    info = s3dlio.stat(gs_root + "dir/client.bin")
    assert info["size"] == 100_000 and info["metadata"] == {"k": "v"}
    assert info["content_type"] == "image/png"
    assert s3dlio.list(gs_root) == [gs_root + "dir/"]


def test_put_with_metadata_is_one_multipart_request(gs_root: str, bucket: storage.Bucket) -> None:
    uri = parse_uri(gs_root + "meta.bin")
    backend_for(uri).put(
        uri, memoryview(b"\r\n--x--\r\n"), content_type="text/x", metadata={"a": "b"}
    )
    blob = bucket.get_blob(uri.key)
    assert blob.download_as_bytes() == b"\r\n--x--\r\n"
    assert (blob.content_type, blob.metadata) == ("text/x", {"a": "b"})


def test_streamed_40mib_write_and_split_read(
    gs_root: str, bucket: storage.Bucket, split_ranges: None, tmp_path: Path
) -> None:
    uri = gs_root + "stream/40mib.bin"
    payload = random_payload(40 * MiB, 4)
    writer = s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="8MiB"))
    assert writer.max_in_flight == 1 and writer.part_size % (256 * 1024) == 0
    for start in range(0, len(payload), MiB):
        writer.write(payload[start : start + MiB])
        if start == 20 * MiB:  # two chunks are in the session by now
            assert not s3dlio.exists(uri)
    assert writer.finalize() == (40 * MiB, 40 * MiB)
    digest = hashlib.sha256(payload).hexdigest()
    assert (
        hashlib.sha256(
            bucket.blob(key_of(gs_root + "stream/40mib.bin")).download_as_bytes()
        ).hexdigest()
        == digest
    )

    s3dlio.init_op_log(tmp_path / "ops.zst")
    got = s3dlio.get(uri)
    s3dlio.finalize_op_log()
    assert hashlib.sha256(got).hexdigest() == digest
    ops = logged_ops(tmp_path / "ops.zst")
    assert ops.count("GET") == 1 and ops.count("GET_RANGE") == 39


def test_writer_abort_leaves_nothing(gs_root: str, bucket: storage.Bucket) -> None:
    uri = gs_root + "aborted.bin"
    with pytest.raises(RuntimeError, match="stop"):
        with s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="256KiB")) as writer:
            writer.write(random_payload(MiB, 5))
            raise RuntimeError("stop")
    assert not s3dlio.exists(uri)
    assert bucket.get_blob(key_of(gs_root + "aborted.bin")) is None
    assert s3dlio.list(gs_root, recursive=True) == []


def test_exact_multiple_of_the_part_size(gs_root: str) -> None:
    payload = random_payload(MiB, 6)  # four whole chunks, then an empty final one
    with s3dlio.open_writer(gs_root + "exact.bin", s3dlio.WriterOptions(part_size="256KiB")) as w:
        w.write(payload)
    assert s3dlio.get(gs_root + "exact.bin") == payload


# -- URIs, buckets, errors ---------------------------------------------------------------------


def test_gcs_alias_is_kept_for_display(gs_root: str) -> None:
    alias_root = "gcs://" + gs_root[len("gs://") :]
    s3dlio.put_bytes(alias_root + "a/x.bin", b"alias")
    assert s3dlio.get(gs_root + "a/x.bin") == b"alias"
    assert s3dlio.list(alias_root) == [alias_root + "a/"]
    assert s3dlio.list(alias_root, recursive=True) == [alias_root + "a/x.bin"]
    assert s3dlio.stat(alias_root + "a/x.bin")["uri"] == alias_root + "a/x.bin"


def test_buckets(fake_gcs: FakeGCS) -> None:
    root = f"gs://b-{uuid.uuid4().hex[:12]}/"
    s3dlio.create_bucket(root)
    assert "gcs://" + root[5:] in s3dlio.list_containers("gcs://")
    check_bucket_lifecycle(root, "gs://")  # idempotent for a bucket we can see


def test_changed_object_fails_a_generation_checked_read(gs_root: str) -> None:
    uri = parse_uri(gs_root + "gen.bin")
    s3dlio.put_bytes(uri, b"first")
    stale = s3dlio.stat(uri)["etag"]
    s3dlio.put_bytes(uri, b"second")
    with pytest.raises(IntegrityError):
        backend_for(uri).open_read(uri, 0, 3, if_match=stale)
    with pytest.raises(IntegrityError):
        backend_for(uri).open_read(uri, 0, 0, if_match=stale)


def test_missing_bucket_is_not_found(fake_gcs: FakeGCS) -> None:
    missing = f"gs://nobucket-{uuid.uuid4().hex[:8]}/k"
    for call in (s3dlio.get, s3dlio.stat, lambda u: s3dlio.put_bytes(u, b"x")):
        with pytest.raises(NotFoundError):
            call(missing)


# -- faults injected by a proxy in front of fake-gcs-server ------------------------------------


def _error(code: int, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


JSON = {"Content-Type": "application/json"}


@pytest.fixture
def proxied(fake_gcs: FakeGCS, fault_proxy: Callable[..., FaultProxy]) -> Iterator[FaultProxy]:
    """Route ``gs://`` through a fault proxy in front of the emulator, with fast retries."""
    proxy = fault_proxy(fake_gcs.port)
    with through_proxy("gs", "STORAGE_EMULATOR_HOST", proxy.url, fake_gcs.url):
        yield proxy


def _media_path(root: str, name: str) -> str:
    uri = parse_uri(root + name)
    return f"/download/storage/v1/b/{uri.bucket}/o/{quote(uri.key, safe='')}"


def test_429_and_503_are_retried(gs_root: str, proxied: FaultProxy, bucket: storage.Bucket) -> None:
    payload = random_payload(200_000, 7)
    bucket.blob(key_of(gs_root + "busy.bin")).upload_from_string(payload)
    path = _media_path(gs_root, "busy.bin")
    proxied.add_fault(
        "status", match=f"GET {path}", status=429, body=_error(429, "rate"), headers=JSON
    )
    proxied.add_fault(
        "status", match=f"GET {path}", status=503, body=_error(503, "backend"), headers=JSON
    )
    before = retry_stats()
    assert s3dlio.get(gs_root + "busy.bin") == payload
    assert retry_stats()["throttled"] - before["throttled"] == 2
    assert len(proxied.requests_matching(f"GET {path}")) == 3

    proxied.add_fault(
        "status",
        count=None,
        match=f"GET {path}",
        status=429,
        body=_error(429, "rate"),
        headers=JSON,
    )
    with pytest.raises(s3dlio.ThrottledError, match="429 rate") as info:
        s3dlio.get(gs_root + "busy.bin")
    assert info.value.attempts == 4


def test_truncated_body_is_fetched_again(
    gs_root: str, proxied: FaultProxy, bucket: storage.Bucket, tmp_path: Path
) -> None:
    payload = random_payload(300_000, 8)
    bucket.blob(key_of(gs_root + "cut.bin")).upload_from_string(payload)
    path = _media_path(gs_root, "cut.bin")
    proxied.add_fault("truncate", match=f"GET {path}", after=100_000)
    s3dlio.init_op_log(tmp_path / "ops.zst")
    assert s3dlio.get(gs_root + "cut.bin") == payload
    s3dlio.finalize_op_log()
    assert len(proxied.requests_matching(f"GET {path}")) == 2
    assert logged_ops(tmp_path / "ops.zst") == ["GET", "GET"]  # the cut attempt is logged too


def test_resumable_chunk_rejected_once_is_sent_again(
    gs_root: str, proxied: FaultProxy, bucket: storage.Bucket
) -> None:
    payload = random_payload(MiB + 10, 9)
    proxied.add_fault(
        "status",
        count=2,
        match="PUT /upload/",
        status=503,
        body=_error(503, "backend"),
        headers=JSON,
    )
    with s3dlio.open_writer(gs_root + "w.bin", s3dlio.WriterOptions(part_size="256KiB")) as w:
        w.write(payload)
    assert bucket.blob(key_of(gs_root + "w.bin")).download_as_bytes() == payload
    assert len(proxied.requests_matching("PUT /upload/")) == 5 + 2


def test_chunk_with_unknown_outcome_fails_the_upload_on_the_emulator(
    gs_root: str, proxied: FaultProxy
) -> None:
    # The emulator applied the chunk but the answer was lost; it cannot tell how much it holds,
    # so re-sending could duplicate bytes: the upload fails and nothing becomes visible.
    proxied.add_fault("reset", match="PUT /upload/", forward=True)
    with pytest.raises(s3dlio.S3DlioError, match="outcome unknown"):
        with s3dlio.open_writer(gs_root + "u.bin", s3dlio.WriterOptions(part_size="256KiB")) as w:
            w.write(random_payload(MiB, 10))
    assert not s3dlio.exists(gs_root + "u.bin")
