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
:func:`iter_samples` is the two in one pass per window, the path
:class:`~s3dlio.datasets.streaming.StreamingDataset` takes: each member's header is read once
(its fields with one ``struct`` unpack, its checksum summed in C by ``zlib.adler32``) and its
data copied once into the ``bytes`` of its sample: about 5 µs of CPU per two-file sample on
the benchmark machine, a ninth of the ``webdataset`` package's ``tarfile`` path
(``benchmarks/tar_layers.py``; ``docs/performance.md``, "Streaming shard datasets").

Writing: :func:`member_header` (ustar, with a pax header for long names or large sizes) and
:func:`padding`; :class:`~s3dlio.formats.shards.ShardWriter` writes whole shards.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple
from zlib import adler32

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
    "iter_samples",
    "member_header",
    "padding",
    "split_key",
]

BLOCK = 512  #: tar's block size: headers and padded member data
END_OF_ARCHIVE = bytes(2 * BLOCK)  #: two zero blocks end an archive

_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_SKIP_META = re.compile(r"__[^/]*__($|/)")  # webdataset's default skip_meta
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR_FLAGS = frozenset(b"0\x007")  # type flags of regular files ("0", NUL, "7")
_PAX = frozenset(b"xX")  # pax extended header of the next member
_IGNORED = frozenset(b"gK")  # global pax header, GNU long link name
_GNU = frozenset(b"LKS")  # GNU entries, whose header has no ustar prefix field
_ENDS = frozenset(b"\0 ")  # what ends a numeric field
_ERRORS = "surrogateescape"
_BATCH = 16  # members per batch: handed on while in the CPU cache, and no part's worth held
#: name, size digits, what ends them, checksum digits, the two bytes after them, type flag
_FIELDS = struct.Struct("100s24x11sB12x6sBBB")


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


def _header(
    header: bytes | bytearray, uri: str, at: int, pax: dict[str, str] | None
) -> tuple[int, int, bytes]:
    """``(size, type flag, name)`` of a complete, non-zero header block, all checks done.

    The general (slow) path: the scanner's inline fast path handles the common headers and
    falls back here whenever anything is unusual.
    """
    raw = bytes(header)
    if not _checksum_ok(raw, _number(raw[148:156], uri, at)):
        raise _corrupt(uri, at, "checksum mismatch")
    size = int(pax["size"]) if pax and "size" in pax else _number(raw[124:136], uri, at)
    if size < 0:
        raise _corrupt(uri, at, f"negative size {size}")
    name = raw[0:100].split(b"\0", 1)[0]
    prefix = raw[345:500].split(b"\0", 1)[0]
    if prefix and raw[156] not in _GNU:
        name = prefix + b"/" + name
    return size, raw[156], name


