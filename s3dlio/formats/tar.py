"""POSIX tar archives as streams of members, and WebDataset samples.

Reading works on a stream of windows (:data:`~s3dlio.formats.blocks.Window`), so a tar shard is
parsed as its bytes arrive in large range requests, never seeking: :func:`iter_members` yields
each regular file's name, bytes and offset. It understands ustar (the ``prefix`` field), pax
extended headers (``path``, ``size``) and GNU long names, checks every header's checksum, and
reports a header or member cut short as :class:`~s3dlio.errors.IntegrityError` naming the shard
and the byte offset.

:func:`group_samples` groups members into WebDataset samples exactly as the ``webdataset``
package does: a file's key is its path up to the first dot of its base name, its extension the
rest (lower-cased), consecutive files with the same key form one sample
``{"__key__": key, "__url__": shard, ext: bytes, ...}``, files without an extension and
``__meta__`` files are skipped, and a repeated extension within one sample is an error.

Writing: :func:`member_header` (ustar, with a pax header for long names or large sizes) and
:func:`padding`; :class:`~s3dlio.formats.shards.ShardWriter` writes whole shards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from ..errors import IntegrityError
from ..io.buffers import BytesView
from .blocks import Window

__all__ = [
    "BLOCK",
    "END_OF_ARCHIVE",
    "TarMember",
    "WindowReader",
    "group_samples",
    "iter_members",
    "member_header",
    "padding",
    "split_key",
]

BLOCK = 512  #: tar's block size: headers and padded member data
END_OF_ARCHIVE = bytes(2 * BLOCK)  #: two zero blocks end an archive

_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_SKIP_META = re.compile(r"__[^/]*__($|/)")  # webdataset's default skip_meta
_REGULAR = (b"0", b"\0", b"7")
_ZERO_BLOCK = bytes(BLOCK)


class TarMember(NamedTuple):
    """One regular file of an archive.

    Attributes:
        name: Its path in the archive.
        data: Its bytes.
        offset: Stream offset of its (first) header.
    """

    name: str
    data: bytes
    offset: int


class WindowReader:
    """Exact-size reads from a stream of windows (no seeking, few copies).

    A read that lies inside the current window is a view of it; one that spans windows is
    joined into a new buffer.

    Args:
        windows: The stream, as ``(buffer, start, end)`` windows.
        base: Stream offset of the first window's first byte.

    Attributes:
        pos: Stream offset of the next byte to read.
    """

    def __init__(self, windows: Iterable[Window], base: int = 0) -> None:
        self._windows = iter(windows)
        self._view = memoryview(b"")
        self._lo = 0
        self.pos = base

    def _advance(self) -> bool:
        for buf, lo, hi in self._windows:
            if hi > lo:
                self._view = memoryview(buf)[:hi]
                self._lo = lo
                return True
        self._view = memoryview(b"")
        self._lo = 0
        return False

    def read(self, n: int) -> memoryview:
        """Up to ``n`` bytes (fewer only at the end of the stream), valid until the next read."""
        lo, view = self._lo, self._view
        if lo + n <= len(view):
            self._lo = lo + n
            self.pos += n
            return view[lo : lo + n]
        out = BytesView.allocate(n)
        done = 0
        while done < n:
            if self._lo >= len(self._view) and not self._advance():
                break
            take = min(n - done, len(self._view) - self._lo)
            out[done : done + take] = self._view[self._lo : self._lo + take]
            self._lo += take
            done += take
        self.pos += done
        return memoryview(out)[:done]

    def skip(self, n: int) -> int:
        """Skip up to ``n`` bytes; returns how many were skipped."""
        done = 0
        while done < n:
            if self._lo >= len(self._view) and not self._advance():
                break
            take = min(n - done, len(self._view) - self._lo)
            self._lo += take
            done += take
        self.pos += done
        return done

    def release(self) -> None:
        """Drop the view of the current window (so its buffer can be reused)."""
        self._view = memoryview(b"")
        self._lo = 0


def _number(raw: bytes, uri: str, at: int) -> int:
    """A tar numeric field: octal text, or base-256 when the high bit of the first byte is set."""
    if raw[0] & 0x80:
        value = int.from_bytes(raw[1:], "big")
        return value - (1 << (8 * len(raw) - 1)) if raw[0] & 0x40 else value
    text = raw.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise _corrupt(uri, at, f"bad numeric field {raw!r}") from None


def _corrupt(uri: str, at: int, why: str) -> IntegrityError:
    return IntegrityError(
        f"corrupt tar header at offset {at}: {why}", uri=uri, op="GET", byte_range=(at, BLOCK)
    )


def _truncated(uri: str, at: int, what: str, need: int, have: int) -> IntegrityError:
    return IntegrityError(
        f"truncated tar {what} at offset {at}: needs {need} bytes, only {have} remain",
        uri=uri,
        op="GET",
        byte_range=(at, need),
    )


def _checksum_ok(raw: bytes, stored: int) -> bool:
    """The header's checksum: its bytes summed with the checksum field as spaces (some old
    writers summed signed bytes)."""
    total = sum(raw) - sum(raw[148:156]) + 8 * 32
    if total == stored:
        return True
    signed = sum(b - 256 if b > 127 else b for b in raw[:148] + raw[156:]) + 8 * 32
    return signed == stored


def _pax(data: memoryview) -> dict[str, str]:
    """The records of a pax extended header (``"%d %s=%s\\n"``)."""
    out: dict[str, str] = {}
    raw, pos = bytes(data), 0
    while pos < len(raw):
        space = raw.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(raw[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = raw[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def iter_members(windows: Iterable[Window], *, uri: str, base: int = 0) -> Iterator[TarMember]:
    """The regular files of a tar stream, in archive order.

    Directories, links and other non-regular entries are skipped (as ``webdataset`` does).
    The archive ends at its end-of-archive marker or at the end of the stream.

    Raises:
        IntegrityError: a header's checksum is wrong, or the stream ends inside a header or a
            member's data (naming ``uri`` and the offset).
    """
    reader = WindowReader(windows, base)
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        at = reader.pos
        header = bytes(reader.read(BLOCK))
        if len(header) < BLOCK:
            if not header:
                return
            raise _truncated(uri, at, "header", BLOCK, len(header))
        if not header[0] and header == _ZERO_BLOCK:
            return  # end-of-archive marker
        if not _checksum_ok(header, _number(header[148:156], uri, at)):
            raise _corrupt(uri, at, "checksum mismatch")
        size = int(pax["size"]) if "size" in pax else _number(header[124:136], uri, at)
        kind = header[156:157]
        name = header[0:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        data = reader.read(size + (-size % BLOCK))  # with its padding (which may be cut short)
        if len(data) < size:
            error = _truncated(uri, at, "member", BLOCK + size, BLOCK + len(data))
            if kind in _REGULAR:
                error.member = (  # type: ignore[attr-defined]
                    pax.get("path") or long_name or name.decode("utf-8", "surrogateescape")
                )
            raise error
        data = data[:size]
        if kind in (b"x", b"X"):
            pax = _pax(data)
            continue
        if kind == b"g":
            continue
        if kind == b"L":
            long_name = bytes(data).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if kind == b"K":
            continue
        path = pax.get("path") or long_name or name.decode("utf-8", "surrogateescape")
        long_name, pax = None, {}
        if kind in _REGULAR:
            yield TarMember(path, bytes(data), at)


def split_key(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a member as ``webdataset`` splits it, or ``None`` (no dot)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot > slash + 1:  # what the regex below finds first, without running it
        return name[:dot], name[dot + 1 :]
    match = _KEY.match(name)
    if match is None:
        return None
    return match.group(1), match.group(2)


def _skipped(name: str) -> bool:
    if "/" not in name and name.startswith("__") and name.endswith("__"):
        return True
    return _SKIP_META.match(name) is not None


def group_samples(
    members: Iterable[TarMember], *, url: str
) -> Iterator[tuple[dict[str, Any], int]]:
    """WebDataset samples of one shard's members, with the offset of each sample's first member.

    When the members end in an error, the sample being assembled is yielded first if the
    error names a member of another sample (it is complete then), and dropped otherwise.

    Raises:
        IntegrityError: one sample holds two files with the same extension, or the members'.
    """
    sample: dict[str, Any] | None = None
    first = 0
    source = iter(members)
    while True:
        try:
            member = next(source)
        except StopIteration:
            break
        except IntegrityError as exc:
            cut = split_key(getattr(exc, "member", "") or "")
            if sample is not None and cut is not None and cut[0] != sample["__key__"]:
                yield sample, first
            raise
        if "__" in member.name and _skipped(member.name):
            continue
        parts = split_key(member.name)
        if parts is None:
            continue
        key, ext = parts[0], parts[1].lower()
        if sample is None or key != sample["__key__"]:
            if sample is not None:
                yield sample, first
            sample = {"__key__": key, "__url__": url}
            first = member.offset
        if ext in sample:
            raise IntegrityError(
                f"duplicate file {member.name!r} in sample {key!r} at offset {member.offset}",
                uri=url,
                op="GET",
                byte_range=(member.offset, BLOCK),
            )
        sample[ext] = member.data
    if sample is not None:
        yield sample, first


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar(name: bytes, size: int, kind: bytes, mtime: int, mode: int) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = _octal(mode, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(mtime, 12)
    header[148:156] = b" " * 8
    header[156:157] = kind
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    checksum = sum(header)
    header[148:156] = b"%06o\0 " % checksum
    return bytes(header)


def member_header(name: str, size: int, *, mtime: int = 0, mode: int = 0o644) -> bytes:
    """The header block(s) of a regular file ``name`` of ``size`` bytes.

    Names longer than 100 bytes or sizes of 8 GiB and more get a pax extended header first
    (``path``/``size`` records), as GNU tar and Python's ``tarfile`` write them.
    """
    raw = name.encode("utf-8", "surrogateescape")
    records: list[bytes] = []
    if len(raw) > 100:
        records.append(b"path=" + raw + b"\n")
    if size >= 8**11:
        records.append(b"size=%d\n" % size)
    if not records:
        return _ustar(raw, size, b"0", mtime, mode)
    body = b""
    for record in records:
        length = len(record) + 2
        while len(b"%d %s" % (length, record)) != length:
            length += 1
        body += b"%d %s" % (length, record)
    pax_name = b"././@PaxHeader"
    head = _ustar(pax_name, len(body), b"x", mtime, mode) + body + padding(len(body))
    short = raw[-100:] if len(raw) > 100 else raw
    return head + _ustar(short, min(size, 8**11 - 1), b"0", mtime, mode)


def padding(size: int) -> bytes:
    """The zero bytes that pad a member of ``size`` bytes to a whole block."""
    return bytes(-size % BLOCK)
