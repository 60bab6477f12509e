"""What only ``az://`` has: cross-checks with the official SDK on Azurite, staged-block writers,
both URI forms, containers, error mapping, and faults injected by a proxy in front of Azurite.

The backend-agnostic behaviour is in ``tests/contract/``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

import s3dlio
from s3dlio import (
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
)
from s3dlio.io.backends import azure as azure_backend
from s3dlio.io.retry import retry_stats
from s3dlio.io.store import backend_for, reset_backends
from s3dlio.io.uri import parse_uri
from tests.helpers import (
    MiB,
    check_bucket_lifecycle,
    key_of,
    logged_ops,
    random_payload,
    through_proxy,
)
from tests.servers.azurite import ACCOUNT, Azurite, connection_string
from tests.servers.proxy import FaultProxy


@pytest.fixture(scope="module")
def sdk(azurite: Azurite) -> Iterator[ContainerClient]:
    """The official client of the session container."""
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        yield service.get_container_client(azurite.container)


# -- cross-checks with the official client -----------------------------------------------------


def test_what_we_write_the_sdk_reads(az_root: str, sdk: ContainerClient) -> None:
    small, big = random_payload(1000, 1), random_payload(3 * MiB + 5, 2)
    s3dlio.put_bytes(az_root + "small.bin", small)
    opts = s3dlio.WriterOptions(part_size="1MiB", content_type="application/x-test")
    with s3dlio.open_writer(az_root + "big.bin", opts) as writer:
        for start in range(0, len(big), 300_000):
            writer.write(big[start : start + 300_000])
    assert sdk.download_blob(key_of(az_root + "small.bin")).readall() == small
    blob = sdk.get_blob_client(key_of(az_root + "big.bin"))
    assert blob.download_blob().readall() == big
    assert blob.get_blob_properties().content_settings.content_type == "application/x-test"
    committed, _ = blob.get_block_list("committed")
    assert [b.size for b in committed] == [MiB, MiB, MiB, 5]


def test_what_the_sdk_writes_we_read(az_root: str, sdk: ContainerClient) -> None:
    payload = random_payload(100_000, 3)
    sdk.upload_blob(key_of(az_root + "dir/sdk.bin"), payload, metadata={"k": "v"})
    assert s3dlio.get(az_root + "dir/sdk.bin") == payload
    assert s3dlio.get_range(az_root + "dir/sdk.bin", 99_990, 100) == payload[99_990:]
    info = s3dlio.stat(az_root + "dir/sdk.bin")
    assert info["size"] == 100_000 and info["metadata"] == {"k": "v"}
    assert info["blob_type"] == "BlockBlob"
    assert (
        info["etag"]
        == sdk.get_blob_client(key_of(az_root + "dir/sdk.bin")).get_blob_properties().etag
    )
    assert s3dlio.list(az_root) == [az_root + "dir/"]


def test_streamed_40mib_write_and_split_read(
    az_root: str, sdk: ContainerClient, split_ranges: None, tmp_path: Path
) -> None:
    uri = az_root + "stream/40mib.bin"
    payload = random_payload(40 * MiB, 4)
    writer = s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="8MiB"))
    for start in range(0, len(payload), MiB):
        writer.write(payload[start : start + MiB])
        if start == 20 * MiB:
            assert not s3dlio.exists(uri)  # staged blocks are not a blob
    assert writer.finalize() == (40 * MiB, 40 * MiB)
    blob = sdk.get_blob_client(key_of(az_root + "stream/40mib.bin"))
    assert len(blob.get_block_list("committed")[0]) == 5
    digest = hashlib.sha256(payload).hexdigest()
    assert hashlib.sha256(blob.download_blob().readall()).hexdigest() == digest

    s3dlio.init_op_log(tmp_path / "ops.zst")
    got = s3dlio.get(uri)
    s3dlio.finalize_op_log()
    assert hashlib.sha256(got).hexdigest() == digest
    ops = logged_ops(tmp_path / "ops.zst")
    assert ops.count("GET") == 1 and ops.count("GET_RANGE") == 39


def test_writer_abort_leaves_no_blob_and_no_committed_blocks(
    az_root: str, sdk: ContainerClient
) -> None:
    uri = az_root + "aborted.bin"
    with pytest.raises(RuntimeError, match="stop"):
        with s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="1MiB")) as writer:
            writer.write(random_payload(3 * MiB, 5))
            raise RuntimeError("stop")
    assert not s3dlio.exists(uri)
    blob = sdk.get_blob_client(key_of(az_root + "aborted.bin"))
    with pytest.raises(ResourceNotFoundError):
        blob.get_blob_properties()
    try:
        committed, uncommitted = blob.get_block_list("all")
    except ResourceNotFoundError:  # no block was staged before the abort
        committed, uncommitted = [], []
    assert committed == []
    assert {b.size for b in uncommitted} <= {MiB}  # left for the service to discard


def test_abort_keeps_the_previous_version(az_root: str) -> None:
    uri = az_root + "kept.bin"
    s3dlio.put_bytes(uri, b"old")
    writer = s3dlio.open_writer(uri, s3dlio.WriterOptions(part_size="1MiB"))
    writer.write(random_payload(2 * MiB + 1, 6))
    writer.abort()
    assert s3dlio.get(uri) == b"old"


# -- URIs, containers, errors ------------------------------------------------------------------


def test_both_uri_forms_name_the_same_blob(az_root: str, azurite: Azurite) -> None:
    explicit = az_root + "forms.bin"
    implicit = "az://" + explicit[len(f"az://{ACCOUNT}/") :]
    assert parse_uri(implicit).account is None
    s3dlio.put_bytes(implicit, b"one blob")
    assert s3dlio.get(explicit) == b"one blob"
    assert s3dlio.list(implicit) == [implicit]
    assert s3dlio.list(explicit) == [explicit]


def test_containers(azurite: Azurite) -> None:
    name = f"c{uuid.uuid4().hex[:10]}"
    root = f"az://{ACCOUNT}/{name}/"
    s3dlio.create_bucket(root)
    assert root in s3dlio.list_containers(f"az://{ACCOUNT}/")
    check_bucket_lifecycle(root, "az://")


def test_batch_delete(az_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure_backend, "BATCH", 16)  # 40 blobs: three batch requests
    uris = [f"{az_root}b/{i:03d}" for i in range(40)]
    s3dlio.put_many([(u, b"x") for u in uris], max_in_flight=16)
    assert s3dlio.delete(az_root + "b/", recursive=True) == 40
    assert s3dlio.list(az_root, recursive=True) == []
    missing = [parse_uri(az_root + "gone1"), parse_uri(az_root + "gone2")]
    failed = backend_for(az_root).delete_many(missing)
    assert [(u, type(exc)) for u, exc in failed] == [(u, NotFoundError) for u in missing]
    assert not backend_for(az_root)._batch_refused  # type: ignore[attr-defined]


def test_changed_blob_fails_a_conditional_read(az_root: str) -> None:
    uri = parse_uri(az_root + "cond.bin")
    s3dlio.put_bytes(uri, b"first")
    stale = s3dlio.stat(uri)["etag"]
    s3dlio.put_bytes(uri, b"second")
    with pytest.raises(IntegrityError):
        backend_for(uri).open_read(uri, 0, 3, if_match=stale)


def test_bad_key_is_permission_denied_and_not_leaked(
    az_root: str, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    key = azurite.connection_string.split("AccountKey=")[1].split(";")[0]
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string.replace(key, wrong)
    )
    reset_backends()
    try:
        with pytest.raises(PermissionDeniedError) as info:
            s3dlio.get(az_root + "anything")
        text = str(info.value) + repr(info.value.__cause__) + repr(info.value.__context__)
        assert wrong not in text and key not in text
    finally:
        monkeypatch.undo()
        reset_backends()


# -- faults injected by a proxy in front of Azurite --------------------------------------------

SERVER_BUSY = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
    b"<Message>Operations per second is over the account limit.</Message></Error>"
)
BUSY_HEADERS = {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"}


@pytest.fixture
def proxied(azurite: Azurite, fault_proxy: Callable[..., FaultProxy]) -> Iterator[FaultProxy]:
    """Route ``az://`` through a fault proxy in front of Azurite, with fast retries."""
    proxy = fault_proxy(azurite.port)
    with through_proxy(
        "az",
        "AZURE_STORAGE_CONNECTION_STRING",
        connection_string("127.0.0.1", proxy.port),
        azurite.connection_string,
    ):
        yield proxy


