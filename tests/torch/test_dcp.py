"""torch.distributed.checkpoint over every URI scheme (s3dlio.torch.dcp).

Multi-rank cases run in real gloo process groups on loopback (tests/torch/dcp_worker.py): one
group of three workers is shared by the module; the SIGKILL case starts its own pair.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.distributed.checkpoint as dcp  # noqa: E402
from torch.distributed.checkpoint import FileSystemWriter  # noqa: E402
from torch.distributed.checkpoint.api import CheckpointException  # noqa: E402

import s3dlio  # noqa: E402
from s3dlio.errors import IntegrityError, InvalidArgumentError, NotFoundError  # noqa: E402
from s3dlio.torch import dcp as sdcp  # noqa: E402
from s3dlio.torch._dcp_layout import needed_span  # noqa: E402
from tests.torch.dcp_worker import full_state  # noqa: E402
from tests.torch.procgroup import ProcessGroup  # noqa: E402

WORKER = Path(__file__).with_name("dcp_worker.py")
SINGLE = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


def sample() -> dict[str, Any]:
    return {
        "w": torch.arange(24, dtype=torch.float32).reshape(4, 6),
        "half": torch.linspace(-1, 1, 7, dtype=torch.bfloat16),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "empty": torch.empty(0, 3),
        "strided": torch.arange(12).reshape(3, 4).t(),
        "big": torch.arange(5 << 20, dtype=torch.uint8),  # > one 4 MiB CRC block
        "meta": {"step": 7, "name": "run-1"},
    }


def zeros_like(sd: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            out[k] = torch.zeros(v.shape, dtype=v.dtype)
        elif isinstance(v, dict):
            out[k] = zeros_like(v)
        else:
            out[k] = None
    return out


def assert_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, torch.Tensor):
            assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
        elif isinstance(v, dict) and not all(isinstance(x, str | int) for x in v.values()):
            assert_equal(got[k], v)
        else:
            assert got[k] == v, k


def keys(uri: str) -> list[str]:
    base = uri.rstrip("/") + "/"
    return sorted(u[len(base) :] for u in s3dlio.list(base, recursive=True))


def rank_failure(exc: CheckpointException) -> BaseException:
    (failure,) = exc.failures.values()
    return failure[0]


# -- one process ---------------------------------------------------------------------------------


@SINGLE
def test_round_trip_every_backend(store_root: str) -> None:
    uri = store_root + "ckpt"
    sd = sample()
    dcp.save(sd, storage_writer=sdcp.StorageWriter(uri), no_dist=True)
    names = keys(uri)
    assert ".metadata" in names and len([n for n in names if n.endswith(".distcp")]) == 2
    out = zeros_like(sd)
    dcp.load(out, storage_reader=sdcp.StorageReader(uri), no_dist=True)
    assert_equal(out, sd)


@SINGLE
@pytest.mark.parametrize("backend", ["file", "s3"])
def test_async_save_and_checkpoint_id(backend: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(f"{backend}_root")
    sd = sample()
    writer = sdcp.StorageWriter(root + "unused")
    future = dcp.async_save(sd, checkpoint_id=root + "a", storage_writer=writer, no_dist=True)
    future.result(timeout=60)
    assert keys(root)[0].startswith("a/")  # checkpoint_id replaced the writer's URI
    out = zeros_like(sd)
    dcp.load(out, checkpoint_id=root + "a", storage_reader=sdcp.StorageReader(root), no_dist=True)
    assert_equal(out, sd)


@SINGLE
def test_metadata_records_crc_per_item(file_root: str) -> None:
    uri = file_root + "c"
    dcp.save(sample(), storage_writer=sdcp.StorageWriter(uri), no_dist=True)
    meta = sdcp.StorageReader(uri).read_metadata()
    locs = list(meta.storage_data.values())
    assert all(isinstance(loc, sdcp.ItemLocation) for loc in locs)
    big = next(loc for loc in locs if loc.length == 5 << 20)
    assert len(big.crcs) == 2 and big.dtype == "uint8" and big.shape == (5 << 20,)
    assert all(loc.offset % 64 == 0 for loc in locs)


@SINGLE
@pytest.mark.parametrize(
    ("strategy", "options", "expected"),
    [
        (None, {}, "__0_"),
        ("hex", {}, "0000000000/__0_"),
        ("binary", {"prefix_count": 4}, "0000000000/__0_"),
        ("round_robin", {"prefixes": ["fast-a", "fast-b"]}, "fast-a/__0_"),
    ],
)
def test_prefix_strategies(
    file_root: str, strategy: str | None, options: dict[str, Any], expected: str
) -> None:
    uri = file_root + "p"
    sd = {"x": torch.arange(10)}
    writer = sdcp.StorageWriter(uri, prefix_strategy=strategy, thread_count=1, **options)
    dcp.save(sd, storage_writer=writer, no_dist=True)
    shards = [k for k in keys(uri) if k.endswith(".distcp")]
    assert len(shards) == 1 and shards[0].startswith(expected + "0_")
    out = {"x": torch.zeros(10, dtype=torch.int64)}
    dcp.load(out, storage_reader=sdcp.StorageReader(uri), no_dist=True)
    assert torch.equal(out["x"], sd["x"])


def test_prefix_names_match_s3torchconnector_layout() -> None:
    hex_ = sdcp.HexPrefixStrategy()
    assert [hex_(r, 4) for r in range(3)] == [
        "0000000000/__0_",
        "1000000000/__1_",
        "2000000000/__2_",
    ]
    binary = sdcp.BinaryPrefixStrategy(min_prefix_length=3, epoch=5)
    assert binary(3, 4) == "110/epoch_5/__3_"
    assert sdcp.RoundRobinPrefixStrategy(["a", "b"])(3) == "b/__3_"
    with pytest.raises(InvalidArgumentError, match="round_robin"):
        sdcp.StorageWriter("file:///tmp/x", prefix_strategy="round_robin")
    with pytest.raises(InvalidArgumentError, match="prefix_strategy"):
        sdcp.StorageWriter("file:///tmp/x", prefix_strategy="sideways")
    with pytest.raises(InvalidArgumentError, match="thread_count"):
        sdcp.StorageWriter("file:///tmp/x", thread_count=0)


def test_needed_span_reads_only_the_box() -> None:
    # rows 2-3 of a (10, 6) float32 chunk: exactly those bytes
    assert needed_span((10, 6), 4, (2, 0), (2, 6)) == (48, 96)
    # a column slice: from the first element of the box to its last
    assert needed_span((4, 9), 2, (0, 3), (4, 3)) == (6, (3 * 9 + 5 + 1) * 2)
    assert needed_span((), 8, (), ()) == (0, 8)


@SINGLE
@pytest.mark.parametrize(
    ("rows", "atomic_limit"),
    [(512, 256 << 20), (512, 0), (1024, 0)],
    ids=["staged-all-or-nothing", "staged-bounded", "in-place"],
)
def test_a_slice_reads_only_its_bytes(
    s3_root: str, tmp_path: Path, rows: int, atomic_limit: int
) -> None:
    """A rank wanting rows 1024-1535 of a 16 MiB tensor fetches those 2 MiB (one CRC block);
    rows 1024-2047 (one whole block) go straight into the destination when not all-or-nothing."""
    from torch.distributed.checkpoint import DefaultLoadPlanner
    from torch.distributed.checkpoint.metadata import MetadataIndex
    from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, ReadItem

    uri = s3_root + "slice"
    full = torch.arange(4096 * 1024, dtype=torch.int32).reshape(4096, 1024)
    dcp.save({"x": full}, storage_writer=sdcp.StorageWriter(uri), no_dist=True)
    reader = sdcp.StorageReader(uri, atomic_limit=atomic_limit)
    meta = reader.read_metadata()
    reader.set_up_storage_reader(meta, True)
    dest = {"x": torch.zeros(rows, 1024, dtype=torch.int32)}
    planner = DefaultLoadPlanner()
    planner.set_up_planner(dest, meta, True)
    item = ReadItem(
        type=LoadItemType.TENSOR,
        dest_index=MetadataIndex("x", torch.Size([0, 0])),
        dest_offsets=torch.Size([0, 0]),
        storage_index=MetadataIndex("x", torch.Size([0, 0])),
        storage_offsets=torch.Size([1024, 0]),
        lengths=torch.Size([rows, 1024]),
    )
    s3dlio.init_op_log(str(tmp_path / "ops.tsv.zst"))
    try:
        reader.read_data(LoadPlan([item]), planner).wait()
        stats = s3dlio.op_log_stats()
    finally:
        s3dlio.finalize_op_log()
    assert torch.equal(dest["x"], full[1024 : 1024 + rows])
    assert stats["bytes"] == 4 << 20  # the 4 MiB CRC block holding the rows asked for


@SINGLE
@pytest.mark.parametrize("backend", ["file", "s3"])
def test_large_tensors_are_objects_of_their_own(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Tensors of at least part_size bytes: one object each (one PUT up to max_put_size,
    streamed above); the rest packed into thread_count objects. Loads larger than
    atomic_limit read into the tensors in place and give the same state."""
    uri = request.getfixturevalue(f"{backend}_root") + "own"
    sd = {
        **sample(),
        "put": torch.arange(3 << 18, dtype=torch.float32).reshape(768, 1024),  # 3 MiB
        "streamed": torch.arange(6 << 20, dtype=torch.uint8).flip(0),  # 6 MiB
    }
    writer = sdcp.StorageWriter(uri, thread_count=1, part_size="2MiB", max_put_size="4MiB")
    dcp.save(sd, storage_writer=writer, no_dist=True)
    meta = sdcp.StorageReader(uri).read_metadata()
    paths = {index.fqn: loc.relative_path for index, loc in meta.storage_data.items()}
    shards = [k for k in keys(uri) if k.endswith(".distcp")]
    # put, streamed and big (5 MiB) alone; every other item in the one packed object
    assert len(shards) == 4 and len(set(paths.values())) == 4
    assert len({paths["put"], paths["streamed"], paths["big"], paths["w"]}) == 4
    for atomic_limit in (None, 0):
        out = zeros_like(sd)
        reader = sdcp.StorageReader(uri, atomic_limit=atomic_limit)
        dcp.load(out, storage_reader=reader, no_dist=True)
        assert_equal(out, sd)


