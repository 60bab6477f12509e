"""The multi-endpoint store: balancing, per-endpoint stats, failover, constructors, bad input.

Three real moto servers (the session's and two more) hold the same objects; one is killed in
the middle of a run (no GET may fail), then restarted on its port and used again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio import InvalidArgumentError, RetryConfig
from s3dlio.io.multi import (
    EndpointsUnavailableError,
    MultiEndpointStore,
    create_multi_endpoint_store,
    create_multi_endpoint_store_from_env,
    create_multi_endpoint_store_from_file,
    create_multi_endpoint_store_from_template,
    expand_template,
)
from tests.servers.common import environment, free_port, start_server, stop_server
from tests.servers.moto import MotoS3

STAT_KEYS = {
    "uri",
    "total_requests",
    "bytes_read",
    "bytes_written",
    "error_count",
    "active_requests",
}


def _start_moto(port: int, log: Path) -> Any:
    return start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log
    )


class Extra:
    """A moto server this module starts, stops and restarts (same port)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc = _start_moto(self.port, log)

    def stop(self) -> None:
        stop_server(self.proc)

    def restart(self) -> None:
        stop_server(self.proc)
        self.proc = _start_moto(self.port, self.log)


@pytest.fixture(scope="module")
def extras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Extra]]:
    servers: list[Extra] = []
    try:
        for n in range(2):
            servers.append(Extra(tmp_path_factory.mktemp(f"moto-extra{n}") / "moto.log"))
        yield servers
    finally:
        for server in servers:
            server.stop()


def _bucket(port: int, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)


@pytest.fixture
def three(moto_s3: MotoS3, extras: list[Extra]) -> Iterator[tuple[list[str], list[Extra]]]:
    """Endpoint URIs of three live servers, each with the session bucket; the extras."""
    for server in extras:
        if server.proc.poll() is not None:
            server.restart()
        try:
            _bucket(server.port, moto_s3.bucket)
        except Exception as exc:  # noqa: BLE001 - already there from an earlier test
            if "BucketAlready" not in type(exc).__name__ + str(exc):
                raise
    ports = [moto_s3.port] + [s.port for s in extras]
    yield [f"s3://127.0.0.1:{p}/{moto_s3.bucket}/" for p in ports], extras


def _fast(**extra: Any) -> dict[str, Any]:
    """Store options for tests: short back-off, quick retries."""
    return {
        "backoff": 0.2,
        "max_backoff": 0.4,
        "retry": RetryConfig(max_attempts=2, base_delay=0.01, max_total=5.0),
        "connect_timeout": 2.0,
        **extra,
    }


def _seed(store: MultiEndpointStore, prefix: str, n: int) -> dict[str, bytes]:
    objects = {f"{prefix}obj-{i:03d}.bin": bytes([i % 251]) * (1000 + i) for i in range(n)}

    async def put_all() -> None:
        for key, data in objects.items():
            await store.put_all_endpoints(key, data)

    asyncio.run(put_all())
    return objects


def test_round_robin_spreads_requests_and_counts_bytes(
    three: tuple[list[str], list[Extra]],
) -> None:
    uris, _ = three
    store = create_multi_endpoint_store(uris, strategy="round_robin", **_fast())
    objects = _seed(store, "rr/", 6)
    stats0 = store.get_endpoint_stats()
    assert [s["bytes_written"] for s in stats0] == [sum(map(len, objects.values()))] * 3

    async def read() -> list[bytes]:
        return [bytes(await store.get(key)) for key in objects for _ in range(2)]

    got = asyncio.run(read())
    assert got == [data for data in objects.values() for _ in range(2)]
    stats = store.get_endpoint_stats()
    assert all(set(s) == STAT_KEYS for s in stats)
    reads = [
        s["total_requests"] - s0["total_requests"] for s, s0 in zip(stats, stats0, strict=True)
    ]
    assert reads == [4, 4, 4]  # 12 GETs, evenly
    assert sum(s["bytes_read"] for s in stats) == 2 * sum(map(len, objects.values()))
    total = store.get_total_stats()
    assert set(total) == STAT_KEYS - {"uri"}
    assert total["total_requests"] == sum(s["total_requests"] for s in stats)
    assert total["active_requests"] == 0
    assert store.endpoint_count() == 3 and store.strategy() == "round_robin"

    # get_many through the balancing client (the multiplexed path) spreads too
    before = [s["total_requests"] for s in store.get_endpoint_stats()]
    keys = [uris[0] + k for k in objects] * 5
    assert [bytes(d) for _, d in store.client.get_many(keys)] == list(objects.values()) * 5
    after = [s["total_requests"] for s in store.get_endpoint_stats()]
    assert [a - b for a, b in zip(after, before, strict=True)] == [10, 10, 10]


