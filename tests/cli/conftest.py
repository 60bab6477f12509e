"""Fixtures of the ``s3-cli`` tests: the command runner and fresh storage roots."""

from __future__ import annotations

import pytest
from cli_helpers import REMOTE, root_of


@pytest.fixture(params=REMOTE)
def remote_root(request: pytest.FixtureRequest) -> str:
    """A fresh, empty prefix on each remote backend in turn."""
    return root_of(request, request.param)
