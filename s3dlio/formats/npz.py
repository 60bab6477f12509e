"""NPZ archives on any backend: members listed and loaded through range requests.

An ``.npz`` is a zip file of ``.npy`` members. :class:`NpzFile` reads the end of the object once
(the end-of-central-directory record, zip64 included, and usually the whole central directory
with it), then each member with ONE range request covering its local header and data, parsed
with ``numpy.lib.format``. Stored members become arrays without a copy; deflated members are
inflated straight into the array's memory.

``generate_npz_bytes`` builds an archive that ``numpy.load`` reads, without ``numpy.savez``'s
temporary copies.
"""

from __future__ import annotations

import ast
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import IntegrityError, InvalidArgumentError, NotFoundError
from ..io import ops
from ..io.buffers import BytesView, buffer_address
from ..io.datagen import generate_into_buffer
from ..io.range_engine import fetch
from ..io.store import HasStores, backend_for
from ..io.uri import ObjectURI, parse_uri
from .blocks import FetchStats

__all__ = ["NpzFile", "NpzMember", "generate_npz_bytes", "list_npz", "read_npz"]

URI = str | ObjectURI | os.PathLike[str]

_EOCD = struct.Struct(
    "<4s4H2LH"
)  # signature, disk, cd disk, entries here, entries, size, offset, comment
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_TAIL = 64 * 1024 + _EOCD.size  # the EOCD is within the last 64 KiB + 22 bytes
_ALIGN = 64  # arrays start on this boundary when the archive allows it
_LOCAL_SLACK = 64  # extra bytes read past the expected local header
_ZIP64_LIMIT = 0xFFFFFFFF  # sizes/offsets from here on need zip64 fields


@dataclass(frozen=True)
class NpzMember:
    """One member of the archive, from its central directory entry.

    Attributes:
        name: The member's file name (``"x.npy"``).
        offset: Where its local header starts.
        compressed_size: Bytes stored.
        size: Bytes after decompression.
        method: 0 (stored) or 8 (deflated).
        crc: The member's CRC-32.
        extra_length: Length of the central directory's extra field (the local one is usually
            the same, which lets one request cover header and data).
    """

    name: str
    offset: int
    compressed_size: int
    size: int
    method: int
    crc: int
    extra_length: int

    @property
    def array_name(self) -> str:
        """The name ``numpy.load`` gives the array (the file name without ``.npy``)."""
        return self.name[:-4] if self.name.endswith(".npy") else self.name


