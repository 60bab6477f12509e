"""How DLIO's names become s3dlio URIs, and its storage options a client (no DLIO needed)."""

from __future__ import annotations

import os

import pytest

from s3dlio.errors import InvalidArgumentError
from s3dlio.integrations.dlio.clients import client_for, client_options, uri_scheme
from s3dlio.integrations.dlio.paths import has_scheme, join, to_local, unmangle


@pytest.mark.parametrize(
    ("namespace", "name", "scheme", "expected"),
    [
        ("./", "data/unet3d/train/", None, "./data/unet3d/train/"),
        ("./", "s3://b/unet3d//train/", None, "s3://b/unet3d/train/"),
        ("s3://b/root/", "data/./x.npz", None, "s3://b/root/data/x.npz"),
        ("bucket", "data/unet3d/train", "s3", "s3://bucket/data/unet3d/train"),
        ("/ignored", "file:///tmp//d/x.npz", None, "file:///tmp/d/x.npz"),
        ("az://acct/cont", "x", None, "az://acct/cont/x"),
    ],
)
def test_join(namespace: str, name: str, scheme: str | None, expected: str) -> None:
    assert join(namespace, name, scheme) == expected


def test_unmangle_undoes_abspath_of_a_uri(tmp_path: os.PathLike[str]) -> None:
    cwd = str(tmp_path)
    for uri in ("s3://b/unet3d/train/img_1_of_8.npz", "gs://b/k", "az://a/c/k"):
        mangled = os.path.join(cwd, uri.replace("://", ":/"))
        assert os.path.normpath(mangled) == mangled  # what os.path.abspath makes of the URI
        assert unmangle(mangled, cwd) == uri
    assert unmangle(os.path.join(cwd, "file:/tmp/x.npz"), cwd) == "file:///tmp/x.npz"
    assert unmangle(os.path.join(cwd, "direct:/tmp/x.npz"), cwd) == "direct:///tmp/x.npz"
    local = os.path.join(cwd, "data", "x.npz")
    assert unmangle(local, cwd) == local
    assert unmangle(os.path.join(cwd, "notascheme:/x"), cwd) == os.path.join(cwd, "notascheme:/x")
    assert unmangle("/elsewhere/s3:/b/k", cwd) == "/elsewhere/s3:/b/k"


def test_to_local_and_has_scheme() -> None:
    assert to_local("file:///tmp/a/b.npz") == "/tmp/a/b.npz"
    assert to_local("s3://b/k") == "s3://b/k"
    assert has_scheme("foo://x") and not has_scheme("/tmp/x") and not has_scheme("s3:/x")


def test_storage_options_map_to_client_options() -> None:
    options = client_options(
        {
            "storage_library": "s3dlio",
            "uri_scheme": "s3",
            "endpoint_url": "http://127.0.0.1:9000",
            "region": "us-east-1",
            "access_key_id": "k",
            "secret_access_key": "s",
            "s3_force_path_style": "true",
            "s3_max_attempts": "3",
            "max_connections": "16",
        }
    )
    assert options["endpoint_url"] == "http://127.0.0.1:9000"
    assert options["addressing_style"] == "path"
    assert options["retry"].max_attempts == 3
    assert options["max_connections"] == 16
    assert "storage_library" not in options and "uri_scheme" not in options
    client = client_for({"endpoint_url": "http://127.0.0.1:9000", "region": "us-east-1"})
    assert client is not None
    assert client is client_for({"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9000"})
    assert client.config.endpoint_url == "http://127.0.0.1:9000"
    assert client_for({"storage_library": "s3dlio"}) is None  # nothing for s3dlio: default client
    assert uri_scheme({"uri_scheme": "az://"}, "s3") == "az"
    assert uri_scheme(None, None) is None


@pytest.mark.parametrize(
    ("options", "named"),
    [({"endpoint": "x"}, "endpoint"), ({"max_connections": "many"}, "max_connections")],
)
def test_bad_storage_options_are_named(options: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        client_options(options)
