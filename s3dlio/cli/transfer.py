"""Transfer commands: ``upload``, ``download`` and ``cp`` (any URI or path to any)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import s3dlio

from ..io.transfer import expand_local_sources
from .common import Context, UsageError, is_many, log, to_uri, totals
from .ray_cli import add_ray_option, run_cp_ray
from .streams import object_to_stream, stream_to_object

__all__ = ["register"]


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the transfer commands to the ``s3-cli`` subparsers."""
    p = sub.add_parser(
        "upload",
        parents=parents,
        help="upload local files below a URI prefix",
        description="Upload local files, directories (their whole tree), globs ('dir/**', "
        "'*.log') or regexes in the last path component ('/logs/.*\\.log$') below DEST, "
        "keeping paths relative to the directory before the first pattern.",
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="files, directories, globs, regexes")
    p.add_argument("dest", metavar="DEST", help="destination prefix URI")
    p.add_argument("--create-bucket", action="store_true", help="create the bucket if missing")
    p.set_defaults(func=run_upload)

    p = sub.add_parser(
        "download",
        parents=parents,
        help="download objects into a local directory",
        description="Download what SRC selects into DEST_DIR, keeping the key layout below "
        "SRC's directory. Recursive unless --no-recursive.",
    )
    p.add_argument("src", metavar="SRC", help="prefix, exact key or glob")
    p.add_argument("dest", metavar="DEST_DIR", help="local directory")
    p.add_argument(
        "-r",
        "--recursive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="everything below SRC (default), or only its top level",
    )
    p.add_argument("-p", "--pattern", metavar="REGEX", help="only keys this regex matches")
    p.set_defaults(func=run_download)

    p = sub.add_parser(
        "cp",
        parents=parents,
        help="copy between any two URIs or local paths",
        description="Copy objects between any two backends (streamed, no temp files). "
        "DST ending in '/' (or an existing directory) receives SRC's name. With -r, or a "
        "SRC ending in '/' or holding a glob, every selected object is copied. '-' as SRC "
        "reads stdin; '-' as DST writes to stdout.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("-r", "--recursive", action="store_true", help="copy everything below SRC")
    add_ray_option(p)
    p.set_defaults(func=run_cp)


def run_upload(args: argparse.Namespace, ctx: Context) -> int:
    """``upload``: local files to a prefix."""
    dest = to_uri(args.dest)
    nbytes = count = None
    if ctx.draw:
        files = [path for path, _ in expand_local_sources(args.sources)]
        nbytes, count = sum(os.path.getsize(f) for f in files), len(files)
    with ctx.transfer("upload", "uploaded", total_bytes=nbytes, total_objects=count) as p:
        done = ctx.client.upload(
            args.sources,
            dest,
            max_in_flight=ctx.jobs_or(32),
            create_bucket=args.create_bucket,
            progress=p,
        )
    for uri in done:
        log.info("uploaded %s", uri)
    return 0


def run_download(args: argparse.Namespace, ctx: Context) -> int:
    """``download``: objects to a local directory."""
    src = to_uri(args.src)
    target = s3dlio.parse_uri(args.dest, allow_bare=True)
    if not target.is_local:
        raise UsageError(f"{args.dest} is not a local directory (use `cp` between URIs)")
    nbytes = count = None
    if ctx.draw:
        nbytes, count = totals(src, args.recursive, args.pattern, ctx.client)
    with ctx.transfer("download", "downloaded", total_bytes=nbytes, total_objects=count) as p:
        done = ctx.client.download(
            src,
            target.key,
            max_in_flight=ctx.jobs_or(64),
            recursive=args.recursive,
            pattern=args.pattern,
            progress=p,
        )
    for path in done:
        log.info("downloaded %s", path)
    return 0


def run_cp(args: argparse.Namespace, ctx: Context) -> int:
    """``cp``: any to any; ``-`` is stdin (as SRC) or stdout (as DST)."""
    if args.src == "-" and args.dst == "-":
        raise UsageError("cp - - copies nothing")
    if getattr(args, "ray", None):
        return run_cp_ray(args, ctx)
    if args.src == "-":
        dst = to_uri(args.dst)
        if is_many(dst):
            raise UsageError("copying stdin needs an object name as DST, not a prefix")
        with ctx.transfer("cp", "copied", total_objects=1) as progress:
            stream_to_object(sys.stdin.buffer, dst, progress, ctx.client)
        return 0
    src = to_uri(args.src)
    many = args.recursive or is_many(src)
    if args.dst == "-":
        if many:
            raise UsageError(f"{args.src} selects many objects; stdout takes one")
        total = int(ctx.client.stat(src)["size"]) if ctx.draw else None
        with ctx.transfer("cp", "copied", total_bytes=total, total_objects=1) as progress:
            object_to_stream(src, sys.stdout.buffer, progress, ctx.client)
            sys.stdout.buffer.flush()
        return 0
    parsed = s3dlio.parse_uri(src)
    if not many and parsed.is_local and os.path.isdir(parsed.key):
        raise UsageError(f"{args.src} is a directory (use -r, or end it with '/')")
    nbytes = count = None
    if ctx.draw:
        nbytes, count = (
            totals(src, True, None, ctx.client) if many else (int(ctx.client.stat(src)["size"]), 1)
        )
    with ctx.transfer("cp", "copied", total_bytes=nbytes, total_objects=count) as progress:
        done = ctx.client.copy(
            src,
            to_uri(args.dst),
            recursive=args.recursive,
            max_in_flight=ctx.jobs_or(32),
            progress=progress,
        )
    for uri in done:
        log.info("copied %s", uri)
    return 0
