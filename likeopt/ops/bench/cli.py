"""``likeopt bench``'s command line: validated options in, figures out (text or JSON, files with --out)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import uvloop

from likeopt.ops.bench.load import LoadSettings
from likeopt.ops.bench.report import format_text, run_failure, write_outputs
from likeopt.ops.bench.runner import BenchError, BenchOptions, run


def bench_main(args: argparse.Namespace, default_url: str) -> int:
    """Run the bench the parsed arguments describe; returns the exit code: 1 when the run could not start, or
    when its requests failed (report.run_failure), after printing its figures."""
    if (
        args.duration <= 0
        or args.concurrency < 1
        or args.timeout <= 0
        or min(args.rate, args.requests, args.warmup) < 0
    ):
        print(
            "likeopt bench: --duration, --concurrency, --timeout must be positive, --rate, --requests, --warmup ≥ 0",
            file=sys.stderr,
        )
        return 2
    options = BenchOptions(
        scenario=args.scenario,
        url=args.url or default_url,
        data_dir=Path(args.data),
        load=LoadSettings(args.duration, args.concurrency, args.rate, args.requests, args.timeout),
        seed=args.seed,
        progress=sys.stderr.isatty() or not args.json,
        floor=args.floor,
        warmup_s=args.warmup,
        token=getattr(args, "token", None) or "",
    )
    try:
        result, samples = uvloop.run(run(options))  # the load generator's CPU is stolen from the mesh it measures
    except (BenchError, FileNotFoundError, ValueError) as exc:
        print(f"likeopt bench: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else format_text(result), flush=True)
    if args.out:
        for path in write_outputs(Path(args.out), result, samples):
            print(f"likeopt bench: wrote {path}", file=sys.stderr)
    if failure := run_failure(result):
        print(f"likeopt bench: {failure}", file=sys.stderr)
        return 1
    return 0
