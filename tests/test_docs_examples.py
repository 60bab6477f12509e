"""The documentation's Python examples run, so the README and docs cannot drift from the code.

Every fenced ```` ```python ```` block of the pages in :data:`PAGES` runs, in page order, in one
fresh interpreter per page (later blocks use names from earlier ones, as a reader following
along does), against the session's servers: moto (S3), Azurite (Azure) and fake-gcs-server (GCS),
and ``file://`` under ``tmp_path``. Before it runs, a block's placeholder locations
(``s3://bucket/...``, ``az://acct/c/...``, ``gs://bucket/...``, ``http://127.0.0.1:9000``,
``/data/...``) are rewritten by the small, explicit mapping of :func:`substitutions`; the page's
prelude in :data:`PRELUDES` first creates the objects the page reads and defines the names a
reader would already have (``model``, ``step``, ``uri``...). Nothing else in a block changes.
A ``DeprecationWarning`` or ``FutureWarning`` raised at a block's own line fails it.

A block that cannot run here (a Ray or Dask cluster, a GPU...) is marked in the markdown, on the
line before its fence, with ``<!-- example: not run (reason) -->``: it is reported as a skip with
that reason.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.moto import MotoS3

ROOT = Path(__file__).resolve().parent.parent

#: The pages whose examples run, relative to the repository root.
PAGES = [
    "README.md",
    "docs/configuration.md",
    "docs/storage.md",
    "docs/formats.md",
    "docs/parquet.md",
    "docs/datasets.md",
    "docs/checkpoint.md",
    "docs/ecosystem.md",
]

#: The marker, on the line before a fence, of a block that does not run here.
NOT_RUN = re.compile(r"^<!--\s*example:\s*not run\s*\((?P<reason>.+)\)\s*-->$")

#: A deprecated call in a doc block fails it (warnings attributed to the block's own lines, as
#: s3dlio's deprecations are; those inside third-party libraries are theirs to fix).
WARNINGS = ["-W", "error::DeprecationWarning:__main__", "-W", "error::FutureWarning:__main__"]

#: Seconds one page's interpreter may take (imports of torch and jax included).
PAGE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page.

    Attributes:
        page: The page, relative to the repository root.
        line: The page's line number of the block's first code line.
        code: The block's code, verbatim.
        not_run: The reason given by a ``not run`` marker, or ``None``.
    """

    page: str
    line: int
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        """``page:line``, as in test ids and tracebacks."""
        return f"{self.page}:{self.line}"


def blocks_of(page: str, text: str) -> list[Block]:
    """The ```` ```python ```` blocks of ``text`` (the contents of ``page``), in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            i += 1
            continue
        before = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        marker = NOT_RUN.match(before)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{page}:{i + 1}: a ```python fence that is never closed")
        code = textwrap.dedent("\n".join(lines[i + 1 : end]) + "\n")  # fences in list items
        blocks.append(Block(page, i + 2, code, marker.group("reason") if marker else None))
        i = end + 1
    return blocks


def page_blocks(page: str) -> list[Block]:
    """The blocks of ``page`` (a path relative to the repository root)."""
    return blocks_of(page, (ROOT / page).read_text())


ALL_BLOCKS = [block for page in PAGES for block in page_blocks(page)]


def substitutions(
    s3_root: str, az_root: str, gs_root: str, endpoint: str, tmp: Path
) -> list[tuple[str, str]]:
    """The placeholder locations of the docs and what they become here, as (regex, replacement)
    pairs applied in order.

    ``s3_root``, ``az_root`` and ``gs_root`` are fresh prefixes on the session's servers (each
    ending in ``/``); ``endpoint`` is moto's ``host:port``; ``tmp`` a fresh local directory.
    """
    s3_bucket, s3_prefix = s3_root[len("s3://") :].split("/", 1)
    return [
        # Buckets of the examples: a directory each under the session bucket's fresh prefix.
        (r"\b(s3)://(bucket|b|scratch|cache|train-data|demo)/", rf"{s3_root}\2/"),
        (r"\bs3://new-bucket\b", f"s3://docs-{uuid.uuid4().hex[:12]}"),
        (r"\b(gs|gcs)://(bucket|b|other|demo)/", rf"{gs_root}\2/"),
        (r"\baz://(acct|account)/(c|container|data)/", rf"{az_root}\2/"),
        # Explicit-endpoint URIs (s3://host:port/bucket/key) and endpoint URLs: moto.
        (r"\bs3://10\.0\.0\.\d:9000/(\w+)/", rf"s3://{endpoint}/{s3_bucket}/{s3_prefix}\1/"),
        (r"https?://(127\.0\.0\.1|10\.0\.0\.\d|minio\.lab):9000", f"http://{endpoint}"),
        # Local paths in string literals: under tmp.
        (
            r"(?<=[\"'])(file://)?/(tmp/tour|data|scratch|mnt/scratch|logs|nvme|etc)(?=/)",
            rf"\1{tmp}/\2",
        ),
    ]


def rewrite(code: str, pairs: list[tuple[str, str]]) -> str:
    """``code`` with every substitution of ``pairs`` applied."""
    for pattern, replacement in pairs:
        code = re.sub(pattern, replacement, code)
    return code


#: What each page's reader already has before its first block: the objects it reads and the
#: names it uses without defining them. Runs in the page's namespace, after the rewriting.
COMMON = """
import io as _io
import tarfile as _tarfile

