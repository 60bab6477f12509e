"""PyTorch state_dicts, JAX and NumPy pytrees, and torch.save/torch.load through our files."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

import s3dlio
from s3dlio.checkpoint import CheckpointStore, serializers
from s3dlio.io.buffers import buffer_address

torch = pytest.importorskip("torch")


class Custom:
    """Not a plain container: weights_only refuses it."""

    def __init__(self, value: int) -> None:
        self.value = value


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(50, 16),
        torch.nn.Linear(16, 16),
        torch.nn.LayerNorm(16),
        torch.nn.Linear(16, 50, bias=False),
    )
    model[3].weight = model[0].weight  # tied input/output embeddings
    return model


def optimizer_like_state(model: torch.nn.Module) -> dict:
    """An AdamW-style ``optimizer.state_dict()`` (building a real optimizer imports dynamo)."""
    params = list(model.parameters())
    return {
        "state": {
            i: {
                "step": torch.tensor(3.0),
                "exp_avg": torch.randn_like(p),
                "exp_avg_sq": torch.rand_like(p),
            }
            for i, p in enumerate(params)
        },
        "param_groups": [
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "amsgrad": False,
                "params": list(range(len(params))),
            }
        ],
    }


def test_torch_training_state_roundtrip(store_root: str) -> None:
    model = small_model()
    state = {
        "model": model.state_dict(),
        "optim": optimizer_like_state(model),
        "epoch": 3,
        "rng": torch.get_rng_state(),
    }
    store = CheckpointStore(store_root)
    store.save(100, 3, "torch", state, user_meta={"arch": "tiny"})

    loaded = CheckpointStore(store_root).load_latest()
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["rng"], state["rng"])
    for name, tensor in state["model"].items():
        assert torch.equal(loaded["model"][name], tensor), name
        assert loaded["model"][name].dtype == tensor.dtype
    assert list(loaded["optim"]["state"]) == list(state["optim"]["state"])  # int keys kept
    assert loaded["optim"]["param_groups"] == state["optim"]["param_groups"]
    for index, slots in state["optim"]["state"].items():
        for slot, tensor in slots.items():
            assert torch.equal(loaded["optim"]["state"][index][slot], tensor)
    fresh = small_model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    fresh.load_state_dict(loaded["model"])
    assert torch.equal(fresh(torch.arange(8)), model(torch.arange(8)))


def test_torch_dtypes_shapes_and_layouts(file_root: str) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tree = {
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "i8": base.to(torch.int8),
        "u8": base.to(torch.uint8),
        "bool": base > 10,
        "c64": torch.complex(base, -base),
        "scalar": torch.tensor(7),
        "empty": torch.empty(0, 3),
        "transposed": base.t(),
        "sliced": base[:, 1::2],
        "param": torch.nn.Parameter(base.clone()),
        "frozen": torch.nn.Parameter(base.clone(), requires_grad=False),
        "plain": [1, 2.5, "three", None, (True, b"bytes")],
    }
    if hasattr(torch, "float8_e4m3fn"):
        tree["f8"] = base.to(torch.float8_e4m3fn)
    store = CheckpointStore(file_root)
    store.save(1, 0, "torch", tree)
    got = store.load_latest()
    for key, want in tree.items():
        if isinstance(want, torch.Tensor):
            assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
            assert torch.equal(
                got[key].view(torch.uint8) if key == "f8" else got[key],
                want.view(torch.uint8) if key == "f8" else want,
            ), key
        else:
            assert got[key] == want
    assert isinstance(got["param"], torch.nn.Parameter) and got["param"].requires_grad
    assert isinstance(got["frozen"], torch.nn.Parameter) and not got["frozen"].requires_grad


def test_tensors_are_zero_copy_and_shared_storage_is_kept(file_root: str) -> None:
    weight = torch.randn(64, 32)
    tree = {"a": weight, "b": weight, "c": weight.detach(), "other": torch.randn(8)}
    store = CheckpointStore(file_root)
    store.save(1, 0, "torch", tree)
    raw = store.load_latest(raw=True)
    start, end = buffer_address(raw), buffer_address(raw) + len(raw)
    assert len(raw) < 64 * 32 * 4 + 8 * 4 + 4096  # the tied weight is stored once
    got = serializers.load(raw)
    assert got["a"] is got["b"] is got["c"]
    for tensor in (got["a"], got["other"]):
        assert start <= tensor.data_ptr() < end  # a view of the shard buffer, not a copy
    got["a"][0, 0] = 123.0  # writes land in the shard buffer itself
    offset = got["a"].data_ptr() - start
    assert np.frombuffer(raw, dtype=np.float32, count=1, offset=offset)[0] == 123.0
    assert torch.equal(got["a"][1:], weight[1:])


def test_weights_only_refuses_arbitrary_objects(file_root: str) -> None:
    store = CheckpointStore(file_root)
    store.save(1, 0, "torch", {"w": torch.ones(2), "obj": Custom(5)})
    with pytest.raises(pickle.UnpicklingError, match="weights_only=False"):
        store.load_latest()
    got = store.load_latest(weights_only=False)
    assert got["obj"].value == 5 and torch.equal(got["w"], torch.ones(2))


def test_jax_and_numpy_pytree(store_root: str) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    tree = {
        "params": {"w": jnp.arange(12.0).reshape(3, 4), "b": jnp.ones(4, dtype=jnp.bfloat16)},
        "opt_state": (jnp.asarray(3, dtype=jnp.int32), [np.arange(5, dtype=np.int16)]),
        "np_t": np.arange(12, dtype=np.float64).reshape(3, 4).T,  # non-contiguous
        "step": np.int64(7),
        "lr": 0.01,
    }
    store = CheckpointStore(store_root)
    store.save(7, 1, "jax", tree)
    got = store.load_latest()
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(tree)
    leaves = zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(got), strict=True)
    for want, have in leaves:
        assert isinstance(have, jax.Array) == isinstance(want, jax.Array)
        assert np.asarray(have).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(np.asarray(have), np.asarray(want))
    assert isinstance(got["params"]["w"], jax.Array)
    assert isinstance(got["np_t"], np.ndarray) and got["np_t"].shape == (4, 3)
    assert isinstance(got["step"], np.int64) and got["step"] == 7


def test_torch_save_and_load_through_our_file_objects(store_root: str) -> None:
    model = small_model()
    store = CheckpointStore(store_root, compression_level=1)
    with store.save_stream(5, 0, "torch", user_meta={"via": "torch.save"}) as f:
        torch.save(model.state_dict(), f)
    assert f.manifest_key is not None
    loaded = torch.load(store.open(), weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded[name], tensor)
    assert torch.equal(torch.load(store.open(step=5))["1.bias"], model[1].bias)
    assert torch.equal(torch.load(store.open(verify=False))["1.bias"], model[1].bias)
    plain = CheckpointStore(store_root)
    with plain.save_stream(8, 0, "torch") as f:
        torch.save(model.state_dict(), f)
    lazy = plain.open(verify=False)  # a RangeFile: torch.load reads it through range requests
    assert lazy.seekable() and not isinstance(lazy, io.BytesIO)
    assert torch.equal(torch.load(lazy)["0.weight"], model[0].weight)

    writer = store.writer(1, 0)
    with writer.get_distributed_shard_stream(6, 0, "torch") as stream:
        torch.save({"x": torch.arange(3)}, stream)
    meta = stream.finalize()
    assert writer.finalize_distributed_checkpoint(6, 0, "torch", [meta]) is not None
    assert torch.equal(torch.load(store.open(step=6))["x"], torch.arange(3))


def test_bytes_that_look_like_nothing_special_stay_bytes(file_root: str) -> None:
    store = CheckpointStore(file_root)
    store.save(1, 0, "torch", np.arange(4, dtype=np.uint8).tobytes())
    assert bytes(store.load_latest()) == b"\x00\x01\x02\x03"
    store.save(2, 0, "torch", np.arange(4, dtype=np.uint8))  # an array is a tree leaf
    got = store.load_latest()
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8 and got.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("compression", [None, 1], ids=["ranged", "zstd-stream"])
def test_tensors_load_into_their_own_memory(
    store_root: str, compression: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3dlio.checkpoint import loading

    monkeypatch.setattr(loading, "SMALL", 4096)  # exercise direct reads, groups and group cuts
    monkeypatch.setattr(loading, "GROUP", 20_000)  # with small data
    rng = np.random.default_rng(3)
    sizes = [10, 5000, 0, 300, 7, 4096, 9000, 1, 2, 3, 12_000, 50, 4095, 70_000, 5]
    tree = {
        f"t{i}": torch.from_numpy(rng.standard_normal(n).astype(np.float32))
        for i, n in enumerate(sizes)
    }
    tree["arr"] = rng.integers(0, 9, (33, 7)).astype(np.int8)
    store = CheckpointStore(store_root, compression_level=compression)
    store.save(1, 0, "torch", tree)
    got = CheckpointStore(store_root, compression_level=compression).load_latest()
    for key, want in tree.items():
        have = got[key]
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(have, want)
            assert have.flags.owndata
        else:
            assert torch.equal(have, want), key
            assert have.untyped_storage().nbytes() == have.nbytes  # owns exactly its memory


def test_damaged_tree_shard_raises(store_root: str) -> None:
    from s3dlio import IntegrityError

    tree = {"small": np.arange(10, dtype=np.float32), "big": np.ones(300_000, np.float32)}
    store = CheckpointStore(store_root)
    key = store.save(1, 0, "numpy", tree)
    shard = store_root + store.find(1)[1].shards[0].key
    good = bytes(s3dlio.get(shard))
    data_start = serializers.header_size(good)
    assert data_start is not None and key
    for where in (data_start + 50, data_start + 64 + 600_000, 20):  # padding, tensor, header
        bad = bytearray(good)
        bad[where] ^= 0x10
        s3dlio.put_bytes(shard, bad)
        with pytest.raises(IntegrityError):
            CheckpointStore(store_root).load_latest()
    s3dlio.put_bytes(shard, good)
    np.testing.assert_array_equal(CheckpointStore(store_root).load_latest()["big"], tree["big"])
