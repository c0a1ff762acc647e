"""``likeopt migrate --to milvus``: copy the embedded store into Milvus, then check the copy.

The vectors are stored, so nothing is embedded again; an interrupted run (even kill -9) resumes where its
last acknowledged page ended. The check compares counts and how far both engines agree on sample queries.
"""

from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING

from tqdm import tqdm

from likeopt.runtime.config import Config

if TYPE_CHECKING:
    from retrieval_svc.milvus_migrate import MigrationReport

SAMPLE_QUERIES = 50
PARITY_FLOOR = 0.5
"""Below this mean top-10 overlap (hybrid) the copy is reported as suspect: analyzers differ, but not that much."""


def sample_queries(config: Config, count: int, seed: int = 7) -> list[str]:
    """Document titles (else first lines) of the store, a repeatable sample: queries users could ask."""
    from retrieval_svc.store import STORE_FILE, Store

    store = Store(config.data_dir / STORE_FILE)
    try:
        titles = [title for _, title, _ in store.documents() if title.strip()]
    finally:
        store.close()
    random.Random(seed).shuffle(titles)
    return titles[:count]


def migrate_to_milvus(config: Config, sample: int = SAMPLE_QUERIES) -> int:
    """Run the migration and the check; exit code 0 when every document arrived. A Milvus that cannot be
    reached, or refuses, is one line naming LIKEOPT_MILVUS_URI and exit code 1: a rerun resumes the copy. A
    document Milvus cannot hold is named with the reason and the rest copied and checked, also exit code 1:
    the collection lacks it until it is changed in the store."""
    from retrieval_svc.backend import BackendRefused, BackendUnavailable
    from retrieval_svc.store import STORE_FILE

    store_path = config.data_dir / STORE_FILE
    if not store_path.is_file():
        print(f"likeopt migrate: no embedded store at {store_path} (set LIKEOPT_DATA_DIR)", file=sys.stderr)
        return 2
    try:
        return copy_and_check(config, sample)
    except (BackendUnavailable, BackendRefused) as exc:
        print(f"likeopt migrate: {exc}; run the command again once it answers (the copy resumes)", file=sys.stderr)
        return 1


def copy_and_check(config: Config, sample: int) -> int:
    """The migration and the check (migrate_to_milvus)."""
    from retrieval_svc.backend import BACKENDS
    from retrieval_svc.engine import loaded_engine
    from retrieval_svc.milvus_migrate import migrate, verify
    from retrieval_svc.store import STORE_FILE

    store_path = config.data_dir / STORE_FILE
    target = BACKENDS["milvus"](config)
    try:
        target.load()
    except ValueError as exc:  # a collection of another model, dimension or tokenizer: the message says which
        print(f"likeopt migrate: {exc}", file=sys.stderr)
        return 1
    with tqdm(desc="migrating", unit="doc", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = migrate(store_path, target, progress)
    print_report(report)
    embedded = loaded_engine(config.replace(retrieval_read_only=True))  # read-only: never writes the store
    check = verify(embedded, target, sample_queries(config, sample), refused=report.refused)
    embedded.close()
    target.close()
    print(
        f"verify: store {check.embedded_documents} documents / {check.embedded_chunks} chunks, Milvus"
        f" {check.milvus_documents} / {check.milvus_chunks}; top-10 overlap "
        + ", ".join(f"{mode} {share:.2f}" for mode, share in check.parity.items()),
        flush=True,
    )
    if not check.counts_match:
        print(
            "likeopt migrate: the counts differ although every document was copied: something wrote to the store"
            " or to the collection meanwhile (a retrieval_svc serving either?); run the command again once nothing"
            " writes to them",
            file=sys.stderr,
        )
        return 1
    if check.parity.get("hybrid", 1.0) < PARITY_FLOOR:
        print(f"likeopt migrate: hybrid overlap below {PARITY_FLOOR}: check the analyzer settings", file=sys.stderr)
    if report.refused:
        print(
            f"likeopt migrate: {len(report.refused)} documents of the store were not copied: Milvus cannot hold"
            " them (refused above, with the reason); the rest is copied and checked. Ingest them again shorter"
            " (or delete them from the store) and run the command again to complete the copy",
            file=sys.stderr,
        )
        return 1
    return 0


def print_report(report: MigrationReport) -> None:
    """What the copy did, then each refused document with the reason, as ``likeopt ingest`` lists them."""
    print(
        f"copied {report.copied} documents, {report.skipped} already there"
        f"{' (resumed)' if report.resumed else ''}; removed {report.removed} documents the store no longer holds;"
        f" refused {len(report.refused)} documents Milvus cannot hold;"
        f" {report.documents} documents, {report.chunks} chunks in the store; index version {report.version}",
        flush=True,
    )
    for refused in report.refused:
        print(f"  refused {refused.id}: {refused.reason}", flush=True)