import numpy as _np

import s3dlio as _s3dlio


def _parquet(uri, groups=4, rows=8, columns=("x", "y")):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = groups * rows
    table = pa.table({c: _np.arange(n, dtype=_np.int64) + i for i, c in enumerate(columns)})
    sink = _io.BytesIO()
    pq.write_table(table, sink, row_group_size=rows)
    _s3dlio.put_bytes(uri, sink.getvalue())


def _tfrecords(uri, count=50, index=False):
    from s3dlio.formats.tfrecord import TFRecordWriter

    with TFRecordWriter(uri, index=index) as w:
        for i in range(count):
            w.write_example({"image": bytes(16), "label": i % 10, "bbox": [0.1, 0.2, 0.5, 0.9]})


def _h5(uri, name, shape):
    import h5py

    sink = _io.BytesIO()
    data = _np.arange(int(_np.prod(shape)), dtype=_np.float32).reshape(shape)
    with h5py.File(sink, "w") as f:
        f.create_dataset(name, data=data, chunks=True)
    _s3dlio.put_bytes(uri, sink.getvalue())


def _npz(uri):
    sink = _io.BytesIO()
    _np.savez(sink, x=_np.arange(4.0), y=_np.ones((2, 2)))
    _s3dlio.put_bytes(uri, sink.getvalue())


def _webdataset(prefix, shards=2, samples=8):
    for s in range(shards):
        sink = _io.BytesIO()
        with _tarfile.open(fileobj=sink, mode="w") as tar:
            for i in range(samples):
                for ext, data in (("jpg", bytes(32)), ("cls", str(i).encode())):
                    info = _tarfile.TarInfo(f"{s:04d}{i:04d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, _io.BytesIO(data))
        _s3dlio.put_bytes(f"{prefix}shard-{s:04d}.tar", sink.getvalue())


def _objects(prefix, count=8, size=64):
    for i in range(count):
        _s3dlio.put_bytes(f"{prefix}obj-{i:03d}.bin", bytes([i]) * size)


def _torch_model():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)
"""

#: What each page's reader already has before its first block: the objects it reads and the
#: names it uses without defining them. Runs after :data:`COMMON`, in the page's namespace,
#: rewritten like the blocks.
PRELUDES: dict[str, str] = {
    "README.md": """
_tfrecords("s3://bucket/train.tfrecord")
_tfrecords("file:///data/train.tfrecord")
_h5("gs://bucket/data.h5", "images", (32, 8, 8))
_npz("az://acct/c/sample.npz")
_parquet("s3://bucket/train/part-0.parquet")
_parquet("gs://bucket/f.parquet")
_objects("az://acct/data/train/")
_tfrecords("gs://bucket/tfrecords/a.tfrecord", index=True)
_tfrecords("gs://bucket/tfrecords/b.tfrecord", index=True)
_webdataset("s3://bucket/wds/")
_parquet("s3://bucket/t.parquet")
_parquet("s3://bucket/dir/a.parquet")
_parquet("s3://bucket/dir/b.parquet")
model, _ = _torch_model()
step, epoch = 100, 1
""",
    "docs/configuration.md": """