def test_pinned_methods_and_listing(three: tuple[list[str], list[Extra]]) -> None:
    uris, _ = three
    store = create_multi_endpoint_store(uris, **_fast())

    async def run() -> tuple[Any, ...]:
        await store.put_to_endpoint(1, "pin/only-on-1", b"one")
        on1 = bytes(await store.get_from_endpoint(1, uris[0] + "pin/only-on-1"))
        listed = [await store.list(uris[0] + "pin/", False) for _ in range(3)]
        union = await store.list_all_endpoints("pin/", False)
        await store.delete_from_endpoint(1, "pin/only-on-1")
        after = await store.list_all_endpoints("pin/", False)
        return on1, listed, union, after

    on1, listed, union, after = asyncio.run(run())
    assert on1 == b"one"
    assert sorted(len(x) for x in listed) == [0, 0, 1]  # only endpoint 1 has it
    assert union == [
        f"s3://127.0.0.1:{uris[1].split(':')[2].split('/')[0]}/s3dlio-test/pin/only-on-1"
    ]
    assert after == []
    with pytest.raises(InvalidArgumentError, match="7"):
        asyncio.run(store.get_from_endpoint(7, "x"))


def test_least_connections_prefers_idle_endpoints(three: tuple[list[str], list[Extra]]) -> None:
    uris, _ = three
    store = create_multi_endpoint_store(uris, strategy="least_connections", **_fast())
    assert store.strategy() == "least_connections"
    objects = _seed(store, "lc/", 3)
    before = [s["total_requests"] for s in store.get_endpoint_stats()]
    for _ in range(3):  # sequential: every endpoint idle, so the rotation decides
        for key, data in objects.items():
            assert bytes(store.get_sync(key)) == data
    after = [s["total_requests"] for s in store.get_endpoint_stats()]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 3, 3]


def test_a_killed_server_fails_no_get_and_is_used_again_after_restart(
    three: tuple[list[str], list[Extra]], moto_s3: MotoS3
) -> None:
    uris, extras = three
    store = create_multi_endpoint_store(uris, **_fast())
    objects = _seed(store, "fo/", 30)
    keys = [uris[0] + k for k in objects]
    want = list(objects.values())
    errors: list[BaseException] = []
    rounds = [0]
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                got = store.client.get_many(keys, max_in_flight=8)
                assert [bytes(d) for _, d in got] == want
                for key, data in list(objects.items())[:5]:
                    assert bytes(store.client.get(uris[0] + key)) == data
                rounds[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while store.get_endpoint_stats()[2]["total_requests"] < 40 and time.monotonic() < deadline:
            thread.join(0.01)
        victim = extras[1]
        victim.stop()  # killed while the reader runs
        killed_at = rounds[0]
        while rounds[0] < killed_at + 3 and not errors and time.monotonic() < deadline:
            thread.join(0.01)
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    assert not errors, errors
    assert rounds[0] >= killed_at + 3
    health = store.endpoint_health()[2]
    assert health["last_failure"] is not None  # it was noticed ...
    failed = store.get_endpoint_stats()[2]["error_count"]
    assert failed >= 1

    # ... restarted on the same port (moto forgets its objects: put them back there)
    victim.restart()
    _bucket(victim.port, moto_s3.bucket)
    for key, data in objects.items():
        store.put_to_endpoint_sync(2, key, data)
    before = store.get_endpoint_stats()[2]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert [bytes(d) for _, d in store.client.get_many(keys[:6])] == want[:6]
        now = store.get_endpoint_stats()[2]
        if now["total_requests"] - before["total_requests"] >= 3:
            break
    now = store.get_endpoint_stats()[2]
    assert now["total_requests"] - before["total_requests"] >= 3  # back in the rotation
    assert now["error_count"] == before["error_count"]  # and answering
    assert store.endpoint_health()[2]["available"]


def test_all_endpoints_down_is_one_error_naming_each(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    uris = [f"s3://127.0.0.1:{p}/bucket/" for p in ports]
    store = create_multi_endpoint_store(uris, **_fast())
    started = time.monotonic()
    with pytest.raises(EndpointsUnavailableError) as info:
        store.get_sync("k")
    assert time.monotonic() - started < 15
    err = info.value
    assert [ep for ep, _ in err.failures] == uris
    for uri in uris:
        assert uri in str(err)
    assert isinstance(err, s3dlio.TransientError)
    assert err.attempts == 2  # the retry budget was used
    with pytest.raises(s3dlio.BatchError) as batch:  # the multiplexed path, per object
        store.client.get_many([uris[0] + "a", uris[0] + "b"])
    assert [type(exc) for _, exc in batch.value.failures] == [EndpointsUnavailableError] * 2


def test_loader_and_dataset_take_endpoints(three: tuple[list[str], list[Extra]]) -> None:
    uris, _ = three
    store = create_multi_endpoint_store(uris, **_fast())
    objects = _seed(store, "ld/", 9)
    opts = s3dlio.LoaderOptions(endpoints=uris, strategy="round_robin", prefetch=4)
    loader = s3dlio.create_async_loader(uris[0] + "ld/", opts)
    got = sorted(bytes(x) for x in loader)
    assert got == sorted(objects.values())
    shared = opts.client_for(None)
    stats = shared._store.get_endpoint_stats()
    assert all(s["total_requests"] >= 3 for s in stats)  # reads spread over all three
    ds = s3dlio.create_dataset(
        uris[1] + "ld/", {"endpoints": uris, "strategy": "least_connections"}
    )
    assert len(ds) == 9 and bytes(ds[0]) == objects["ld/obj-000.bin"]
    with pytest.raises(InvalidArgumentError, match="strategy"):
        s3dlio.LoaderOptions(endpoints=uris, strategy="fastest")
    with pytest.raises(InvalidArgumentError, match="endpoints"):
        s3dlio.LoaderOptions(endpoints=[])


# -- constructors and bad input (no server needed) ---------------------------------------------


def test_constructors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [tmp_path / n for n in "abc"]
    for d in dirs:
        d.mkdir()
    uris = [d.as_uri() + "/" for d in dirs]
    monkeypatch.setenv("S3_ENDPOINT_URIS", " , ".join(uris) + ",")
    assert create_multi_endpoint_store_from_env().uris() == uris
    listing = tmp_path / "eps.txt"
    listing.write_text("# endpoints\n\n" + "\n".join(f"  {u}  # a note" for u in uris) + "\n")
    from_file = create_multi_endpoint_store_from_file(listing, strategy="least_connections")
    assert from_file.uris() == uris and from_file.strategy() == "least_connections"
    template = create_multi_endpoint_store_from_template(tmp_path.as_uri() + "/{1...3}/")
    assert template.uris() == [f"{tmp_path.as_uri()}/{n}/" for n in (1, 2, 3)]
    assert expand_template("s3://bucket-{1...3}/data") == [
        "s3://bucket-1/data",
        "s3://bucket-2/data",
        "s3://bucket-3/data",
    ]
    assert expand_template("s3://10.0.0.{1...2}:9000/b/{08...09}/") == [
        "s3://10.0.0.1:9000/b/08/",
        "s3://10.0.0.1:9000/b/09/",
        "s3://10.0.0.2:9000/b/08/",
        "s3://10.0.0.2:9000/b/09/",
    ]
    assert expand_template("s3://bucket/data") == ["s3://bucket/data"]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: create_multi_endpoint_store(["file:///a/"], strategy="random"), "random"),
        (lambda: create_multi_endpoint_store([]), "at least one"),
        (lambda: create_multi_endpoint_store([f"file:///e{i}/" for i in range(33)]), "33"),
        (lambda: create_multi_endpoint_store(["file:///a/", "s3://b/"]), "file, s3"),
        (lambda: create_multi_endpoint_store_from_template("s3://b-{3...1}/"), "{3...1}"),
        (lambda: create_multi_endpoint_store_from_template("s3://b-{a...3}/"), "{a...3}"),
        (lambda: create_multi_endpoint_store_from_template("s3://b-{1..3}/"), "{1..3}"),
        (lambda: create_multi_endpoint_store_from_template("s3://b-{1...40}/"), "40"),
        (lambda: create_multi_endpoint_store(["s3://10.0.0.1/b/"]), "10.0.0.1"),
    ],
)
def test_bad_input_is_a_value_error_naming_it(call: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("{", r"\{").replace(".", r"\.")) as info:
        call()
    assert isinstance(info.value, InvalidArgumentError)


