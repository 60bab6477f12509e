"""Object commands: ``ls``/``list``, ``stat``, ``get``, ``put`` and ``rm``/``delete``."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

import s3dlio

from ..errors import BatchError, IsDirectoryError, S3DlioError
from ..formats.generate import DATA_GEN_MODES, object_types
from ..io.transfer import run_batch
from .common import Context, UsageError, is_many, log, print_lines, to_uri, totals
from .progress import human_bytes
from .ray_cli import add_ray_option, run_put_ray
from .streams import object_to_stream

__all__ = ["register"]


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the object commands to the ``s3-cli`` subparsers."""
    p = sub.add_parser(
        "ls",
        aliases=["list"],
        parents=parents,
        help="list objects under a URI",
        description="List the objects (and, without -r, the sub-directories) a URI selects: "
        "a prefix ending in '/', one exact key, or a glob ('*', '**').",
    )
    p.add_argument("uri", help="URI or local path (globs allowed)")
    p.add_argument("-r", "--recursive", action="store_true", help="list everything below")
    p.add_argument("-p", "--pattern", metavar="REGEX", help="keep keys this regex matches")
    p.add_argument("-l", "--long", action="store_true", help="show date and size")
    p.add_argument("-H", "--human", action="store_true", help="human sizes with --long")
    p.add_argument("--count-only", action="store_true", help="print only how many entries")
    p.set_defaults(func=run_ls)

    p = sub.add_parser("stat", parents=parents, help="show an object's metadata")
    p.add_argument("uris", nargs="+", metavar="URI")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run_stat)

    p = sub.add_parser(
        "get",
        parents=parents,
        help="fetch objects to a file, stdout, or nowhere (--bench)",
        description="Save one object (-o FILE, -o - for stdout; default ./NAME), or read "
        "objects and discard them, reporting throughput (--bench; a prefix or glob reads "
        "every object it selects, -j at a time).",
    )
    p.add_argument("uri")
    p.add_argument("-o", "--output", metavar="FILE", help="where to save ('-' = stdout)")
    p.add_argument("--bench", action="store_true", help="read and discard; report throughput")
    p.add_argument("-r", "--recursive", action="store_true", help="with --bench: below a prefix")
    p.add_argument("-p", "--pattern", metavar="REGEX", help="with --bench: keys to read")
    p.set_defaults(func=run_get)

    p = sub.add_parser(
        "put",
        parents=parents,
        help="create synthetic objects",
        description="Generate NUM objects of SIZE bytes below PREFIX, named by TEMPLATE "
        "(formatted with the object's index and NUM).",
    )
    p.add_argument("prefix")
    p.add_argument("-n", "--num", type=int, default=1, help="objects to create (default 1)")
    p.add_argument("-s", "--size", default="20MiB", help="bytes per object (default 20MiB)")
    p.add_argument("-t", "--template", default="object_{}_of_{}.dat", help="object names")
    p.add_argument("-o", "--object-type", choices=object_types(), default="raw")
    p.add_argument("-d", "--dedup", type=int, default=1, help="deduplication factor")
    p.add_argument("-x", "--compress", type=int, default=1, help="compression factor")
    p.add_argument("--data-gen-mode", choices=DATA_GEN_MODES, default="streaming")
    p.add_argument("--create-bucket", action="store_true", help="create the bucket first")
    add_ray_option(p)
    p.set_defaults(func=run_put)

    p = sub.add_parser(
        "rm",
        aliases=["delete"],
        parents=parents,
        help="delete objects",
        description="Delete exactly the keys given; with -r everything below them (and "
        "with -p only the keys the regex matches). A directory without -r is refused.",
    )
    p.add_argument("uris", nargs="+", metavar="URI")
    p.add_argument("-r", "--recursive", action="store_true", help="delete everything below")
    p.add_argument("-p", "--pattern", metavar="REGEX", help="with -r: only matching keys")
    p.add_argument("-f", "--force", action="store_true", help="a missing key is not an error")
    p.set_defaults(func=run_rm)


# -- ls ----------------------------------------------------------------------------------------


def run_ls(args: argparse.Namespace, ctx: Context) -> int:
    """``ls``: one URI per line, or ``--long`` lines, or ``--count-only``.

    A URI that is only a scheme (``s3://``, ``az://``, ``gs://``) lists the buckets.
    """
    if re.fullmatch(r"[A-Za-z0-9]+://", args.uri):
        print_lines(ctx.client.list_containers(args.uri))
        return 0
    uri = to_uri(args.uri)
    if args.count_only:
        counter = ctx.counter("objects")
        try:
            for _ in ctx.client.list_iter(uri, recursive=args.recursive, pattern=args.pattern):
                counter.add()
        finally:
            counter.close()
        print(counter.count, flush=True)
        return 0
    if args.long:
        entries = ctx.client.list_iter(
            uri, recursive=args.recursive, pattern=args.pattern, detail=True
        )
        print_lines(_long_line(entry, args.human) for entry in entries)
    else:
        print_lines(ctx.client.list_iter(uri, recursive=args.recursive, pattern=args.pattern))
    return 0


def _long_line(entry: dict[str, Any], human: bool) -> str:
    if entry["is_dir"]:
        return f"{'':19}  {'DIR':>12}  {entry['uri']}"
    stamp = (entry["last_modified"] or "")[:19].replace("T", " ")
    size = human_bytes(entry["size"]) if human else str(entry["size"])
    return f"{stamp:19}  {size:>12}  {entry['uri']}"


# -- stat --------------------------------------------------------------------------------------

_STAT_FIELDS = ("uri", "size", "last_modified", "etag", "content_type", "metadata")


