"""TFRecord reading: ours (``s3dlio.formats.tfrecord``), the ``tfrecord`` package, and the
machine's raw CRC32C over the same payloads.

Params: ``path`` (a local TFRecord file). Every round reads every record; ``bytes`` counts
payload bytes, ``objects`` records.
"""

from __future__ import annotations

import struct

from _common import check, result


def ours_reader(params: dict) -> object:
    """``TFRecordReader("file://...", verify=..., mmap=...)`` iterating payloads."""
    from s3dlio.formats.tfrecord import TFRecordReader

    uri, verify, mapped = "file://" + params["path"], params["verify"], params.get("mmap", False)

    def run() -> dict:
        size = count = 0
        for payload in TFRecordReader(uri, verify=verify, mmap=mapped):
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

    def run() -> dict:
        size = count = 0
        for payload in tfrecord_iterator(params["path"]):
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
