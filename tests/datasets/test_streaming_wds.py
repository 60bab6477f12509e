"""WebDataset tar shards: samples grouped as the ``webdataset`` package groups them, ShardWriter."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streaming_helpers import numbers, record

import s3dlio
from s3dlio.datasets.streaming import StreamingDataset
from s3dlio.errors import IntegrityError, InvalidArgumentError
from s3dlio.formats.shards import ShardWriter
from s3dlio.formats.tar import iter_members, member_header

wds = pytest.importorskip("webdataset")


def wds_samples(paths: list[str]) -> list[dict[str, Any]]:
    """What the webdataset package reads from local tar files, in order: its own tar expander
    and grouping, the stages ``wds.WebDataset`` runs after opening each URL (opened here, so
    that the files are closed)."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    out = []
    for path in paths:
        with open(path, "rb") as stream:
            for sample in group_by_keys(tar_file_expander([{"stream": stream, "url": path}])):
                sample.pop("__local_path__", None)
                out.append(sample)
    return out


def ours(uris: Any, **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("part_size", 700)
    return list(StreamingDataset(uris, format="webdataset", **kw))


def without_url(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "__url__"} for s in samples]


def tricky_tar(path: Path) -> None:
    """A tar written by Python's tarfile (pax format) with what real shards contain."""
    long_dir = "d" * 120
    entries = [
        ("a/b/img001.jpg", b"jpeg-1"),
        ("a/b/img001.CLS", b"3"),
        ("a/b/img001.seg.png", b"png" * 300),
        ("__meta__", b"skipped"),
        ("noext", b"skipped too"),
        ("img002.jpg", b""),
        ("img002.json", b'{"x": 1}'),
        (f"{long_dir}/img003.txt", "caf\u00e9".encode()),
        ("img004.npy", b"x" * 1500),
        ("img004.jpg", b"y" * 511),
    ]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a/")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("img005.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "img004.jpg"
        tar.addfile(link)


def test_samples_match_the_webdataset_package(tmp_path: Path):
    for i in range(2):
        tricky_tar(tmp_path / f"t{i}.tar")
    paths = [str(tmp_path / f"t{i}.tar") for i in range(2)]
    expected = wds_samples(paths)
    got = ours([f"file://{p}" for p in paths])
    assert len(got) == len(expected) == 8
    assert without_url(got) == without_url(expected)
    assert got[0]["__url__"] == f"file://{paths[0]}"
    assert set(got[0]) == {"__key__", "__url__", "jpg", "cls", "seg.png"}
    assert got[2]["__key__"] == "d" * 120 + "/img003"


def format_tar(path: Path, fmt: int) -> None:
    """A tar in one of tarfile's formats: ustar prefix fields, GNU long names or pax records,
    non-ASCII names (GNU: raw UTF-8 in the header), a member larger than a part's headroom,
    empty members, an old-style directory ("name/" with type NUL)."""
    long_dir = "p" * 70 + "/" + "q" * 60  # ustar: split into prefix and name
    with tarfile.open(path, "w", format=fmt) as tar:
        info = tarfile.TarInfo("olddir/")
        info.type = tarfile.AREGTYPE
        tar.addfile(info)
        for i in range(12):
            stem = [f"s{i:03d}", f"{long_dir}/s{i:03d}", f"caf\u00e9{i}"][i % 3]
            if fmt == tarfile.USTAR_FORMAT:
                stem = stem.replace("\u00e9", "e")
            for ext, size in (("jpg", [0, 511, 512, 70_000][i % 4]), ("cls", 1), ("Seg.PNG", 700)):
                info = tarfile.TarInfo(f"{stem}.{ext}")
                info.size = size
                tar.addfile(info, io.BytesIO(bytes([i + 1]) * size))