class NpzFile:
    """An NPZ archive on any backend, read member by member with range requests.

    Args:
        uri: The archive (any URI or a bare local path).

    Attributes:
        members: ``{array name: NpzMember}`` in archive order.
        stats: Requests made and bytes received.
    """

    def __init__(self, uri: URI, *, client: HasStores | None = None) -> None:
        self.uri = parse_uri(uri, allow_bare=True)
        self._backend = backend_for(self.uri, client)
        self.stats = FetchStats()
        meta = ops.stat(self.uri, client)
        self.size = meta.size
        self.etag = meta.etag
        self.members: dict[str, NpzMember] = {}
        self._read_directory()

    # -- directory ---------------------------------------------------------------------------
    def _get(self, offset: int, length: int, align_at: int = 0) -> memoryview:
        """Bytes ``[offset, offset + length)``, placed so that byte ``align_at`` of them sits
        on a 64-byte boundary in memory (arrays over them need no copy)."""
        buf = BytesView.allocate(length + _ALIGN)
        shift = -(buffer_address(buf) + align_at) % _ALIGN
        view = memoryview(buf)[shift : shift + length]
        result = fetch(
            self._backend,
            self.uri,
            offset,
            length,
            into=view,
            if_match=self.etag,
            op="GET_RANGE",
        )
        self.stats.add(result.requests, result.nbytes)
        if result.nbytes != length:
            raise self._corrupt(f"object ends at {result.size}, before byte {offset + length}")
        return view

    def _corrupt(self, why: str) -> IntegrityError:
        return IntegrityError(f"not a valid NPZ (zip) archive: {why}", uri=str(self.uri), op="GET")

    def _read_directory(self) -> None:
        if self.size < _EOCD.size:
            raise self._corrupt("too short")
        tail_start = max(0, self.size - _TAIL)
        tail = self._get(tail_start, self.size - tail_start)
        at = bytes(tail).rfind(b"PK\x05\x06")
        if at < 0:
            raise self._corrupt("no end-of-central-directory record")
        _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
        if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
            count, cd_size, cd_offset = self._zip64(tail, tail_start, at)
        if cd_offset + cd_size > self.size:
            raise self._corrupt("central directory runs past the end")
        if cd_offset >= tail_start:
            directory = tail[cd_offset - tail_start : cd_offset - tail_start + cd_size]
        else:
            directory = self._get(cd_offset, cd_size)
        self._parse_directory(directory, count)

    def _zip64(self, tail: memoryview, tail_start: int, at: int) -> tuple[int, int, int]:
        loc = at - _EOCD64_LOCATOR.size
        if loc < 0 or bytes(tail[loc : loc + 4]) != b"PK\x06\x07":
            raise self._corrupt("zip64 locator missing")
        _, _, eocd64_offset, _ = _EOCD64_LOCATOR.unpack_from(tail, loc)
        if eocd64_offset >= tail_start:
            rec = tail[eocd64_offset - tail_start :]
        else:
            rec = self._get(eocd64_offset, _EOCD64.size)
        fields = _EOCD64.unpack_from(rec)
        if fields[0] != b"PK\x06\x06":
            raise self._corrupt("zip64 end-of-central-directory record missing")
        return fields[7], fields[8], fields[9]

    def _parse_directory(self, directory: memoryview, count: int) -> None:
        pos = 0
        for _ in range(count):
            if bytes(directory[pos : pos + 4]) != b"PK\x01\x02":
                raise self._corrupt("bad central directory entry")
            f = _CENTRAL.unpack_from(directory, pos)
            method, crc, csize, size = f[4], f[7], f[8], f[9]
            name_len, extra_len, comment_len, offset = f[10], f[11], f[12], f[16]
            name_at = pos + _CENTRAL.size
            name = bytes(directory[name_at : name_at + name_len]).decode("utf-8", "replace")
            extra = directory[name_at + name_len : name_at + name_len + extra_len]
            if 0xFFFFFFFF in (csize, size, offset):
                size, csize, offset = _zip64_extra(extra, size, csize, offset)
            member = NpzMember(name, offset, csize, size, method, crc, extra_len)
            self.members[member.array_name] = member
            pos = name_at + name_len + extra_len + comment_len

    # -- members -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Array names, in archive order (as ``numpy.load(...).files``)."""
        return list(self.members)

    @property
    def files(self) -> list[str]:
        """Alias of :attr:`names` (``numpy.lib.npyio.NpzFile`` spelling)."""
        return self.names

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def __iter__(self) -> Any:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.read(name)

    def read(self, name: str) -> np.ndarray:
        """Load one array (by array name or member file name) with one range request."""
        member = self.members.get(name) or self.members.get(name.removesuffix(".npy"))
        if member is None:
            raise NotFoundError(
                f"no array {name!r} in the archive (it has {self.names})",
                uri=str(self.uri),
                op="GET",
            )
        if member.method not in (0, 8):
            raise InvalidArgumentError(
                f"member {member.name!r} uses zip method {member.method}; only stored and "
                "deflated members are supported",
                uri=str(self.uri),
            )
        # One request for the local header and the data. The local extra field may be longer
        # than the central one (numpy.savez adds a zip64 field there), hence the slack.
        guess = _LOCAL.size + len(member.name.encode()) + member.extra_length
        span = min(guess + _LOCAL_SLACK + member.compressed_size, self.size - member.offset)
        buf = self._get(member.offset, span, align_at=guess)
        local = _LOCAL.unpack_from(buf)
        if local[0] != b"PK\x03\x04":
            raise self._corrupt(f"bad local header for {member.name!r}")
        data_at = _LOCAL.size + local[9] + local[10]
        if data_at + member.compressed_size > len(buf):  # an unusually long local extra field
            buf = self._get(member.offset, data_at + member.compressed_size, align_at=data_at)
        raw = buf[data_at : data_at + member.compressed_size]
        if member.method == 8:
            return _parse_npy(_inflate(raw, member, self), member, self)
        if zlib.crc32(raw) != member.crc:
            raise IntegrityError(
                f"member {member.name!r} failed its CRC-32 check", uri=str(self.uri), op="GET"
            )
        return _parse_npy(raw, member, self)

    def load(self) -> dict[str, np.ndarray]:
        """Every array of the archive."""
        return {name: self.read(name) for name in self.members}

    def close(self) -> None:
        """Nothing to release (present for symmetry with ``numpy.load``)."""

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _zip64_extra(extra: memoryview, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            if size == 0xFFFFFFFF:
                size = next(values)
            if csize == 0xFFFFFFFF:
                csize = next(values)
            if offset == 0xFFFFFFFF:
                offset = next(values)
            break
        pos += 4 + length
    return size, csize, offset


def _inflate(raw: memoryview, member: NpzMember, npz: NpzFile) -> memoryview:
    out = BytesView.allocate(member.size)
    inflater = zlib.decompressobj(-15)
    done = 0
    for at in range(0, len(raw), 1 << 20):
        piece = inflater.decompress(raw[at : at + (1 << 20)])
        out[done : done + len(piece)] = piece
        done += len(piece)
    piece = inflater.flush()
    out[done : done + len(piece)] = piece
    done += len(piece)
    view = memoryview(out)
    if done != member.size or zlib.crc32(view) != member.crc:
        raise IntegrityError(
            f"member {member.name!r} failed its size or CRC-32 check", uri=str(npz.uri), op="GET"
        )
    return view


def _parse_npy(raw: memoryview, member: NpzMember, npz: NpzFile) -> np.ndarray:
    """An array over the ``.npy`` bytes in ``raw`` (no copy when they are aligned)."""
    if bytes(raw[:6]) != b"\x93NUMPY":
        raise npz._corrupt(f"member {member.name!r} is not a .npy file")
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", raw, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", raw, 8)
        start = 12
    else:
        raise npz._corrupt(f"member {member.name!r}: unsupported .npy version {major}")
    header = bytes(raw[start : start + hlen]).decode("latin1" if major < 3 else "utf-8")
    try:
        meta = ast.literal_eval(header)
        dtype = np.lib.format.descr_to_dtype(meta["descr"])
        shape, fortran = tuple(meta["shape"]), bool(meta["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise npz._corrupt(f"member {member.name!r}: bad .npy header ({exc})") from None
    if dtype.hasobject:
        raise InvalidArgumentError(
            f"member {member.name!r} holds Python objects (pickled); refusing to unpickle",
            uri=str(npz.uri),
        )
    count = int(np.prod(shape, dtype=np.int64))
    body = raw[start + hlen :]
    if len(body) < count * dtype.itemsize:
        raise npz._corrupt(f"member {member.name!r} is shorter than its header says")
    flat = np.frombuffer(body, dtype=dtype, count=count)
    if not flat.flags.aligned:
        flat = flat.copy()
    return flat.reshape(shape, order="F" if fortran else "C")


def list_npz(uri: URI) -> list[str]:
    """The array names in an NPZ archive (reads only its central directory)."""
    return NpzFile(uri).names


def read_npz(
    uri: URI, array_name: str | None = None, *, client: HasStores | None = None
) -> np.ndarray:
    """Load one array of an NPZ archive on any backend.

    Args:
        uri: The archive (any URI or a bare local path).
        array_name: The array (``"x"`` or ``"x.npy"``); default the first one.

    Returns:
        The array (as ``numpy.load(path)[array_name]`` gives it).
    """
    npz = NpzFile(uri, client=client)
    if not npz.members:
        raise NotFoundError("the NPZ archive is empty", uri=str(npz.uri), op="GET")
    return npz.read(array_name if array_name is not None else npz.names[0])


# -- writing -------------------------------------------------------------------------------------


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    # magic (6) + version (2) + length (2) + text + padding + newline, to a 64-byte boundary
    pad = -(10 + len(text) + 1) % 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text) + pad + 1) + text + b" " * pad + b"\n"