import shutil as _shutil

import certifi as _certifi

_shutil.copy(_certifi.where(), "/etc/lab-ca.pem")
_s3dlio.put_bytes("s3://train-data/shard-0001.tar", bytes(4096))
""",
    "docs/storage.md": """
import pathlib as _pathlib

uri, data = "s3://b/data/file.txt", b"hello"
other_uri, other_data = "s3://b/data/file.txt.bak", b"hello again"
offset = 2
buffer = bytearray(64)
chunks = [bytes(1000)] * 4
for _key in ("dl/x.bin", "a.npz", "sub/b.npz", "train/x.tfrecord"):
    _s3dlio.put_bytes("s3://b/data/" + _key, b"x")
_objects("s3://b/huge/")
_s3dlio.put_bytes("s3://b/logs/a.tmp", b"x")
_s3dlio.put_bytes("s3://b/logs/a.log", b"x")
_s3dlio.put_bytes("s3://b/model.pt", bytes(1000))
_objects("gs://b/shards/")
_s3dlio.put_bytes("s3://10.0.0.1:9000/data/train/x.bin", bytes(100))
uris = ["s3://10.0.0.1:9000/data/train/x.bin"]
for _path in ("/data/a.log", "/data/images/x/1.png", "/logs/b.log"):
    _pathlib.Path(_path).parent.mkdir(parents=True, exist_ok=True)
    _pathlib.Path(_path).write_bytes(b"x")
""",
    "docs/formats.md": """
import torch

_tfrecords("s3://bucket/train-00.tfrecord", count=2000, index=True)
_tfrecords("file:///data/train-00.tfrecord")
payload = b"any bytes"
jpeg_bytes = bytes(64)
_h5("s3://bucket/data.h5", "grid", (200, 300))
array = _np.ones((10, 10), dtype=_np.float32)
_npz("gs://bucket/sample.npz")
_s3dlio.put_bytes("s3://bucket/blob.bin", bytes(1000))
_s3dlio.put_bytes("s3://bucket/samples.bin", bytes(64 + 140 * 4096))
_sink = _io.BytesIO()
torch.save(_torch_model()[0].state_dict(), _sink)
_s3dlio.put_bytes("s3://bucket/model.pt", _sink.getvalue())
""",
    "docs/parquet.md": """
import jax
import jax.numpy as jnp

_parquet("s3://bucket/train/part-0.parquet", columns=("image", "label", "x"))
_parquet("s3://bucket/train/part-1.parquet", columns=("image", "label", "x"))
_parquet("gs://bucket/train/a.parquet")
_parquet("gs://bucket/train/b.parquet")
_parquet("az://acct/data/x.parquet")
uri = "s3://bucket/train/part-0.parquet"
prefix = "s3://bucket/train/"
""",
    "docs/datasets.md": """
from s3dlio.torch import ResumableDataLoader as _Loader, S3IterableDataset as _Dataset

_webdataset("s3://bucket/train/", shards=4)
_objects("gs://bucket/train/", count=128)
_ds = _Dataset.from_prefix("s3://bucket/train/", shuffle=True, seed=7)
checkpoint = {"data": _Loader(_ds, batch_size=32).state_dict()}
start_epoch, epochs = 0, 2
""",
    "docs/checkpoint.md": """
import torch

model, opt = _torch_model()
step, epoch, loss = 100, 1, torch.tensor(0.12)
state_dict = {"model": model.state_dict()}
_objects("s3://bucket/images/")


def load_image(reader):
    return reader.read()
""",
    "docs/ecosystem.md": """
_parquet("s3://bucket/prefix/a.parquet", columns=("a", "b"))
_s3dlio.put_bytes("s3://bucket/prefix/sub/c.bin", b"x")
_s3dlio.put_bytes("s3://b/x", bytes(300))
_s3dlio.put_bytes("s3://bucket/key", b"x")
_parquet("s3://bucket/t.parquet", columns=("a", "b"))
_parquet("s3://bucket/dir/a.parquet", columns=("a", "b"))
_parquet("s3://bucket/dir/b.parquet", columns=("a", "b"))
""",
}

#: Set-up a reader does between two blocks, before the block whose first line is the key's
#: second item (a key that matches no block fails the page's test).
BEFORE: dict[tuple[str, str], str] = {
    # The distributed section: a one-rank gloo group stands for torchrun's.
    ("docs/checkpoint.md", "writer = store.writer(dist.get_world_size(), dist.get_rank())"): """
