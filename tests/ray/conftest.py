"""A real two-node Ray cluster on loopback, for the ``s3dlio.ray`` tests.

These tests run in their own venv (``make test-ray`` builds ``.venv-ray`` with ``ray[data]``
and runs ``pytest tests/ray`` there); in the main venv, without Ray, they are not collected.

The session fixture starts ``ray start --head --node-ip-address=127.0.0.2 --block`` and a second
node ``ray start --address=127.0.0.2:<port> --node-ip-address=127.0.0.3 --block`` as child
processes, each in its own process group, with 1 CPU each, no dashboard, no usage stats, a small
object store and a temp dir of their own; the test process connects with
``ray.init(address="127.0.0.2:<port>")``. At the end the driver disconnects and both process
groups are stopped by PID (``ray stop`` would stop every Ray process of the user).

Ray rewrites ``127.0.0.1`` to the machine's routable address, hence 127.0.0.2/127.0.0.3 (still
loopback). The nodes start with the AWS variables removed from their environment, so a test
that reaches moto from a task proves the ``s3dlio.Client`` it passed travelled to the worker.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# In the main venv these run under `make test-ray` instead. (A spec without an origin is this
# very directory, seen as a namespace package "ray" because tests/ is on sys.path.)
_RAY = importlib.util.find_spec("ray")
if _RAY is None or _RAY.origin is None:
    collect_ignore_glob = ["test_*.py"]

# Token authentication with a token of this session (not ~/.ray/auth_token, which a local
# ray.init() of the user may have made), shared by the nodes, this driver and the CLI runs. Set
# before anything imports ray: the driver reads it once.
AUTH = {
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
    "RAY_USAGE_STATS_ENABLED": "0",
}
if "collect_ignore_glob" not in globals():
    os.environ.update(AUTH)

from ray_cluster import (  # noqa: E402 - after the collection guard
    HEAD_IP,
    NODE_IP,
    OBJECT_STORE_BYTES,
    START_TIMEOUT,
    STRIPPED,
    RayCluster,
    free_port,
    start,
    stop,
    wait_port,
)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head (127.0.0.2) and a second node (127.0.0.3), 1 CPU each; the driver connected."""
    import ray
    import ray.data

    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = free_port(HEAD_IP)
    temp = Path(tempfile.mkdtemp(prefix="s3dlio-ray-", dir="/tmp"))  # short: Unix socket paths
    # Token authentication with a token of this session (not ~/.ray/auth_token, which a local
    # ray.init() of the user may have made): the nodes, this driver and the CLI runs share it.
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED} | AUTH
    common = [
        "--num-cpus=1",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--disable-usage-stats",
        "--block",
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        head_log = temp / "head.log"
        procs.append(
            start(
                [ray_bin, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}"]
                + ["--include-dashboard=false", f"--temp-dir={temp}"]
                + common,
                head_log,
                env,
            )
        )
        wait_port(HEAD_IP, port, procs[0], head_log)
        address = f"{HEAD_IP}:{port}"
        procs.append(
            start(
                [ray_bin, "start", f"--address={address}", f"--node-ip-address={NODE_IP}"] + common,
                temp / "node.log",
                env,
            )
        )
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
            if sorted(nodes.values()) == [HEAD_IP, NODE_IP]:
                break
            if procs[1].poll() is not None or time.monotonic() > deadline:
                log = (temp / "node.log").read_text()[-3000:]
                raise RuntimeError(f"the second Ray node did not join ({nodes}):\n{log}")
            time.sleep(0.2)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        yield RayCluster(address, nodes, ray_bin)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop(list(reversed(procs)))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def client(moto_s3: object) -> Iterator[object]:
    """An ``s3dlio.Client`` for the session's moto server, with explicit options (the Ray nodes
    have no AWS variables: only this pickled client tells the tasks where S3 is)."""
    import s3dlio

    with s3dlio.Client(
        endpoint_url=moto_s3.url,  # type: ignore[attr-defined]
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    ) as made:
        yield made


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A fresh directory both nodes see (one machine), for ``file://`` tests."""
    path = Path(tempfile.gettempdir()) / f"s3dlio-ray-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Ray's own code warns of its own deprecations (``DataContext`` fields it sets itself):
    not ours to fix, so ignored in these tests only, and only when Ray's modules raise them."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\."))


@pytest.fixture(autouse=True)
def _functions_by_value(request: pytest.FixtureRequest) -> None:
    """Ship the test module's functions to the workers by value: the workers cannot import a
    test module (it is not a package on their path)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(request.module)
