"""TFRecord, HDF5 and NPZ datasets over every backend, with DataLoader workers."""

from __future__ import annotations

import gc
import io
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import s3dlio
from s3dlio.errors import NotFoundError
from s3dlio.formats.example import encode_example
from s3dlio.formats.hdf5 import open_hdf5
from s3dlio.formats.tfrecord import TFRecordWriter
from s3dlio.torch import HDF5Dataset, NPZDataset, ResumableDataLoader, TFRecordDataset

pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


def example(i: int) -> dict[str, object]:
    return {
        "label": np.array([i], dtype=np.int64),
        "x": np.full(3, i / 2, dtype=np.float32),
        "name": f"rec-{i}".encode(),
    }


def write_tfrecords(root: str, files: int, per_file: int, index: bool = True) -> list[str]:
    uris = []
    for f in range(files):
        uri = f"{root}part-{f}.tfrecord"
        with TFRecordWriter(uri, index=index) as writer:
            for j in range(per_file):
                writer.write(encode_example(example(f * per_file + j)))
        uris.append(uri)
    return uris


def labels(batch: object) -> list[int]:
    return [int(item["label"][0]) for item in batch]  # type: ignore[index, attr-defined]


def test_tfrecord_dataset_reads_any_record_by_index(store_root):
    write_tfrecords(store_root + "tf/", files=2, per_file=7)
    ds = TFRecordDataset(store_root + "tf/", decode=True)
    assert len(ds) == 14 and ds.uris[0].endswith("part-0.tfrecord")
    for i in (0, 6, 7, 13, -1):
        record = ds[i]
        assert int(record["label"][0]) == i % 14
        assert record["x"].tolist() == [i % 14 / 2] * 3
        assert record["name"][0] == f"rec-{i % 14}".encode()
    raw = TFRecordDataset(store_root + "tf/part-1.tfrecord")
    assert len(raw) == 7
    tensor = raw[2]
    assert tensor.dtype == torch.uint8 and bytes(tensor.numpy()) == encode_example(example(9))
    with pytest.raises(IndexError):
        ds[14]


def test_tfrecord_dataset_scans_or_asks_for_a_missing_index(file_root):
    write_tfrecords(file_root, files=1, per_file=5, index=False)
    with pytest.raises(NotFoundError, match="index"):
        TFRecordDataset(file_root + "part-0.tfrecord")
    ds = TFRecordDataset(
        file_root, index="scan", decode=True, transform=lambda r: int(r["label"][0]) * 10
    )
    assert [ds[i] for i in range(len(ds))] == [0, 10, 20, 30, 40]


def test_tfrecord_dataset_with_workers_sharded_and_resumable(file_root):
    write_tfrecords(file_root, files=3, per_file=10)
    ds = TFRecordDataset(file_root, decode=True)
    seen = []
    for rank in range(2):
        sampler = ds.sampler(shuffle=True, seed=1, rank=rank, world_size=2)
        dl = DataLoader(
            ds,
            batch_size=4,
            sampler=sampler,
            num_workers=2,
            collate_fn=list,
            multiprocessing_context="fork",
        )
        seen.append([label for batch in dl for label in labels(batch)])
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(30))
    dl = ResumableDataLoader(
        ds,
        batch_size=4,
        sampler=ds.sampler(shuffle=True, seed=2),
        num_workers=2,
        collate_fn=list,
        multiprocessing_context="fork",
    )
    batches = iter(dl)
    first = labels(next(batches)) + labels(next(batches))
    state = dl.state_dict()
    del batches
    again = ResumableDataLoader(
        ds,
        batch_size=4,
        sampler=ds.sampler(),
        num_workers=2,
        collate_fn=list,
        multiprocessing_context="fork",
    )
    again.load_state_dict(state)
    rest = [label for batch in again for label in labels(batch)]
    assert first + rest == ds.sampler(shuffle=True, seed=2).epoch_sampler.rank_sequence().tolist()


def test_hdf5_dataset_rows_across_files(store_root):
    for f in range(2):
        with open_hdf5(f"{store_root}h5/f{f}.h5", "w") as h5:
            h5["data"] = np.arange(f * 40, f * 40 + 40, dtype=np.float32).reshape(10, 4)
            h5["label"] = np.arange(f * 10, f * 10 + 10, dtype=np.int64)
    ds = HDF5Dataset(store_root + "h5/")
    assert len(ds) == 20
    assert ds[11].tolist() == [44.0, 45.0, 46.0, 47.0]
    both = HDF5Dataset(store_root + "h5/", ["data", "label"])
    assert int(both[13]["label"]) == 13 and both[13]["data"][0] == 52.0
    dl = DataLoader(
        both,
        batch_size=5,
        num_workers=2,
        multiprocessing_context="fork",
        sampler=both.sampler(shuffle=True, seed=3),
    )
    got = torch.cat([batch["label"] for batch in dl]).tolist()
    assert sorted(got) == list(range(20))


def test_npz_dataset_one_item_per_object(store_root):
    for i in range(4):
        buf = io.BytesIO()
        np.savez(buf, x=np.full((2, 3), i, dtype=np.int16), y=np.array([i * 10]))
        s3dlio.put_bytes(f"{store_root}npz/s{i}.npz", buf.getvalue())
    s3dlio.put_bytes(f"{store_root}npz/readme.txt", b"not an archive")
    ds = NPZDataset(store_root + "npz/", "x")
    assert len(ds) == 4
    assert ds[2].tolist() == [[2, 2, 2], [2, 2, 2]] and ds[2].dtype == np.int16
    first = NPZDataset(store_root + "npz/")[3]
    assert first.tolist() == [[3, 3, 3], [3, 3, 3]]
    everything = NPZDataset(store_root + "npz/", "*")[1]
    assert set(everything) == {"x", "y"} and everything["y"].tolist() == [10]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", ["tfrecord", "hdf5", "npz"])
def test_readers_of_many_files_stay_bounded(file_root, kind):
    files = 40
    if kind == "tfrecord":
        write_tfrecords(file_root, files=files, per_file=2)
        ds = TFRecordDataset(file_root)
    elif kind == "hdf5":
        for f in range(files):
            with open_hdf5(f"{file_root}f{f:02d}.h5", "w") as h5:
                h5["data"] = np.full((2, 3), f, dtype=np.int32)
        ds = HDF5Dataset(file_root)
    else:
        for f in range(files):
            buf = io.BytesIO()
            np.savez(buf, x=np.full(3, f))
            s3dlio.put_bytes(f"{file_root}f{f:02d}.npz", buf.getvalue())
        ds = NPZDataset(file_root)
    ds.max_open_files = 8
    before = _open_fds()
    for _ in range(2):
        items = [ds[i] for i in range(len(ds))]
        assert len(items) == len(ds) == files * (1 if kind == "npz" else 2)
        del items
        gc.collect()
        assert len(ds._readers) == 8
        assert _open_fds() - before <= 8  # the dropped readers released their descriptors