def test_plan_objects() -> None:
    from torch.distributed.checkpoint.planner import WriteItem, WriteItemType

    from s3dlio.torch._dcp_layout import plan_objects

    def item(name: str, nbytes: int) -> WriteItem:
        from torch.distributed.checkpoint.metadata import (
            ChunkStorageMetadata,
            MetadataIndex,
            TensorProperties,
        )
        from torch.distributed.checkpoint.planner import TensorWriteData

        return WriteItem(
            MetadataIndex(name),
            WriteItemType.TENSOR,
            tensor_data=TensorWriteData(
                ChunkStorageMetadata(torch.Size([0]), torch.Size([nbytes])),
                TensorProperties(dtype=torch.uint8),
                torch.Size([nbytes]),
            ),
        )

    mib = 1 << 20
    items = [item("a", 16 * mib), item("b", 40 * mib), item("c", mib), item("d", 3 * mib)]
    objects = [[i.index.fqn for i in o] for o in plan_objects(items, 1, 16 * mib)]
    assert objects == [["b"], ["a"], ["d", "c"]]
    assert len(plan_objects(items, 2, 16 * mib)) == 4  # the small ones over two objects
    small = [item(str(n), 3 * mib) for n in range(20)]  # 60 MiB: four packed objects
    assert len(plan_objects(small, 1, 16 * mib)) == 4
    assert plan_objects([], 2, 16 * mib) == [[]]


