"""Code written for s3torchconnector, with only its import changed, against real servers.

Each test is shaped like s3torchconnector's README and examples (datasets with PIL and
torch.load transforms, S3Checkpoint with torch.save/torch.load, S3Client, DCP), and runs
against moto through s3dlio.compat.s3torchconnector; a few also on file:// and other backends.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

import torch.distributed.checkpoint as DCP  # noqa: E402, N812 - the README's spelling

import s3dlio  # noqa: E402
from s3dlio.compat.s3torchconnector import (  # noqa: E402
    S3Checkpoint,
    S3Client,
    S3ClientConfig,
    S3Exception,
    S3IterableDataset,
    S3MapDataset,
    S3ReaderConstructor,
)
from s3dlio.compat.s3torchconnector.dcp import (  # noqa: E402
    HexPrefixStrategy,
    RoundRobinPrefixStrategy,
    S3StorageReader,
    S3StorageWriter,
)
from s3dlio.errors import InvalidArgumentError  # noqa: E402

REGION = "us-east-1"
SINGLE = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


def png(i: int) -> bytes:
    img = Image.new("RGB", (4 + i, 3), color=(i * 40, 255 - i * 40, 7))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def images(s3_root: str) -> str:
    for i in range(5):
        s3dlio.put_bytes(f"{s3_root}images/img{i}.png", png(i))
    s3dlio.put_bytes(f"{s3_root}images-other/x.png", png(9))  # shares the raw prefix "images"
    s3dlio.put_bytes(f"{s3_root}labels/l.txt", b"not an image")
    return s3_root


def load_image(obj: Any) -> tuple[str, tuple[int, int], tuple[int, int, int]]:
    img = Image.open(obj)
    img.load()
    return obj.key, img.size, img.getpixel((0, 0))


def test_map_dataset_with_pil_transform(images: str, moto_s3: Any) -> None:
    ds = S3MapDataset.from_prefix(
        images + "images/", region=REGION, endpoint=moto_s3.url, transform=load_image
    )
    assert len(ds) == 5
    key, size, pixel = ds[3]
    assert key.endswith("images/img3.png") and size == (7, 3) and pixel == (120, 135, 7)
    item = S3MapDataset.from_prefix(images + "images/", region=REGION)[0]
    assert item.bucket == moto_s3.bucket and item.key.endswith("img0.png")
    head = item.read(8)
    assert head == b"\x89PNG\r\n\x1a\n" and item.tell() == 8
    item.seek(0)
    assert item.read() == png(0)


@pytest.mark.parametrize("constructor", [None, "range_based"])
def test_iterable_dataset_prefix_semantics(images: str, constructor: str | None) -> None:
    rc = S3ReaderConstructor.range_based(buffer_size=16) if constructor else None
    ds = S3IterableDataset.from_prefix(images + "images", region=REGION, reader_constructor=rc)
    seen = {
        item.key.rsplit("/", 2)[-2] + "/" + item.key.rsplit("/", 1)[-1]: item.read() for item in ds
    }
    # a raw prefix, as S3 lists it: "images" also matches "images-other/"
    assert sorted(seen) == sorted([f"images/img{i}.png" for i in range(5)] + ["images-other/x.png"])
    assert seen["images/img2.png"] == png(2)


def test_iterable_dataset_in_a_dataloader_with_sharding(images: str) -> None:
    ds = S3IterableDataset.from_prefix(
        images + "images/", region=REGION, enable_sharding=True, transform=load_image
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys = sorted(k for k, _, _ in loader)
    assert keys == sorted(
        f"{images[len('s3://') :].split('/', 1)[1]}images/img{i}.png" for i in range(5)
    )


def test_from_objects_on_file_scheme(file_root: str) -> None:
    uris = [f"{file_root}t{i}.pt" for i in range(3)]
    for i, uri in enumerate(uris):
        buf = io.BytesIO()
        torch.save({"i": torch.tensor([i, i])}, buf)
        s3dlio.put_bytes(uri, buf.getvalue())
    ds = S3IterableDataset.from_objects(uris, transform=lambda r: torch.load(r)["i"].tolist())
    assert list(ds) == [[0, 0], [1, 1], [2, 2]]
    m = S3MapDataset.from_objects(uris[1:], reader_constructor=S3ReaderConstructor.range_based())
    assert torch.load(m[1])["i"].tolist() == [2, 2]


def test_checkpoint_torch_save_and_load(store_root: str) -> None:
    model = torch.nn.Linear(4, 3)
    checkpoint = S3Checkpoint(region=REGION)
    uri = store_root + "epoch0.ckpt"
    with checkpoint.writer(uri) as writer:
        torch.save(model.state_dict(), writer)
    with checkpoint.reader(uri) as reader:
        state = torch.load(reader, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_checkpoint_writer_aborts_on_error(s3_root: str) -> None:
    uri = s3_root + "broken.ckpt"
    with pytest.raises(RuntimeError, match="boom"), S3Checkpoint().writer(uri) as writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    assert not s3dlio.exists(uri)
    with pytest.raises(S3Exception):
        S3Checkpoint().reader(uri).read()


def test_client_get_put_list(s3_root: str, moto_s3: Any) -> None:
    client = S3Client(
        REGION, endpoint=moto_s3.url, s3client_config=S3ClientConfig(part_size=5 << 20)
    )
    prefix = s3_root[len(f"s3://{moto_s3.bucket}/") :]
    with client.put_object(moto_s3.bucket, prefix + "a/one.bin") as w:
        w.write(b"0123456789")
    with client.put_object(moto_s3.bucket, prefix + "a/two.bin") as w:
        w.write(b"x" * 3)
    assert client.get_object(moto_s3.bucket, prefix + "a/one.bin").read() == b"0123456789"
    assert client.get_object(moto_s3.bucket, prefix + "a/one.bin", start=2, end=5).read() == b"234"
    pages = list(client.list_objects(moto_s3.bucket, prefix + "a/", max_keys=1))
    assert [[o.key for o in p.object_info] for p in pages] == [
        [prefix + "a/one.bin"],
        [prefix + "a/two.bin"],
    ]
    assert pages[1].object_info[0].size == 3
    top = list(client.list_objects(moto_s3.bucket, prefix, delimiter="/"))
    assert top[0].common_prefixes == [prefix + "a/"] and top[0].object_info == []
    assert client.head_object(moto_s3.bucket, prefix + "a/two.bin").size == 3
    client.delete_object(moto_s3.bucket, prefix + "a/two.bin")
    with pytest.raises(S3Exception):
        client.head_object(moto_s3.bucket, prefix + "a/two.bin")


def test_client_bucket_as_a_root_uri(tmp_path: Path) -> None:
    client = S3Client()
    with client.put_object(f"file://{tmp_path}", "k/v.bin") as w:
        w.write(b"local")
    assert (tmp_path / "k" / "v.bin").read_bytes() == b"local"
    assert [
        o.key for p in client.list_objects(f"file://{tmp_path}", "k/") for o in p.object_info
    ] == ["k/v.bin"]


@SINGLE
def test_dcp_readme_example(s3_root: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    uri = s3_root + "dcp/"
    writer = S3StorageWriter(region=REGION, path=uri, prefix_strategy=HexPrefixStrategy())
    DCP.save(state_dict=model.state_dict(), storage_writer=writer, no_dist=True)
    fresh = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    state = fresh.state_dict()
    DCP.load(
        state_dict=state, storage_reader=S3StorageReader(region=REGION, path=uri), no_dist=True
    )
    fresh.load_state_dict(state)
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True)
    )
    assert any(
        k.startswith("0000000000/__0_")
        for k in (u[len(uri) :] for u in s3dlio.list(uri, recursive=True))
    )


@SINGLE
def test_dcp_round_robin_and_config(s3_root: str) -> None:
    uri = s3_root + "rr"
    writer = S3StorageWriter(
        REGION,
        uri,
        S3ClientConfig(part_size=5 << 20, max_attempts=3),
        RoundRobinPrefixStrategy(["p1", "p2"], epoch_num=4),
        thread_count=2,
        single_file_per_rank=True,
    )
    sd = {"x": torch.arange(10.0), "y": torch.ones(2, 2)}
    DCP.save(sd, storage_writer=writer, no_dist=True)
    shards = [u for u in s3dlio.list(uri + "/", recursive=True) if u.endswith(".distcp")]
    assert len(shards) == 2 and all("/p1/epoch_4/__0_" in s for s in shards)
    out = {"x": torch.zeros(10), "y": torch.zeros(2, 2)}
    DCP.load(out, storage_reader=S3StorageReader(REGION, uri), no_dist=True)
    assert torch.equal(out["x"], sd["x"]) and torch.equal(out["y"], sd["y"])


def test_bad_config_is_refused_on_first_use(s3_root: str) -> None:
    # as s3torchconnector: the config and the client build; the first request refuses
    client = S3Client(REGION, s3client_config=S3ClientConfig(part_size=1024))
    with pytest.raises(InvalidArgumentError, match="part size"):
        client.put_object("s3dlio-test", "x")
    with pytest.raises(InvalidArgumentError, match="unsigned"):
        S3Client(REGION, s3client_config=S3ClientConfig(unsigned=True)).head_object("b", "k")
    with pytest.raises(InvalidArgumentError, match="requester_pays"):
        S3ClientConfig(unsigned=True, requester_pays=True)
