"""Faults injected by a real loopback proxy in front of moto, on the ``s3://`` data path and
control plane: throttling, resets, truncated bodies, stalls, region redirects. Each fault is
retried and the data is correct, or the error is clear after the last attempt; nothing is
written twice or returned short.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

import s3dlio
from s3dlio import (
    BatchError,
    IntegrityError,
    PermissionDeniedError,
    RangeEngineConfig,
    ThrottledError,
)
from s3dlio.io.config import Settings, reset_settings, settings
from s3dlio.io.retry import retry_stats
from s3dlio.io.store import backend_for
from s3dlio.io.uri import parse_uri
from tests.helpers import random_payload
from tests.servers.moto import MotoS3
from tests.servers.proxy import FAST_RETRIES, FaultProxy

pytestmark = pytest.mark.usefixtures("fast_retries")

MiB = 1 << 20


def _s3_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>injected</RequestId></Error>"
    ).encode()


SLOWDOWN = {"status": 503, "body": _s3_error("SlowDown", "Please reduce your request rate.")}


def _path(uri: str) -> str:
    parsed = parse_uri(uri)
    return f"/{parsed.bucket}/{parsed.key}"


def _redirect_to_eu_west_1(moto_proxy: FaultProxy, uri: str) -> None:
    """The next GET of ``uri`` answers as S3 does for a bucket in another region."""
    moto_proxy.add_fault(
        "status",
        match=f"GET {_path(uri)}",
        status=400,
        headers={"x-amz-bucket-region": "eu-west-1"},
        body=_s3_error("AuthorizationHeaderMalformed", "the region 'us-east-1' is wrong"),
    )


def _retries() -> dict[str, int]:
    return retry_stats()


def _delta(before: dict[str, int]) -> dict[str, int]:
    after = retry_stats()
    return {k: after[k] - before[k] for k in after}


# -- reads -------------------------------------------------------------------------------------


def test_slowdown_then_success(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    uri = moto_proxy_root + "slow.bin"
    payload = random_payload(300_000, 1)
    s3dlio.put_bytes(uri, payload)
    moto_proxy.add_fault("status", count=3, match=f"GET {_path(uri)}", **SLOWDOWN)
    before = _retries()
    assert s3dlio.get(uri) == payload
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 4
    counted = _delta(before)
    assert counted["retries"] == 3 and counted["throttled"] == 3


def test_persistent_slowdown_says_how_many_attempts(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    uri = moto_proxy_root + "always-slow.bin"
    s3dlio.put_bytes(uri, b"x")
    moto_proxy.add_fault("status", count=None, match=f"GET {_path(uri)}", **SLOWDOWN)
    with pytest.raises(ThrottledError) as info:
        s3dlio.get(uri)
    assert info.value.attempts == 4
    assert "after 4 attempts" in str(info.value) and "SlowDown" in str(info.value)
    assert str(info.value).startswith(f"GET {uri}")
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 4


def test_connection_reset_is_retried(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    uri = moto_proxy_root + "reset.bin"
    payload = random_payload(200_000, 2)
    s3dlio.put_bytes(uri, payload)
    moto_proxy.add_fault("reset", count=2, match=f"GET {_path(uri)}")
    before = _retries()
    assert s3dlio.get(uri) == payload
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 3
    assert _delta(before)["retries"] == 2


def test_truncated_body_is_retried_never_returned(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    uri = moto_proxy_root + "cut.bin"
    payload = random_payload(2 * MiB, 3)
    s3dlio.put_bytes(uri, payload)
    moto_proxy.add_fault("truncate", count=2, match=f"GET {_path(uri)}", after=MiB + 17)
    data = s3dlio.get(uri)
    assert len(data) == len(payload) and data == payload
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 3


def test_truncated_range_of_a_split_read(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    uri = moto_proxy_root + "split.bin"
    payload = random_payload(6 * MiB, 4)
    s3dlio.put_bytes(uri, payload)
    old = settings()
    reset_settings(
        Settings(retry=FAST_RETRIES, range=RangeEngineConfig(threshold="2MiB", chunk_size="1MiB"))
    )
    try:
        moto_proxy.add_fault(
            "truncate", match=lambda m, p, h: m == "GET" and "if-match" in h, after=1000
        )
        data = s3dlio.get(uri)
    finally:
        reset_settings(old)
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    gets = moto_proxy.requests_matching(f"GET {_path(uri)}")
    assert len(gets) == 1 + 4 + 1  # head request, four ranges, one range again


def test_stalled_first_byte_times_out_and_is_retried(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    uri = moto_proxy_root + "stall.bin"
    payload = random_payload(100_000, 5)
    s3dlio.put_bytes(uri, payload)
    old = settings()
    reset_settings(Settings(retry=FAST_RETRIES, operation_timeout=0.5))
    try:
        moto_proxy.add_fault("stall_first_byte", match=f"GET {_path(uri)}", seconds=10)
        before = _retries()
        assert s3dlio.get(uri) == payload
        assert _delta(before)["retries"] == 1
    finally:
        reset_settings(old)
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 2


def test_server_ignoring_if_match_still_fails_a_changed_object(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    uri = parse_uri(moto_proxy_root + "versioned.bin")
    s3dlio.put_bytes(uri, b"0123456789")
    etag = s3dlio.stat(uri)["etag"]
    moto_proxy.add_fault(  # a 206 from another version, as a server that ignores If-Match sends
        "status",
        match=f"GET {_path(str(uri))}",
        status=206,
        body=b"X",
        headers={"ETag": '"another-version"', "Content-Range": "bytes 5-5/10"},
    )
    with pytest.raises(IntegrityError, match="another-version"):
        backend_for(uri).open_read(uri, 5, 1, if_match=etag)
    with backend_for(uri).open_read(uri, 5, 1, if_match=etag) as stream:  # the real server
        assert (stream.size, stream.length, stream.etag) == (10, 1, etag)


def test_listing_page_retried_after_internal_error(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    s3dlio.put_many([(f"{moto_proxy_root}k{i}", b"") for i in range(3)])
    moto_proxy.add_fault(
        "status",
        count=2,
        match="list-type=2",
        status=500,
        body=_s3_error("InternalError", "We encountered an internal error."),
    )
    assert s3dlio.list(moto_proxy_root) == [f"{moto_proxy_root}k{i}" for i in range(3)]
    assert len(moto_proxy.requests_matching("list-type=2")) == 3


def test_access_denied_is_not_retried(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    uri = moto_proxy_root + "denied.bin"
    s3dlio.put_bytes(uri, b"x")
    moto_proxy.add_fault(
        "status",
        count=None,
        match=f"GET {_path(uri)}",
        status=403,
        body=_s3_error("AccessDenied", "Access Denied"),
    )
    with pytest.raises(PermissionDeniedError, match="AccessDenied"):
        s3dlio.get(uri)
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 1


def test_bucket_region_redirect_is_followed_once(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    uri = moto_proxy_root + "elsewhere.bin"
    s3dlio.put_bytes(uri, b"eu data")
    _redirect_to_eu_west_1(moto_proxy, uri)
    try:
        assert s3dlio.get(uri) == b"eu data"
        first, second = moto_proxy.requests_matching(f"GET {_path(uri)}")
        assert "/us-east-1/s3/aws4_request" in first.headers["authorization"]
        assert "/eu-west-1/s3/aws4_request" in second.headers["authorization"]
    finally:
        s3dlio.configure_s3()  # forget the learned region


def test_keep_alive_through_the_proxy(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    uri = moto_proxy_root + "ka.bin"
    s3dlio.put_bytes(uri, b"kept alive")
    parsed = parse_uri(uri)
    pool = backend_for(parsed)._state().service(parsed).pool_for(parsed.bucket)[0]  # type: ignore[attr-defined]
    opened = pool.opened
    for _ in range(5):
        assert s3dlio.get(uri) == b"kept alive"
    assert pool.opened == opened


# -- get_many: many requests from one thread -------------------------------------------------


def _objects(moto_proxy_root: str, count: int, size: int = 50_000) -> dict[str, bytes]:
    items = {
        f"{moto_proxy_root}many/{i}.bin": random_payload(size + i, 100 + i) for i in range(count)
    }
    s3dlio.put_many(items.items())
    return items


def test_get_many_retries_each_failed_object(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    items = _objects(moto_proxy_root, 12)
    uris = list(items)
    moto_proxy.add_fault("reset", match=f"GET {_path(uris[1])}")
    moto_proxy.add_fault("status", count=2, match=f"GET {_path(uris[4])}", **SLOWDOWN)
    moto_proxy.add_fault("truncate", match=f"GET {_path(uris[7])}", after=1000)
    before = _retries()
    got = s3dlio.get_many(uris, max_in_flight=4)
    assert [u for u, _ in got] == uris and all(data == items[u] for u, data in got)
    sent = {u: len(moto_proxy.requests_matching(f"GET {_path(u)}")) for u in uris}
    assert sent == {u: {1: 2, 4: 3, 7: 2}.get(i, 1) for i, u in enumerate(uris)}
    counted = _delta(before)
    assert counted["retries"] == 4 and counted["throttled"] == 2


def test_get_many_counts_the_attempts_of_a_persistent_fault(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    items = _objects(moto_proxy_root, 5)
    uris = list(items)
    moto_proxy.add_fault("status", count=None, match=f"GET {_path(uris[2])}", **SLOWDOWN)
    with pytest.raises(BatchError) as info:
        s3dlio.get_many(uris)
    assert info.value.succeeded == 4
    ((failed, error),) = info.value.failures
    assert failed == uris[2] and isinstance(error, ThrottledError)
    assert error.attempts == 4 and "after 4 attempts" in str(error)
    assert len(moto_proxy.requests_matching(f"GET {_path(uris[2])}")) == 4


def test_get_many_does_not_retry_access_denied(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    items = _objects(moto_proxy_root, 3)
    uris = list(items)
    moto_proxy.add_fault(
        "status",
        count=None,
        match=f"GET {_path(uris[0])}",
        status=403,
        body=_s3_error("AccessDenied", "Access Denied"),
    )
    with pytest.raises(BatchError) as info:
        s3dlio.get_many(uris)
    ((failed, error),) = info.value.failures
    assert failed == uris[0] and isinstance(error, PermissionDeniedError)
    assert len(moto_proxy.requests_matching(f"GET {_path(uris[0])}")) == 1


def test_get_many_times_out_a_stalled_object(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    items = _objects(moto_proxy_root, 4)
    uris = list(items)
    old = settings()
    reset_settings(Settings(retry=FAST_RETRIES, operation_timeout=0.3))
    try:
        moto_proxy.add_fault("stall_first_byte", match=f"GET {_path(uris[3])}", seconds=10)
        got = s3dlio.get_many(uris)
    finally:
        reset_settings(old)
    assert all(data == items[u] for u, data in got)
    assert len(moto_proxy.requests_matching(f"GET {_path(uris[3])}")) == 2


def test_get_many_reads_the_rest_of_large_objects_pinned(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    items = _objects(moto_proxy_root, 3, size=5 * MiB)
    uris = list(items)
    old = settings()
    reset_settings(
        Settings(retry=FAST_RETRIES, range=RangeEngineConfig(threshold="2MiB", chunk_size="1MiB"))
    )
    try:
        got = s3dlio.get_many(uris)
    finally:
        reset_settings(old)
    assert all(data == items[u] for u, data in got)
    for uri in uris:
        first, *rest = moto_proxy.requests_matching(f"GET {_path(uri)}")
        assert first.headers["range"] == f"bytes=0-{2 * MiB - 1}"
        assert "if-match" not in first.headers
        etag = s3dlio.stat(uri)["etag"]
        assert rest and all(r.headers["if-match"] == etag for r in rest)
        spans = sorted(tuple(map(int, r.headers["range"][6:].split("-"))) for r in rest)
        assert spans[0][0] == 2 * MiB and spans[-1][1] == len(items[uri]) - 1
        assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_get_many_retries_a_failed_range(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    items = _objects(moto_proxy_root, 2, size=6 * MiB)
    uri = list(items)[0]
    old = settings()
    reset_settings(
        Settings(retry=FAST_RETRIES, range=RangeEngineConfig(threshold="2MiB", chunk_size="1MiB"))
    )
    try:
        moto_proxy.add_fault(
            "truncate",
            match=lambda m, p, h: p.endswith(_path(uri)) and "if-match" in h,
            after=1000,
        )
        got = s3dlio.get_many(items)
    finally:
        reset_settings(old)
    assert all(data == items[u] for u, data in got)
    assert len(moto_proxy.requests_matching(f"GET {_path(uri)}")) == 1 + 4 + 1  # one range again


def test_get_many_fails_an_object_replaced_mid_read(
    moto_proxy: FaultProxy, moto_proxy_root: str
) -> None:
    items = _objects(moto_proxy_root, 3, size=3 * MiB)
    changed = list(items)[1]
    old = settings()
    reset_settings(Settings(retry=FAST_RETRIES, range=RangeEngineConfig(threshold="1MiB")))
    try:
        moto_proxy.add_fault(  # what S3 answers a range pinned to a version that is gone
            "status",
            count=None,
            status=412,
            body=_s3_error("PreconditionFailed", "If-Match"),
            match=lambda m, p, h: p.endswith(_path(changed)) and "if-match" in h,
        )
        with pytest.raises(BatchError) as info:
            s3dlio.get_many(items)
    finally:
        reset_settings(old)
    assert info.value.succeeded == 2
    ((failed, error),) = info.value.failures
    assert failed == changed and isinstance(error, IntegrityError)


def test_get_many_follows_a_region_redirect(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    items = _objects(moto_proxy_root, 3)
    uris = list(items)
    _redirect_to_eu_west_1(moto_proxy, uris[1])
    try:
        got = s3dlio.get_many(uris)
        assert all(data == items[u] for u, data in got)
        first, second = moto_proxy.requests_matching(f"GET {_path(uris[1])}")
        assert "/eu-west-1/s3/aws4_request" in second.headers["authorization"]
    finally:
        s3dlio.configure_s3()  # forget the learned region


def test_get_many_keeps_its_connections(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    items = _objects(moto_proxy_root, 16, size=1000)
    parsed = parse_uri(moto_proxy_root)
    pool = backend_for(parsed)._state().service(parsed).pool_for(parsed.bucket)[0]  # type: ignore[attr-defined]
    s3dlio.get_many(items, max_in_flight=4)
    opened = pool.opened
    for _ in range(3):
        assert [data for _, data in s3dlio.get_many(items, max_in_flight=4)] == list(items.values())
    assert pool.opened == opened


# -- writes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def versioned(moto_s3: MotoS3) -> str:
    """A bucket with versioning on, so that every stored write can be counted."""
    name = f"versioned-{uuid.uuid4().hex[:8]}"
    client = moto_s3.client()
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _versions(moto_s3: MotoS3, bucket: str, key: str) -> list[dict[str, Any]]:
    answer = moto_s3.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in answer.get("Versions", []) if v["Key"] == key]


def test_put_reset_before_the_server_is_written_once(
    moto_proxy: FaultProxy, moto_s3: MotoS3, versioned: str
) -> None:
    key = f"once-{uuid.uuid4().hex[:8]}.bin"
    uri = f"s3://{moto_proxy.endpoint}/{versioned}/{key}"
    payload = random_payload(500_000, 6)
    moto_proxy.add_fault("reset", match=f"PUT /{versioned}/{key}")
    s3dlio.put_bytes(uri, payload)
    assert len(moto_proxy.requests_matching(f"PUT /{versioned}/{key}")) == 2
    assert len(_versions(moto_s3, versioned, key)) == 1
    assert s3dlio.get(uri) == payload


def test_put_reset_after_the_server_wrote_keeps_the_content(
    moto_proxy: FaultProxy, moto_s3: MotoS3, versioned: str
) -> None:
    key = f"twice-{uuid.uuid4().hex[:8]}.bin"
    uri = f"s3://{moto_proxy.endpoint}/{versioned}/{key}"
    payload = random_payload(500_000, 7)
    moto_proxy.add_fault("reset", match=f"PUT /{versioned}/{key}", forward=True)
    s3dlio.put_bytes(uri, payload)
    versions = _versions(moto_s3, versioned, key)
    assert len(versions) == 2  # the answer was lost, so the same bytes were sent again
    assert len({v["ETag"] for v in versions}) == 1
    assert s3dlio.get(uri) == payload


def test_multipart_part_retried_after_reset(moto_proxy: FaultProxy, moto_proxy_root: str) -> None:
    uri = moto_proxy_root + "parts.bin"
    payload = random_payload(11 * MiB, 8)
    moto_proxy.add_fault("reset", match="partNumber=2&")
    moto_proxy.add_fault("status", match="partNumber=3&", **SLOWDOWN)
    with s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="5MiB")) as writer:
        writer.write(payload)
    parts = moto_proxy.requests_matching("partNumber=")
    assert sorted(r.path.split("partNumber=")[1].split("&")[0] for r in parts) == [
        "1",
        "2",
        "2",
        "3",
        "3",
    ]
    assert s3dlio.stat(uri)["etag"].endswith('-3"')
    assert s3dlio.get(uri) == payload
