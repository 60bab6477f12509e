"""Helpers of the ``s3-cli`` tests: a runner that starts the real command, and file trees.

Every test runs ``python -m s3dlio.cli`` in a subprocess (start-up costs ~0.7 s, so tests batch
several commands). The server fixtures export their endpoints into ``os.environ``, which the
subprocesses inherit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Remote backends the CLI is tested on, when their server fixture exists in this checkout.
REMOTE = ["s3", "az", "gs"]


def root_of(request: pytest.FixtureRequest, scheme: str) -> str:
    """A fresh root on ``scheme``; skipped when this checkout has no server fixture for it."""
    try:
        return str(request.getfixturevalue(f"{scheme}_root"))
    except pytest.FixtureLookupError:
        pytest.skip(f"no {scheme}_root fixture in this checkout")
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Result:
    """What one ``s3-cli`` run did.

    Attributes:
        rc: Exit code.
        stdout: Raw standard output.
        err: Standard error, decoded.
    """

    rc: int
    stdout: bytes
    err: str

    @property
    def out(self) -> str:
        """Standard output, decoded."""
        return self.stdout.decode()

    @property
    def lines(self) -> list[str]:
        """Standard output, one entry per line."""
        return self.out.splitlines()


def run_cli(
    *args: str,
    input: bytes | None = None,  # noqa: A002 - subprocess's name
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``s3-cli ARGS`` to completion (stdin empty unless ``input``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "s3dlio.cli", *args],
        input=input if input is not None else b"",
        capture_output=True,
        cwd=cwd,
        env=env if env is not None else dict(os.environ),
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr.decode())


def write_tree(top: Path, files: dict[str, bytes]) -> None:
    """Create ``files`` (relative path -> content) below ``top``."""
    for rel, data in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(top: Path) -> dict[str, bytes]:
    """Every file below ``top`` as relative path -> content."""
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def only_lines(text: str, *, not_containing: Sequence[str] = ("Traceback",)) -> list[str]:
    """``text`` split into lines, asserting none contains a forbidden fragment."""
    lines = text.splitlines()
    for line in lines:
        for bad in not_containing:
            assert bad not in line, text
    return lines