def build_npz(arrays: dict[str, tuple[np.dtype, tuple[int, ...], Any]]) -> BytesView:
    """A stored (uncompressed) NPZ archive of ``{name: (dtype, shape, fill)}``.

    ``fill(buffer)`` writes the array's bytes into the memoryview it is given (so data is
    produced in place, never copied). Array data starts on a 64-byte boundary.
    """
    plan = []
    offset = 0
    for name, (dtype, shape, fill) in arrays.items():
        fname = f"{name}.npy".encode()
        header = _npy_header(np.dtype(dtype), shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        size = len(header) + nbytes
        big = size >= _ZIP64_LIMIT or offset >= _ZIP64_LIMIT
        extra_len = 20 if big else 0
        head_len = _LOCAL.size + len(fname) + extra_len
        pad = -(offset + head_len + len(header)) % _ALIGN
        if pad and pad < 4:
            pad += _ALIGN
        plan.append((fname, header, nbytes, size, offset, big, pad, fill))
        offset += head_len + pad + size
    central = bytearray()
    for fname, _, _, size, local_at, big, pad, _ in plan:
        central += _central_entry(fname, size, local_at, big, pad, crc=0)
    total = offset + len(central) + _zip64_tail_size(offset, len(central), len(plan)) + _EOCD.size
    out = BytesView.allocate(total)
    view = memoryview(out)
    central = bytearray()
    for fname, header, _, size, local_at, big, pad, fill in plan:
        at = local_at + _LOCAL.size + len(fname) + (20 if big else 0) + pad
        view[at : at + len(header)] = header
        body = view[at + len(header) : at + size]
        fill(body)
        crc = zlib.crc32(body, zlib.crc32(header))
        _write_local(view, local_at, fname, size, crc, big, pad)
        central += _central_entry(fname, size, local_at, big, pad, crc)
    view[offset : offset + len(central)] = central
    _write_tail(view, offset + len(central), offset, len(central), len(plan))
    return out


def _write_local(
    view: memoryview, at: int, fname: bytes, size: int, crc: int, big: bool, pad: int
) -> None:
    small = 0xFFFFFFFF if big else size
    extra = struct.pack("<HHQQ", 1, 16, size, size) if big else b""
    extra += _padding_field(pad)
    head = _LOCAL.pack(
        b"PK\x03\x04", 45 if big else 20, 0, 0, 0, 0x21, crc, small, small, len(fname), len(extra)
    )
    blob = head + fname + extra
    view[at : at + len(blob)] = blob


def _padding_field(pad: int) -> bytes:
    """An extra field of ``pad`` bytes (an unknown tag readers skip) to align the data."""
    if not pad:
        return b""
    return struct.pack("<HH", 0xCAFE, pad - 4) + b"\x00" * (pad - 4)


def _central_entry(fname: bytes, size: int, local_at: int, big: bool, pad: int, crc: int) -> bytes:
    """A central directory entry. It repeats the local padding field, so the two extra fields
    differ by at most the zip64 field and one request fetches a member's header and data."""
    fields = [size if not big else 0xFFFFFFFF] * 2
    offset = local_at if local_at < _ZIP64_LIMIT else 0xFFFFFFFF
    extra = b""
    if big or offset == 0xFFFFFFFF:
        values = [
            v for v, flag in ((size, big), (size, big), (local_at, offset == 0xFFFFFFFF)) if flag
        ]
        extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values)
    extra += _padding_field(pad)
    head = _CENTRAL.pack(
        b"PK\x01\x02",
        45 if extra else 20,
        45 if extra else 20,
        0,
        0,
        0,
        0x21,
        crc,
        *fields,
        len(fname),
        len(extra),
        0,
        0,
        0,
        0o100644 << 16,
        offset,
    )
    return head + fname + extra


