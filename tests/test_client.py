"""``s3dlio.Client``: configuration as a value.

Two clients pointed at two real S3 servers (and at two Azure accounts on two Azurite servers)
work side by side in one process and in DataLoader workers (fork and spawn); ``configure()``
reaches every backend (a stalled read honours the new timeout on s3, az and gs, through the
fault proxy); options are checked; a closed client says so.
"""

from __future__ import annotations

import base64
import pickle
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio import InvalidArgumentError, RetryConfig, S3DlioError, TransientError
from s3dlio.io.config import reset_settings, settings
from s3dlio.io.store import StoreSet, default_stores, set_default_stores
from tests.servers.azurite import BINARY as AZURITE
from tests.servers.azurite import Azurite
from tests.servers.common import free_port, start_server, stop_server
from tests.servers.gcs import FakeGCS
from tests.servers.moto import MotoS3
from tests.servers.proxy import FaultProxy

SECOND_ACCOUNT = "s3dliotwo"
SECOND_KEY = base64.b64encode(b"the second account's key, 32 by").decode()


@pytest.fixture(scope="module")
def second_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another moto S3 server (its own port, its own objects); yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto2") / "moto.log"
    proc = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def second_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another Azurite holding only the account ``s3dliotwo``; yields its connection string."""
    port = free_port()
    log = tmp_path_factory.mktemp("azurite2") / "azurite.log"
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    cmd += ["--inMemoryPersistence", "--silent", "--disableTelemetry"]
    cmd += ["--skipApiVersionCheck", "--loose"]
    env = {"AZURITE_ACCOUNTS": f"{SECOND_ACCOUNT}:{SECOND_KEY}"}
    proc = start_server(cmd, port, log, env=env)
    try:
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={SECOND_ACCOUNT};"
            f"AccountKey={SECOND_KEY};BlobEndpoint=http://127.0.0.1:{port}/{SECOND_ACCOUNT};"
        )
    finally:
        stop_server(proc)


@pytest.fixture
def restore_default() -> Iterator[None]:
    """Put the default client and the process settings back after a test that configures."""
    old_settings, old_config = settings(), default_stores().config
    try:
        yield
    finally:
        reset_settings(old_settings)
        set_default_stores(StoreSet(old_config)).close()


def _bucket(url: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="other",
        aws_secret_access_key="other-secret",
    )
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()


# -- two S3 services ---------------------------------------------------------------------------


def test_two_clients_on_two_s3_servers_concurrently(moto_s3: MotoS3, second_moto: str) -> None:
    bucket = f"two-{uuid.uuid4().hex[:8]}"
    _bucket(moto_s3.url, bucket)
    _bucket(second_moto, bucket)
    first = s3dlio.Client(endpoint_url=moto_s3.url, region="us-east-1")
    second = s3dlio.Client(
        endpoint_url=second_moto,
        region="us-east-1",
        access_key_id="other",
        secret_access_key="other-secret",
    )
    errors: list[BaseException] = []

    def work(client: s3dlio.Client, tag: bytes) -> None:
        try:
            for i in range(20):
                uri = f"s3://{bucket}/k{i}"
                client.put_bytes(uri, tag * (i + 1))
                assert bytes(client.get(uri)) == tag * (i + 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(first, b"A")),
        threading.Thread(target=work, args=(second, b"B")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    # each server holds its own objects; the listing goes to the client's own server
    assert bytes(first.get(f"s3://{bucket}/k3")) == b"AAAA"
    assert bytes(second.get(f"s3://{bucket}/k3")) == b"BBBB"
    assert len(second.list(f"s3://{bucket}/")) == 20
    assert second.backend(f"s3://{bucket}/k").endpoint(s3dlio.parse_uri(f"s3://{bucket}/k")) == (
        second_moto
    )
    # the flat functions use the default client (the session's moto)
    assert bytes(s3dlio.get(f"s3://{bucket}/k0")) == b"A"
    first.close()
    second.close()


def _dataset_items(client: s3dlio.Client, prefix: str, context: str) -> list[bytes]:
    import torch.utils.data

    from s3dlio.torch import S3MapDataset

    dataset = S3MapDataset(prefix, return_type="bytes", client=client)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=2,
        multiprocessing_context=context,
        timeout=60,
    )
    return [bytes(item) for item in loader]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_client_in_dataloader_workers(moto_s3: MotoS3, second_moto: str, context: str) -> None:
    bucket = f"dl-{uuid.uuid4().hex[:8]}"
    _bucket(moto_s3.url, bucket)
    _bucket(second_moto, bucket)
    prefix = f"s3://{bucket}/data/"
    second = s3dlio.Client(endpoint_url=second_moto, region="us-east-1")
    for i in range(6):
        s3dlio.put_bytes(f"{prefix}{i}", b"default-server")  # same keys, other server
        second.put_bytes(f"{prefix}{i}", f"second-{i}".encode())
    items = _dataset_items(second, prefix, context)
    assert sorted(items) == [f"second-{i}".encode() for i in range(6)]


def test_loader_and_checkpoint_store_take_a_client(
    moto_s3: MotoS3, second_moto: str, tmp_path: Path
) -> None:
    bucket = f"ld-{uuid.uuid4().hex[:8]}"
    _bucket(second_moto, bucket)
    second = s3dlio.Client(endpoint_url=second_moto, region="us-east-1")
    prefix = f"s3://{bucket}/objs/"
    second.put_many({f"{prefix}{i}": bytes([i]) * 10 for i in range(5)})
    with s3dlio.create_async_loader(prefix, {"batch_size": 5}, client=second) as loader:
        items = [bytes(item) for item in loader]  # ``for`` yields items
    assert items == [bytes([i]) * 10 for i in range(5)]
    with pytest.raises(s3dlio.NotFoundError):  # the default server has no such bucket
        s3dlio.create_async_loader(prefix, {"batch_size": 5})
    store = s3dlio.CheckpointStore(f"s3://{bucket}/ckpt/", client=second)
    store.save(7, 1, "bytes", b"state")
    assert bytes(s3dlio.CheckpointStore(f"s3://{bucket}/ckpt/", client=second).load_latest()) == (
        b"state"
    )
    with second.open_writer(f"s3://{bucket}/w.bin") as writer:
        writer.write(b"written")
    assert bytes(second.get(f"s3://{bucket}/w.bin")) == b"written"


def test_the_cli_runs_through_a_given_client(
    moto_s3: MotoS3, second_moto: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from s3dlio.cli import main

    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    _bucket(second_moto, bucket)
    second = s3dlio.Client(endpoint_url=second_moto, region="us-east-1")
    second.put_bytes(f"s3://{bucket}/only-on-the-second", b"x")
    assert main(["ls", f"s3://{bucket}/"], client=second) == 0
    assert capsys.readouterr().out.split() == [f"s3://{bucket}/only-on-the-second"]
    assert main(["ls", f"s3://{bucket}/"]) == 1  # the default server has no such bucket
    assert "NoSuchBucket" in capsys.readouterr().err


# -- two Azure accounts ------------------------------------------------------------------------


def test_two_azure_accounts_on_two_servers(azurite: Azurite, second_azurite: str) -> None:
    other = s3dlio.Client(azure_connection_string=second_azurite)
    container = f"c{uuid.uuid4().hex[:10]}"
    other.create_bucket(f"az://{SECOND_ACCOUNT}/{container}")
    s3dlio.create_bucket(f"az://devstoreaccount1/{container}")
    done: list[BaseException] = []

    def work(uri: str, client: Any, data: bytes) -> None:
        try:
            client.put_bytes(uri, data)
        except BaseException as exc:  # noqa: BLE001
            done.append(exc)

    threads = [
        threading.Thread(target=work, args=(f"az://{SECOND_ACCOUNT}/{container}/k", other, b"2")),
        threading.Thread(
            target=work,
            args=(f"az://devstoreaccount1/{container}/k", s3dlio.default_client(), b"1"),
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not done, done
    assert bytes(other.get(f"az://{SECOND_ACCOUNT}/{container}/k")) == b"2"
    assert bytes(s3dlio.get(f"az://devstoreaccount1/{container}/k")) == b"1"
    # the client's own account is the default of its account-less URIs
    assert bytes(other.get(f"az://{container}/k")) == b"2"
    assert other.list(f"az://{SECOND_ACCOUNT}/{container}/") == [
        f"az://{SECOND_ACCOUNT}/{container}/k"
    ]
    # the default client does not know the second account's key
    with pytest.raises(S3DlioError):
        s3dlio.get(f"az://{SECOND_ACCOUNT}/{container}/k")
    other.close()


# -- configure() reaches every backend ---------------------------------------------------------

FAST_FAIL = RetryConfig(max_attempts=1)


def _proxied_options(scheme: str, proxy: FaultProxy, servers: dict[str, Any]) -> dict[str, Any]:
    """The client option that sends ``scheme``'s requests through ``proxy``."""
    if scheme == "s3":
        return {"endpoint_url": proxy.url}
    if scheme == "az":
        azurite = servers["az"]
        return {
            "azure_connection_string": azurite.connection_string.replace(
                str(azurite.port), str(proxy.port)
            )
        }
    return {"gcs_emulator_host": proxy.url}


