"""pyarrow, pandas and Dask read and write through s3dlio (their own code, our filesystem).

Round trips on moto (S3) and file://; the S3 ones go through the fault proxy where the test
must show that the requests went through the storage options' endpoint.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from fsspec.registry import _registry

from s3dlio.fsspec import S3dlioFileSystem, arrow_filesystem, register

pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(params=["file", "s3"])
def root(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_root").rstrip("/")


@pytest.fixture
def registered() -> Any:
    """``register(["s3", "file"])`` for one test, fsspec's registry restored after."""
    before = dict(_registry)
    register(["s3", "file"])
    yield
    _registry.clear()
    _registry.update(before)


def table(n: int = 1000, seed: int = 0) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(seed, seed + n), pa.int64()),
            "part": pa.array([f"p{i % 3}" for i in range(n)]),
            "value": pa.array([i * 0.5 for i in range(n)], pa.float64()),
        }
    )


def test_arrow_parquet_and_dataset_round_trip(root: str) -> None:
    fs = arrow_filesystem()
    assert fs.type_name == "py::s3dlio"
    data = table()
    pq.write_table(data, f"{root}/t.parquet", filesystem=fs, row_group_size=300)
    assert pq.read_table(f"{root}/t.parquet", filesystem=fs).equals(data)
    some = pq.read_table(f"{root}/t.parquet", filesystem=fs, columns=["value"])
    assert some.column("value").equals(data.column("value"))
    assert pq.ParquetFile(f"{root}/t.parquet", filesystem=fs).metadata.num_row_groups == 4

    pads.write_dataset(
        data,
        f"{root}/ds",
        filesystem=fs,
        format="parquet",
        partitioning=["part"],
        partitioning_flavor="hive",
    )
    dataset = pads.dataset(f"{root}/ds", filesystem=fs, format="parquet", partitioning="hive")
    assert len(dataset.files) == 3 and all(f.startswith(root) for f in dataset.files)
    back = dataset.to_table().sort_by("id")
    assert back.column("id").equals(data.column("id"))
    only = dataset.to_table(filter=pads.field("part") == "p1")
    assert only.num_rows == sum(1 for i in range(1000) if i % 3 == 1)
    with pytest.raises(FileNotFoundError):
        pq.read_table(f"{root}/missing.parquet", filesystem=fs)


def test_pandas_storage_options_reach_s3dlio(
    moto_s3: Any, fault_proxy: Any, registered: None
) -> None:
    """Plain ``s3://`` URLs with s3fs-style storage options go through s3dlio (s3fs is not
    installed) and to the endpoint the options name."""
    proxy = fault_proxy(moto_s3.port)
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": proxy.url, "region_name": "us-east-1"},
    }
    frame = table(300).to_pandas()
    url = f"s3://{moto_s3.bucket}/{uuid.uuid4().hex}/frame.parquet"
    frame.to_parquet(url, storage_options=options)
    assert proxy.requests_matching("PUT")
    back = pd.read_parquet(url, storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    assert proxy.requests_matching("GET")

    csv = url.replace(".parquet", ".csv")
    frame.to_csv(csv, index=False, storage_options=options)
    pd.testing.assert_frame_equal(pd.read_csv(csv, storage_options=options), frame)


# dask 2026.8 calls reset_index(inplace=True), which pandas 3.1 deprecates (not our code).
@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_dask_reads_chained_and_registered_urls(root: str, registered: None) -> None:
    fs = S3dlioFileSystem()
    for i in range(3):
        with fs.open(f"{root}/parts/part-{i}.parquet", "wb") as f:
            pq.write_table(table(200, seed=i * 200), f)
    chained = dd.read_parquet(f"s3dlio::{root}/parts/*.parquet")
    assert chained.npartitions == 3
    ids = chained.compute(scheduler="threads")["id"]
    assert sorted(ids) == list(range(600))

    plain = dd.read_parquet(f"{root}/parts/")  # a registered protocol's plain URL
    assert plain["value"].sum().compute(scheduler="sync") == sum(i * 0.5 for i in range(200)) * 3

    out = dd.from_pandas(table(90).to_pandas(), npartitions=3)
    out.to_parquet(f"s3dlio::{root}/written", write_index=False)
    assert len(fs.glob(f"{root}/written/*.parquet")) == 3
    assert sorted(dd.read_parquet(f"{root}/written").compute()["id"]) == list(range(90))
