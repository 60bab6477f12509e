"""S3 GETs and PUTs over loopback: ours, the original s3dlio, boto3 threads, s3transfer,
s3torchconnector and obstore, every one pointed at the same endpoint, path-style, dummy
credentials. On ``https`` endpoints each trusts the server's self-signed certificate through its
usual CA setting (``AWS_CA_BUNDLE`` for ours, the original and botocore; ``root_certificate``
for obstore; ``SSL_CERT_FILE`` for s3torchconnector's CRT).

Params: ``endpoint``, ``bucket``, ``keys`` (a file listing one key per line, to keep argv
short), ``threads`` (for the thread-pool contenders), ``max_in_flight`` (get_many/put_many).
PUT factories also take ``size`` and ``count``.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

from _common import check, result, total

REGION = "us-east-1"


def _keys(params: dict) -> list[str]:
    with open(params["keys"]) as f:
        return [line.strip() for line in f if line.strip()]


def _boto3_client(params: dict, pool: int):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=params["endpoint"],
        region_name=REGION,
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=pool,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


# -- GET ----------------------------------------------------------------------------------------


def s3dlio_get_many(params: dict) -> object:
    """``s3dlio.get_many(uris, max_in_flight)`` (ours or the original's, by venv)."""
    import s3dlio

    uris = [f"s3://{params['bucket']}/{k}" for k in _keys(params)]
    inflight = params.get("max_in_flight", 64)

    def run() -> dict:
        size, count = total(s3dlio.get_many(uris, max_in_flight=inflight))
        check(size, params["case_bytes"], "get_many")
        return result(size, count)

    return run


def boto3_threads(params: dict) -> object:
    """A thread pool calling ``get_object(...)["Body"].read()`` per key."""
    threads = params.get("threads", 8)
    client = _boto3_client(params, threads)
    bucket, keys = params["bucket"], _keys(params)

    def one(key: str) -> int:
        return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    pool = ThreadPoolExecutor(threads)

    def run() -> dict:
        size = sum(pool.map(one, keys))
        check(size, params["case_bytes"], "boto3")
        return result(size, len(keys))

    return run


class _Sink(io.RawIOBase):
    """A seekable file that counts what is written to it and keeps nothing."""

    def __init__(self) -> None:
        self.written = 0
        self.pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        n = memoryview(data).nbytes
        self.written += n
        self.pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos

    def tell(self) -> int:
        return self.pos


def s3transfer_download(params: dict) -> object:
    """s3transfer's ``TransferManager.download`` of every key (HEAD, then ranged GETs)."""
    from s3transfer.manager import TransferConfig, TransferManager

    threads = params.get("threads", 10)
    client = _boto3_client(params, threads + 2)
    manager = TransferManager(client, TransferConfig(max_request_concurrency=threads))
    bucket, keys = params["bucket"], _keys(params)

    def run() -> dict:
        sinks = [_Sink() for _ in keys]
        futures = [manager.download(bucket, k, s) for k, s in zip(keys, sinks, strict=True)]
        for future in futures:
            future.result()
        size = sum(s.written for s in sinks)
        check(size, params["case_bytes"], "s3transfer")
        return result(size, len(keys))

    return run


def _s3torch_client(params: dict):
    from s3torchconnector._s3client import S3Client, S3ClientConfig

    return S3Client(
        region=REGION,
        endpoint=params["endpoint"],
        s3client_config=S3ClientConfig(force_path_style=True),
    )


def s3torchconnector_get(params: dict) -> object:
    """s3torchconnector's ``S3Client.get_object(...).read()`` from a thread pool."""
    threads = params.get("threads", 8)
    client = _s3torch_client(params)
    bucket, keys = params["bucket"], _keys(params)

    def one(key: str) -> int:
        return len(client.get_object(bucket, key).read())

    pool = ThreadPoolExecutor(threads)

    def run() -> dict:
        size = sum(pool.map(one, keys))
        check(size, params["case_bytes"], "s3torchconnector")
        return result(size, len(keys))

    return run


def _obstore_store(params: dict):
    from obstore.store import S3Store

    options: dict = {"allow_http": True}
    ca = os.environ.get("AWS_CA_BUNDLE")
    if ca and params["endpoint"].startswith("https:"):
        with open(ca) as f:
            options["root_certificate"] = f.read()
    if params.get("proxy"):  # suite_s3_proxy: through this forward proxy
        options["proxy_url"] = params["proxy"]
    return S3Store(
        params["bucket"],
        endpoint=params["endpoint"],
        region=REGION,
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
        secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "bench-secret"),
        virtual_hosted_style_request=False,
        client_options=options,
    )