@SINGLE
def test_bounded_load_still_fails_typed(s3_root: str) -> None:
    """Past atomic_limit: a missing object is found before anything loads; a flipped byte is
    an IntegrityError."""
    uri = s3_root + "bounded"
    sd = {"x": torch.arange(1 << 20, dtype=torch.int32), "y": torch.arange(1 << 20)}
    dcp.save(sd, storage_writer=sdcp.StorageWriter(uri, part_size="4MiB"), no_dist=True)
    meta = sdcp.StorageReader(uri).read_metadata()
    paths = {index.fqn: loc.relative_path for index, loc in meta.storage_data.items()}
    assert paths["x"] != paths["y"]  # 4 MiB and 8 MiB: an object each

    data = bytearray(s3dlio.get(f"{uri}/{paths['y']}"))
    s3dlio.delete(f"{uri}/{paths['y']}")
    out = {"x": torch.zeros(1 << 20, dtype=torch.int32), "y": torch.zeros(1 << 20).long()}
    with pytest.raises(CheckpointException) as info:
        dcp.load(out, storage_reader=sdcp.StorageReader(uri, atomic_limit=0), no_dist=True)
    err = rank_failure(info.value)
    assert isinstance(err, NotFoundError) and paths["y"] in str(err)
    assert not out["x"].any() and not out["y"].any()

    data[4 << 20] ^= 0x01
    s3dlio.put_bytes(f"{uri}/{paths['y']}", data)
    with pytest.raises(CheckpointException) as info:
        dcp.load(out, storage_reader=sdcp.StorageReader(uri, atomic_limit=0), no_dist=True)
    err = rank_failure(info.value)
    assert isinstance(err, IntegrityError) and paths["y"] in str(err) and "CRC32C" in str(err)


