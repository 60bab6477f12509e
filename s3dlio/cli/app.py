"""The ``s3-cli`` front end: argument parsing, global options, errors and exit codes.

Exit codes: 0 success; 1 an operation failed (for many-object commands, some objects failed:
each is named on stderr); 2 the command line is wrong (argparse's own code); 130 interrupted
(Ctrl-C), after the transfers in flight were aborted, leaving no partial object.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence

import s3dlio

from ..errors import BatchError, InvalidArgumentError, S3DlioError
from . import buckets, objects, tools, transfer
from .common import Context, UsageError

__all__ = ["PROG", "build_parser", "main"]

PROG = "s3-cli"

_EPILOG = """\
URIs: s3://bucket/key, s3://host:port/bucket/key, az://account/container/key, gs://bucket/key,
file:///path, direct:///path, or a bare local path. Sizes: 4096, 64KiB, 20MiB, 1GB.
Global options may come before or after the command. See docs/cli.md."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``s3-cli`` parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("global options")
    sup = argparse.SUPPRESS  # so a subcommand's copy never overwrites the top-level value
    g.add_argument("--endpoint-url", metavar="URL", default=sup, help="S3 endpoint URL")
    g.add_argument("--region", default=sup, help="S3 region")
    g.add_argument(
        "--endpoints",
        metavar="URI,URI,...",
        default=sup,
        help="balance requests over these endpoints holding the same data, with failover "
        "(e.g. s3://10.0.0.1:9000/bucket/,s3://10.0.0.2:9000/bucket/)",
    )
    g.add_argument(
        "--strategy",
        choices=("round_robin", "least_connections"),
        default=sup,
        help="how --endpoints are balanced (default round_robin)",
    )
    g.add_argument(
        "--op-log", metavar="FILE", default=sup, help="log every storage request to FILE (zstd TSV)"
    )
    g.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        metavar="N",
        default=sup,
        help="objects (or replayed operations) in flight",
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=sup,
        help="more logging (-vv: debug and tracebacks)",
    )
    g.add_argument(
        "-q", "--quiet", action="store_true", default=sup, help="no progress bars or summary lines"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fast object storage from the command line: S3, Azure, GCS, file, direct.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s (s3dlio) {s3dlio.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (objects, transfer, buckets, tools):
        module.register(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None, *, client: s3dlio.Client | None = None) -> int:
    """Run ``s3-cli`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Commands go through ``client`` when given (embedding the CLI in a program), else through
    the default client, which ``--endpoint-url`` / ``--region`` configure.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    _setup_logging(verbose)
    op_log = getattr(args, "op_log", None)
    try:
        if client is None:
            _configure_s3(getattr(args, "endpoint_url", None), getattr(args, "region", None))
        endpoints = getattr(args, "endpoints", None)
        if endpoints:
            from s3dlio.io.multi import create_multi_endpoint_store

            uris = [u.strip() for u in endpoints.split(",") if u.strip()]
            strategy = getattr(args, "strategy", None)
            client = create_multi_endpoint_store(uris, strategy, client=client).client
    except S3DlioError as exc:
        _error(str(exc))
        return 2
    ctx = Context.create(
        getattr(args, "jobs", None), getattr(args, "quiet", False), verbose, op_log, client
    )
    try:
        if not getattr(args, "starts_op_log", False):  # else the command starts it itself
            ctx.begin_op_log()
        return int(args.func(args, ctx))
    except KeyboardInterrupt:
        ctx.cancelled.set()  # workers still running stop at their next progress report
        _error("interrupted")
        return 130
    except BrokenPipeError:  # `s3-cli ls ... | head`: the reader left; that is fine
        _silence_stdout()
        return 0
    except UsageError as exc:
        print(
            f"{PROG} {args.command}: error: {exc} (see {PROG} {args.command} -h)", file=sys.stderr
        )
        return 2
    except BatchError as exc:
        failed = list(_flatten(exc.failures))
        _error(f"{len(failed)} {'object' if len(failed) == 1 else 'objects'} failed")
        for uri, cause in failed:
            print(f"{PROG}: failed: {_describe(uri, cause)}", file=sys.stderr)
        _trace(verbose)
        return 1
    except InvalidArgumentError as exc:
        _error(str(exc))
        _trace(verbose)
        return 2
    except (S3DlioError, OSError, ImportError) as exc:
        _error(str(exc) or type(exc).__name__)
        _trace(verbose)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with -vv
        hint = "" if verbose >= 2 else " (run with -vv for the traceback)"
        _error(f"internal error: {type(exc).__name__}: {exc}{hint}")
        _trace(verbose)
        return 1
    finally:
        if op_log:
            s3dlio.finalize_op_log()
        sys.stderr.flush()


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _trace(verbose: int) -> None:
    if verbose >= 2:
        traceback.print_exc(file=sys.stderr)


def _describe(uri: str, cause: BaseException) -> str:
    text = str(cause) or type(cause).__name__
    return text if uri in text else f"{uri}: {text}"


def _flatten(failures: list[tuple[str, BaseException]]) -> Iterator[tuple[str, BaseException]]:
    for uri, cause in failures:
        if isinstance(cause, BatchError):
            yield from _flatten(cause.failures)
        else:
            yield uri, cause


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _setup_logging(verbose: int) -> None:
    if verbose <= 0:
        return
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose >= 3 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("s3dlio").setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


def _configure_s3(endpoint_url: str | None, region: str | None) -> None:
    """Apply ``--endpoint-url``/``--region`` to the default client before the first request."""
    if endpoint_url is not None or region is not None:
        s3dlio.configure(endpoint_url=endpoint_url, region=region)
