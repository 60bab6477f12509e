"""How an s3dlio error that stops DLIO is reported in one line (no DLIO needed).

PyTorch's DataLoader brings an error raised in a worker back as the same type with the
worker's whole traceback as its message; the report keeps the original message and names the
worker. The DataLoader here is real (one worker each, fork and spawn).
"""

from __future__ import annotations

import pytest

from s3dlio.errors import IntegrityError, NotFoundError, S3DlioError
from s3dlio.integrations.dlio.install import describe, s3dlio_error

torch_data = pytest.importorskip("torch.utils.data")


class _Corrupt(torch_data.Dataset):  # type: ignore[misc, name-defined]
    """A dataset whose every sample is a corrupt file (module level: spawn pickles it)."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        raise IntegrityError(
            f"not a valid NPZ (zip) archive: item {index}",
            uri=f"s3://bucket/train/img_{index}_of_2.npz",
            op="GET",
        )


def test_a_plain_error_is_its_type_op_uri_and_message() -> None:
    error = NotFoundError("no such key", uri="s3://b/k", op="GET")
    assert describe(error) == "s3dlio.errors.NotFoundError: GET s3://b/k: no such key"


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_an_error_from_a_dataloader_worker_keeps_its_message_and_names_the_worker(
    context: str,
) -> None:
    loader = torch_data.DataLoader(_Corrupt(), num_workers=1, multiprocessing_context=context)
    with pytest.raises(IntegrityError) as caught:
        next(iter(loader))
    assert "Original Traceback" in str(caught.value)  # what PyTorch makes of it
    assert s3dlio_error(RuntimeError("not ours")) is None
    wrapped = RuntimeError("raised in DLIO")  # DLIO's frames may wrap it: the chain is followed
    wrapped.__cause__ = caught.value
    found = s3dlio_error(wrapped)
    assert isinstance(found, S3DlioError)
    assert describe(found) == (
        "s3dlio.errors.IntegrityError: GET s3://bucket/train/img_0_of_2.npz: "
        "not a valid NPZ (zip) archive: item 0 (in DataLoader worker process 0)"
    )
