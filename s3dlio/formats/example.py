"""``tf.train.Example`` to NumPy and back, without TensorFlow or generated protobuf code.

An ``Example`` is a small protobuf message::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                            Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

:func:`decode_example` walks the wire format directly: ``float_list`` becomes a ``float32``
array, ``int64_list`` an ``int64`` array and ``bytes_list`` an object array of ``bytes``. Both
the packed encoding (what TensorFlow writes) and the unpacked one (legal protobuf, written by
some tools) are accepted. Unknown fields are skipped, as protobuf parsers do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["ExampleDecodeError", "decode_example", "encode_example"]

_F32 = struct.Struct("<f")
_EMPTY_BYTES = np.empty(0, object)
_EMPTY_F32 = np.empty(0, np.float32)
_EMPTY_I64 = np.empty(0, np.int64)
_ONE_I64 = np.zeros(1, np.int64)
_SMALL_PACKED = 48  # packed int64 lists up to this many bytes are decoded in Python
_KEYS: dict[bytes, str] = {}  # feature names seen, decoded once


class ExampleDecodeError(InvalidArgumentError):
    """The payload is not a valid ``tf.train.Example`` message."""


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos``: ``(value, next position)``."""
    value = 0
    shift = 0
    while True:
        byte = b[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ExampleDecodeError("varint longer than 10 bytes")


def _skip_field(b: bytes, pos: int) -> int:
    """Skip one whole field (tag and value) that is not decoded."""
    tag, pos = _varint(b, pos)
    wire = tag & 7
    if wire == 0:
        return _varint(b, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(b, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise ExampleDecodeError(f"unsupported wire type {wire}")


def _packed_varints(b: bytes, start: int, end: int) -> np.ndarray:
    """Packed int64 varints in ``b[start:end]`` as an int64 array (vectorised)."""
    raw = np.frombuffer(b, np.uint8, end - start, start)
    if not (raw & 0x80).any():
        return raw.astype(np.int64)
    last = raw < 0x80
    if not last[-1]:
        raise ExampleDecodeError("truncated packed varint")
    ends = np.flatnonzero(last)
    firsts = np.empty_like(ends)
    firsts[0] = 0
    firsts[1:] = ends[:-1] + 1
    if int((ends - firsts).max()) > 9:
        raise ExampleDecodeError("varint longer than 10 bytes")
    group = np.repeat(np.arange(len(ends)), ends - firsts + 1)
    shift = (np.arange(len(raw)) - firsts[group]).astype(np.uint64) * np.uint64(7)
    parts = (raw & 0x7F).astype(np.uint64) << shift
    return np.bitwise_or.reduceat(parts, firsts).view(np.int64)


def _int64_values(b: bytes, pos: int, end: int, values: list[int]) -> None:
    """Varints in ``b[pos:end]`` appended to ``values`` as signed 64-bit ints."""
    while pos < end:
        x = b[pos]
        if x < 0x80:
            values.append(x)
            pos += 1
            continue
        x, pos = _varint(b, pos)
        values.append(x - (1 << 64) if x >= 1 << 63 else x)
    if pos != end:
        raise ExampleDecodeError("packed varints run past their length")


def _int64_list(b: bytes, pos: int, end: int) -> np.ndarray:
    """An ``Int64List`` message in ``b[pos:end]``, packed or not."""
    values: list[int] = []
    arrays: list[np.ndarray] = []
    while pos < end:
        tag = b[pos]
        if tag == 0x0A:  # packed
            n = b[pos + 1]
            pos += 2
            if n >= 0x80:
                n, pos = _varint(b, pos - 1)
            if n > _SMALL_PACKED:
                if values:
                    arrays.append(np.array(values, np.int64))
                    values = []
                arrays.append(_packed_varints(b, pos, pos + n))
            else:
                _int64_values(b, pos, pos + n, values)
            pos += n
        elif tag == 0x08:  # one unpacked value
            x, pos = _varint(b, pos + 1)
            values.append(x - (1 << 64) if x >= 1 << 63 else x)
        else:
            pos = _skip_field(b, pos)
    if not arrays:
        return np.array(values, np.int64)
    if values:
        arrays.append(np.array(values, np.int64))
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _float_list(b: bytes, pos: int, end: int) -> np.ndarray:
    """A ``FloatList`` message in ``b[pos:end]``, packed or not."""
    if b[pos] == 0x0A:  # the usual case: one packed run filling the message
        n = b[pos + 1]
        at = pos + 2
        if n >= 0x80:
            n, at = _varint(b, pos + 1)
        if at + n == end and not n % 4:
            return np.frombuffer(b, "<f4", n // 4, at).astype(np.float32)
    values: list[float] = []
    while pos < end:
        tag = b[pos]
        if tag == 0x0A:
            n, pos = _varint(b, pos + 1)
            if n % 4 or pos + n > end:
                raise ExampleDecodeError("bad packed float list")
            values.extend(struct.unpack_from(f"<{n // 4}f", b, pos))
            pos += n
        elif tag == 0x0D:
            values.append(_F32.unpack_from(b, pos + 1)[0])
            pos += 5
        else:
            pos = _skip_field(b, pos)
    return np.array(values, np.float32)


def _bytes_list(b: bytes, pos: int, end: int) -> np.ndarray:
    """A ``BytesList`` message in ``b[pos:end]`` as an object array of ``bytes``."""
    values: list[bytes] = []
    while pos < end:
        if b[pos] != 0x0A:
            pos = _skip_field(b, pos)
            continue
        n = b[pos + 1]
        pos += 2
        if n >= 0x80:
            if b[pos] < 0x80:
                n = (n & 0x7F) | (b[pos] << 7)
                pos += 1
            else:
                n, pos = _varint(b, pos - 1)
        values.append(b[pos : pos + n])
        pos += n
    out = np.empty(len(values), object)
    if len(values) == 1:
        out[0] = values[0]
    else:
        out[:] = values
    return out


_KINDS = {0x0A: _bytes_list, 0x12: _float_list, 0x1A: _int64_list}
_EMPTY = {0x0A: _EMPTY_BYTES, 0x12: _EMPTY_F32, 0x1A: _EMPTY_I64}


def decode_example(payload: Any) -> dict[str, np.ndarray]:
    """Decode a serialized ``tf.train.Example`` into NumPy arrays.

    Args:
        payload: The record (any buffer: ``bytes``, a ``memoryview`` from a reader, ...).

    Returns:
        ``{feature name: array}``: ``float32`` for float lists, ``int64`` for int64 lists and an
        object array of ``bytes`` for bytes lists. A feature with no kind set decodes to an
        empty ``float32`` array.

    Raises:
        InvalidArgumentError: ``payload`` is not a valid Example (``ExampleDecodeError``).
    """
    b = payload if type(payload) is bytes else bytes(payload)
    out: dict[str, np.ndarray] = {}
    pos, end = 0, len(b)
    try:
        while pos < end:
            if b[pos] != 0x0A:
                pos = _skip_field(b, pos)
                continue
            n = b[pos + 1]
            pos += 2
            if n >= 0x80:
                n, pos = _varint(b, pos - 1)
            _features(b, pos, pos + n, out)
            pos += n
    except ExampleDecodeError:
        raise
    except (IndexError, ValueError, struct.error):
        raise ExampleDecodeError("truncated or malformed Example message") from None
    if pos != end:
        raise ExampleDecodeError("truncated Example message")
    return out


def _features(b: bytes, pos: int, end: int, out: dict[str, np.ndarray]) -> None:
    """A ``Features`` message (map entries ``{key: Feature}``) decoded into ``out``.

    The hot loop of decoding. Entries laid out as every protobuf serializer writes them (key,
    then value, lengths below 16 KiB) take a straight path; anything else goes through the
    general field loop of :func:`_entry`.
    """
    keys = _KEYS
    while pos < end:
        if b[pos] != 0x0A:
            pos = _skip_field(b, pos)
            continue
        n = b[pos + 1]
        pos += 2
        if n >= 0x80:
            if b[pos] < 0x80:
                n = (n & 0x7F) | (b[pos] << 7)
                pos += 1
            else:
                n, pos = _varint(b, pos - 1)
        entry_end = pos + n
        if b[pos] == 0x0A and b[pos + 1] < 0x80:  # key
            key_end = pos + 2 + b[pos + 1]
            if key_end < entry_end and b[key_end] == 0x12:  # value
                m = b[key_end + 1]
                at = key_end + 2
                if m >= 0x80 and b[at] < 0x80:
                    m = (m & 0x7F) | (b[at] << 7)
                    at += 1
                if (m < 0x80 or at > key_end + 2) and at + m == entry_end:
                    raw = b[pos + 2 : key_end]
                    out[keys.get(raw) or _key(raw)] = _feature(b, at, entry_end)
                    pos = entry_end
                    continue
        pos = _entry(b, pos, entry_end, out)
    if pos != end:
        raise ExampleDecodeError("features run past their length")


def _entry(b: bytes, pos: int, end: int, out: dict[str, np.ndarray]) -> int:
    """One map entry in any field order or layout; returns ``end``."""
    key = ""
    value = _EMPTY_F32.copy()
    while pos < end:
        tag = b[pos]
        if tag != 0x0A and tag != 0x12:
            pos = _skip_field(b, pos)
            continue
        m, pos = _varint(b, pos + 1)
        if tag == 0x0A:
            key = _key(b[pos : pos + m])
        else:
            value = _feature(b, pos, pos + m)
        pos += m
    if pos != end:
        raise ExampleDecodeError("feature entry runs past its length")
    out[key] = value
    return pos


def _key(raw: bytes) -> str:
    key = raw.decode("utf-8")
    if len(_KEYS) < 4096:
        _KEYS[raw] = key
    return key


def _feature(b: bytes, pos: int, end: int) -> np.ndarray:
    """One ``Feature`` message: the usual single list (and single value) on a straight path."""
    if pos == end:
        return _EMPTY_F32.copy()
    kind = b[pos]
    k = b[pos + 1]
    at = pos + 2
    if k >= 0x80:
        k, at = _varint(b, pos + 1)
    if at + k != end or kind not in _KINDS:
        return _any_feature(b, pos, end)
    if not k:
        return _EMPTY[kind].copy()
    if kind == 0x0A:  # bytes
        if b[at] == 0x0A:
            v = b[at + 1]
            vat = at + 2
            if v >= 0x80:
                v, vat = _varint(b, at + 1)
            if vat + v == end:  # exactly one value
                one = np.empty(1, object)
                one[0] = b[vat:end]
                return one
        return _bytes_list(b, at, end)
    if kind == 0x1A:  # int64
        if b[at] == 0x0A:
            if k == 3 and b[at + 1] == 1 and b[at + 2] < 0x80:
                one = _ONE_I64.copy()
                one[0] = b[at + 2]
                return one
            if k == 4 and b[at + 1] == 2 and b[at + 2] >= 0x80 and b[at + 3] < 0x80:
                one = _ONE_I64.copy()
                one[0] = (b[at + 2] & 0x7F) | (b[at + 3] << 7)
                return one
        return _int64_list(b, at, end)
    return _float_list(b, at, end)


def _any_feature(b: bytes, pos: int, end: int) -> np.ndarray:
    """A ``Feature`` with several fields (the last kind set wins, as in protobuf)."""
    value = _EMPTY_F32.copy()
    while pos < end:
        tag = b[pos]
        decode = _KINDS.get(tag)
        if decode is None:
            pos = _skip_field(b, pos)
            continue
        n, pos = _varint(b, pos + 1)
        value = decode(b, pos, pos + n) if n else _EMPTY[tag].copy()
        pos += n
    if pos != end:
        raise ExampleDecodeError("feature runs past its length")
    return value


# -- encoding ------------------------------------------------------------------------------------


def _put_varint(out: bytearray, value: int) -> None:
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _field(out: bytearray, tag: int, body: bytes | bytearray | memoryview) -> None:
    out.append(tag)
    _put_varint(out, len(body))
    out += body


def _feature_bytes(value: Any) -> bytearray:
    """The serialized ``Feature`` for one value (bytes / str / ints / floats / arrays)."""
    body = bytearray()
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        value = [value]
    arr = value if isinstance(value, np.ndarray) else None
    if arr is None:
        items = list(value) if isinstance(value, Iterable) else [value]
        if items and all(isinstance(v, (bytes, bytearray, memoryview, str)) for v in items):
            inner = bytearray()
            for v in items:
                _field(inner, 0x0A, v.encode() if isinstance(v, str) else bytes(v))
            _field(body, 0x0A, inner)
            return body
        arr = np.asarray(items)
    if arr.dtype.kind in "SUO":
        return _feature_bytes([v if isinstance(v, (bytes, str)) else bytes(v) for v in arr.ravel()])
    if arr.dtype.kind == "f":
        packed = arr.astype("<f4").ravel().tobytes()
        inner = bytearray()
        if packed:
            _field(inner, 0x0A, packed)
        _field(body, 0x12, inner)
        return body
    if arr.dtype.kind in "iub" or arr.size == 0:
        varints = bytearray()
        for v in arr.astype(np.int64).ravel().tolist():
            _put_varint(varints, v)
        inner = bytearray()
        if varints:
            _field(inner, 0x0A, varints)
        _field(body, 0x1A, inner)
        return body
    raise ArgumentTypeError(f"cannot encode a feature of dtype {arr.dtype}")


def encode_example(features: Mapping[str, Any]) -> bytes:
    """Serialize ``{name: value}`` as a ``tf.train.Example``.

    Values may be ``bytes``/``str`` (or lists of them) for a bytes list, floats or float arrays
    for a float list, ints, bools or integer arrays for an int64 list.
    """
    inner = bytearray()
    for name, value in features.items():
        entry = bytearray()
        _field(entry, 0x0A, name.encode())
        _field(entry, 0x12, _feature_bytes(value))
        _field(inner, 0x0A, entry)
    out = bytearray()
    _field(out, 0x0A, inner)
    return bytes(out)
