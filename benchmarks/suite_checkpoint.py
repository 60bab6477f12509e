"""Checkpoints: GB/s saving and loading a ~1 GiB ``state_dict`` on local disk.

Ours is ``CheckpointStore("file://...")`` (tensors streamed into the shard, CRC32C computed on
save and verified on load, atomic commit of the manifest); the references are ``torch.save`` /
``torch.load`` on a local file (no checksum) and the original s3dlio's ``save_checkpoint`` /
``load_checkpoint``, which take bytes, so the state_dict goes through ``torch.save`` into
memory first. Writes land in the page cache (nobody calls fsync); loads read warm files.
"""

from __future__ import annotations

from collections.abc import Iterator

from .data import MiB
from .harness import Case, Context, Target, ours, peer

FILE = "checkpoint.py"


def suite(ctx: Context) -> Iterator[Case]:
    """Save, then load."""
    tensors = ctx.scale(64, 8)
    tensor_bytes = 16 * MiB
    total = tensors * tensor_bytes
    shape = {"tensors": tensors, "tensor_bytes": tensor_bytes}
    torch_needs = ("torch",)
    label = f"{tensors} x {tensor_bytes // MiB} MiB float32 tensors ({total / 2**30:.2f} GiB)"

    def where(name: str) -> str:
        return str(ctx.workdir / name)

    yield Case(
        f"save a state_dict of {label}",
        "GB/s",
        [
            ours(
                "ours CheckpointStore.save",
                FILE,
                "ours_save",
                dir=where("ours-save"),
                needs=("s3dlio.checkpoint", *torch_needs),
                **shape,
            ),
            peer(
                "torch.save",
                FILE,
                "torch_save",
                dir=where("torch-save"),
                needs=torch_needs,
                **shape,
            ),
            peer(
                "original save_checkpoint",
                FILE,
                "original_save",
                dir=where("orig-save"),
                needs=("s3dlio", *torch_needs),
                **shape,
            ),
        ],
        bytes=total,
        objects=tensors,
        targets=[Target("ours CheckpointStore.save", "torch.save", 0.9)],
    )
    yield Case(
        f"load a state_dict of {label}",
        "GB/s",
        [
            ours(
                "ours CheckpointStore.load_latest",
                FILE,
                "ours_load",
                dir=where("ours-load"),
                needs=("s3dlio.checkpoint", *torch_needs),
                **shape,
            ),
            peer(
                "torch.load",
                FILE,
                "torch_load",
                dir=where("torch-load"),
                needs=torch_needs,
                **shape,
            ),
            peer(
                "original load_checkpoint",
                FILE,
                "original_load",
                dir=where("orig-load"),
                needs=("s3dlio", *torch_needs),
                **shape,
            ),
        ],
        bytes=total,
        objects=tensors,
        targets=[Target("ours CheckpointStore.load_latest", "torch.load", 0.9)],
    )