def _scan(
    windows: Iterable[Window],
    uri: str,
    base: int = 0,
    expect: Callable[[int, int], None] | None = None,
) -> Iterator[list[tuple[str, bytes, int]]]:
    """The regular files of a tar stream, as lists of ``(path, data, offset)`` (up to
    ``_BATCH`` members each, and the members of a window never wait for its end).

    One pass over each window: a member whose header and data lie in the window is parsed
    where it is (its data copied out once, as ``bytes``); the header and checksum of the
    usual ustar member are checked inline (``zlib.adler32`` sums the block in C; the exact
    Python sum runs only for headers with non-ASCII bytes), anything unusual goes through
    :func:`_header`. A member cut by a window's end is carried into the next window's
    headroom (the :data:`~s3dlio.formats.blocks.Window` protocol, as
    :func:`~s3dlio.formats.framing.scan_windows` does), or read in place when the next window
    continues the same buffer, or joined with it when it is larger than the headroom.
    """
    adler = adler32
    fields = _FIELDS.unpack_from
    zero = _ZERO_BLOCK
    regular = _REGULAR_FLAGS
    long_name: str | None = None
    pax: dict[str, str] | None = None
    carry: memoryview | None = None
    skip = 0  # padding of the last member still to skip at the next window's start
    total = base  # stream offset of the next window's first byte
    last_buf: object = None
    last_hi = 0
    for buf, lo, hi in windows:
        delta = total - lo  # stream offset of buffer index i: i + delta
        total += hi - lo
        if skip:
            take = min(skip, hi - lo)
            lo += take
            skip -= take
        if carry is not None:
            size = len(carry)
            if buf is last_buf and lo == last_hi:  # the same buffer, continued (a mapping)
                lo -= size
            elif size <= lo:
                buf[lo - size : lo] = carry
                lo -= size
            else:  # a member longer than the headroom: join the pieces
                joined = BytesView.allocate(size + hi - lo)
                joined[:size] = carry
                joined[size:] = memoryview(buf)[lo:hi]
                buf, delta, lo, hi = joined, delta + lo - size, 0, len(joined)
            carry = None
        view = memoryview(buf)
        out: list[tuple[str, bytes, int]] = []
        p = lo
        finished = False
        try:
            while p + BLOCK <= hi:
                header = buf[p : p + BLOCK]
                name, digits, ends, stored_digits, nul, last, kind = fields(header)
                stored = -1
                if nul == 0 and header.isascii():  # "%06o\0 ": the usual checksum field
                    try:
                        stored = int(stored_digits, 8)
                    except ValueError:
                        pass
                # ASCII bytes sum to less than 65521, so adler32's low half is 1 + their exact sum;
                # the checksum field counts as eight spaces
                if stored >= 0 and (
                    (adler(header) & 0xFFFF) - (adler(stored_digits) & 0xFFFF) - last + 256
                    == stored
                ):
                    try:  # "%011o\0" (or " ") as usual, else the general parse
                        size = int(digits, 8) if ends in _ENDS and pax is None else -1
                    except ValueError:
                        size = -1
                    if size < 0:
                        size = _header(header, uri, p + delta, pax)[0]
                    cut = name.find(0)
                    if cut >= 0:
                        name = name[:cut]
                    if header[345] and kind not in _GNU:
                        name = header[345:500].split(b"\0", 1)[0] + b"/" + name
                elif header[0] == 0 and header == zero:
                    finished = True  # end-of-archive marker
                    break
                else:
                    size, kind, name = _header(header, uri, p + delta, pax)
                end = p + BLOCK + size
                if end > hi:  # cut by the window's end: carried into the next one
                    break
                at = p + delta
                p = end + (-size % BLOCK)
                if kind in regular:
                    path = (pax and pax.get("path")) or long_name or name.decode("utf-8", _ERRORS)
                    long_name = pax = None
                    if kind or not name.endswith(b"/"):  # "name/" with flag NUL: a directory
                        out.append((path, bytes(view[end - size : end]), at))
                        if len(out) >= _BATCH:  # handed on while their bytes are in the cache
                            yield out
                            out = []
                elif kind in _PAX:
                    pax = _pax(view[end - size : end])
                elif kind == 76:  # "L": the GNU long name of the next member
                    long_name = (
                        bytes(view[end - size : end]).split(b"\0", 1)[0].decode("utf-8", _ERRORS)
                    )
                elif kind not in _IGNORED:  # "g" (global pax) and "K" (long link) change nothing
                    long_name = pax = None
        except IntegrityError:  # what came before the bad header is good
            if out:
                yield out
            raise
        if finished:
            if out:
                yield out
            return
        if p >= hi:
            skip = p - hi
        else:
            carry = view[p:hi]
            if expect is not None:
                expect(_rest(carry, pax), len(carry))
        last_buf, last_hi = buf, hi
        del view
        if out:
            yield out
    if carry is not None and len(carry):
        at = total - len(carry)
        if len(carry) < BLOCK:
            raise _truncated(uri, at, "header", BLOCK, len(carry))
        header = bytes(carry[:BLOCK])
        if header == zero:
            return
        size, kind, name = _header(header, uri, at, pax)
        error = _truncated(uri, at, "member", BLOCK + size, len(carry))
        if kind in regular:
            error.member = (  # type: ignore[attr-defined]
                (pax and pax.get("path")) or long_name or name.decode("utf-8", "surrogateescape")
            )
        raise error