def _blob_path(root: str, name: str) -> str:
    uri = parse_uri(root + name)
    return f"/{ACCOUNT}/{uri.bucket}/{uri.key}"


def test_server_busy_is_retried(az_root: str, proxied: FaultProxy, sdk: ContainerClient) -> None:
    payload = random_payload(200_000, 7)
    sdk.upload_blob(key_of(az_root + "busy.bin"), payload)
    path = _blob_path(az_root, "busy.bin")
    proxied.add_fault(
        "status", count=2, match=f"GET {path}", status=503, body=SERVER_BUSY, headers=BUSY_HEADERS
    )
    before = retry_stats()
    assert s3dlio.get(az_root + "busy.bin") == payload
    assert retry_stats()["throttled"] - before["throttled"] == 2
    assert len(proxied.requests_matching(f"GET {path}")) == 3

    proxied.add_fault(
        "status", count=2, match=f"PUT {path}", status=500, body=SERVER_BUSY, headers=BUSY_HEADERS
    )
    before = retry_stats()
    s3dlio.put_bytes(az_root + "busy.bin", b"replaced")  # 500 ServerBusy: throttled, retried
    assert retry_stats()["throttled"] - before["throttled"] == 2
    assert sdk.download_blob(key_of(az_root + "busy.bin")).readall() == b"replaced"

    proxied.add_fault(
        "status",
        count=None,
        match=f"GET {path}",
        status=503,
        body=SERVER_BUSY,
        headers=BUSY_HEADERS,
    )
    with pytest.raises(s3dlio.ThrottledError, match="503 ServerBusy") as info:
        s3dlio.get(az_root + "busy.bin")
    assert info.value.attempts == 4


def test_truncated_body_is_fetched_again(
    az_root: str, proxied: FaultProxy, sdk: ContainerClient
) -> None:
    payload = random_payload(300_000, 8)
    sdk.upload_blob(key_of(az_root + "cut.bin"), payload)
    path = _blob_path(az_root, "cut.bin")
    proxied.add_fault("truncate", match=f"GET {path}", after=100_000)
    assert s3dlio.get(az_root + "cut.bin") == payload
    assert len(proxied.requests_matching(f"GET {path}")) == 2


def test_staged_block_rejected_once_is_sent_again(
    az_root: str, proxied: FaultProxy, sdk: ContainerClient
) -> None:
    payload = random_payload(3 * MiB, 9)
    proxied.add_fault(
        "status", match="comp=block&", status=503, body=SERVER_BUSY, headers=BUSY_HEADERS
    )
    with s3dlio.open_writer(az_root + "w.bin", s3dlio.WriterOptions(part_size="1MiB")) as w:
        w.write(payload)
    assert sdk.download_blob(key_of(az_root + "w.bin")).readall() == payload
    assert len(proxied.requests_matching("comp=block&")) == 4