@pytest.mark.parametrize("scheme", ["s3", "az", "gs"])
def test_configure_reaches_every_backend(
    scheme: str,
    moto_s3: MotoS3,
    azurite: Azurite,
    fake_gcs: FakeGCS,
    request: pytest.FixtureRequest,
    fault_proxy: Any,
    restore_default: None,
) -> None:
    servers = {"s3": moto_s3, "az": azurite, "gs": fake_gcs}
    uri = request.getfixturevalue(f"{scheme}_root") + "stall.bin"
    s3dlio.put_bytes(uri, b"x" * 1000)
    s3dlio.get(uri)  # the default client's clients exist before configure()
    proxy = fault_proxy(servers[scheme].port)
    options = _proxied_options(scheme, proxy, servers)
    s3dlio.configure(**options, operation_timeout=0.5, retry=FAST_FAIL)
    proxy.add_fault("stall_first_byte", match="GET", seconds=8)
    with pytest.raises(S3DlioError) as info:  # the new timeout cuts the 8 s stall short
        s3dlio.get(uri)
    assert info.value.op in ("GET", "GET_RANGE") and info.value.uri == uri
    proxy.clear()
    s3dlio.configure(operation_timeout=30)  # a longer timeout: a shorter stall is waited out
    proxy.add_fault("stall_first_byte", match="GET", seconds=1)
    assert bytes(s3dlio.get(uri)) == b"x" * 1000
    assert proxy.requests_matching("GET"), "the requests went through the proxy"


