"""``copy_prefix`` / ``put_prefix`` and ``s3-cli cp/put --ray`` on the two-node loopback cluster.

Results are compared with a local (non-Ray) run of the same operation; every run must have
put work on both nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray_cluster import HEAD_IP, NODE_IP, RayCluster

import s3dlio
from s3dlio.errors import BatchError
from s3dlio.ray import copy_prefix, put_prefix


def _contents(client: s3dlio.Client, prefix: str) -> dict[str, bytes]:
    """``{key relative to prefix: bytes}`` of everything below ``prefix``."""
    uris = client.list(prefix, recursive=True)
    return {u[len(prefix) :]: bytes(data) for u, data in client.get_many(uris)}


def test_the_cluster_is_two_nodes_on_loopback(ray_cluster: RayCluster) -> None:
    assert sorted(ray_cluster.node_ips.values()) == [HEAD_IP, NODE_IP]


def test_put_prefix_equals_a_local_put_and_runs_on_both_nodes(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    seen: list[tuple[int, int]] = []
    report = put_prefix(
        f"{s3_root}ray/",
        24,
        "3KiB",
        object_type="npz",
        template="sample_{}_of_{}.npz",
        seed=7,
        client=client,
        progress=lambda n, k: seen.append((n, k)),
    )
    s3dlio.put(
        f"{s3_root}local/", 24, "sample_{}_of_{}.npz", size="3KiB", object_type="npz", seed=7,
        client=client,
    )  # fmt: skip
    ray_side, local = _contents(client, f"{s3_root}ray/"), _contents(client, f"{s3_root}local/")
    assert len(local) == 24 and ray_side == local
    assert sorted(report.uris) == sorted(f"{s3_root}ray/{k}" for k in local)
    assert report.nbytes == sum(len(v) for v in local.values())
    assert ray_cluster.ips_of(report.nodes) == {HEAD_IP, NODE_IP}
    assert sum(report.nodes.values()) == 24 and report.retried == 0
    assert sum(k for _, k in seen) == 24 and sum(n for n, _ in seen) == report.nbytes


def test_put_prefix_streams_large_raw_objects(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    report = put_prefix(f"{s3_root}big/", 2, "3MiB", seed=1, chunk_size="1MiB", client=client)
    s3dlio.put(f"{s3_root}ref/", 2, size="3MiB", seed=1, chunk_size="1MiB", client=client)
    assert _contents(client, f"{s3_root}big/") == _contents(client, f"{s3_root}ref/")
    assert report.nbytes == 2 * 3 * 1024 * 1024


def test_copy_prefix_between_backends_equals_a_local_copy(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str, shared_dir: Path
) -> None:
    src = f"{s3_root}src/"
    s3dlio.put(src, 30, "part-{}-of-{}.bin", size="2KiB", seed=3, client=client)
    client.put_bytes(f"{src}nested/deeper/x.bin", b"nested object")
    dst = f"file://{shared_dir}/copy/"
    report = copy_prefix(src, dst, client=client, max_objects_per_task=4)
    client.copy(src, f"file://{shared_dir}/local/", recursive=True)
    copied, local = _contents(client, dst), _contents(client, f"file://{shared_dir}/local/")
    assert len(local) == 31 and copied == local
    assert copied["nested/deeper/x.bin"] == b"nested object"
    assert report.tasks >= 8 and ray_cluster.ips_of(report.nodes) == {HEAD_IP, NODE_IP}
    # and back again, file:// to s3://, by pattern
    back = copy_prefix(dst, f"{s3_root}back/", client=client, pattern=r"part-1\d-")
    assert sorted(_contents(client, f"{s3_root}back/")) == [
        f"part-{i}-of-30.bin" for i in range(10, 20)
    ]
    assert len(back) == 10


def test_copy_prefix_retries_failed_objects_and_names_those_that_keep_failing(
    ray_cluster: RayCluster,
    moto_s3: object,
    s3_root: str,
    fault_proxy: object,
    request: pytest.FixtureRequest,
) -> None:
    proxy = fault_proxy(moto_s3.port)  # type: ignore[attr-defined,operator]
    through = s3dlio.Client(
        endpoint_url=proxy.url,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
    request.addfinalizer(through.close)
    src, dst = f"{s3_root}src/", f"{s3_root}dst/"
    s3dlio.put(src, 12, "o{}.bin", size="1KiB", seed=5, client=through)
    bucket_path = s3_root.replace("s3://", "/")
    proxy.add_fault("status", count=1, match=f"PUT {bucket_path}dst/o3.bin", status=403)
    proxy.add_fault("status", count=None, match=f"PUT {bucket_path}dst/o7.bin", status=403)
    with pytest.raises(BatchError) as caught:
        copy_prefix(src, dst, client=through, max_retries=2)
    err = caught.value
    assert [uri for uri, _ in err.failures] == [f"{dst}o7.bin"]
    assert isinstance(err.failures[0][1], s3dlio.errors.PermissionDeniedError)
    assert err.succeeded == 11
    landed = sorted(through.list(dst, recursive=True))
    assert landed == sorted(f"{dst}o{i}.bin" for i in range(12) if i != 7)  # o3 on retry
    assert len(proxy.requests_matching(f"PUT {bucket_path}dst/o7.bin")) == 3  # 1 + 2 retries
    assert len(proxy.requests_matching(f"PUT {bucket_path}dst/o3.bin")) == 2


def test_copy_prefix_into_a_blocked_file_destination_leaves_no_partial_object(
    ray_cluster: RayCluster, shared_dir: Path
) -> None:
    src = shared_dir / "src"
    s3dlio.put(f"file://{src}/", 6, "f{}.bin", size="40MiB", seed=9, chunk_size="4MiB")
    (shared_dir / "dst" / "f2.bin").mkdir(parents=True)  # a directory where f2.bin should go
    with pytest.raises(BatchError) as caught:
        copy_prefix(f"file://{src}/", f"file://{shared_dir}/dst/", max_retries=1)
    assert [uri for uri, _ in caught.value.failures] == [f"file://{shared_dir}/dst/f2.bin"]
    left = sorted(p.name for p in (shared_dir / "dst").iterdir())
    assert left == ["f0.bin", "f1.bin", "f2.bin", "f3.bin", "f4.bin", "f5.bin"]
    assert (shared_dir / "dst" / "f2.bin").is_dir() and not any(
        (shared_dir / "dst" / "f2.bin").iterdir()
    )
    for name in ("f0.bin", "f5.bin"):
        assert (shared_dir / "dst" / name).read_bytes() == (src / name).read_bytes()


def _cli(ray_cluster: RayCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cli = str(Path(sys.executable).with_name("s3-cli"))
    return subprocess.run(
        [cli, *args, "--ray", ray_cluster.address],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cli_put_and_cp_with_ray(
    ray_cluster: RayCluster, moto_s3: object, shared_dir: Path
) -> None:
    root = f"file://{shared_dir}"
    done = _cli(
        ray_cluster, "put", f"{root}/gen/", "-n", "16", "-s", "2KiB", "-o", "npz", "-t", "s{}.npz"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (shared_dir / "gen").iterdir()) == sorted(
        f"s{i}.npz" for i in range(16)
    )
    done = _cli(ray_cluster, "cp", "-r", f"{root}/gen/", f"{root}/out/")
    assert done.returncode == 0, done.stderr
    for i in range(16):
        name = f"s{i}.npz"
        assert (shared_dir / "out" / name).read_bytes() == (shared_dir / "gen" / name).read_bytes()
    assert "16 objects" in done.stderr and "2 Ray nodes" in done.stderr


def test_scale_out_example_runs_on_the_cluster(ray_cluster: RayCluster) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "scale_out_ray.py"
    done = subprocess.run(
        [sys.executable, str(example), "--address", ray_cluster.address, "--objects", "16"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on 2 node(s)" in done.stdout and "converted to" in done.stdout
    assert "1024 rows" in done.stdout and "trained 20 steps" in done.stdout