@SINGLE
def test_resaving_keeps_the_old_checkpoint_until_the_new_one_commits(s3_root: str) -> None:
    uri = s3_root + "same"
    dcp.save({"x": torch.ones(4)}, storage_writer=sdcp.StorageWriter(uri), no_dist=True)
    first = set(keys(uri))
    dcp.save({"x": torch.full((4,), 2.0)}, storage_writer=sdcp.StorageWriter(uri), no_dist=True)
    second = set(keys(uri))
    assert first & second == {".metadata"}  # new shard names; the old ones were deleted
    out = {"x": torch.zeros(4)}
    dcp.load(out, storage_reader=sdcp.StorageReader(uri), no_dist=True)
    assert out["x"].tolist() == [2.0] * 4


@SINGLE
def test_reads_dcp_filesystemwriter_checkpoints(file_root: str) -> None:
    path = file_root[len("file://") :] + "fs"
    sd = sample()
    dcp.save(sd, storage_writer=FileSystemWriter(path), no_dist=True)
    out = zeros_like(sd)
    dcp.load(out, storage_reader=sdcp.StorageReader("file://" + path), no_dist=True)
    assert_equal(out, sd)


# -- bad input: typed errors naming the URI, nothing loaded --------------------------------------


@SINGLE
@pytest.mark.parametrize("backend", ["file", "s3"])
def test_flipped_byte_is_an_integrity_error(backend: str, request: pytest.FixtureRequest) -> None:
    uri = request.getfixturevalue(f"{backend}_root") + "flip"
    sd = {"a": torch.arange(1000, dtype=torch.int64), "b": torch.ones(3)}
    dcp.save(sd, storage_writer=sdcp.StorageWriter(uri, thread_count=1), no_dist=True)
    (shard,) = [k for k in keys(uri) if k.endswith(".distcp")]
    data = bytearray(s3dlio.get(f"{uri}/{shard}"))
    data[100] ^= 0x01
    s3dlio.put_bytes(f"{uri}/{shard}", data)
    out = {"a": torch.zeros(1000, dtype=torch.int64), "b": torch.zeros(3)}
    with pytest.raises(CheckpointException) as info:
        dcp.load(out, storage_reader=sdcp.StorageReader(uri), no_dist=True)
    err = rank_failure(info.value)
    assert isinstance(err, IntegrityError) and shard in str(err) and "CRC32C" in str(err)
    assert not out["a"].any() and not out["b"].any()  # nothing loaded, not even "b"


