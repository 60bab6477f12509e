"""The Parquet loader (``{"format": "parquet"}``), ``s3dlio.torch.ParquetDataset`` and JAX:
every row group once per epoch, sharded, shuffled, resumable; bytes as pyarrow sees them."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import s3dlio
from s3dlio.datasets.parquet_loader import ParquetLoader, PyParquetItem
from s3dlio.errors import InvalidArgumentError

FILES = 3
ROWS = [120, 200, 80]  # rows per file, 40 rows per row group


def table(i: int) -> pa.Table:
    rows = ROWS[i]
    ident = np.arange(rows, dtype=np.int64) + 1000 * i
    return pa.table(
        {
            "id": ident,
            "x": (ident * 0.5).astype(np.float32),
            "emb": pa.FixedSizeListArray.from_arrays(
                pa.array(np.repeat(ident, 3).astype(np.float32)), 3
            ),
        }
    )


def write(prefix: str) -> dict[str, bytes]:
    files = {}
    for i in range(FILES):
        sink = io.BytesIO()
        pq.write_table(table(i), sink, row_group_size=40)
        files[f"{prefix}pq/part-{i}.parquet"] = sink.getvalue()
    s3dlio.put_many(files.items())
    s3dlio.put_bytes(prefix + "pq/README.txt", b"not parquet")
    return files


def all_units() -> list[tuple[int, int]]:
    return [(f, rg) for f in range(FILES) for rg in range(ROWS[f] // 40)]


def unit(item: PyParquetItem) -> tuple[int, int]:
    return int(item.file_uri.rsplit("-", 1)[1].split(".")[0]), item.rg_idx


@pytest.fixture
def dataset(store_root: str) -> tuple[str, dict[str, bytes]]:
    s3dlio.parquet_cache_clear()
    return store_root + "pq/", write(store_root)


def test_loader_yields_each_row_group_raw_and_arrow(dataset: tuple[str, dict[str, bytes]]) -> None:
    prefix, files = dataset
    loader = s3dlio.create_async_loader(prefix, {"format": "parquet"})
    assert isinstance(loader, ParquetLoader) and len(loader) == 10
    items = list(loader)
    assert [unit(i) for i in items] == all_units()
    for item in items:
        data = files[item.file_uri]
        meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(item.rg_idx)
        first = meta.column(0)
        start = min(
            c.dictionary_page_offset or c.data_page_offset
            for c in (meta.column(j) for j in range(meta.num_columns))
        )
        assert first is not None
        assert bytes(item) == data[start : start + item.byte_count]
        assert item.byte_count == len(item) == len(item.data)
    arrow = s3dlio.create_async_loader(
        prefix, {"format": "parquet", "decode": "arrow", "columns": ["emb", "id"]}
    )
    for item in arrow:
        f, rg = unit(item)
        want = table(f).slice(40 * rg, 40).select(["id", "emb"])
        assert item.table().equals(want)


def test_loader_shards_shuffles_and_resumes(file_root: str) -> None:
    write(file_root)
    prefix = file_root + "pq/"
    opts = {"format": "parquet", "decode": "table", "shuffle": True, "seed": 5}
    shards = []
    for rank in (0, 1):
        loader = s3dlio.create_async_loader(prefix, {**opts, "rank": rank, "world_size": 2})
        shards.append([unit(i) for i in loader])
        assert all(isinstance(i.data, pa.Table) for i in loader)
    assert sorted(shards[0] + shards[1]) == all_units()
    assert not set(shards[0]) & set(shards[1])
    # the order is a function of (seed, epoch)
    one = s3dlio.create_async_loader(prefix, opts)
    first = [unit(i) for i in one]
    again = [unit(i) for i in s3dlio.create_async_loader(prefix, opts)]
    assert first == again and first != all_units()
    one.set_epoch(1)
    assert [unit(i) for i in one] != first
    # resume mid-epoch
    loader = s3dlio.create_async_loader(prefix, opts)
    it = iter(loader)
    seen = [unit(next(it)) for _ in range(4)]
    state = loader.state_dict()
    it.close()
    fresh = s3dlio.create_async_loader(prefix, opts)
    fresh.load_state_dict(state)
    assert seen + [unit(i) for i in fresh] == first


def test_async_batches_and_cancel(file_root: str) -> None:
    write(file_root)
    loader = s3dlio.create_async_loader(
        file_root + "pq/", {"format": "parquet", "batch_size": 4, "columns": [1]}
    )

    async def run() -> list[int]:
        return [len(batch) async for batch in loader]

    assert asyncio.run(run()) == [4, 4, 2]
    token = s3dlio.CancellationToken()
    stopped = s3dlio.create_async_loader(
        file_root + "pq/", {"format": "parquet"}, cancellation_token=token
    )
    it = iter(stopped)
    next(it)
    token.cancel("test")
    with pytest.raises(s3dlio.CancelledError):
        list(it)


def test_loader_bad_options(file_root: str) -> None:
    write(file_root)
    with pytest.raises(InvalidArgumentError, match="decode"):
        s3dlio.create_async_loader(file_root + "pq/", {"format": "parquet", "decode": "csv"})
    with pytest.raises(InvalidArgumentError, match="no column 'nope'"):
        list(
            s3dlio.create_async_loader(
                file_root + "pq/", {"format": "parquet", "columns": ["nope"]}
            )
        )


# -- PyTorch ------------------------------------------------------------------------------------


def test_torch_rows_with_workers(file_root: str) -> None:
    from torch.utils.data import DataLoader

    import s3dlio.torch as st

    write(file_root)
    ds = st.ParquetDataset(file_root + "pq/", columns=["id", "emb"])
    assert isinstance(ds, st.ParquetDataset) and len(ds) == sum(ROWS)
    assert ds[130]["id"] == 1010 and list(ds[-1]["emb"]) == [2079.0] * 3
    assert ds.locate(130)[1:] == (0, 10)
    with pytest.raises(IndexError):
        ds[sum(ROWS)]
    for context in ("fork", "spawn"):
        dl = DataLoader(ds, batch_size=50, num_workers=2, multiprocessing_context=context)
        ids = np.concatenate([b["id"].numpy() for b in dl])
        embs = np.concatenate([b["emb"].numpy() for b in dl])
        assert sorted(ids.tolist()) == sorted(np.concatenate([table(i)["id"] for i in range(3)]))
        assert np.array_equal(embs[:, 2], ids.astype(np.float32))
    sampler = ds.sampler(shuffle=True, seed=1)
    order = list(iter(sampler))
    assert sorted(order) == list(range(len(ds))) and order != sorted(order)
    transformed = st.ParquetDataset(file_root + "pq/", transform=lambda row: int(row["id"]) * 2)
    assert transformed[5] == 10


def test_torch_row_groups_with_workers(file_root: str) -> None:
    from torch.utils.data import DataLoader

    import s3dlio.torch as st

    write(file_root)
    ds = st.ParquetDataset(file_root + "pq/", mode="row_groups", columns=["id"], shuffle=True)
    assert len(ds) == 10 and ds.num_rows == sum(ROWS)
    got = []
    for tbl in DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"):
        assert tbl.column_names == ["id"] and tbl.num_rows == 40
        got.append(int(tbl["id"][0].as_py()))
    want = [1000 * f + 40 * rg for f, rg in all_units()]
    assert sorted(got) == want
    # rank sharding and resume, in-process
    halves = [
        [
            t["id"][0].as_py()
            for t in st.ParquetDataset(file_root + "pq/", mode="row_groups", rank=r, world_size=2)
        ]
        for r in (0, 1)
    ]
    assert sorted(halves[0] + halves[1]) == want
    it = iter(ds)
    first = [next(it)["id"][0].as_py() for _ in range(3)]
    state = ds.state_dict()
    it.close()
    rest = st.ParquetDataset(file_root + "pq/", mode="row_groups", columns=["id"], shuffle=True)
    rest.load_state_dict(state)
    assert sorted(first + [t["id"][0].as_py() for t in rest]) == want
    with pytest.raises(InvalidArgumentError):
        st.ParquetDataset(file_root + "pq/", mode="columns")


# -- JAX ----------------------------------------------------------------------------------------


def test_jax_through_the_loader(file_root: str) -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    write(file_root)
    loader = s3dlio.create_async_loader(
        file_root + "pq/", {"format": "parquet", "decode": "numpy", "columns": ["x", "emb"]}
    )
    total = 0.0
    for item in loader:
        batch = jax.tree_util.tree_map(jnp.asarray, item.data)
        assert batch["emb"].shape == (40, 3)
        total += float(batch["x"].sum())
    want = sum(float(table(i)["x"].to_numpy().sum()) for i in range(FILES))
    assert total == pytest.approx(want)
