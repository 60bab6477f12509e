"""``tf.train.Example`` decoding checked against protobuf's own parser (``tfrecord.example_pb2``)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tfrecord import example_pb2

from s3dlio.formats.example import ExampleDecodeError, decode_example, encode_example

INT64 = st.one_of(st.integers(0, 20_000), st.integers(-(2**63), 2**63 - 1))
FLOAT32 = st.floats(width=32, allow_nan=False)
FEATURE = st.one_of(
    st.tuples(st.just("bytes"), st.lists(st.binary(max_size=300), max_size=4)),
    st.tuples(st.just("int"), st.lists(INT64, max_size=40)),
    st.tuples(st.just("float"), st.lists(FLOAT32, max_size=40)),
)
FEATURES = st.dictionaries(st.text(min_size=1, max_size=20), FEATURE, max_size=6)


def _proto(features: dict[str, tuple[str, list]]) -> bytes:
    example = example_pb2.Example()
    for name, (kind, values) in features.items():
        feature = example.features.feature[name]
        if kind == "bytes":
            feature.bytes_list.value.extend(values)
        elif kind == "int":
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(values)
    return example.SerializeToString()


def _check(decoded: dict[str, np.ndarray], features: dict[str, tuple[str, list]]) -> None:
    assert set(decoded) == set(features)
    for name, (kind, values) in features.items():
        got = decoded[name]
        if kind == "bytes":
            assert got.dtype == object and list(got) == values
        elif kind == "int":
            assert got.dtype == np.int64 and got.tolist() == values
        else:
            assert got.dtype == np.float32
            assert np.array_equal(got, np.array(values, np.float32))


@settings(max_examples=80, deadline=None)
@given(FEATURES)
def test_decode_matches_protobuf(features: dict[str, tuple[str, list]]) -> None:
    payload = _proto(features)
    _check(decode_example(payload), features)
    _check(decode_example(memoryview(payload)), features)
    _check(decode_example(bytearray(payload)), features)


@settings(max_examples=50, deadline=None)
@given(FEATURES)
def test_encode_is_read_by_protobuf(features: dict[str, tuple[str, list]]) -> None:
    values = {}
    for name, (kind, vals) in features.items():
        if kind == "float":
            vals = np.array(vals, np.float32)
        elif kind == "int":
            vals = np.array(vals, np.int64)
        values[name] = vals
    payload = encode_example(values)
    parsed = example_pb2.Example()
    parsed.ParseFromString(payload)
    for name, (kind, vals) in features.items():
        feature = parsed.features.feature[name]
        if kind == "bytes" and vals:
            assert list(feature.bytes_list.value) == vals
        elif kind == "int" and vals:
            assert list(feature.int64_list.value) == vals
        elif kind == "float" and vals:
            assert np.array_equal(np.array(feature.float_list.value, np.float32), vals)
    assert set(decode_example(payload)) == set(features)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


def _example(name: str, feature: bytes) -> bytes:
    entry = _len_field(0x0A, name.encode()) + _len_field(0x12, feature)
    return _len_field(0x0A, _len_field(0x0A, entry))


def test_unpacked_encodings() -> None:
    ints = [5, -1, 300, 2**63 - 1]
    int_list = b"".join(b"\x08" + _varint(v) for v in ints)
    assert decode_example(_example("i", _len_field(0x1A, int_list)))["i"].tolist() == ints
    floats = [1.5, -2.0, 3.25]
    float_list = b"".join(b"\x0d" + struct.pack("<f", v) for v in floats)
    got = decode_example(_example("f", _len_field(0x12, float_list)))["f"]
    assert got.dtype == np.float32 and got.tolist() == floats
    # packed and unpacked pieces mixed in one list keep their order
    mixed = b"\x08\x07" + _len_field(0x0A, _varint(8) + _varint(9)) + b"\x08\x0a"
    assert decode_example(_example("m", _len_field(0x1A, mixed)))["m"].tolist() == [7, 8, 9, 10]


def test_long_packed_int_list_is_vectorised_correctly() -> None:
    values = list(range(-500, 500)) + [2**62, -(2**63), 127, 128, 16383, 16384]
    decoded = decode_example(encode_example({"v": np.array(values, np.int64)}))
    assert decoded["v"].tolist() == values


def test_arrays_are_writable_copies() -> None:
    payload = bytearray(encode_example({"f": np.arange(4, dtype=np.float32), "i": [1, 2]}))
    decoded = decode_example(payload)
    payload[:] = bytes(len(payload))
    assert decoded["f"].tolist() == [0, 1, 2, 3] and decoded["f"].flags.writeable
    assert decoded["i"].tolist() == [1, 2] and decoded["i"].flags.writeable


def test_unknown_fields_are_skipped() -> None:
    extra = b"\x10\x05" + _len_field(0x22, b"ignored")  # field 2 varint, field 4 bytes
    feature = _len_field(0x1A, _len_field(0x0A, _varint(42))) + b"\x28\x01"
    payload = _example("x", feature) + extra
    assert decode_example(payload)["x"].tolist() == [42]


@pytest.mark.parametrize(
    "payload",
    [b"\x0a\x05\x0a\x03", b"\x0a", b"\x0a\x80", b"\x0b\x00", _example("x", b"\x1a\x05\x0a")],
    ids=["short-features", "no-length", "bad-varint", "group-wire-type", "short-list"],
)
def test_malformed_payloads_raise(payload: bytes) -> None:
    with pytest.raises(ExampleDecodeError):
        decode_example(payload)