@SINGLE
def test_no_checkpoint_random_metadata_and_missing_shard(s3_root: str) -> None:
    empty = s3_root + "nothing"
    with pytest.raises(NotFoundError, match="no complete DCP checkpoint") as info:
        sdcp.StorageReader(empty).read_metadata()
    assert empty in str(info.value)
    with pytest.raises(CheckpointException, match="nothing.*no complete DCP checkpoint"):
        dcp.load({"x": torch.zeros(1)}, storage_reader=sdcp.StorageReader(empty), no_dist=True)

    garbage = s3_root + "garbage"
    s3dlio.put_bytes(garbage + "/.metadata", b"this is not a pickle at all")
    with pytest.raises(IntegrityError, match="not a DCP checkpoint") as info:
        sdcp.StorageReader(garbage).read_metadata()
    assert "garbage/.metadata" in str(info.value)
    s3dlio.put_bytes(garbage + "/.metadata", pickle.dumps({"a": "dict"}))
    with pytest.raises(IntegrityError, match="holds a dict"):
        sdcp.StorageReader(garbage).read_metadata()

    uri = s3_root + "partial"
    sd = {"x": torch.arange(100), "y": torch.arange(200)}
    dcp.save(sd, storage_writer=sdcp.StorageWriter(uri, thread_count=2), no_dist=True)
    shard = sorted(k for k in keys(uri) if k.endswith(".distcp"))[0]
    s3dlio.delete(f"{uri}/{shard}")
    out = {"x": torch.zeros(100, dtype=torch.int64), "y": torch.zeros(200, dtype=torch.int64)}
    with pytest.raises(CheckpointException) as exc_info:
        dcp.load(out, storage_reader=sdcp.StorageReader(uri), no_dist=True)
    err = rank_failure(exc_info.value)
    assert isinstance(err, NotFoundError) and shard in str(err)
    assert not out["x"].any() and not out["y"].any()


@SINGLE
def test_a_checkpointstore_directory_is_not_a_dcp_checkpoint(file_root: str) -> None:
    from s3dlio.checkpoint import CheckpointStore

    CheckpointStore(file_root + "cs").save(1, 0, "torch", {"x": torch.ones(2)})
    with pytest.raises(NotFoundError, match="no complete DCP checkpoint"):
        sdcp.StorageReader(file_root + "cs").read_metadata()


# -- real process groups -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def group(moto_s3: Any) -> Iterator[ProcessGroup]:
    """Three gloo ranks, started once for the module (after moto, whose environment they see)."""
    pg = ProcessGroup(WORKER, 3)
    try:
        yield pg
    finally:
        pg.close()


def expected_full(seed: int) -> dict[str, Any]:
    full = full_state(seed)
    return {"model": dict(full["model"]), "step": full["step"]}