import torch.distributed as dist

dist.init_process_group("gloo", init_method="file:///data/pg", rank=0, world_size=1)
""",
}

#: Runs the blocks of one page, in one namespace, from a JSON spec; blocks may ``await``.
DRIVER = r"""
import ast, asyncio, inspect, json, sys, time
spec = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for block in spec["blocks"]:
    # Pad so that a traceback names the page and the line of the doc.
    source = "\n" * (block["line"] - 1) + block["code"]
    code = compile(source, block["file"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    start = time.monotonic()
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)
    print(f"ran {block['name']} in {time.monotonic() - start:.2f} s", flush=True)
"""


def run_page(spec: dict, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run ``spec``'s blocks in a fresh interpreter (its own session, killed on timeout)."""
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "AWS_CONFIG_FILE": str(tmp / "aws-config"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, *WARNINGS, "-c", DRIVER, str(spec_path)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        err += f"\n[timed out after {PAGE_TIMEOUT} s]"
    finally:
        try:  # the interpreter, if still running, and anything it left in its session
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(
    page: str, s3_root: str, az_root: str, gs_root: str, moto_s3: MotoS3, tmp_path: Path
) -> None:
    """Every block of ``page`` not marked ``not run`` runs, in order, without an exception."""
    blocks = [b for b in page_blocks(page) if b.not_run is None]
    assert blocks, f"{page} has no runnable ```python block"
    pairs = substitutions(s3_root, az_root, gs_root, moto_s3.endpoint, tmp_path)
    (tmp_path / "aws-config").write_text(
        "[profile prod]\nregion = us-east-1\naws_access_key_id = testing\n"
        "aws_secret_access_key = testing\n"
    )
    for sub in ("tour", "data", "scratch", "mnt/scratch", "logs", "nvme", "etc"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    prelude = {"name": f"prelude of {page}", "file": f"<prelude of {page}>", "line": 1}
    steps = [{**prelude, "code": rewrite(COMMON + PRELUDES.get(page, ""), pairs)}]
    befores = {first: code for (where, first), code in BEFORE.items() if where == page}
    for b in blocks:
        first = b.code.splitlines()[0]
        if first in befores:
            name = f"set-up before {b.name}"
            code = rewrite(befores.pop(first), pairs)
            steps.append({"name": name, "file": f"<{name}>", "line": 1, "code": code})
        code = rewrite(b.code, pairs)
        steps.append({"name": b.name, "file": str(ROOT / b.page), "line": b.line, "code": code})
    assert not befores, f"BEFORE names blocks {page} does not have: {sorted(befores)}"
    spec = {"blocks": steps}
    result = run_page(spec, tmp_path)
    assert result.returncode == 0, (
        f"an example of {page} failed:\n{result.stdout}\n{result.stderr[-6000:]}"
    )
    print(result.stdout)  # each block's time, shown with -s or -rP
    ran = [
        line[4:].rsplit(" in ", 1)[0]
        for line in result.stdout.splitlines()
        if line.startswith("ran ")
    ]
    assert ran == [step["name"] for step in steps]


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.not_run], ids=lambda b: b.name)
def test_marked_examples_are_skipped(block: Block) -> None:
    """A block marked ``not run`` is listed as a skip, with the marker's reason."""
    pytest.skip(f"{block.name} not run: {block.not_run}")


def test_blocks_of_reads_fences_and_markers() -> None:
    """The extractor finds each block's first line, its code and its marker."""
    text = (
        "x\n```python\na = 1\n```\n\n<!-- example: not run (needs a GPU) -->\n```python\nb\n```\n"
    )
    assert blocks_of("p.md", text) == [
        Block("p.md", 3, "a = 1\n", None),
        Block("p.md", 8, "b\n", "needs a GPU"),
    ]


def test_every_page_with_python_examples_is_listed() -> None:
    """A page that gains a ```` ```python ```` block joins :data:`PAGES`, so its examples run."""
    pages = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]
    with_blocks = {page for page in pages if page_blocks(page)}
    assert with_blocks <= set(PAGES), sorted(with_blocks - set(PAGES))
