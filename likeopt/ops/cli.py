"""The ``likeopt`` command: up, ingest, eval, migrate, mcp, bench, backup, restore."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import get_args

from likeopt.ops.bench.scenarios import SCENARIOS
from likeopt.ops.index_loading import LOAD_PATIENCE_S
from likeopt.runtime.addresses import host_port, reachable_host
from likeopt.runtime.config import Config
from likeopt.runtime.contract import MODES

INTERRUPTED_EXIT = 130
"""The exit code of a command stopped by Ctrl-C, as shells report one killed by SIGINT (128 + 2)."""


def choices_of(setting: str) -> list[str]:
    """The values a setting takes (its Literal in Config), so an option naming the same choice cannot drift."""
    return list(get_args(Config.model_fields[setting].annotation))


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options; one function per command below."""
    parser = argparse.ArgumentParser(prog="likeopt", description="Like-Opt: question answering over your documents.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_up, add_ingest, add_eval, add_migrate, add_mcp, add_bench, add_backup_and_restore):
        add(commands)
    return parser


def add_up(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="start the whole mesh and wait; Ctrl-C stops it")
    up.add_argument("--ingest", action="append", default=[], metavar="PATH", help="ingest PATH once healthy")
    up.add_argument("--otlp-endpoint", help="send traces of every process to this OTLP/gRPC collector")
    up.add_argument(
        "--replicas",
        default="",
        metavar="SERVICE=N,…",
        help="run N copies of retrieval and/or generation behind Envoy, e.g. retrieval=2,generation=2",
    )
    up.add_argument("--backend", choices=choices_of("generation_backend"), help="generation backend")


def add_ingest(commands: argparse._SubParsersAction) -> None:
    ingest = commands.add_parser("ingest", help="add documents: files, folders or a BEIR dataset folder")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar or report")
    ingest.add_argument("--tenant", default="", help="the tenant the documents belong to (LIKEOPT_AUTH=jwt)")
    ingest.add_argument(
        "--allow-group", action="append", default=[], metavar="GROUP", help="a group whose members may read them"
    )
    ingest.add_argument("--allow-user", action="append", default=[], metavar="SUBJECT", help="a user who may read them")
    ingest.add_argument(
        "--change-access",
        action="store_true",
        help="let the run give documents stored already more readers or another tenant (without it, each such"
        " document is refused with the reason and keeps its readers; the others are stored)",
    )
    ingest.add_argument(
        "--wait",
        type=float,
        default=LOAD_PATIENCE_S,
        metavar="SECONDS",
        help=f"how long to wait for retrieval_svc to load its index (default {LOAD_PATIENCE_S:.0f}; 0: not at all)",
    )


def add_eval(commands: argparse._SubParsersAction) -> None:
    evaluation = commands.add_parser("eval", help="retrieval quality and latency on a BEIR-format dataset")
    evaluation.add_argument("--data", metavar="DIR", help="corpus.jsonl, queries.jsonl, qrels/test.tsv")
    evaluation.add_argument("--mode", choices=list(MODES), default=next(iter(MODES)))
    evaluation.add_argument("--fusion", choices=choices_of("fusion"), help="hybrid fusion (default: LIKEOPT_FUSION)")
    evaluation.add_argument("--rrf-k", type=float, default=0.0, help="RRF constant (default: LIKEOPT_RRF_K)")
    evaluation.add_argument("--alpha", type=float, help="convex fusion's dense weight (default: LIKEOPT_FUSION_ALPHA)")
    evaluation.add_argument("--json", action="store_true", help="print one JSON object")
    evaluation.add_argument(
        "--split", default="test", help="whose judgements to score: qrels/SPLIT.tsv (default test; dev to tune on)"
    )
    evaluation.add_argument(
        "--compare", nargs="+", metavar="DIR", help="several collections and --config rows, printed as one table"
    )
    evaluation.add_argument(
        "--config",
        action="append",
        metavar="SPEC",
        help='with --compare: "MODE [fusion=F] [rrf_k=K] [alpha=A] [LIKEOPT_NAME=VALUE ...]" (repeatable)',
    )
    add_answer_arguments(evaluation)


def add_migrate(commands: argparse._SubParsersAction) -> None:
    migrate = commands.add_parser(
        "migrate", help="copy the embedded store (LIKEOPT_DATA_DIR) into Milvus (LIKEOPT_MILVUS_URI), then check it"
    )
    migrate.add_argument("--to", required=True, choices=["milvus"], help="the backend to copy into")
    migrate.add_argument("--sample", type=int, default=50, metavar="N", help="queries the check compares (0: none)")


def add_mcp(commands: argparse._SubParsersAction) -> None:
    mcp = commands.add_parser(
        "mcp", help="serve MCP over stdio (for desktop clients): search, ask, list_documents, documents as resources"
    )
    mcp.add_argument(
        "--token",
        help="a bearer token (LIKEOPT_AUTH=jwt): search, ask and read as its principal; point LIKEOPT_RETRIEVAL_ADDR "
        "and LIKEOPT_GENERATION_ADDR at Envoy's port, which verifies it",
    )


def add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="load-test a running mesh through Envoy; print and save the figures")
    bench.add_argument("--scenario", required=True, choices=SCENARIOS)
    bench.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds of measured load")
    bench.add_argument("--concurrency", type=int, default=8, metavar="N", help="workers (connections with --rate)")
    bench.add_argument("--rate", type=float, default=0.0, metavar="R", help="open loop: R requests/s, on schedule")
    bench.add_argument("--requests", type=int, default=0, metavar="N", help="stop after N requests (0: no limit)")
    bench.add_argument("--timeout", type=float, default=30.0, metavar="S", help="a slower request counts as an error")
    bench.add_argument("--url", help="Envoy's loopback URL (default: LIKEOPT_HOST, or loopback, at LIKEOPT_ENVOY_PORT)")
    bench.add_argument("--data", default="data/scifact", metavar="DIR", help="BEIR folder whose queries.jsonl to send")
    bench.add_argument("--seed", type=int, help="seed of query choice, for a repeatable run")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--token", help="send Authorization: Bearer TOKEN with every request (LIKEOPT_AUTH=jwt)")
    bench.add_argument("--out", metavar="DIR", help="also write <scenario>.json and <scenario>.html here")
    bench.add_argument(
        "--warmup", type=float, default=0.0, metavar="S", help="first S seconds of the same load, not measured"
    )
    bench.add_argument(
        "--floor",
        action="store_true",
        help="also do the same work in this process, no mesh (half before the measured run, half after), and"
        " report mesh/floor",
    )