@SINGLE
@pytest.mark.parametrize("backend", ["s3", "file"])
def test_two_ranks_save_one_and_three_load(
    group: ProcessGroup, backend: str, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(f"{backend}_root")
    uri = root + f"sharded-{uuid.uuid4().hex[:6]}"
    seed = 3 if backend == "s3" else 4
    answers = group.run(
        {"op": "save", "uri": uri, "ranks": [0, 1], "seed": seed, "prefix_strategy": "hex"}
    )
    assert answers == [{"ok": True, "error": None}] * 2
    shards = [k for k in keys(uri) if k.endswith(".distcp")]
    assert {s.split("/")[0] for s in shards} == {"0000000000", "1000000000"}

    # one rank, no process group: every tensor whole (resharding 2 -> 1)
    want = expected_full(seed)
    out = {"model": {k: torch.zeros_like(v) for k, v in want["model"].items()}, "step": -1}
    dcp.load(out, storage_reader=sdcp.StorageReader(uri), no_dist=True)
    assert_equal(out["model"], want["model"])
    assert out["step"] == want["step"]

    # three ranks (resharding 2 -> 3, uneven chunks, emb split along dim 1)
    answers = group.run({"op": "load", "uri": uri, "ranks": [0, 1, 2], "seed": seed})
    assert answers == [{"ok": True, "error": None}] * 3


def test_three_ranks_async_save_two_load(group: ProcessGroup, s3_root: str) -> None:
    uri = s3_root + "async3"
    answers = group.run({"op": "save", "uri": uri, "ranks": [0, 1, 2], "seed": 5, "async": True})
    assert answers == [{"ok": True, "error": None}] * 3
    answers = group.run({"op": "load", "uri": uri, "ranks": [0, 1], "seed": 5})
    assert answers == [{"ok": True, "error": None}] * 2
    answers = group.run({"op": "load", "uri": uri, "ranks": [0, 1], "seed": 6})
    assert answers[0]["ok"] is False and "differs" in answers[0]["error"]  # the check can fail


@SINGLE
@pytest.mark.parametrize("target", ["new", "same"])
def test_sigkill_mid_save(s3_root: str, target: str) -> None:
    previous = s3_root + "prev"
    crashed = previous if target == "same" else s3_root + "next"
    pg = ProcessGroup(WORKER, 2)
    try:
        assert (
            pg.run({"op": "save", "uri": previous, "ranks": [0, 1], "seed": 1})
            == [{"ok": True, "error": None}] * 2
        )
        for w in pg.workers:
            w.send({"op": "save", "uri": crashed, "ranks": [0, 1], "seed": 2, "block": w.rank == 1})
        assert pg.workers[1].receive() == {"blocked": True}
        pg.workers[1].kill()
        pg.workers[0].kill()
    finally:
        pg.close()
    if target == "new":
        assert any(k.endswith(".distcp") for k in keys(crashed))  # shards, but no .metadata
        with pytest.raises(NotFoundError, match="no complete DCP checkpoint"):
            sdcp.StorageReader(crashed).read_metadata()
    want = expected_full(1)
    out = {"model": {k: torch.zeros_like(v) for k, v in want["model"].items()}, "step": -1}
    dcp.load(out, storage_reader=sdcp.StorageReader(previous), no_dist=True)
    assert_equal(out["model"], want["model"])


def test_save_and_load_helpers_raise_typed_errors(s3_root: str) -> None:
    uri = s3_root + "helpers"
    sd = {"x": torch.arange(6.0), "n": 3}
    sdcp.save(sd, uri, thread_count=1)
    out = {"x": torch.zeros(6), "n": 0}
    sdcp.load(out, uri)
    assert torch.equal(out["x"], sd["x"]) and out["n"] == 3
    with pytest.raises(NotFoundError, match="no complete DCP checkpoint") as info:
        sdcp.load(out, s3_root + "missing")
    assert (s3_root + "missing") in str(info.value)
    (shard,) = [k for k in keys(uri) if k.endswith(".distcp")]
    data = bytearray(s3dlio.get(f"{uri}/{shard}"))
    data[-1] ^= 0xFF
    s3dlio.put_bytes(f"{uri}/{shard}", data)
    with pytest.raises(IntegrityError, match="CRC32C") as crc:
        sdcp.load({"x": torch.zeros(6), "n": 0}, uri)
    assert isinstance(crc.value.__cause__, CheckpointException)  # what dcp.load raised
