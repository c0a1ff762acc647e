"""A tenant reader's searches on the milvus backend, against another revision's backend (not a test).

A milvus-lite server holds the first ``--docs`` SciFact documents, embedded once with the configured model and
kept in ``--work``: the first ``--tenant`` of them readable by tenant acme only, the rest by tenant globex. Then
``--searches`` different queries are searched one by one as an acme reader, by this tree's MilvusBackend and by
the one of ``--baseline`` (its modules, BACKEND_PARTS, at REV), taking turns query by query so a
noisy neighbour slows both alike. Printed per mode: the first search's time, the median and p95 of all in ms,
and (this tree's counter, when it has one) how many times the reader's vectors were read from Milvus.

Usage, from the repository root:
    python -m benchmarks.milvus_reader_vectors --baseline REV [--docs 1000] [--tenant 500] [--searches 30]
        [--uri http://127.0.0.1:19150] [--work var/bench/milvus-readers]
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.milvus_backend import in_turns
from likeopt.ops.evaluate import Dataset, percentile
from likeopt.runtime.config import Config
from likeopt.runtime.loaders import LoadedDocument, load_paths
from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput, SearchParams
from retrieval_svc.embedder import configured_embedder
from retrieval_svc.milvus_backend import MilvusBackend
from tests.support import MilvusServer

COLLECTION = "bench_readers"
READER = Reader.of("acme", "analyst", [])


BACKEND_PARTS = ("milvus_backend", "milvus_collection", "milvus_writes", "milvus_search", "milvus_reads")
"""The modules MilvusBackend is made of (before the split, milvus_backend.py alone): the baseline's own."""


def baseline_backend(rev: str, work: Path) -> type:
    """MilvusBackend as its modules (BACKEND_PARTS) were at rev, beside this tree's other modules: they are copied
    into a package of their own, their imports of each other pointed at it."""
    package = f"baseline_milvus_{rev_name(rev)}"
    folder = work / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    at_rev = set(git(["ls-tree", "--name-only", rev, "retrieval_svc/"]).split())
    parts = [part for part in BACKEND_PARTS if f"retrieval_svc/{part}.py" in at_rev]
    for part in parts:
        source = git(["show", f"{rev}:retrieval_svc/{part}.py"])
        for other in parts:
            source = source.replace(f"retrieval_svc.{other} ", f"{package}.{other} ")
        (folder / f"{part}.py").write_text(source)
    sys.path.insert(0, str(work))
    return importlib.import_module(f"{package}.milvus_backend").MilvusBackend


def rev_name(rev: str) -> str:
    """rev's commit as a short name a Python package may have."""
    return git(["rev-parse", "--short=12", rev]).strip()


def git(args: list[str]) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def fill(backend: MilvusBackend, data: Path, docs: int, tenant: int) -> None:
    """Store the corpus's first docs documents unless the collection holds them already."""
    if backend.stats().documents:
        return
    loaded = (d for d in load_paths([str(data)]) if isinstance(d, LoadedDocument))
    chosen = [
        DocumentInput(d.id, d.title, d.text, d.metadata, Access.of("acme" if n < tenant else "globex", [], []))
        for n, d in enumerate(itertools.islice(loaded, docs))
    ]
    for start in range(0, len(chosen), 64):
        batch = chosen[start : start + 64]
        backend.upsert(batch, [backend.prepare(d) for d in batch])
    backend.flush()


def vector_reads() -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("likeopt_milvus_vector_reads_total")


def timed(runs: dict[str, Callable[[str], object]], queries: list[str]) -> dict[str, dict[str, float]]:
    """Each run's first, median and p95 ms over the queries, the runs taking turns query by query (no warm-up: the
    first search is the one that reads the reader's vectors)."""
    return {
        name: {"first_ms": round(t[0], 1), "p50_ms": round(percentile(t, 50), 1), "p95_ms": round(percentile(t, 95), 1)}
        for name, t in in_turns(runs, queries).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--tenant", type=int, default=500, help="of them, how many tenant acme may read")
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--baseline", required=True, help="the revision whose Milvus backend modules are compared")
    parser.add_argument("--uri", help="a running Milvus (else a milvus-lite server of its own in --work)")
    parser.add_argument("--work", type=Path, default=Path("var/bench/milvus-readers"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    config = Config.from_env()
    embedder = configured_embedder(config)
    server = None if args.uri else MilvusServer(args.work / "milvus")
    if server is not None:
        server.start()
    try:
        uri = args.uri or server.uri  # type: ignore[union-attr]
        chunking = (config.chunk_tokens, config.chunk_overlap)
        current = MilvusBackend(embedder, uri, "", COLLECTION, *chunking)
        current.load()
        fill(current, args.data, args.docs, args.tenant)
        before = baseline_backend(args.baseline, args.work)(embedder, uri, "", COLLECTION, *chunking)
        before.load()
        dataset = Dataset.load(args.data)
        queries = list(dataset.queries.values())[: 2 * args.searches]
        vectors = {q: embedder.encode_query(q) for q in queries}
        figures: dict[str, Any] = {"reader's chunks": current.stats(READER).chunks, "chunks": current.stats().chunks}
        for n, mode in enumerate(("hybrid", "dense")):
            p = SearchParams(top_k=10, mode=mode, fusion="rrf", rrf_k=60, alpha=0.5, reader=READER)
            reads = vector_reads()
            runs = {
                f"{args.baseline} {mode}": lambda q, b=before, p=p: b.search(q, p, vectors[q]),
                f"this tree {mode}": lambda q, b=current, p=p: b.search(q, p, vectors[q]),
            }
            figures |= timed(runs, queries[n * args.searches : (n + 1) * args.searches])
            if reads is not None:
                figures[f"vector reads, this tree {mode}"] = vector_reads() - reads  # type: ignore[operator]
        print(json.dumps(figures, indent=2))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