def test_env_and_file_errors(tmp_path: Path) -> None:
    with environment({"S3_ENDPOINT_URIS": None}):
        with pytest.raises(InvalidArgumentError, match="S3_ENDPOINT_URIS"):
            create_multi_endpoint_store_from_env()
    with pytest.raises(s3dlio.NotFoundError):
        create_multi_endpoint_store_from_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(InvalidArgumentError, match="empty.txt"):
        create_multi_endpoint_store_from_file(empty)


def test_cli_endpoints_on_put_ls_get(
    three: tuple[list[str], list[Extra]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from s3dlio.cli import main

    uris, _ = three
    eps = ",".join(uris)
    assert main(["--endpoints", eps, "put", uris[0] + "cli/", "-n", "3", "-s", "1KiB", "-q"]) == 0
    store = create_multi_endpoint_store(uris, **_fast())
    counts = []
    for i in range(3):
        counts.append(len(asyncio.run(store.list_all_endpoints(uris[i] + "cli/"))))
    assert counts == [3, 3, 3]  # the union holds all three ...
    assert sorted(
        len(store.backend.endpoints[i].client.list(store.backend.endpoints[i].target("cli/")))
        for i in range(3)
    ) == [1, 1, 1]  # ... one on each endpoint: the puts were balanced
    store.put_all_endpoints_sync("cli/shared.bin", b"shared" * 100)
    capsys.readouterr()
    assert (
        main(["--endpoints", eps, "--strategy", "least_connections", "ls", uris[2] + "cli/"]) == 0
    )
    assert "shared.bin" in capsys.readouterr().out
    out = tmp_path / "got.bin"
    assert main(["--endpoints", eps, "get", uris[1] + "cli/shared.bin", "-o", str(out), "-q"]) == 0
    assert out.read_bytes() == b"shared" * 100
    assert main(["--endpoints", "file:///a/,s3://b/", "ls", "s3://b/"]) == 2