FILE_COMMANDS = {
    "backup": (
        "copy the store (LIKEOPT_DATA_DIR) and the feedback file (LIKEOPT_FEEDBACK_DB) into a new folder, each as it"
        " stood at one commit, while the mesh serves",
        "DEST",
        "a new or empty folder",
    ),
    "restore": (
        "put a backup's files in place of the store and the feedback file (the mesh stopped); the replaced ones are"
        " kept in a before-restore-* folder beside them",
        "SOURCE",
        "a folder `likeopt backup` made",
    ),
}
"""The commands that copy the live files (likeopt/ops/backup.py, restore.py): help, folder's name, folder's help."""


def add_backup_and_restore(commands: argparse._SubParsersAction) -> None:
    for name, (about, metavar, folder) in FILE_COMMANDS.items():
        commands.add_parser(name, help=about).add_argument("folder", metavar=metavar, help=folder)


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The command's own parser, so that an error in its use reads ``likeopt eval: error: …`` under its own usage
    line, as argparse's own errors about its options do, not the top-level one's."""
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return commands.choices[command]


def main(argv: list[str] | None = None) -> None:
    everything = build_parser()
    args = everything.parse_args(argv)
    parser = command_parser(everything, args.command)
    if args.command == "migrate" and not os.environ.get("LIKEOPT_MILVUS_URI"):
        parser.error("--to milvus needs LIKEOPT_MILVUS_URI (the Milvus to copy into)")
    if args.command == "up":
        if args.otlp_endpoint:
            os.environ["LIKEOPT_OTLP_ENDPOINT"] = args.otlp_endpoint
        if args.backend:
            os.environ["LIKEOPT_GENERATION_BACKEND"] = args.backend
    try:
        config = Config.from_env()
        if args.command == "up":
            config.check_ports_apart()
    except ValueError as exc:
        parser.error(str(exc))
    try:
        RUNS[args.command](args, config, parser)
    except KeyboardInterrupt:  # `likeopt up` stops on SIGINT by itself; the others end here
        print(f"likeopt {args.command}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)


def run_up(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    from likeopt.ops.launcher import up

    try:
        replicas = parse_replicas(args.replicas)
    except ValueError as exc:
        parser.error(str(exc))
    if missing := missing_paths(args.ingest):
        parser.error(f"--ingest: no such file or folder: {', '.join(missing)} (nothing was started)")
    sys.exit(up(config, args.ingest, replicas))


def missing_paths(paths: list[str]) -> list[str]:
    return [path for path in paths if not Path(path).exists()]


def run_ingest(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    from likeopt.ops.index_loading import NotLoaded
    from likeopt.ops.ingest import IngestFailed, Interrupted, Unreachable, access_of, ingest_paths
    from likeopt.runtime.contract import access_problem

    if missing := missing_paths(args.paths):
        parser.error(f"no such file or folder: {', '.join(missing)} (nothing was ingested)")
    if problem := access_problem(args.tenant, args.allow_user, args.allow_group):
        parser.error(f"--tenant, --allow-user and --allow-group: {problem} (nothing was ingested)")
    if args.wait < 0:
        parser.error(f"--wait: {args.wait:g} seconds; give 0 or more (nothing was ingested)")
    access = access_of(args.tenant, args.allow_user, args.allow_group)
    try:
        summary = ingest_paths(
            args.paths,
            config.retrieval_addr,
            quiet=args.quiet,
            access=access,
            tenant_claim=config.jwt_tenant_claim,
            change_access=args.change_access,
            load_patience_s=args.wait,
        )
    except Unreachable as exc:
        sys.exit(f"likeopt ingest: {exc}; is `likeopt up` running, and LIKEOPT_RETRIEVAL_ADDR right?")
    except (NotLoaded, IngestFailed) as exc:
        sys.exit(f"likeopt ingest: {exc}")
    except Interrupted as exc:
        print(f"likeopt ingest: {exc}", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    sys.exit(0 if summary.upserted or not summary.skipped else 1)


def run_eval(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    """evaluate_as_asked, with a private service that could not start said in one line (why, from its log)."""
    from likeopt.ops.evaluate import ServiceFailed

    try:
        evaluate_as_asked(args, config, parser)
    except ServiceFailed as exc:
        sys.exit(f"likeopt eval: {exc}")


def evaluate_as_asked(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    """Answers (--answers, --from-feedback), several collections and configurations (--compare), or one run."""
    import json

    if args.answers or args.from_feedback:
        from likeopt.ops.answer_eval import answers_main, input_problem

        if not args.data and not args.from_feedback:
            parser.error("--answers needs --data DIR (or --from-feedback)")
        data = Path(args.data) if args.data and not args.from_feedback else None
        if problem := input_problem(data, args.questions, args.offtopic):
            parser.error(problem)
        sys.exit(answers_main(args, config))
    if args.compare:
        from likeopt.ops.eval_compare import DEFAULT_CONFIGURATIONS, compare, format_table, parse_configuration

        try:
            configurations = [parse_configuration(spec) for spec in args.config or DEFAULT_CONFIGURATIONS]
        except ValueError as exc:
            parser.error(str(exc))
        rows = compare(beir_folders(args.compare, args.split, parser), configurations, config, args.split)
        print(json.dumps(rows) if args.json else format_table(rows), flush=True)
        return
    if not args.data:
        parser.error("--data DIR is needed: a folder in BEIR's layout (corpus.jsonl, queries.jsonl, qrels/)")
    from likeopt.ops.evaluate import EvalSettings, format_report
    from likeopt.ops.evaluate import run_eval as evaluate

    try:
        settings = EvalSettings(args.mode, args.fusion or "", args.rrf_k, args.alpha).check()
    except ValueError as exc:
        parser.error(str(exc))
    figures = evaluate(beir_folders([args.data], args.split, parser)[0], settings, config, split=args.split)
    print(json.dumps(figures) if args.json else format_report(figures), flush=True)


def beir_folders(folders: list[str], split: str, parser: argparse.ArgumentParser) -> list[Path]:
    """The folders, each read as a BEIR dataset first: a missing file or a malformed line is one error line
    naming it, before any service starts, rather than a traceback after."""
    from likeopt.ops.evaluate import Dataset

    for folder in folders:
        try:
            Dataset.load(Path(folder), split)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
    return [Path(folder) for folder in folders]


def run_migrate(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    from likeopt.ops.migrate import migrate_to_milvus

    sys.exit(migrate_to_milvus(config, args.sample))


def run_mcp(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    from gateway.mcp_stdio import run_stdio

    run_stdio(config, args.token or "")


def run_bench(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    from likeopt.ops.bench.cli import bench_main

    sys.exit(bench_main(args, f"http://{host_port(reachable_host(config.host), config.envoy_port)}"))


def run_backup_or_restore(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> None:
    """Each file written, one line apiece, or why none was (likeopt/ops/backup.py, restore.py)."""
    from likeopt.ops.backup import BackupFailed, backup
    from likeopt.ops.restore import restore

    try:
        copied = (backup if args.command == "backup" else restore)(config, Path(args.folder))
    except BackupFailed as exc:
        sys.exit(f"likeopt {args.command}: {exc}")
    for item in copied:
        print(f"{item.path}: {item.detail}", flush=True)


RUNS = {
    "up": run_up,
    "ingest": run_ingest,
    "eval": run_eval,
    "migrate": run_migrate,
    "mcp": run_mcp,
    "bench": run_bench,
    "backup": run_backup_or_restore,
    "restore": run_backup_or_restore,
}
"""What each command does once its options are parsed and the settings checked."""


def add_answer_arguments(evaluation: argparse.ArgumentParser) -> None:
    """``likeopt eval --answers``: answer quality (likeopt/ops/answer_eval.py) instead of retrieval quality."""
    group = evaluation.add_argument_group("answers (--answers)")
    group.add_argument("--answers", action="store_true", help="evaluate answers: citations, support, abstention, time")
    group.add_argument("--backend", choices=choices_of("generation_backend"), help="backend of the private mesh")
    group.add_argument("--addr", default="", metavar="HOST:PORT", help="ask a running mesh (Envoy's port) instead")
    group.add_argument("--questions", metavar="FILE", help="questions for a folder of documents (question<TAB>files)")
    group.add_argument("--offtopic", metavar="FILE", help="questions to refuse (default: the shipped list)")
    group.add_argument("--offtopic-limit", type=int, default=0, metavar="N", help="ask only the first N of them")
    group.add_argument("--limit", type=int, default=0, metavar="N", help="a seeded sample of N questions (0: all)")
    group.add_argument("--seed", type=int, default=16, help="seed of that sample")
    group.add_argument(
        "--from-feedback", action="store_true", help="print stored feedback as answer-eval cases (JSON lines)"
    )
    group.add_argument("--rating", choices=["up", "down"], help="with --from-feedback: only this rating")


def parse_replicas(text: str) -> dict[str, int]:
    """``retrieval=2,generation=3`` as a dict; only those two services scale out."""
    replicas: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        service, _, count = item.partition("=")
        if service not in ("retrieval", "generation") or not count.isdigit() or not 1 <= int(count) <= 8:
            raise ValueError(f"--replicas: {item!r} must be retrieval=N or generation=N with N from 1 to 8")
        replicas[service] = int(count)
    return replicas


if __name__ == "__main__":
    main()