def _rest(carry: memoryview, pax: dict[str, str] | None) -> int:
    """Bytes the next window must hold after a cut member's ``carry``: the rest of it and the
    next header (0 while its header is incomplete, or unusual)."""
    if len(carry) < BLOCK:
        return 0
    try:
        size = int(pax["size"]) if pax and "size" in pax else int(bytes(carry[124:135]), 8)
    except ValueError:
        return 0
    return max(0, BLOCK + size + (-size % BLOCK) - len(carry)) + BLOCK


def iter_members(windows: Iterable[Window], *, uri: str, base: int = 0) -> Iterator[TarMember]:
    """The regular files of a tar stream, in archive order.

    Directories, links and other non-regular entries are skipped (as ``webdataset`` does).
    The archive ends at its end-of-archive marker or at the end of the stream.

    Raises:
        IntegrityError: a header's checksum is wrong, or the stream ends inside a header or a
            member's data (naming ``uri`` and the offset).
    """
    for batch in _scan(windows, uri, base):
        for path, data, at in batch:
            yield TarMember(path, data, at)


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


def _group(
    batches: Iterable[Sequence[tuple[str, bytes, int]]], url: str
) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """Samples of a shard's ``(path, data, offset)`` members, as ``(samples, offsets)`` lists:
    those completed by each batch of members (see :func:`group_samples`)."""
    sample: dict[str, Any] | None = None
    key: str | None = None
    first = 0
    source = iter(batches)
    while True:
        try:
            batch = next(source)
        except StopIteration:
            break
        except IntegrityError as exc:
            cut = split_key(getattr(exc, "member", "") or "")
            if sample is not None and cut is not None and cut[0] != key:
                yield [sample], [first]
            raise
        samples: list[dict[str, Any]] = []
        offsets: list[int] = []
        for name, data, at in batch:
            if "__" in name and _skipped(name):
                continue
            slash = name.rfind("/")
            dot = name.find(".", slash + 1)
            if dot > slash + 1:  # what webdataset's regex finds, without running it
                stem, ext = name[:dot], name[dot + 1 :].lower()
            else:
                parts = split_key(name)
                if parts is None:
                    continue
                stem, ext = parts[0], parts[1].lower()
            if stem != key or sample is None:
                if sample is not None:
                    samples.append(sample)
                    offsets.append(first)
                sample = {"__key__": stem, "__url__": url}
                key, first = stem, at
            elif ext in sample:
                if samples:
                    yield samples, offsets
                raise IntegrityError(
                    f"duplicate file {name!r} in sample {stem!r} at offset {at}",
                    uri=url,
                    op="GET",
                    byte_range=(at, BLOCK),
                )
            sample[ext] = data
        if samples:
            yield samples, offsets
    if sample is not None:
        yield [sample], [first]


def group_samples(
    members: Iterable[TarMember], *, url: str
) -> Iterator[tuple[dict[str, Any], int]]:
    """WebDataset samples of one shard's members, with the offset of each sample's first member.

    When the members end in an error, the sample being assembled is yielded first if the
    error names a member of another sample (it is complete then), and dropped otherwise.

    Raises:
        IntegrityError: one sample holds two files with the same extension, or the members'.
    """
    for samples, offsets in _group(([m] for m in members), url):
        yield from zip(samples, offsets, strict=True)


def iter_samples(
    windows: Iterable[Window],
    *,
    uri: str,
    url: str | None = None,
    expect: Callable[[int, int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The WebDataset samples of a tar stream: :func:`group_samples` of :func:`iter_members`,
    parsed a window at a time (the fast path of a streamed shard).

    Args:
        windows: The shard's bytes.
        uri: Named in errors.
        url: The samples' ``"__url__"`` (default: ``uri``).
        expect: Told what the next window must hold when a member is cut by a window's end
            (``BlockSource.expect``'s protocol).

    Raises:
        IntegrityError: as :func:`iter_members` and :func:`group_samples`.
    """
    for samples, _ in _group(_scan(windows, uri, 0, expect), uri if url is None else url):
        yield from samples


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
