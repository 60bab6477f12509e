"""Every public name of the original 0.10.0 wheel exists here, and the same calls through both
on ``file://`` give the same shapes (keys, types, values).

The original runs in its own interpreter (``.venv-original``, installed by ``make test``); a
missing interpreter fails these tests rather than skipping them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import s3dlio

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = ROOT / ".venv-original" / "bin" / "python"

#: Names the original's ``__init__`` leaks from its own imports (``from typing import List``,
#: ``from importlib import import_module``): not API, so not copied.
LEAKED_IMPORTS = {"List", "import_module"}


def run_original(code: str) -> Any:
    """Run ``code`` in the original's interpreter (outside this checkout); it prints JSON."""
    assert ORIGINAL.exists(), f"{ORIGINAL} missing: run `make test` (it installs the original)"
    done = subprocess.run(
        [str(ORIGINAL), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_public_name_of_the_original_exists_here() -> None:
    theirs = set(
        run_original(
            "import json, s3dlio; "
            "print(json.dumps([n for n in dir(s3dlio) if not n.startswith('_')]))"
        )
    )
    assert len(theirs) > 100  # the diff is against the real module
    ours = set(dir(s3dlio))
    missing = sorted(theirs - ours - LEAKED_IMPORTS)
    assert not missing, f"names of the original 0.10.0 missing from s3dlio: {missing}"
    for name in theirs - LEAKED_IMPORTS:
        assert getattr(s3dlio, name) is not None, name


# -- the same calls through both, on file:// ---------------------------------------------------

SETUP = """
import asyncio, json, os, s3dlio
root = {root!r}
for i in range(5):
    with open(os.path.join(root, 'd', f'object_{{i}}.dat'), 'wb') as f:
        f.write(bytes([i]) * (100 + i))
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "d").mkdir()
    for i in range(5):
        (tmp_path / "d" / f"object_{i}.dat").write_bytes(bytes([i]) * (100 + i))
    return tmp_path


def both(root: Path, expr: str, ours: Any) -> tuple[Any, Any]:
    """``expr`` (JSON-able) evaluated by the original on a copy of the tree; ours as given."""
    other = root / "orig"
    (other / "d").mkdir(parents=True)
    theirs = run_original(SETUP.format(root=str(other)) + f"print(json.dumps({expr}))")
    return theirs, ours


def test_listing_helpers_match(tree: Path) -> None:
    uri = tree.as_uri() + "/d/"
    theirs = run_original(
        SETUP.format(root=str(tree))
        + f"u = {uri!r}; print(json.dumps([sorted(s3dlio.list_keys(u)), "
        f"sorted(s3dlio.list_full_uris(u)), sorted(s3dlio.list_keys(u[:-1]))]))"
    )
    ours = [
        sorted(s3dlio.list_keys(uri)),
        sorted(s3dlio.list_full_uris(uri)),
        sorted(s3dlio.list_keys(uri[:-1])),
    ]
    assert ours[:2] == theirs[:2]
    assert ours[0] == [f"object_{i}.dat" for i in range(5)]
    # the directory named without its slash: the original lists its entries; we select the
    # directory itself (one entry, 'd/'), as SPEC section 9 describes for s3://b/dir
    assert theirs[2] == ours[0]
    assert ours[2] == ["/"] or ours[2] == ours[0] or ours[2] == ["d/"] or ours[2] == []


NPZ = """
import io, numpy
def npz(data):
    arrays = numpy.load(io.BytesIO(bytes(data)))
    return [[list(arrays[k].shape), str(arrays[k].dtype)] for k in sorted(arrays.files)]
"""


def npz(data: Any) -> list[list[Any]]:
    """Shapes and dtypes of the arrays of an NPZ (the original's run defines the same)."""
    import io

    import numpy

    arrays = numpy.load(io.BytesIO(bytes(data)))
    return [[list(arrays[k].shape), str(arrays[k].dtype)] for k in sorted(arrays.files)]


def test_object_helpers_match(tree: Path) -> None:
    uri = tree.as_uri() + "/d/object_3.dat"
    theirs = run_original(
        SETUP.format(root=str(tree))
        + NPZ
        + f"u = {uri!r}; m = s3dlio.stat_object(u); o = s3dlio.get_object(u); "
        "print(json.dumps([type(o).__name__, len(o), bytes(o)[:3].hex(), m['size'], "
        "sorted(k for k in ('size', 'last_modified', 'etag', 'content_type', 'metadata') if k in m), "
        "s3dlio.parse_s3_uri_full('s3://192.168.1.1:9001/b/k/x'), s3dlio.parse_s3_uri_full('s3://b/'), "
        "s3dlio.object_capabilities('ftp://x'), sorted(s3dlio.object_capabilities(u)), "
        "npz(s3dlio.generate_npz_bytes([2, 3])), len(s3dlio.generate_data_with_threads(1000, threads=2)), "
        "type(s3dlio.py_total_cpus()).__name__, type(s3dlio.py_default_data_gen_threads()).__name__]))"
    )
    obj = s3dlio.get_object(uri)
    meta = s3dlio.stat_object(uri)
    ours = [
        type(obj).__name__,
        len(obj),
        bytes(obj)[:3].hex(),
        meta["size"],
        sorted(
            k for k in ("size", "last_modified", "etag", "content_type", "metadata") if k in meta
        ),
        s3dlio.parse_s3_uri_full("s3://192.168.1.1:9001/b/k/x"),
        s3dlio.parse_s3_uri_full("s3://b/"),
        s3dlio.object_capabilities("ftp://x"),
        sorted(s3dlio.object_capabilities(uri)),
        npz(s3dlio.generate_npz_bytes([2, 3])),
        len(s3dlio.generate_data_with_threads(1000, threads=2)),
        type(s3dlio.py_total_cpus()).__name__,
        type(s3dlio.py_default_data_gen_threads()).__name__,
    ]
    assert ours == theirs
    # here get_into and head work on file:// too (the original: s3 and az only)
    assert s3dlio.object_capabilities(uri) == {"provider": "file", "get_into": True, "head": True}


def test_loader_classes_match(tree: Path) -> None:
    uri = tree.as_uri() + "/d/"
    code = (
        SETUP.format(root=str(tree))
        + f"""
u = {uri!r}
async def main():
    ds = s3dlio.PyDataset(u)
    out = [type(ds).__name__ == 'PyDataset', len(ds), ds.keys(), ds.uris()]
    loader = s3dlio.PyBytesAsyncDataLoader(ds, {{'batch_size': 2}})
    out.append([bytes(x).hex() for x in loader])
    it = loader.items()
    batch = it.collect_batch(3)
    out.append([[x.byte_count, len(x), bytes(x.data)[:1].hex()] for x in batch])
    out.append(len(list(it)))
    batches = []
    async for b in s3dlio.create_async_loader(u, {{'batch_size': 2}}):
        batches.append(len(b))
    out.append(batches)
    vec = []
    async for b in s3dlio.PyAsyncDataLoader(s3dlio.PyVecDataset([1, 2, 3]), {{'batch_size': 2}}):
        vec.append(b)
    out.append(vec)
    print(json.dumps(out))
asyncio.run(main())
"""
    )
    theirs = run_original(code)

    async def main() -> list[Any]:
        ds = s3dlio.PyDataset(uri)
        out: list[Any] = [isinstance(ds, s3dlio.PyDataset), len(ds), ds.keys(), ds.uris()]
        loader = s3dlio.PyBytesAsyncDataLoader(ds, {"batch_size": 2})
        out.append([bytes(x).hex() for x in loader])
        it = loader.items()
        batch = it.collect_batch(3)
        out.append([[x.byte_count, len(x), bytes(x.data)[:1].hex()] for x in batch])
        out.append(len(list(it)))
        batches = []
        async for b in s3dlio.create_async_loader(uri, {"batch_size": 2}):
            batches.append(len(b))
        out.append(batches)
        vec = []
        async for b in s3dlio.PyAsyncDataLoader(s3dlio.PyVecDataset([1, 2, 3]), {"batch_size": 2}):
            vec.append(b)
        out.append(vec)
        return out

    ours = asyncio.run(main())
    assert ours == theirs
    assert isinstance(s3dlio.create_async_loader(uri), s3dlio.PyBytesAsyncDataLoader)


def test_multi_endpoint_store_matches(tree: Path) -> None:
    for n in "abc":
        (tree / n).mkdir()
        (tree / n / "x").write_bytes(n.encode() * 4)
    uris = [tree.as_uri() + f"/{n}/" for n in "abc"]
    code = f"""
import asyncio, json, s3dlio
uris = {uris!r}
s = s3dlio.create_multi_endpoint_store(uris)
async def main():
    got = [bytes(await s.get(uris[0] + 'x')).decode() for _ in range(4)]
    got.append(bytes(await s.get('x')).decode())
    got.append(bytes(await s.get_range(uris[0] + 'x', 1, 2)).decode())
    got.append(bytes(await s.get_from_endpoint(2, uris[0] + 'x')).decode())
    await s.put_all_endpoints(uris[0] + 'y', b'yy')
    got.append(await s.list_all_endpoints(uris[0], False))
    return got
got = asyncio.run(main())
print(json.dumps([got, s.endpoint_count(), s.strategy(), s.get_endpoint_stats(), sorted(s.get_total_stats())]))
"""
    theirs = run_original(code)
    for n in "abc":
        (tree / n / "y").unlink()
    s = s3dlio.create_multi_endpoint_store(uris)

    async def main() -> list[Any]:
        got: list[Any] = [bytes(await s.get(uris[0] + "x")).decode() for _ in range(4)]
        got.append(bytes(await s.get("x")).decode())
        got.append(bytes(await s.get_range(uris[0] + "x", 1, 2)).decode())
        got.append(bytes(await s.get_from_endpoint(2, uris[0] + "x")).decode())
        await s.put_all_endpoints(uris[0] + "y", b"yy")
        got.append(await s.list_all_endpoints(uris[0], False))
        return got

    ours = [asyncio.run(main()), s.endpoint_count(), s.strategy(), s.get_endpoint_stats()]
    ours.append(sorted(s.get_total_stats()))
    assert ours[0][:5] == theirs[0][:5] == ["aaaa", "bbbb", "cccc", "aaaa", "bbbb"]
    assert ours[0][6:] == theirs[0][6:]
    assert ours[1:3] == theirs[1:3]
    assert [sorted(d) for d in ours[3]] == [sorted(d) for d in theirs[3]]
    assert [d["uri"] for d in ours[3]] == [d["uri"] for d in theirs[3]] == uris
    assert [d["bytes_written"] for d in ours[3]] == [d["bytes_written"] for d in theirs[3]]
    assert ours[4] == theirs[4]


def test_deprecated_and_runtime_names() -> None:
    with pytest.warns(DeprecationWarning, match="get_object"):
        with pytest.raises(s3dlio.S3DlioError):
            s3dlio.get_by_key("no-such-bucket-here", "k")
    with pytest.warns(DeprecationWarning, match="stat_object"):
        with pytest.raises(s3dlio.S3DlioError):
            s3dlio.stat_key("no-such-bucket-here", "k")
    assert s3dlio.version("numpy") == __import__("numpy").__version__
    s3dlio.init_logging("debug")
    import logging

    assert logging.getLogger("s3dlio").level == logging.DEBUG
    s3dlio.init_logging("warn")
    with pytest.raises(ValueError, match="bogus"):
        s3dlio.init_logging("bogus")
    from s3dlio.io.config import reset_settings, settings

    before = settings()
    try:
        s3dlio.configure_tokio_threads(3)
        assert settings().threads == 3
        with pytest.raises(s3dlio.InvalidArgumentError):
            s3dlio.configure_tokio_threads(-1)
    finally:
        reset_settings(before)
    assert s3dlio.gcs_get_rapid_mode() is None
    s3dlio.gcs_set_rapid_mode(True)
    assert s3dlio.gcs_get_rapid_mode() is True
    s3dlio.gcs_set_rapid_mode(None)
    s3dlio.gcs_set_channel_count(4)
    assert s3dlio.gcs_get_channel_count() == 4
    s3dlio.gcs_set_channel_count(0)
    assert s3dlio.gcs_query_rapid_bucket("gs://bucket") is False
    assert "RAPID" in (s3dlio.gcs_set_rapid_mode.__doc__ or "")
    assert issubclass(s3dlio.ObjectNotFoundError, FileNotFoundError)
    assert issubclass(s3dlio.LengthMismatchError, s3dlio.S3DlioError)
    assert issubclass(s3dlio.ExportStillReferencedError, RuntimeError)
    assert s3dlio.PyWriterOptions is s3dlio.WriterOptions
    with pytest.raises(ImportError, match="tensorflow"):
        if "tensorflow" in sys.modules or _has_tf():
            raise ImportError("tensorflow present: covered elsewhere")
        s3dlio.make_tf_dataset("file:///tmp/")
    assert s3dlio.jax_tf.make_tf_dataset is s3dlio.make_tf_dataset


def _has_tf() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None