def run_stat(args: argparse.Namespace, ctx: Context) -> int:
    """``stat``: metadata of each URI; the missing ones are named at the end (exit 1)."""
    failures: list[tuple[str, BaseException]] = []
    done = 0
    for text in args.uris:
        uri = to_uri(text)
        try:
            meta = ctx.client.stat(uri)
        except S3DlioError as exc:
            failures.append((uri, exc))
            continue
        done += 1
        if args.json:
            print(json.dumps(meta, default=str, sort_keys=True), flush=True)
        else:
            print_lines(_stat_lines(meta))
    if failures:
        raise BatchError("HEAD", failures=failures, succeeded=done)
    return 0


def _stat_lines(meta: dict[str, Any]) -> list[str]:
    lines = []
    for name in _STAT_FIELDS:
        value = meta.get(name)
        if name == "size":
            value = f"{value} ({human_bytes(int(value or 0))})"
        elif name == "metadata":
            value = json.dumps(value or {}, sort_keys=True)
        lines.append(f"{name + ':':15}{'' if value is None else value}".rstrip())
    return lines


# -- get ---------------------------------------------------------------------------------------


def run_get(args: argparse.Namespace, ctx: Context) -> int:
    """``get``: save one object, stream it to stdout, or benchmark reading objects."""
    uri = to_uri(args.uri)
    many = is_many(uri) or args.recursive or args.pattern is not None
    if args.bench:
        if args.output is not None:
            raise UsageError("--bench discards what it reads; drop -o")
        return _bench(uri, args, ctx) if many else _bench_one(uri, ctx)
    if many:
        raise UsageError(f"{args.uri} selects many objects: use `download`, or `get --bench`")
    total = _size_if(ctx.draw, uri, ctx)
    if args.output == "-":
        with ctx.transfer("get", "got", total_bytes=total, total_objects=1) as progress:
            object_to_stream(uri, sys.stdout.buffer, progress, ctx.client)
            sys.stdout.buffer.flush()
        return 0
    target = args.output or s3dlio.parse_uri(uri).name
    if not target:
        raise UsageError(f"{args.uri} has no object name; give -o FILE")
    with ctx.transfer("get", "got", total_bytes=total, total_objects=1) as progress:
        saved = ctx.client.copy(uri, to_uri(target), progress=progress)
    log.info("saved %s", saved[0])
    return 0


def _size_if(wanted: bool, uri: str, ctx: Context) -> int | None:
    return int(ctx.client.stat(uri)["size"]) if wanted else None


def _bench_one(uri: str, ctx: Context) -> int:
    total = _size_if(ctx.draw, uri, ctx)
    with ctx.transfer("read", "read", total_bytes=total, total_objects=1, to_stdout=True) as p:
        p(len(ctx.client.get(uri)), 1)
    return 0


def _bench(uri: str, args: argparse.Namespace, ctx: Context) -> int:
    nbytes = count = None
    if ctx.draw:
        nbytes, count = totals(uri, args.recursive, args.pattern, ctx.client)
    entries = (
        e
        for e in ctx.client.list_iter(
            uri, recursive=args.recursive, pattern=args.pattern, detail=True
        )
        if not e["is_dir"]
    )
    with ctx.transfer(
        "read", "read", total_bytes=nbytes, total_objects=count, to_stdout=True
    ) as progress:

        def read(entry: dict[str, Any]) -> None:
            progress(len(ctx.client.get(entry["uri"])), 1)

        run_batch(
            read, entries, ctx.jobs_or(64), what="GET", name=lambda e: e["uri"], ordered=False
        )
    return 0


# -- put ---------------------------------------------------------------------------------------


def run_put(args: argparse.Namespace, ctx: Context) -> int:
    """``put``: generate and store synthetic objects (``s3dlio.put``)."""
    prefix = to_uri(args.prefix)
    size = s3dlio.parse_size(args.size)
    if args.num < 0:
        raise UsageError("-n must be >= 0")
    if getattr(args, "ray", None):
        return run_put_ray(args, ctx, prefix, size)
    with ctx.transfer("put", "put", total_bytes=size * args.num, total_objects=args.num) as p:
        s3dlio.put(
            prefix,
            args.num,
            template=args.template,
            size=size,
            object_type=args.object_type,
            dedup_factor=args.dedup,
            compress_factor=args.compress,
            data_gen_mode=args.data_gen_mode,
            max_in_flight=ctx.jobs_or(64),
            should_create_bucket=args.create_bucket,
            progress=p,
            client=ctx.client,
        )
    return 0


# -- rm ----------------------------------------------------------------------------------------


def run_rm(args: argparse.Namespace, ctx: Context) -> int:
    """``rm``: delete exact keys, or with ``-r`` everything selected."""
    started = time.perf_counter()
    failures: list[tuple[str, BaseException]] = []
    deleted = 0
    for text in args.uris:
        uri = to_uri(text)
        try:
            deleted += ctx.client.delete(
                uri, recursive=args.recursive, pattern=args.pattern, missing_ok=args.force
            )
        except BatchError as exc:
            failures += exc.failures
            deleted += exc.succeeded
        except IsDirectoryError:
            failures.append((uri, IsDirectoryError("is a directory; use -r", uri=uri, op="DELETE")))
        except S3DlioError as exc:
            failures.append((uri, exc))
    if deleted or not failures:
        noun = "object" if deleted == 1 else "objects"
        ctx.report(f"deleted {deleted} {noun} in {time.perf_counter() - started:.2f} s")
    if failures:
        raise BatchError("DELETE", failures=failures, succeeded=deleted)
    return 0
