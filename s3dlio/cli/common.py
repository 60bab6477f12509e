"""What every subcommand shares: the run context, usage errors, URI and output helpers."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import s3dlio
from s3dlio.client import Client

from ..errors import BatchError
from ..io.listing import has_glob
from .progress import Counter, Progress

__all__ = ["Context", "UsageError", "is_many", "log", "print_lines", "to_uri", "totals"]

log = logging.getLogger("s3dlio.cli")


class UsageError(Exception):
    """The command line asks for something that cannot be done as written (exit code 2)."""


@dataclass(frozen=True)
class Context:
    """Global options and shared state of one ``s3-cli`` run.

    Attributes:
        jobs: ``-j``: objects in flight, or ``None`` for each command's default.
        quiet: ``-q``: no bars, no summary.
        verbose: ``-v`` count.
        draw: Whether bars may be drawn (stderr is a terminal and not quiet).
        op_log: ``--op-log`` path, if given.
        cancelled: Set on Ctrl-C; every :class:`Progress` of the run then stops its work.
        client: The :class:`s3dlio.Client` every command goes through (``--endpoint-url`` and
            ``--region`` build one; else the default client).
    """

    jobs: int | None = None
    quiet: bool = False
    verbose: int = 0
    draw: bool = False
    op_log: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    client: Client = field(default_factory=s3dlio.default_client)

    @classmethod
    def create(
        cls,
        jobs: int | None,
        quiet: bool,
        verbose: int,
        op_log: str | None = None,
        client: Client | None = None,
    ) -> Context:
        """The context for these options, drawing only when stderr is a terminal."""
        draw = not quiet and sys.stderr.isatty()
        return cls(
            jobs=jobs,
            quiet=quiet,
            verbose=verbose,
            draw=draw,
            op_log=op_log,
            client=client or s3dlio.default_client(),
        )

    def begin_op_log(self) -> None:
        """Start the ``--op-log`` (if any and not yet started); the front end closes it."""
        if self.op_log and not s3dlio.is_op_log_active():
            s3dlio.init_op_log(self.op_log)

    def jobs_or(self, default: int) -> int:
        """``-j`` if given, else ``default``."""
        return self.jobs if self.jobs is not None else default

    def progress(
        self, label: str, *, total_bytes: int | None = None, total_objects: int | None = None
    ) -> Progress:
        """A :class:`Progress` for one transfer, stopped by Ctrl-C like every other."""
        return Progress(
            label,
            total_bytes=total_bytes,
            total_objects=total_objects,
            draw=self.draw,
            cancelled=self.cancelled,
        )

    @contextmanager
    def transfer(
        self,
        label: str,
        verb: str,
        *,
        total_bytes: int | None = None,
        total_objects: int | None = None,
        to_stdout: bool = False,
    ) -> Iterator[Progress]:
        """A :class:`Progress` for the block, closed at its end, then the summary line.

        The summary (``<verb> N objects, ... MB/s``) is printed when the block succeeds or
        fails only partly (``BatchError``); on stderr unless ``--quiet``, or on stdout when
        it is the command's result (``to_stdout``, always printed).
        """
        progress = self.progress(label, total_bytes=total_bytes, total_objects=total_objects)
        finished = False
        try:
            yield progress
            finished = True
        except BatchError:
            finished = True
            raise
        finally:
            progress.close()
            if finished and to_stdout:
                print(progress.summary(verb), flush=True)
            elif finished:
                self.report(progress.summary(verb))

    def counter(self, unit: str) -> Counter:
        """A live counter (drawn only on a terminal)."""
        return Counter(unit, draw=self.draw)

    def report(self, line: str) -> None:
        """Print a summary line on stderr unless ``--quiet``."""
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)


def to_uri(text: str) -> str:
    """A URI from a command-line argument: bare local paths become ``file://`` URIs.

    A trailing ``/`` is kept (it means "the directory").
    """
    return str(s3dlio.parse_uri(text, allow_bare=True))


def is_many(uri: str) -> bool:
    """Whether ``uri`` names a directory/prefix or a glob rather than one object."""
    key = s3dlio.parse_uri(uri).key
    return key == "" or key.endswith("/") or has_glob(key)


def totals(uri: str, recursive: bool, pattern: str | None, client: Client) -> tuple[int, int]:
    """``(bytes, objects)`` that ``uri`` selects, from one streamed listing."""
    nbytes = count = 0
    for entry in client.list_iter(uri, recursive=recursive, pattern=pattern, detail=True):
        if not entry["is_dir"]:
            nbytes += int(entry["size"] or 0)
            count += 1
    return nbytes, count


def print_lines(lines: Iterable[str]) -> None:
    """Write lines to stdout."""
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()
