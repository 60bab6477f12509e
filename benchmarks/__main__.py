"""``python -m benchmarks [suite ...] [--rounds N] [--quick]``: run the benchmark suites.

Each suite writes ``benchmarks/results/<suite>.json`` and ``<suite>.md`` (under
``results/quick/`` with ``--quick``). Run ``benchmarks/setup.sh`` first (``make bench`` does).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time

from .harness import RESULTS, run_suite

#: suite name -> module (each has ``suite(ctx)`` yielding cases), in the order they run.
SUITES = {
    "local": "benchmarks.suite_local",
    "datagen": "benchmarks.suite_datagen",
    "s3": "benchmarks.suite_s3",
    "s3-https": "benchmarks.suite_s3_https",
    "s3-proxy": "benchmarks.suite_s3_proxy",
    "tfrecord": "benchmarks.suite_tfrecord",
    "formats": "benchmarks.suite_formats",
    "parquet": "benchmarks.suite_parquet",
    "arrow-fs": "benchmarks.suite_arrow_fs",
    "loader": "benchmarks.suite_loader",
    "checkpoint": "benchmarks.suite_checkpoint",
    "dcp": "benchmarks.suite_dcp",
    "streaming": "benchmarks.suite_streaming",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="suite",
        help=f"suites to run (default: all): {', '.join(SUITES)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="timed rounds per contender (default 5; 3 with --quick)",
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="with the s3 suite: also its GET cases over TLS (the s3-https suite)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small data and 3 rounds: a smoke run of every path (~2 min)",
    )
    args = parser.parse_args(argv)
    if args.https and args.suites and "s3-https" not in args.suites:  # all suites include it
        at = args.suites.index("s3") + 1 if "s3" in args.suites else len(args.suites)
        args.suites.insert(at, "s3-https")
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    rounds = args.rounds or (3 if args.quick else 5)
    if rounds < 1:
        parser.error("--rounds must be >= 1")
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    failed = []
    for name in args.suites or list(SUITES):
        print(f"== {name}", flush=True)
        module = importlib.import_module(SUITES[name])
        try:
            doc = run_suite(
                name,
                module.suite,
                rounds=rounds,
                quick=args.quick,
                command=command.strip(),
                log=lambda m: print(m, flush=True),
            )
        except Exception as exc:  # noqa: BLE001 - one broken suite must not hide the others
            print(f"   suite {name} failed: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
            continue
        out = RESULTS / "quick" if args.quick else RESULTS
        print((out / f"{name}.md").read_text(), flush=True)
        print(f"   ({doc['seconds']} s; {out / (name + '.json')})", flush=True)
    print(
        f"== all done in {time.perf_counter() - started:.0f} s"
        + (f"; failed suites: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
