"""``read_objects`` / ``write_objects`` on the two-node loopback cluster: every format read
through s3dlio equals what a local (non-Ray) read gives, the read tasks land on both nodes, and
what ``write_objects`` writes is read back by pyarrow and by the ``tfrecord`` package."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from ray_cluster import HEAD_IP, NODE_IP, RayCluster

import s3dlio
from s3dlio.errors import InvalidArgumentError, NotFoundError
from s3dlio.formats.example import decode_example, encode_example
from s3dlio.formats.tfrecord import TFRecordReader, TFRecordWriter
from s3dlio.ray import ObjectsDatasource, read_objects, write_objects


def _with_node(batch: dict[str, Any]) -> dict[str, Any]:
    """Tag rows with the node that ran the (fused) read task."""
    node = ray.get_runtime_context().get_node_id()
    batch["node"] = np.array([node] * len(next(iter(batch.values()))), dtype=object)
    return batch


def test_binary_objects_on_s3_equal_direct_gets_and_reads_ran_on_both_nodes(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    s3dlio.put(s3_root, 40, "obj-{:03d}.bin", size="5KiB", seed=11, client=client)
    ds = read_objects(s3_root, client=client, override_num_blocks=8).map_batches(_with_node)
    rows = ds.take_all()
    expected = {uri: bytes(data) for uri, data in client.get_many(client.list(s3_root))}
    assert {r["path"]: r["bytes"] for r in rows} == expected and len(rows) == 40
    assert ray_cluster.ips_of({r["node"] for r in rows}) == {HEAD_IP, NODE_IP}


def test_read_tasks_are_sized_by_bytes_and_split_indexed_tfrecords(
    client: s3dlio.Client, s3_root: str
) -> None:
    for f in range(2):
        with TFRecordWriter(f"{s3_root}t{f}.tfrecord", index=True, client=client) as w:
            for i in range(300):
                w.write_example({"id": f * 1000 + i, "data": bytes([i % 251]) * 900})
    source = ObjectsDatasource(s3_root, "tfrecord", client=client, explicit_blocks=True)
    tasks = source.get_read_tasks(6)
    assert len(tasks) == 6  # two files, three record ranges each
    assert sum(t.metadata.num_rows for t in tasks) == 600
    sizes = [t.metadata.size_bytes for t in tasks]
    files = sum(client.stat(f"{s3_root}t{f}.tfrecord")["size"] for f in range(2))
    assert sum(sizes) == files and max(sizes) - min(sizes) < 2 * 960  # within two records
    auto = ObjectsDatasource(s3_root, "tfrecord", client=client).get_read_tasks(200)
    assert len(auto) == 1  # auto-sized tasks are at least 1 MiB: both small files in one
    assert ObjectsDatasource(s3_root, "binary", client=client).estimate_inmemory_data_size() == (
        sum(client.stat(u)["size"] for u in client.list(s3_root))
    )  # the .idx objects count as binary objects, and are skipped for tfrecord


def test_tfrecord_record_ranges_equal_a_local_read(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    local = []
    for f in range(2):
        uri = f"{s3_root}part-{f}.tfrecord"
        with TFRecordWriter(uri, index=True, client=client) as w:
            for i in range(250):
                w.write_example({"id": f * 1000 + i, "x": [0.5 * i, 1.0], "tag": b"t%d" % i})
        local += [decode_example(r) for r in TFRecordReader(uri, client=client)]
    ds = read_objects(s3_root, "tfrecord", client=client, override_num_blocks=5)
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == sorted(int(e["id"][0]) for e in local)
    by_id = {int(e["id"][0]): e for e in local}
    for row in rows:
        want = by_id[row["id"]]
        assert row["tag"] == want["tag"][0] and list(row["x"]) == want["x"].tolist()
    raw = read_objects(s3_root, "tfrecord", client=client, decode=False).take_all()
    assert sorted(decode_example(r["bytes"])["id"][0] for r in raw) == [r["id"] for r in rows]


def test_parquet_row_groups_equal_pyarrow(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    tables = []
    for f in range(3):
        ids = np.arange(f * 1000, f * 1000 + 900)
        table = pa.table({"id": ids, "v": ids * 0.5, "s": [f"r{i}" for i in ids]})
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=100)  # 9 row groups per file
        client.put_bytes(f"{s3_root}d/f{f}.parquet", sink.getvalue())
        tables.append(table)
    client.put_bytes(f"{s3_root}d/_SUCCESS", b"")  # not a Parquet object: skipped
    ds = read_objects(f"{s3_root}d/", "parquet", client=client, columns=["id", "s"])
    got = ds.to_arrow_refs()
    table = pa.concat_tables(ray.get(got)).sort_by("id")
    want = pa.concat_tables(tables).select(["id", "s"]).sort_by("id")
    assert table.equals(want)
    assert ds.count() == 2700


def test_raw_records_and_npz_arrays(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    blobs = {f"{s3_root}raw/r{i}.bin": bytes(range(10)) + np.random.default_rng(i).bytes(
        100 * 37 + 5) for i in range(2)}  # fmt: skip
    client.put_many(blobs.items())
    rows = read_objects(
        f"{s3_root}raw/", "raw", client=client, record_size=100, header=10, override_num_blocks=4
    ).take_all()
    assert len(rows) == 74  # the 5-byte tails are not records
    for r in rows:
        at = 10 + 100 * r["index"]
        assert r["bytes"] == blobs[r["path"]][at : at + 100]
    s3dlio.put(
        f"{s3_root}npz/", 5, "s{}.npz", size="2KiB", object_type="npz", seed=4, client=client
    )
    got = read_objects(f"{s3_root}npz/", "npz", client=client).take_all()
    assert len(got) == 5
    for r in got:
        with np.load(io.BytesIO(bytes(client.get(r["path"])))) as want:
            assert np.array_equal(r["x"], want["x"]) and np.array_equal(r["y"], want["y"])


def test_write_parquet_and_tfrecord_read_back_by_their_own_readers(
    ray_cluster: RayCluster, shared_dir: Path
) -> None:
    ds = ray.data.range(500, override_num_blocks=4).map(
        lambda r: {"id": r["id"], "sq": r["id"] ** 2, "name": f"n{r['id']}"}
    )
    written = write_objects(ds, f"file://{shared_dir}/pq/", "parquet")
    assert len(written) == 4 and all(u.endswith(".parquet") for u in written)
    files = sorted((shared_dir / "pq").iterdir())
    assert [f"file://{f}" for f in files] == written
    table = pa.concat_tables([pq.read_table(f) for f in files]).sort_by("id")
    assert table.column("sq").to_pylist() == [i * i for i in range(500)]
    assert table.column("name").to_pylist()[7] == "n7"
    # TFRecord: rows as tf.train.Example, read by the `tfrecord` package
    from tfrecord.reader import tfrecord_loader

    out = write_objects(ds, f"file://{shared_dir}/tfr/", "tfrecord")
    ids = []
    for uri in out:
        for example in tfrecord_loader(uri.removeprefix("file://"), None):
            ids.append(int(example["id"][0]))
            assert bytes(example["name"]).decode() == f"n{ids[-1]}"
    assert sorted(ids) == list(range(500))
    # and back again through read_objects, to Parquet on another prefix
    again = read_objects(f"file://{shared_dir}/tfr/", "tfrecord")
    assert sorted(r["sq"] for r in again.take_all()) == [i * i for i in range(500)]


def test_a_failed_write_leaves_no_object_of_its_own(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    client.put_bytes(f"{s3_root}out/keep.txt", b"not ours")

    def explode(batch: dict[str, Any]) -> dict[str, Any]:
        if 77 in batch["id"]:
            raise RuntimeError("bad row 77")
        return batch

    ds = ray.data.range(400, override_num_blocks=8).map_batches(explode)
    with pytest.raises(Exception, match="bad row 77"):
        write_objects(ds, f"{s3_root}out/", "parquet", client=client)
    assert client.list(f"{s3_root}out/", recursive=True) == [f"{s3_root}out/keep.txt"]


def test_binary_rows_written_as_objects_named_by_path(
    ray_cluster: RayCluster, client: s3dlio.Client, s3_root: str
) -> None:
    s3dlio.put(f"{s3_root}in/", 6, "b{}.bin", size="1KiB", seed=2, client=client)
    written = write_objects(
        read_objects(f"{s3_root}in/", client=client), f"{s3_root}out/", "binary", client=client
    )
    assert written == [f"{s3_root}out/b{i}.bin" for i in range(6)]
    for i in range(6):
        assert client.get(f"{s3_root}out/b{i}.bin") == client.get(f"{s3_root}in/b{i}.bin")


def test_bad_input_is_refused_in_the_driver(client: s3dlio.Client, s3_root: str) -> None:
    with pytest.raises(NotFoundError, match="selects no objects"):
        read_objects(f"{s3_root}nothing/", client=client)
    client.put_bytes(f"{s3_root}a.bin", b"x")
    with pytest.raises(InvalidArgumentError, match="format must be one of"):
        read_objects(s3_root, "csv", client=client)
    with pytest.raises(InvalidArgumentError, match="record_size"):
        read_objects(s3_root, "raw", client=client)
    with pytest.raises(InvalidArgumentError, match="format must be one of"):
        write_objects(None, s3_root, "csv")
    assert encode_example({"a": 1})  # the encoder the tfrecord sink uses is importable here
