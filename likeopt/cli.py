"""The ``likeopt`` command: up, ingest."""

from __future__ import annotations

import argparse
import os
import sys

from likeopt.config import Config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="likeopt", description="Like-Opt: question answering over your documents.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the whole mesh and wait; Ctrl-C stops it")
    up.add_argument("--ingest", action="append", default=[], metavar="PATH", help="ingest PATH once healthy")
    up.add_argument("--otlp-endpoint", help="send traces of every process to this OTLP/gRPC collector")
    up.add_argument("--backend", choices=["extractive", "local", "openai"], help="generation backend")

    ingest = commands.add_parser("ingest", help="add documents: files, folders or a BEIR dataset folder")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar or report")

    args = parser.parse_args(argv)
    if args.command == "up":
        if args.otlp_endpoint:
            os.environ["LIKEOPT_OTLP_ENDPOINT"] = args.otlp_endpoint
        if args.backend:
            os.environ["LIKEOPT_GENERATION_BACKEND"] = args.backend
    try:
        config = Config.from_env()
    except ValueError as exc:
        parser.error(str(exc))

    if args.command == "up":
        from likeopt.launcher import up as run_up

        sys.exit(run_up(config, args.ingest))
    if args.command == "ingest":
        from likeopt.ingest import ingest_paths

        summary = ingest_paths(args.paths, config.retrieval_addr, quiet=args.quiet)
        sys.exit(0 if summary.upserted or not summary.skipped else 1)


if __name__ == "__main__":
    main()
