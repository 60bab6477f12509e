"""Progress bars, live counters and the one-line summary every transfer command prints.

A :class:`Progress` counts bytes and objects (thread-safe: the library calls it from worker
threads) and, when drawing is on, mirrors the count into a tqdm bar on stderr showing bytes,
rate and ETA. Drawing is on only when stderr is a terminal and ``--quiet`` was not given; the
counting always happens, because the summary line and Ctrl-C handling need it.

A :class:`Progress` is also how a command is stopped: once :meth:`Progress.cancel` is called
(the Ctrl-C handler does it), the next call from a worker raises
:class:`~s3dlio.errors.CancelledError`, so the library aborts the objects in flight and no
partial object is left behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any

from ..errors import CancelledError

__all__ = ["Counter", "Progress", "human_bytes", "human_rate"]

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(n: float) -> str:
    """``n`` bytes in decimal units: ``512 B``, ``20.0 MB``, ``1.50 GB``."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_rate(nbytes: float, seconds: float) -> str:
    """Throughput in MB/s (decimal megabytes per second)."""
    return f"{nbytes / 1e6 / max(seconds, 1e-9):.1f} MB/s"


def _width(stream: IO[str]) -> dict[str, Any]:
    """tqdm's width options: follow the terminal, or 80 columns if it reports no size."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return {"dynamic_ncols": True} if columns > 0 else {"ncols": 80, "nrows": 24}


class Progress:
    """Bytes and objects moved by one command, with an optional bar and a final summary.

    Args:
        label: What the bar is for (``"upload"``, ``"get"``, ...), shown at its left.
        total_bytes: Bytes expected, if known (enables the percentage and ETA).
        total_objects: Objects expected, if known.
        draw: Whether to draw a bar (see :func:`s3dlio.cli.common.Context.progress`).
        stream: Where to draw and print (stderr).
    """

    def __init__(
        self,
        label: str,
        *,
        total_bytes: int | None = None,
        total_objects: int | None = None,
        draw: bool = False,
        stream: IO[str] | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.label = label
        self.total_objects = total_objects
        self.nbytes = 0
        self.objects = 0
        self.started = time.perf_counter()
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._cancelled = cancelled or threading.Event()
        self._bar: Any = None
        if draw:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_bytes,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                file=self._stream,
                mininterval=0.1,
                leave=True,
                **_width(self._stream),
            )
            self._show_objects()

    def __call__(self, nbytes: int, objects: int = 0) -> None:
        """Count ``nbytes`` more bytes and ``objects`` more finished objects.

        Raises:
            CancelledError: the command was cancelled (Ctrl-C); the caller stops its work.
        """
        if self._cancelled.is_set():
            raise CancelledError("interrupted", op=self.label.upper())
        with self._lock:
            self.nbytes += nbytes
            self.objects += objects
            if self._bar is not None:
                self._bar.update(nbytes)
                if objects:
                    self._show_objects()

    def _show_objects(self) -> None:
        total = f"/{self.total_objects}" if self.total_objects is not None else ""
        self._bar.set_postfix_str(f"{self.objects}{total} objects", refresh=False)

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return time.perf_counter() - self.started

    def cancel(self) -> None:
        """Make every later call raise ``CancelledError`` (idempotent, any thread)."""
        self._cancelled.set()

    def close(self) -> None:
        """Remove nothing, stop drawing: the bar's last state stays on screen."""
        with self._lock:
            if self._bar is not None:
                self._show_objects()
                self._bar.close()
                self._bar = None

    def summary(self, verb: str, objects: int | None = None, nbytes: int | None = None) -> str:
        """One line: ``<verb> 12 objects, 20.0 MB in 1.23 s (16.3 MB/s)``."""
        count = self.objects if objects is None else objects
        size = self.nbytes if nbytes is None else nbytes
        seconds = self.elapsed
        noun = "object" if count == 1 else "objects"
        return (
            f"{verb} {count} {noun}, {human_bytes(size)} in {seconds:.2f} s "
            f"({human_rate(size, seconds)})"
        )


class Counter:
    """A live item counter with a rate (``ls --count-only`` on a terminal).

    Args:
        unit: Name of the items (``"objects"``).
        draw: Whether to draw it on ``stream``.
        stream: Where to draw (stderr).
    """

    def __init__(self, unit: str, *, draw: bool, stream: IO[str] | None = None) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        if draw:
            from tqdm import tqdm

            out = stream or sys.stderr
            self._bar = tqdm(
                desc="listed",
                unit=f" {unit}",
                file=out,
                mininterval=0.1,
                **_width(out),
            )

    def add(self, n: int = 1) -> None:
        """Count ``n`` more items (thread-safe)."""
        with self._lock:
            self.count += n
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        """Stop drawing (the last state stays on screen)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
