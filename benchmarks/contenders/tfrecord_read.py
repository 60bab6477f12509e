"""TFRecord reading: ours (``s3dlio.formats.tfrecord``), the ``tfrecord`` package, and the
machine's raw CRC32C over the same payloads.

Params: ``path`` (a local TFRecord file); ``consume`` (optional): the loop reads every byte of
each payload once, as a consumer decoding it would (:func:`_consumer`). Every round reads every
record; ``bytes`` counts payload bytes, ``objects`` records.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from _common import check, result


def _consumer(params: dict) -> Callable[[Any], object] | None:
    """What the loop does with each payload: nothing, or with ``consume``, read every byte once
    (NumPy's ``max`` over it, ~50 GB/s from cache: the cheapest full read NumPy offers)."""
    if not params.get("consume"):
        return None
    import numpy as np

    frombuffer, uint8 = np.frombuffer, np.uint8
    return lambda payload: frombuffer(payload, uint8).max()


def ours_reader(params: dict) -> object:
    """``TFRecordReader("file://...", verify=..., mmap=...)`` iterating payloads."""
    from s3dlio.formats.tfrecord import TFRecordReader

    uri, verify, mapped = "file://" + params["path"], params["verify"], params.get("mmap", False)
    consume = _consumer(params)

    def run() -> dict:
        size = count = 0
        for payload in TFRecordReader(uri, verify=verify, mmap=mapped):
            if consume is not None:
                consume(payload)
            size += len(payload)
            count += 1
        check(count, params["case_objects"], "records")
        return result(size, count)

    return run


def ours_examples(params: dict) -> object:
    """``decode_example`` of every record (to NumPy arrays), CRC-verified reading."""
    from s3dlio.formats.tfrecord import TFRecordReader, decode_example

    uri = "file://" + params["path"]

    def run() -> dict:
        size = count = 0
        for payload in TFRecordReader(uri, verify=True):
            features = decode_example(payload)
            size += len(payload)
            count += len(features) > 0
        check(count, params["case_objects"], "examples")
        return result(size, count)

    return run


def package_iterator(params: dict) -> object:
    """The ``tfrecord`` package's ``tfrecord_iterator`` (never checks CRCs)."""
    from tfrecord.reader import tfrecord_iterator

    consume = _consumer(params)

    def run() -> dict:
        size = count = 0
        for payload in tfrecord_iterator(params["path"]):
            if consume is not None:
                consume(payload)
            size += len(payload)
            count += 1
        check(count, params["case_objects"], "records")
        return result(size, count)

    return run


def package_loader(params: dict) -> object:
    """The ``tfrecord`` package's parsing loader (``tfrecord_loader``: protobuf -> NumPy)."""
    from tfrecord.reader import tfrecord_loader

    def run() -> dict:
        count = 0
        for features in tfrecord_loader(params["path"], None):
            count += len(features) > 0
        check(count, params["case_objects"], "examples")
        return result(params["case_bytes"], count)

    return run


def raw_crc32c(params: dict) -> object:
    """``crc32c.crc32c`` of each record's payload, from memory: the machine's CRC speed."""
    import crc32c

    with open(params["path"], "rb") as f:
        data = memoryview(f.read())
    spans = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        spans.append((pos + 12, pos + 12 + length))
        pos += 16 + length
    views = [data[a:b] for a, b in spans]

    def run() -> dict:
        size = 0
        for view in views:
            crc32c.crc32c(view)
            size += len(view)
        return result(size, len(views))

    return run
