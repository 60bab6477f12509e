"""Raw objects as fixed-size records."""

from __future__ import annotations

import numpy as np
import pytest

import s3dlio
from s3dlio.errors import IntegrityError
from s3dlio.formats.raw import RawRecords, read_raw


def test_fixed_size_records(store_root: str) -> None:
    header = b"H" * 64
    records = np.arange(1000 * 32, dtype=np.int32).reshape(1000, 32)  # 128-byte records
    uri = store_root + "recs.bin"
    s3dlio.put_bytes(uri, header + records.tobytes() + b"tail")
    recs = RawRecords(uri, 128, header=64, dtype=np.int32)
    assert len(recs) == 1000
    before = recs.stats.requests
    assert np.array_equal(recs[10], records[10])
    assert recs.stats.requests == before + 1 and recs.stats.bytes_fetched == 128
    assert np.array_equal(recs[-1], records[-1])
    assert np.array_equal(recs.read_range(100, 132).reshape(32, 32), records[100:132])
    assert np.array_equal(np.stack(list(recs)), records)
    with pytest.raises(IndexError):
        recs.read_record(1000)
    with pytest.raises(IntegrityError):
        RawRecords(uri, 128, header=64, strict=True)
    plain = RawRecords(uri, 1000)
    assert bytes(plain[0]) == (header + records.tobytes())[:1000]
    assert bytes(read_raw(uri))[:64] == header