@pytest.mark.parametrize(
    "fmt",
    [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
    ids=["ustar", "gnu", "pax"],
)
def test_every_tar_format_and_window_cut_match_the_webdataset_package(tmp_path: Path, fmt: int):
    path = tmp_path / "t.tar"
    format_tar(path, fmt)
    expected = without_url(wds_samples([str(path)]))
    assert len(expected) == 12 and "olddir/" not in str(expected)
    for part_size in (512, 700, 5000, 1 << 20):  # headers and members cut anywhere
        assert without_url(ours(f"file://{path}", part_size=part_size)) == expected, part_size
    blob = path.read_bytes()
    windows = [
        (bytearray(blob[i : i + 999]), 0, len(blob[i : i + 999])) for i in range(0, len(blob), 999)
    ]
    with tarfile.open(path) as tar:  # no headroom at all: every cut member is joined
        regular = [(m.name, tar.extractfile(m).read()) for m in tar if m.isreg()]  # type: ignore[union-attr]
    assert [(m.name, m.data) for m in iter_members(windows, uri="mem")] == regular


def test_a_tar_cut_anywhere_gives_whole_samples_then_an_integrity_error(file_root):
    with ShardWriter(file_root + "cut-%d.tar") as sink:
        for i in range(6):
            sink.write({"__key__": f"k{i}", "bin": record(i, 100 + 37 * i), "cls": i})
    path = Path(sink.shards[0][7:])
    blob = path.read_bytes()
    keys = [f"k{i}" for i in range(6)]
    for cut in range(0, len(blob), 331):
        path.write_bytes(blob[:cut])
        ds = StreamingDataset(file_root, format="webdataset", on_error="skip", part_size=600)
        got = [s["__key__"] for s in ds]
        assert got == keys[: len(got)], cut
        if ds.skipped:
            with pytest.raises(IntegrityError, match="truncated tar") as caught:
                ours(file_root, part_size=600)
            assert caught.value.byte_range is not None and caught.value.byte_range[0] < cut
        else:  # cut at a member's end: the archive simply ends there
            assert ours(file_root, part_size=600) == list(ds)


@pytest.mark.parametrize("scheme", ["file", "s3"])
def test_shard_writer_tars_read_by_webdataset_and_by_us(request, scheme, tmp_path: Path):
    root = request.getfixturevalue(f"{scheme}_root")
    samples = [
        {"__key__": f"s{i:05d}", "jpg": bytes([i]) * (50 + 97 * i), "cls": i, "txt": f"t{i}"}
        for i in range(40)
    ]
    with ShardWriter(root + "wds/shard-%04d.tar", max_size=6000) as sink:
        for sample in samples:
            sink.write(sample)
    assert len(sink.shards) > 3 and sink.count == 40
    got = ours(root + "wds/", part_size=4096)
    per_shard = Counter(s["__url__"] for s in got)
    for uri in sink.shards:  # within the target (+ the end-of-archive blocks), or one sample
        assert int(s3dlio.stat(uri)["size"]) <= 6000 + 1024 or per_shard[uri] == 1
    assert [s["__key__"] for s in got] == [s["__key__"] for s in samples]
    assert got[7]["jpg"] == samples[7]["jpg"] and got[7]["cls"] == b"7"
    decoded = ours(sink.shards[:3], decode=True)
    assert decoded[1]["cls"] == 1 and decoded[1]["txt"] == "t1"
    local = []
    for i, uri in enumerate(sink.shards):
        path = tmp_path / f"{i}.tar"
        path.write_bytes(bytes(s3dlio.get(uri)))
        local.append(str(path))
    assert without_url(wds_samples(local)) == without_url(got)


def test_truncated_member_names_the_shard_and_offset(file_root):
    with ShardWriter(file_root + "t-%d.tar") as sink:
        for i in range(5):
            sink.write({"__key__": f"k{i}", "bin": record(i, 100)})
    uri = sink.shards[0]
    path = Path(uri[7:])
    data = path.read_bytes()
    path.write_bytes(data[: 3 * 1024 + 512 + 100])  # inside the 4th member's data
    with pytest.raises(IntegrityError, match="truncated tar member at offset 3072") as caught:
        ours(file_root)
    assert caught.value.uri == uri and caught.value.byte_range is not None
    ds = StreamingDataset(file_root, format="webdataset", on_error="skip")
    assert [s["__key__"] for s in ds] == ["k0", "k1", "k2"] and ds.skipped == 1
    corrupt = bytearray(data)
    corrupt[1024 + 10] ^= 0x01  # a byte of the 2nd header's name: its checksum fails
    path.write_bytes(bytes(corrupt))
    with pytest.raises(IntegrityError, match="corrupt tar header at offset 1024"):
        ours(file_root)


def test_tar_members_and_headers():
    long = "x/" * 80 + "file.bin"
    blob = member_header(long, 3) + b"abc" + bytes(509) + bytes(1024)
    members = list(iter_members([(bytearray(blob), 0, len(blob))], uri="mem"))
    assert [(m.name, m.data) for m in members] == [(long, b"abc")]
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert tar.getnames() == [long]


def test_tfrecord_shards_of_a_target_size(s3_root):
    with ShardWriter(s3_root + "tf/part-{:03d}.tfrecord", format="tfrecord", max_size=2000) as w:
        for i in range(40):
            w.write(record(i))
    assert len(w.shards) == 3  # 13 records of 136 bytes fit in 2000
    assert numbers(StreamingDataset(s3_root + "tf/")) == list(range(40))
    from s3dlio.formats.tfrecord import TFRecordReader

    assert numbers(TFRecordReader(w.shards[1])) == list(range(14, 28))


def test_shard_writer_arguments_and_abort(file_root):
    with pytest.raises(InvalidArgumentError, match="no place"):
        ShardWriter(file_root + "fixed.tar")
    with pytest.raises(InvalidArgumentError, match="format"):
        ShardWriter(file_root + "s-%d.x", format="zip")
    with ShardWriter(file_root + "v-%d.tar") as sink:
        with pytest.raises(InvalidArgumentError, match="dot"):
            sink.write({"__key__": "a.b", "x": b""})
        with pytest.raises(InvalidArgumentError, match="cannot store"):
            sink.write({"__key__": "a", "x": object()})
        sink.write({"__key__": "arr", "npy": np.arange(3), "json": {"a": 1}})
    sample = ours(file_root + "v-*", decode=True)[0]
    assert sample["npy"].tolist() == [0, 1, 2] and sample["json"] == {"a": 1}
    with pytest.raises(RuntimeError), ShardWriter(file_root + "gone-%d.tar") as sink:
        sink.write({"__key__": "a", "x": b"1"})
        raise RuntimeError("boom")
    assert not s3dlio.exists(file_root + "gone-0.tar")
