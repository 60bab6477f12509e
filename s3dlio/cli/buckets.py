"""Bucket commands: ``list-buckets``, ``create-bucket``/``mb``, ``delete-bucket``/``rb``.

A bare name means an S3 bucket (``mb data`` = ``mb s3://data``); any URI names a bucket or
container on its backend (``az://account/container``, ``gs://bucket``; ``file:///path`` is a
directory).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BatchError, S3DlioError
from .common import Context, print_lines

__all__ = ["register"]


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the bucket commands to the ``s3-cli`` subparsers."""
    p = sub.add_parser(
        "list-buckets",
        parents=parents,
        help="list buckets or containers",
        description="List the buckets (containers) visible through URI's account or "
        "endpoint: s3:// (default), az://account/, gs://, or file:///dir/ (its directories).",
    )
    p.add_argument("uri", nargs="?", default="s3://", metavar="URI")
    p.set_defaults(func=run_list_buckets)

    p = sub.add_parser("create-bucket", aliases=["mb"], parents=parents, help="create buckets")
    p.add_argument("names", nargs="+", metavar="NAME_OR_URI")
    p.set_defaults(func=run_make_buckets)

    p = sub.add_parser(
        "delete-bucket", aliases=["rb"], parents=parents, help="delete empty buckets"
    )
    p.add_argument("names", nargs="+", metavar="NAME_OR_URI")
    p.set_defaults(func=run_remove_buckets)


def run_list_buckets(args: argparse.Namespace, ctx: Context) -> int:
    """``list-buckets``: one bucket URI per line."""
    print_lines(ctx.client.list_containers(args.uri))
    return 0


def run_make_buckets(args: argparse.Namespace, ctx: Context) -> int:
    """``mb``: create each bucket; failures are named at the end."""
    return _each(args.names, ctx.client.create_bucket, "CREATE_BUCKET", "created", ctx)


def run_remove_buckets(args: argparse.Namespace, ctx: Context) -> int:
    """``rb``: delete each (empty) bucket; failures are named at the end."""
    return _each(args.names, ctx.client.delete_bucket, "DELETE_BUCKET", "deleted", ctx)


def _each(names: list[str], fn: Any, op: str, verb: str, ctx: Context) -> int:
    failures: list[tuple[str, BaseException]] = []
    for name in names:
        try:
            fn(name)
        except S3DlioError as exc:
            failures.append((name, exc))
        else:
            ctx.report(f"{verb} {name}")
    if failures:
        raise BatchError(op, failures=failures, succeeded=len(names) - len(failures))
    return 0
