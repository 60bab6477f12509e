"""TFRecord framing: find, check and cut records in a buffer, fast.

A TFRecord file is a sequence of records framed as::

    u64 length (little endian) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)

The hot path works on ``memoryview`` slices of a block buffer and keeps per-record Python work
to a minimum: a run of records of equal length (the common case for generated and fixed-size
data) is recognised with one strided NumPy comparison instead of one header parse per record,
payload views are cut one at a time as the consumer asks (so the same few objects and cache
lines are reused), and data CRCs are computed by ``crc32c`` (which takes any buffer, unlike
``google_crc32c``) and compared against the footers, unmasked for a whole block in one vectorised
step.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import crc32c
import numpy as np

from ..errors import IntegrityError
from ..io.buffers import BytesView
from .blocks import Window

__all__ = [
    "FOOTER",
    "HEADER",
    "OVERHEAD",
    "Segment",
    "frame_header",
    "iter_payloads",
    "masked_crc",
    "scan_windows",
]

HEADER = 12  #: bytes before the data: u64 length + u32 masked CRC of the length
FOOTER = 4  #: bytes after the data: u32 masked CRC of the data
OVERHEAD = HEADER + FOOTER

_MASK_DELTA = 0xA282EAD8
_LEN = struct.Struct("<Q")
_HDR = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_FOUR = np.arange(4)
_crc = crc32c.crc32c


def masked_crc(data: Any) -> int:
    """TFRecord's masked CRC32C of ``data`` (any buffer)."""
    crc = _crc(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_header(length: int) -> bytes:
    """The 12-byte header of a record of ``length`` bytes."""
    raw = _LEN.pack(length)
    return raw + struct.pack("<I", masked_crc(raw))


class _HeaderCRCs(dict[int, int]):
    """Masked CRCs of length fields, computed once per distinct length."""

    def __missing__(self, length: int) -> int:
        if len(self) > 65536:
            self.clear()
        value = self[length] = masked_crc(_LEN.pack(length))
        return value


def _run(win: memoryview, pos: int, end: int, length: int, hcrc: int, check: bool) -> int:
    """How many records of ``length`` bytes start at ``pos`` back to back and fit in ``end``.

    The record at ``pos`` is known to have this length. Probes the next 15 headers, then 64x
    more at a time, with strided views: a short run costs one small probe, a block of a
    thousand equal records two (NumPy's per-call cost, not the comparisons, is what counts;
    a probe past a run's end compares at most 64x that run's length in vain).
    """
    stride = length + OVERHEAD
    most = (end - pos) // stride
    done = 1
    while done < most:
        upto = min(most, done * 64 if done > 1 else 16)
        at = pos + done * stride
        same = np.ndarray((upto - done,), "<u8", win, at, (stride,)) == length
        if check:
            same &= np.ndarray((upto - done,), "<u4", win, at + 8, (stride,)) == hcrc
        first_odd = int(same.argmin())
        if not same[first_odd]:
            return done + first_odd
        done = upto
    return done


#: ``(first, count, length)``: ``count`` records of ``length`` data bytes back to back, the
#: first one's data at window offset ``first`` (the next ones every ``length + OVERHEAD``).
Segment = tuple[int, int, int]


def _scan(
    win: memoryview, pos: int, end: int, check: bool, hcrcs: _HeaderCRCs
) -> tuple[list[Segment], int, bool]:
    """Complete records in ``win[pos:end]``.

    Returns:
        ``(segments, pos, corrupt)``: the complete records as runs of equal length, where the
        first incomplete (or corrupt) record starts, and whether it is corrupt (its header CRC
        does not match; only with ``check``).
    """
    segments: list[Segment] = []
    add = segments.append
    unpack = _HDR.unpack_from
    limit = end - OVERHEAD
    while pos <= limit:
        length, hcrc = unpack(win, pos)
        if check and hcrc != hcrcs[length]:
            return segments, pos, True
        nxt = pos + length + OVERHEAD
        if nxt > end:
            break
        if nxt <= limit and unpack(win, nxt)[0] == length:
            run = _run(win, pos, end, length, hcrc, check)
            add((pos + HEADER, run, length))
            pos += run * (length + OVERHEAD)
            continue
        add((pos + HEADER, 1, length))
        pos = nxt
    return segments, pos, False


def _expected_crcs(win: memoryview, segments: list[Segment]) -> list[int]:
    """The unmasked data CRCs stored in the footers of every record (one vectorised pass, or
    a plain loop for a few records, where NumPy's per-call cost would dominate)."""
    if len(segments) <= 4 and sum(count for _, count, _ in segments) <= 8:
        out = []
        for first, count, length in segments:
            stride = length + OVERHEAD
            for end in range(first + length, first + count * stride, stride):
                x = (_FOOTER.unpack_from(win, end)[0] - _MASK_DELTA) & 0xFFFFFFFF
                out.append(((x << 15) | (x >> 17)) & 0xFFFFFFFF)
        return out
    table = np.array(segments, dtype=np.int64).reshape(-1, 3)
    firsts, counts, lengths = table[:, 0], table[:, 1], table[:, 2]
    total = int(counts.sum())
    ends: np.ndarray
    if total == len(table):
        ends = firsts + lengths
    else:
        run_of = np.repeat(np.arange(len(table)), counts)
        before = np.cumsum(counts) - counts
        step = np.arange(total) - before[run_of]
        ends = firsts[run_of] + lengths[run_of] + step * (lengths[run_of] + OVERHEAD)
    stored = np.frombuffer(win, np.uint8)[ends[:, None] + _FOUR].view("<u4").ravel()
    x = stored - np.uint32(_MASK_DELTA)
    return ((x << 15) | (x >> 17)).tolist()


def scan_windows(
    windows: Iterable[Window],
    *,
    uri: str,
    base: int = 0,
    check_header: bool = True,
    limit: Callable[[], int | None] | None = None,
    expect: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[memoryview, list[Segment], int]]:
    """Complete records of a stream delivered as windows.

    Args:
        windows: The stream's bytes as ``(buffer, start, end)`` windows (see
            :mod:`~s3dlio.formats.blocks`); a record cut by a window's end is carried into
            the next window's headroom, or, when the next window continues the same buffer (a
            memory map, :mod:`~s3dlio.formats.mapped`), read where it is.
        uri: Named in errors.
        base: Stream offset of the first window's first byte.
        check_header: Verify each length field's CRC.
        limit: Returns the stream's end offset once known (a record claiming to run past it
            is reported as truncated at once, without reading further).
        expect: ``callable(nbytes, headroom)`` told, once each window is parsed and before
            its records are yielded, what the next window must hold: ``headroom`` bytes of a
            record cut by the window's end, then ``nbytes`` more (the rest of that record and
            the next header; ``0`` when the cut record's size is not known yet)
            (``BlockSource.expect``).

    Yields:
        ``(window, segments, delta)``: the window as a memoryview, its complete records as
        :data:`Segment` runs, and ``delta`` such that a window offset ``o`` is stream offset
        ``o + delta``.

    Raises:
        IntegrityError: a corrupt length field, or the stream ends inside a record.
    """
    hcrcs = _HeaderCRCs()
    carry: memoryview | None = None
    at = base  # stream offset of the first byte not yet consumed
    last_buf: object = None  # the previous window's buffer, and its end
    last_hi = 0
    for buf, lo, hi in windows:
        if carry is not None:
            size = len(carry)
            if buf is last_buf and lo == last_hi:  # the same buffer, continued (a mapping;
                lo -= size  # a pooled buffer is never refilled while the carry views it)
            elif size <= lo:
                buf[lo - size : lo] = carry
                lo -= size
            else:  # a record longer than the headroom: join the pieces
                joined = BytesView.allocate(size + hi - lo)
                joined[:size] = carry
                joined[size:] = memoryview(buf)[lo:hi]
                buf, lo, hi = joined, 0, len(joined)
            carry = None
        win = memoryview(buf)
        segments, pos, corrupt = _scan(win, lo, hi, check_header, hcrcs)
        delta = at - lo
        at = pos + delta
        need, problem = _carried(win, pos, hi, at, uri, check_header, hcrcs, limit)
        if expect is not None and not corrupt and problem is None:
            # before the records are handed out, so that the next block can be on its way
            expect(need - (hi - pos) + HEADER if need else 0, hi - pos)
        if segments:
            yield win, segments, delta
        if corrupt:
            raise IntegrityError(
                "corrupt record header (length CRC mismatch)",
                uri=uri,
                op="GET",
                byte_range=(at, HEADER),
            )
        if problem is not None:
            raise problem
        carry = win[pos:hi]
        last_buf, last_hi = buf, hi
        del win
    if carry is not None and len(carry):
        need = _LEN.unpack_from(carry)[0] + OVERHEAD if len(carry) >= HEADER else HEADER
        raise _truncated(uri, at, need, len(carry))


def _carried(
    win: memoryview,
    pos: int,
    hi: int,
    at: int,
    uri: str,
    check: bool,
    hcrcs: _HeaderCRCs,
    limit: Callable[[], int | None] | None,
) -> tuple[int, IntegrityError | None]:
    """The framed size of the incomplete record at ``win[pos:hi]`` (0 if its header is cut),
    and the error it is known to cause (a corrupt header, or a record past the stream's end)."""
    if hi - pos < HEADER:
        return 0, None
    length, hcrc = _HDR.unpack_from(win, pos)
    if check and hcrc != hcrcs[length]:
        return 0, IntegrityError(
            "corrupt record header (length CRC mismatch)",
            uri=uri,
            op="GET",
            byte_range=(at, HEADER),
        )
    need = length + OVERHEAD
    end = limit() if limit is not None else None
    if end is not None and at + need > end:
        return need, _truncated(uri, at, need, end - at)
    return need, None


def _truncated(uri: str, at: int, need: int, have: int) -> IntegrityError:
    what = "record" if need > HEADER else "record header"
    return IntegrityError(
        f"truncated {what} at offset {at}: needs {need} bytes, only {have} remain",
        uri=uri,
        op="GET",
        byte_range=(at, need),
    )


def iter_payloads(
    windows: Iterable[Window],
    *,
    uri: str,
    verify: bool = True,
    base: int = 0,
    limit: Callable[[], int | None] | None = None,
    expect: Callable[[int, int], None] | None = None,
) -> Iterator[memoryview]:
    """Record payloads of a stream, as zero-copy views of its windows.

    With ``verify``, every length and data CRC is checked; the records before a bad one are
    yielded, then :class:`IntegrityError` names the URI and the bad record's offset.
    """
    crc = _crc
    for win, segments, delta in scan_windows(
        windows, uri=uri, base=base, check_header=verify, limit=limit, expect=expect
    ):
        if not verify:
            for first, count, length in segments:
                if count == 1:
                    yield win[first : first + length]
                    continue
                for start in range(first, first + count * (length + OVERHEAD), length + OVERHEAD):
                    yield win[start : start + length]
            continue
        wanted = iter(_expected_crcs(win, segments))
        for first, count, length in segments:
            stride = length + OVERHEAD
            for start, want in zip(
                range(first, first + count * stride, stride), wanted, strict=False
            ):
                view = win[start : start + length]
                if crc(view) != want:
                    offset = start - HEADER + delta
                    raise IntegrityError(
                        f"record at offset {offset} failed its data CRC32C check",
                        uri=uri,
                        op="GET",
                        byte_range=(offset, length + OVERHEAD),
                    )
                yield view