def obstore_get(params: dict) -> object:
    """obstore (Rust ``object_store``): every key's ``get_async(...).bytes_async()`` gathered
    at once on one asyncio loop, at most ``max_in_flight`` at a time (the Rust runtime does the
    I/O)."""
    import asyncio

    import obstore

    store = _obstore_store(params)
    keys = _keys(params)
    inflight = params.get("max_in_flight", 64)
    loop = asyncio.new_event_loop()

    async def one(key: str, gate: asyncio.Semaphore) -> int:
        async with gate:
            got = await obstore.get_async(store, key)
            return len(memoryview(await got.bytes_async()))

    async def everything() -> int:
        gate = asyncio.Semaphore(inflight)
        return sum(await asyncio.gather(*(one(k, gate) for k in keys)))

    def run() -> dict:
        size = loop.run_until_complete(everything())
        check(size, params["case_bytes"], "obstore")
        return result(size, len(keys))

    return run


# -- PUT ----------------------------------------------------------------------------------------


def _payload(size: int) -> bytes:
    return os.urandom(size)


def s3dlio_put_many(params: dict) -> object:
    """``s3dlio.put_many([(uri, data), ...])`` (ours or the original's, by venv)."""
    import s3dlio

    data = _payload(params["size"])
    count, prefix = params["count"], f"s3://{params['bucket']}/{params['prefix']}"
    inflight = params.get("max_in_flight", 64)
    rounds = iter(range(1 << 30))

    def run() -> dict:
        r = next(rounds)
        s3dlio.put_many(
            [(f"{prefix}/r{r}/obj_{i}", data) for i in range(count)], max_in_flight=inflight
        )
        return result(len(data) * count, count)

    return run


def boto3_put_threads(params: dict) -> object:
    """A thread pool of ``put_object`` (boto3 sends one PUT; no multipart)."""
    threads = params.get("threads", 8)
    client = _boto3_client(params, threads)
    data = _payload(params["size"])
    count, bucket, prefix = params["count"], params["bucket"], params["prefix"]
    pool = ThreadPoolExecutor(threads)
    rounds = iter(range(1 << 30))

    def run() -> dict:
        r = next(rounds)
        list(
            pool.map(
                lambda i: client.put_object(Bucket=bucket, Key=f"{prefix}/r{r}/obj_{i}", Body=data),
                range(count),
            )
        )
        return result(len(data) * count, count)

    return run


def s3transfer_upload(params: dict) -> object:
    """s3transfer's ``TransferManager.upload`` (multipart above 8 MiB)."""
    from s3transfer.manager import TransferConfig, TransferManager

    threads = params.get("threads", 10)
    client = _boto3_client(params, threads + 2)
    manager = TransferManager(client, TransferConfig(max_request_concurrency=threads))
    data = _payload(params["size"])
    count, bucket, prefix = params["count"], params["bucket"], params["prefix"]
    rounds = iter(range(1 << 30))

    def run() -> dict:
        r = next(rounds)
        futures = [
            manager.upload(io.BytesIO(data), bucket, f"{prefix}/r{r}/obj_{i}") for i in range(count)
        ]
        for future in futures:
            future.result()
        return result(len(data) * count, count)

    return run
