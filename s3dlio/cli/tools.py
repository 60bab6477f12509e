"""Tool commands: ``tfrecord-index`` and ``replay``."""

from __future__ import annotations

import argparse
import json
from typing import Any

import s3dlio

from ..formats.tfrecord_index import default_index_uri
from .common import Context, print_lines, to_uri
from .replay import plan_targets, read_op_log, replay, warm_up

__all__ = ["register"]


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the tool commands to the ``s3-cli`` subparsers."""
    p = sub.add_parser(
        "tfrecord-index",
        parents=parents,
        help="write the index of a TFRecord file",
        description="Write the DALI/tfrecord-package index ('offset size' per record) of a "
        "TFRecord file on any backend; by default to URI + '.idx' beside it.",
    )
    p.add_argument("uri")
    p.add_argument("index", nargs="?", metavar="INDEX_URI", help="where to write the index")
    p.set_defaults(func=run_tfrecord_index)

    p = sub.add_parser(
        "replay",
        parents=parents,
        help="replay an op-log against another prefix",
        description="Re-issue the GET/PUT/HEAD/LIST/DELETE operations of an op-log (ours or "
        "a MinIO warp benchmark file) against TARGET, keeping their relative timing divided "
        "by --speed, then print latency percentiles per operation.",
    )
    p.add_argument("oplog", metavar="OPLOG", help="op-log file (.tsv.zst, or plain)")
    p.add_argument("--target", required=True, metavar="PREFIX", help="URI prefix to replay on")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time compression: 2 = twice as fast; 0 = no waiting (default 1)",
    )
    p.add_argument(
        "--source-prefix",
        metavar="PREFIX",
        help="part of the logged names to replace by TARGET (default: their common directory)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_replay, starts_op_log=True)


def run_tfrecord_index(args: argparse.Namespace, ctx: Context) -> int:
    """``tfrecord-index``: ``s3dlio.create_tfrecord_index`` on any URI."""
    uri = to_uri(args.uri)
    index = to_uri(args.index) if args.index else str(default_index_uri(uri))
    count = s3dlio.create_tfrecord_index(uri, index)
    ctx.report(f"indexed {count} records of {uri} into {index}")
    return 0


def run_replay(args: argparse.Namespace, ctx: Context) -> int:
    """``replay``: re-issue a log's operations and report latencies."""
    ops, skipped = read_op_log(args.oplog)
    target = to_uri(args.target)
    target_of = plan_targets(ops, target, args.source_prefix)
    warm_up(target)  # client set-up is not part of the first operations' latency
    ctx.begin_op_log()  # and not in the replay's own op-log
    counter = ctx.counter("operations")
    try:
        report = replay(ops, target_of, speed=args.speed, jobs=ctx.jobs_or(64), on_done=counter.add)
    finally:
        counter.close()
    report.skipped = skipped
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True), flush=True)
    else:
        print_lines(report.table())
    return 0