def _zip64_tail_size(cd_offset: int, cd_size: int, count: int) -> int:
    need = cd_offset >= _ZIP64_LIMIT or cd_size >= _ZIP64_LIMIT or count >= 0xFFFF
    return _EOCD64.size + _EOCD64_LOCATOR.size if need else 0


def _write_tail(view: memoryview, at: int, cd_offset: int, cd_size: int, count: int) -> None:
    blob = b""
    if _zip64_tail_size(cd_offset, cd_size, count):
        blob += _EOCD64.pack(
            b"PK\x06\x06", _EOCD64.size - 12, 45, 45, 0, 0, count, count, cd_size, cd_offset
        )
        blob += _EOCD64_LOCATOR.pack(b"PK\x06\x07", 0, at, 1)
        count = count if count < 0xFFFF else 0xFFFF
        cd_size = cd_size if cd_size < _ZIP64_LIMIT else 0xFFFFFFFF
        cd_offset = cd_offset if cd_offset < _ZIP64_LIMIT else 0xFFFFFFFF
    blob += _EOCD.pack(b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)
    view[at : at + len(blob)] = blob


def generate_npz_bytes(
    shape: Any,
    dtype: str = "<f4",
    num_samples: int = 1,
    *,
    dedup: int = 1,
    compress: int = 1,
    seed: int | None = None,
) -> BytesView:
    """An NPZ archive with a random array ``x`` of ``shape``/``dtype`` and labels ``y``.

    As the original's: ``x`` holds synthetic data (see :func:`s3dlio.generate_data` for
    ``dedup``/``compress``), ``y`` is ``int64`` zeros of length ``num_samples``. The archive is
    what ``numpy.savez`` would write (stored members), built in one buffer, ready for
    ``put_bytes``.
    """
    dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)

    def fill_x(body: memoryview) -> None:
        if len(body):
            generate_into_buffer(body, dedup=dedup, compress=compress, seed=seed)

    def fill_y(body: memoryview) -> None:
        body[:] = bytes(len(body))

    return build_npz(
        {
            "x": (np.dtype(dtype), dims, fill_x),
            "y": (np.dtype(np.int64), (int(num_samples),), fill_y),
        }
    )
