"""The two-node loopback Ray cluster the tests run on: constants and process helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HEAD_IP = "127.0.0.2"
NODE_IP = "127.0.0.3"
#: Seconds allowed for a node to start and for the cluster to see both nodes.
START_TIMEOUT = 90.0
#: Seconds a node gets to stop after SIGTERM before its process group is killed (a head that
#: ran Ray Data jobs sometimes takes longer than this to stop by itself; nothing is kept).
STOP_TIMEOUT = 5.0
#: Object store per node: small (the tests move a few MiB), so /dev/shm is not strained.
OBJECT_STORE_BYTES = 150 * 1024 * 1024
STRIPPED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class RayCluster:
    """The running cluster.

    Attributes:
        address: ``127.0.0.2:<port>`` (what ``ray.init(address=...)`` and ``--ray`` take).
        node_ips: ``{node id: node IP}`` of the two nodes.
        ray_bin: The ``ray`` program of this venv.
    """

    address: str
    node_ips: dict[str, str]
    ray_bin: str

    def ips_of(self, node_ids: object) -> set[str]:
        """The IPs of the given node ids (an iterable or a dict's keys)."""
        return {self.node_ips[n] for n in node_ids}  # type: ignore[attr-defined]


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the Ray head did not listen on {host}:{port} in {START_TIMEOUT}s")


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop ``ray start --block`` processes by PID: SIGTERM to each (it stops the processes it
    started), a wait, then SIGKILL to whatever is left of its process group (workers)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
