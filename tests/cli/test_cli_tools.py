"""``s3-cli`` bucket commands, synthetic object types, ``tfrecord-index`` and global flags."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import root_of, run_cli

import s3dlio
from tests.servers.common import free_port


@pytest.mark.parametrize("scheme", ["file", "s3"])
def test_bucket_commands(scheme: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if scheme == "file":
        parent = f"file://{tmp_path}/buckets/"
        names = [parent + "b1", parent + "b2"]
        listed = [name + "/" for name in names]
    else:
        root_of(request, "s3")  # the server
        parent = "s3://"
        tag = uuid.uuid4().hex[:8]
        names = [f"cli-{tag}-1", f"s3://cli-{tag}-2"]  # a bare name means s3://
        listed = [f"s3://cli-{tag}-1/", f"s3://cli-{tag}-2/"]
    r = run_cli("mb", *names)
    assert r.rc == 0, r.err
    r = run_cli("list-buckets", parent) if scheme == "file" else run_cli("ls", "s3://")
    assert r.rc == 0 and set(listed) <= set(r.lines)
    r = run_cli("rb", *names, names[0])  # the third one is already gone: exit 1, named
    assert r.rc == 1 and r.err.splitlines()[-1].startswith("s3-cli: failed: ")
    assert names[0] in r.err.splitlines()[-1]
    assert not set(listed) & set(s3dlio.list_buckets(parent))


def test_put_object_types_are_valid_files(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/gen/"
    for kind in ("npz", "hdf5", "tfrecord"):
        r = run_cli("put", root + kind, "-n", "2", "-s", "16KiB", "-o", kind, "-t", "o{}." + kind)
        assert r.rc == 0, r.err
    with np.load(io.BytesIO(bytes(s3dlio.get(root + "npz/o1.npz")))) as npz:
        assert sum(npz[name].nbytes for name in npz.files) >= 16 * 1024
    with h5py.File(tmp_path / "gen/hdf5/o0.hdf5", "r") as h5:
        assert len(h5.keys()) >= 1
    assert zipfile.is_zipfile(tmp_path / "gen/npz/o0.npz")

    r = run_cli("tfrecord-index", root + "tfrecord/o0.tfrecord")
    assert r.rc == 0, r.err
    from tfrecord.tools.tfrecord2idx import create_index

    create_index(str(tmp_path / "gen/tfrecord/o0.tfrecord"), str(tmp_path / "reference.idx"))
    ours = (tmp_path / "gen/tfrecord/o0.tfrecord.idx").read_bytes()
    assert ours == (tmp_path / "reference.idx").read_bytes() and ours.count(b"\n") >= 1


def test_endpoint_url_flag_overrides_the_environment(request: pytest.FixtureRequest) -> None:
    root = root_of(request, "s3")
    s3dlio.put_bytes(root + "seen", b"x")
    env = dict(os.environ)
    endpoint = env["AWS_ENDPOINT_URL"]
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env["S3DLIO_MAX_RETRY_ATTEMPTS"] = "1"
    r = run_cli("ls", root, env=env)
    assert r.rc == 1 and r.lines == []
    r = run_cli("--endpoint-url", endpoint, "--region", "us-east-1", "ls", root, env=env)
    assert (r.rc, r.lines) == (0, [root + "seen"]), r.err