# -- options and life cycle --------------------------------------------------------------------


def test_a_missing_ca_bundle_is_a_setting_error_named_at_once(
    moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    client = s3dlio.Client(endpoint_url=moto_s3.url, ca_bundle=missing)
    with pytest.raises(InvalidArgumentError, match=re.escape(f"ca_bundle='{missing}'")) as info:
        client.get(f"s3://{moto_s3.bucket}/k")
    assert not isinstance(info.value, TransientError)  # not retried: nothing will change
    monkeypatch.setenv("AWS_CA_BUNDLE", missing)
    with pytest.raises(InvalidArgumentError, match=re.escape(f"AWS_CA_BUNDLE='{missing}'")):
        s3dlio.Client(endpoint_url=moto_s3.url).stat(f"s3://{moto_s3.bucket}/k")


def test_unknown_and_mistyped_options_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match="endpont_url"):
        s3dlio.Client(endpont_url="http://127.0.0.1:9000")
    with pytest.raises(InvalidArgumentError, match="connect_timeout"):
        s3dlio.Client(connect_timeout="slow")
    with pytest.raises(InvalidArgumentError, match="retry"):
        s3dlio.Client(retry={"max_attempts": 3})
    with pytest.raises(InvalidArgumentError, match="secret_access_key"):
        s3dlio.Client(access_key_id="AKID")
    with pytest.raises(s3dlio.InvalidURIError, match="endpoint_url"):
        s3dlio.Client(endpoint_url="127.0.0.1:9000")  # no scheme
    with pytest.raises(InvalidArgumentError, match="bogus"):
        s3dlio.configure(bogus=1)
    assert issubclass(s3dlio.InvalidURIError, InvalidArgumentError)
    assert issubclass(InvalidArgumentError, ValueError)


def test_secrets_stay_out_of_repr_and_errors() -> None:
    client = s3dlio.Client(access_key_id="AKIDVISIBLE", secret_access_key="hidden-secret-value")
    assert "hidden-secret-value" not in repr(client)
    with pytest.raises(InvalidArgumentError) as info:
        s3dlio.Client(azure_account_key=12345678)
    assert "12345678" not in str(info.value)


def test_closed_client_says_so(tmp_path: Path) -> None:
    client = s3dlio.Client()
    uri = (tmp_path / "a.bin").as_uri()
    client.put_bytes(uri, b"a")
    client.close()
    assert client.closed
    with pytest.raises(InvalidArgumentError, match="closed"):
        client.get(uri)
    with s3dlio.Client() as scoped:
        assert bytes(scoped.get(uri)) == b"a"
    assert scoped.closed


def test_closing_the_default_client_only_drops_connections(tmp_path: Path) -> None:
    uri = (tmp_path / "d.bin").as_uri()
    s3dlio.put_bytes(uri, b"d")
    s3dlio.default_client().close()
    assert bytes(s3dlio.get(uri)) == b"d"


def test_a_client_pickles_as_its_options() -> None:
    client = s3dlio.Client(endpoint_url="http://127.0.0.1:9", region="eu-west-1", max_connections=4)
    copy = pickle.loads(pickle.dumps(client))
    assert copy is not client and copy.config == client.config
    assert copy.config.options() == {
        "endpoint_url": "http://127.0.0.1:9",
        "region": "eu-west-1",
        "max_connections": 4,
    }


def test_async_twins_use_the_client(tmp_path: Path) -> None:
    import asyncio

    client = s3dlio.Client()
    uri = (tmp_path / "x.bin").as_uri()

    async def main() -> bytes:
        await client.put_bytes_async(uri, b"async")
        got = await client.get_many_async([uri])
        return bytes(got[0][1])

    assert asyncio.run(main()) == b"async"
