"""A gloo process group of worker processes on loopback, for tests (see dcp_worker.py).

Every read of a worker's output has a timeout, and :meth:`ProcessGroup.close` kills every
worker still running by PID and reaps it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


class Worker:
    """One rank: its process, and its stdout lines read by a thread into a queue."""

    def __init__(self, script: Path, rank: int, world: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.rank = rank
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(rank), str(world)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next JSON line (``AssertionError`` if the worker died or said nothing in time)."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"rank {self.rank} said nothing for {timeout} s") from None
        if line is None:
            raise AssertionError(f"rank {self.rank} exited with {self.proc.wait(timeout)}")
        return dict(json.loads(line))

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


class ProcessGroup:
    """``world`` workers joined in one gloo group; :meth:`run` sends one command to some ranks."""

    def __init__(self, script: Path, world: int) -> None:
        self.workers = [Worker(script, r, world) for r in range(world)]
        try:
            port = self.workers[0].receive()["port"]
            for w in self.workers[1:]:
                w.send(str(port))
            for w in self.workers:
                assert w.receive() == {"ready": True}
        except BaseException:
            self.close()
            raise

    def run(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        """Send ``cmd`` to every worker; the answers of ``cmd["ranks"]``, in rank order."""
        for w in self.workers:
            w.send(cmd)
        return [self.workers[r].receive() for r in cmd["ranks"]]

    def close(self) -> None:
        """Ask the workers to exit, then kill and reap any still running."""
        for w in self.workers:
            if w.proc.poll() is None:
                try:
                    w.send({"op": "exit"})
                except OSError:
                    pass
        for w in self.workers:
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            w.kill()
