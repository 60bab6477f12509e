"""``s3-cli cp --ray ADDRESS`` and ``s3-cli put --ray ADDRESS``: the work spread over the tasks
of a Ray cluster (:func:`s3dlio.ray.copy_prefix`, :func:`s3dlio.ray.put_prefix`).

The command connects to the cluster as a Ray driver (``ray.init(address=ADDRESS)``; ``auto``
finds a cluster started on this machine), sends its client (``--endpoint-url`` and ``--region``
included) to the tasks, draws progress as tasks finish and disconnects at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from .common import Context, UsageError, is_many, to_uri, totals

__all__ = ["add_ray_option", "run_cp_ray", "run_put_ray"]


def add_ray_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--ray ADDRESS`` to a subcommand."""
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="spread the work over the tasks of the Ray cluster at ADDRESS "
        "(host:port of its head, or 'auto'); needs s3dlio[ray]",
    )


@contextlib.contextmanager
def _connected(address: str) -> Iterator[Any]:
    try:
        import ray

        import s3dlio.ray as s3ray
    except ImportError as exc:
        raise UsageError(
            f"--ray needs Ray Data: pip install 's3dlio[ray]' ({exc.name or exc})"
        ) from None
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield s3ray
    finally:
        ray.shutdown()


def _tell(ctx: Context, report: Any) -> None:
    nodes = len(report.nodes)
    ctx.report(
        f"ran {report.tasks} Ray {'task' if report.tasks == 1 else 'tasks'} on {nodes} Ray "
        f"{'node' if nodes == 1 else 'nodes'}"
        + (f" ({report.retried} objects retried)" if report.retried else "")
    )


def run_cp_ray(args: argparse.Namespace, ctx: Context) -> int:
    """``cp --ray``: every object below SRC to DST, in groups, one per Ray task."""
    if args.src == "-" or args.dst == "-":
        raise UsageError("--ray copies objects between URIs, not stdin/stdout")
    src, dst = to_uri(args.src), to_uri(args.dst)
    if not (args.recursive or is_many(src)):
        raise UsageError("--ray copies many objects: give a prefix ending in '/', a glob, or -r")
    if not is_many(src):
        src += "/"
    with _connected(args.ray) as s3ray:
        nbytes = count = None
        if ctx.draw:
            nbytes, count = totals(src, True, None, ctx.client)
        with ctx.transfer("cp", "copied", total_bytes=nbytes, total_objects=count) as progress:
            report = s3ray.copy_prefix(
                src, dst, client=ctx.client, progress=progress, max_in_flight=ctx.jobs_or(16)
            )
    _tell(ctx, report)
    return 0


def run_put_ray(args: argparse.Namespace, ctx: Context, prefix: str, size: int) -> int:
    """``put --ray``: the synthetic objects made by Ray tasks."""
    with (
        _connected(args.ray) as s3ray,
        ctx.transfer("put", "put", total_bytes=size * args.num, total_objects=args.num) as p,
    ):
        report = s3ray.put_prefix(
            prefix,
            args.num,
            size,
            template=args.template,
            object_type=args.object_type,
            dedup_factor=args.dedup,
            compress_factor=args.compress,
            data_gen_mode=args.data_gen_mode,
            should_create_bucket=args.create_bucket,
            max_in_flight=ctx.jobs_or(16),
            progress=p,
            client=ctx.client,
        )
    _tell(ctx, report)
    return 0
