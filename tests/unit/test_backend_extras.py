"""A backend or framework module whose package is not installed fails with a hint naming the
extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import sys
sys.modules[{module!r}] = None  # as if the package were not installed
import s3dlio
try:
    s3dlio.stat({uri!r})
except ImportError as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    ("module", "uri", "extra"),
    [
        ("boto3", "s3://bucket/key", "s3"),
        ("azure.storage.blob", "az://account/container/key", "azure"),
        ("requests", "gs://bucket/key", "gcs"),
    ],
)
def test_missing_sdk_names_the_extra(module: str, uri: str, extra: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(module=module, uri=uri)],
        capture_output=True,
        text=True,
        check=True,
    )
    scheme = uri.split("://", 1)[0]
    assert out.stdout.strip().startswith(f"the {scheme}:// backend needs ")
    assert f"pip install 's3dlio[{extra}]'" in out.stdout


def test_configure_s3_without_boto3_names_the_extra() -> None:
    # configure_s3 only records options; the first s3:// request names the missing extra
    script = (
        "import sys; sys.modules['boto3'] = None\nimport s3dlio\n"
        "s3dlio.configure_s3(region='us-east-1')\ns3dlio.stat('s3://bucket/key')"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 1
    assert "pip install 's3dlio[s3]'" in out.stderr


@pytest.mark.parametrize(("module", "extra"), [("torch", "torch"), ("jax", "jax")])
def test_framework_modules_name_their_extra(module: str, extra: str) -> None:
    script = f"import sys; sys.modules[{module!r}] = None\nimport s3dlio.{module}"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"pip install 's3dlio[{extra}]'" in out.stderr
