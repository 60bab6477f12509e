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

from ..errors import InvalidURIError

__all__ = ["ExampleDecodeError", "decode_example", "encode_example"]

_F32 = struct.Struct("<f")
_EMPTY_BYTES = np.empty(0, object)
_EMPTY_F32 = np.empty(0, np.float32)
_EMPTY_I64 = np.empty(0, np.int64)


class ExampleDecodeError(InvalidURIError):
    """The payload is not a valid ``tf.train.Example`` message."""


def _varint(mv: memoryview, pos: int) -> tuple[int, int]:
    """A varint at ``pos``: ``(value, next position)``."""
    value = 0
    shift = 0
    while True:
        try:
            byte = mv[pos]
        except IndexError:
            raise ExampleDecodeError("truncated varint") from None
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ExampleDecodeError("varint longer than 10 bytes")


def _skip(mv: memoryview, pos: int, tag: int) -> int:
    """Skip the value of a field with ``tag`` starting at ``pos``."""
    wire = tag & 7
    if wire == 0:
        return _varint(mv, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(mv, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise ExampleDecodeError(f"unsupported wire type {wire}")


def _skip_field(mv: memoryview, pos: int) -> int:
    """Skip a whole field (tag and value) of a field we do not decode."""
    tag, pos = _varint(mv, pos)
    return _skip(mv, pos, tag)


def _packed_varints(mv: memoryview, start: int, end: int) -> np.ndarray:
    """Packed int64 varints in ``mv[start:end]`` as an int64 array (vectorised)."""
    raw = np.frombuffer(mv, np.uint8, end - start, start)
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


def _int64s(mv: memoryview, pos: int, end: int) -> np.ndarray:
    """The values of an ``Int64List`` message in ``mv[pos:end]``."""
    found: list[np.ndarray] = []
    loose: list[int] = []
    while pos < end:
        tag = mv[pos]
        pos += 1
        if tag == 0x0A:  # packed
            n = mv[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(mv, pos)
            if n == 1 and mv[pos] < 0x80:
                loose.append(mv[pos])
            elif n:
                if loose:
                    found.append(np.array(loose, np.int64))
                    loose = []
                found.append(_packed_varints(mv, pos, pos + n))
            pos += n
        elif tag == 0x08:  # one unpacked value
            value, pos = _varint(mv, pos)
            loose.append(value - (1 << 64) if value >= 1 << 63 else value)
        else:
            pos = _skip_field(mv, pos - 1)
    if loose:
        found.append(np.array(loose, np.int64))
    if not found:
        return _EMPTY_I64.copy()
    return found[0] if len(found) == 1 else np.concatenate(found)


def _floats(mv: memoryview, pos: int, end: int) -> np.ndarray:
    """The values of a ``FloatList`` message in ``mv[pos:end]``."""
    found: list[np.ndarray] = []
    loose: list[float] = []
    while pos < end:
        tag = mv[pos]
        pos += 1
        if tag == 0x0A:  # packed
            n = mv[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(mv, pos)
            if n % 4:
                raise ExampleDecodeError("packed float list length is not a multiple of 4")
            if loose:
                found.append(np.array(loose, np.float32))
                loose = []
            found.append(np.frombuffer(mv, "<f4", n // 4, pos).astype(np.float32))
            pos += n
        elif tag == 0x0D:  # one unpacked value
            loose.append(_F32.unpack_from(mv, pos)[0])
            pos += 4
        else:
            pos = _skip_field(mv, pos - 1)
    if loose:
        found.append(np.array(loose, np.float32))
    if not found:
        return _EMPTY_F32.copy()
    return found[0] if len(found) == 1 else np.concatenate(found)


def _bytes_values(mv: memoryview, pos: int, end: int) -> np.ndarray:
    """The values of a ``BytesList`` message in ``mv[pos:end]`` as an object array."""
    values: list[bytes] = []
    while pos < end:
        tag = mv[pos]
        if tag != 0x0A:
            pos = _skip_field(mv, pos)
            continue
        n = mv[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = _varint(mv, pos + 1)
        values.append(mv[pos : pos + n].tobytes())
        pos += n
    out = np.empty(len(values), object)
    out[:] = values
    return out


_KINDS = {0x0A: _bytes_values, 0x12: _floats, 0x1A: _int64s}
_EMPTY = {0x0A: _EMPTY_BYTES, 0x12: _EMPTY_F32, 0x1A: _EMPTY_I64}


def decode_example(payload: Any) -> dict[str, np.ndarray]:
    """Decode a serialized ``tf.train.Example`` into NumPy arrays.

    Args:
        payload: The record (any buffer: ``bytes``, ``memoryview`` from a reader, ...).

    Returns:
        ``{feature name: array}``: ``float32`` for float lists, ``int64`` for int64 lists and an
        object array of ``bytes`` for bytes lists. A feature with no kind set decodes to an
        empty ``float32`` array.

    Raises:
        InvalidURIError: ``payload`` is not a valid Example (``ExampleDecodeError``).
    """
    mv = memoryview(payload)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    out: dict[str, np.ndarray] = {}
    pos, end = 0, len(mv)
    try:
        while pos < end:
            tag = mv[pos]
            if tag != 0x0A:
                pos = _skip_field(mv, pos)
                continue
            n = mv[pos + 1]
            if n < 0x80:
                pos += 2
            else:
                n, pos = _varint(mv, pos + 1)
            _features(mv, pos, pos + n, out)
            pos += n
        if pos != end:
            raise ExampleDecodeError("message runs past the end of the record")
    except ExampleDecodeError:
        raise
    except (IndexError, ValueError):
        raise ExampleDecodeError("truncated or malformed Example message") from None
    return out


def _features(mv: memoryview, pos: int, end: int, out: dict[str, np.ndarray]) -> None:
    """Decode a ``Features`` message (its map entries) into ``out``."""
    while pos < end:
        if mv[pos] != 0x0A:
            pos = _skip_field(mv, pos)
            continue
        n = mv[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = _varint(mv, pos + 1)
        entry_end = pos + n
        key = ""
        value = _EMPTY_F32
        while pos < entry_end:
            ftag = mv[pos]
            if ftag != 0x0A and ftag != 0x12:
                pos = _skip_field(mv, pos)
                continue
            m = mv[pos + 1]
            if m < 0x80:
                pos += 2
            else:
                m, pos = _varint(mv, pos + 1)
            if ftag == 0x0A:
                key = str(mv[pos : pos + m], "utf-8")
            elif ftag == 0x12:
                value = _feature(mv, pos, pos + m)
            pos += m
        out[key] = value
        if pos != entry_end:
            raise ExampleDecodeError("feature entry runs past its length")


def _feature(mv: memoryview, pos: int, end: int) -> np.ndarray:
    """Decode one ``Feature`` message (the last kind set wins, as in protobuf)."""
    value = _EMPTY_F32
    while pos < end:
        tag = mv[pos]
        decode = _KINDS.get(tag)
        if decode is None:
            pos = _skip_field(mv, pos)
            continue
        n = mv[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = _varint(mv, pos + 1)
        value = decode(mv, pos, pos + n) if n else _EMPTY[tag].copy()
        pos += n
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
        packed = bytearray()
        for v in arr.astype(np.int64).ravel().tolist():
            _put_varint(packed, v)
        inner = bytearray()
        if packed:
            _field(inner, 0x0A, packed)
        _field(body, 0x1A, inner)
        return body
    raise TypeError(f"cannot encode a feature of dtype {arr.dtype}")


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
