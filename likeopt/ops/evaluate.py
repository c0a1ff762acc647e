"""``likeopt eval``: retrieval quality and latency on a BEIR-layout dataset, through retrieval_svc over gRPC.

It starts a private retrieval_svc on a free loopback port with the cache off and a
data directory kept per collection (``var/eval/<name>-<hash>``), so a second run
skips ingestion. Hits are chunks; documents are scored, so each ranking keeps a
document's best chunk only (the service collapses them with ``per_document``).

Metrics are ir-measures' (trec_eval's rules, as BEIR reports them): nDCG@10 with linear
gains from graded judgements, Recall@100 and MRR@10 (RR@10), a judgement above 0 counting
as relevant and a negative one as not relevant (no penalty), averaged over the queries that
have a relevant judgement, a query without a ranking scoring 0. A document is ranked at
its best chunk's score, and documents whose scores tie are ordered as trec_eval orders
them (by document id, descending), once, so that every measure sees the same ranking.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
import ir_measures
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ir_measures import RR, R, nDCG
from tqdm import tqdm

from likeopt.ops.ingest import ingest_paths
from likeopt.ops.processes import CHILD_ENV
from likeopt.runtime.config import Config
from likeopt.runtime.contract import INVALID_INPUT_STATUS, MODES, check_fusion
from likeopt.runtime.loaders.files import BEIR_CORPUS, BEIR_QUERIES
from likeopt.runtime.percentiles import percentile
from likeopt.runtime.text_layout import CHUNKING_VERSION
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc

Qrels = Mapping[str, Mapping[str, int]]
"""query id -> document id -> graded relevance (0 or below = judged not relevant)."""
Run = Mapping[str, Sequence[str] | Mapping[str, float]]
"""query id -> its documents, as a ranking (best first) or as scores (higher first)."""

DEPTH = 100
"""Documents retrieved per query: what Recall@100 needs."""
START_TIMEOUT_S = 600.0


# -- metrics -------------------------------------------------------------

MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
"""Our names for the figures -> ir-measures' measures (RR@10 is MRR@10 once averaged)."""


def trec_ranking(scores: Mapping[str, float]) -> list[str]:
    """Documents as trec_eval ranks them: score descending, ties by document id descending.

    ir-measures hands nDCG and recall to trec_eval but RR@10 to MS MARCO's script, which
    breaks ties the other way; ordering once here gives every measure trec_eval's ranking.
    """
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def _strictly_ranked(documents: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """A ranking as the strictly decreasing scores ir-measures reads, so no provider re-orders it."""
    ranking = trec_ranking(documents) if isinstance(documents, Mapping) else list(dict.fromkeys(documents))
    return {doc: float(len(ranking) - rank) for rank, doc in enumerate(ranking)}


def score_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the queries that have a relevant judgement.

    A document whose id is its query's is not counted, as BEIR's evaluation does by default
    (``ignore_identical_ids``): ArguAna and Quora hold each query in the corpus under the same id, and
    published figures leave that match out.
    """
    judged = {q: dict(docs) for q, docs in qrels.items() if any(rel > 0 for rel in docs.values())}
    if not judged:
        raise ValueError("no query has a relevant judgement")
    ranked = {q: _strictly_ranked(_without(q, run.get(q, ()))) for q in judged}
    figures = ir_measures.calc_aggregate(MEASURES.values(), judged, ranked)
    return {name: float(figures[measure]) for name, measure in MEASURES.items()}


def _without(query_id: str, documents: Sequence[str] | Mapping[str, float]) -> Sequence[str] | Mapping[str, float]:
    """documents less the one whose id is query_id."""
    if isinstance(documents, Mapping):
        return {doc: score for doc, score in documents.items() if doc != query_id}
    return [doc for doc in documents if doc != query_id]


def ndcg_at(ranking: Sequence[str] | Mapping[str, float], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one query's ranking by trec_eval's rules, for benchmarks that score query by query."""
    figures = ir_measures.calc_aggregate([nDCG @ k], {"q": dict(judged)}, {"q": _strictly_ranked(ranking)})
    return float(figures[nDCG @ k])


def best_chunk_per_document(doc_ids: Sequence[str]) -> list[str]:
    """A ranking of chunks' document ids as a ranking of documents: each at its best chunk's rank."""
    return list(dict.fromkeys(doc_ids))


class ScoredHit(Protocol):
    """What document_scores reads of a hit: the gRPC message's fields and the engine's ChunkHit's alike."""

    doc_id: str
    score: float


def document_scores(hits: Iterable[ScoredHit]) -> dict[str, float]:
    """Ranked chunks as documents with their best chunk's score (hits come best first)."""
    scores: dict[str, float] = {}
    for hit in hits:
        scores.setdefault(hit.doc_id, hit.score)
    return scores


# -- the dataset -----------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A BEIR-layout folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @classmethod
    def load(cls, root: Path, split: str = "test") -> Dataset:
        for name in (BEIR_CORPUS, BEIR_QUERIES):
            if not (root / name).is_file():
                raise FileNotFoundError(f"{root / name} is missing: not a BEIR-layout folder")
        if not (root / "qrels" / f"{split}.tsv").is_file():
            splits = sorted(path.stem for path in (root / "qrels").glob("*.tsv")) or ["none"]
            raise FileNotFoundError(
                f"{root / 'qrels' / split}.tsv is missing: no judgements for split {split!r}"
                f" (qrels/ has: {', '.join(splits)})"
            )
        qrels = read_qrels(root / "qrels" / f"{split}.tsv")
        return cls(root, read_queries(root / BEIR_QUERIES, qrels), qrels)

    def corpus_size(self) -> int:
        """Documents in corpus.jsonl (its non-empty lines)."""
        with (self.root / BEIR_CORPUS).open(encoding="utf-8-sig") as lines:
            return sum(1 for line in lines if line.strip())

    def data_dir(self, base: Path, shape: str = "") -> Path:
        """A data directory of this collection's own, keyed by its corpus path and size and the store's shape
        (store_shape)."""
        corpus = (self.root / BEIR_CORPUS).resolve()
        return base / f"{self.root.resolve().name}-{shaped_digest(f'{corpus}:{corpus.stat().st_size}', shape)}"


STORE_SHAPE = ("chunk_tokens", "chunk_overlap", "embedding_model")
"""Settings that shape what an ingestion stores: an evaluation under other values needs a store of its own."""


def store_shape(config: Config) -> str:
    """STORE_SHAPE's values and the chunking version as text; "" for the defaults under the first chunking
    version, whose stores keep the names they always had."""
    shape: dict[str, object] = {name: getattr(config, name) for name in STORE_SHAPE}
    if all(value == Config.model_fields[name].default for name, value in shape.items()) and CHUNKING_VERSION == 1:
        return ""
    return json.dumps({**shape, "chunking": CHUNKING_VERSION}, sort_keys=True)


def eval_data_dir(dataset: Dataset, config: Config, base: Path = Path("var/eval")) -> Path:
    """The data directory likeopt eval keeps the collection's store in under config: benchmarks that read that
    store must look where the evaluation wrote it, which depends on the store's shape."""
    return dataset.data_dir(base, store_shape(config))


def shaped_digest(identity: str, shape: str) -> str:
    """A short digest naming a collection's store: its identity, and the store's shape when not the default."""
    return hashlib.blake2b(f"{identity}|{shape}".encode() if shape else identity.encode(), digest_size=6).hexdigest()


def read_queries(path: Path, judged: Mapping[str, object]) -> dict[str, str]:
    """query id -> text of the judged queries in a JSON Lines file of ``{"_id", "text"}``; a line that is not
    such an object is a ValueError naming it."""
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                query_id, text = str(record["_id"]), record["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a query with an _id and a text ({exc})") from None
            if query_id in judged and isinstance(text, str):
                queries[query_id] = text
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> doc id -> relevance from a TSV of (query-id, corpus-id, score) rows; BEIR's header row, whose
    score is not a number, is skipped, and a file without one loses no judgement."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8-sig", newline="") as rows:
        for number, row in enumerate(csv.reader(rows, delimiter="\t"), start=1):
            if len(row) < 3:
                continue
            try:
                score = int(float(row[2]))
            except ValueError:
                if number == 1:
                    continue
                raise ValueError(f"{path}:{number}: the score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


# -- the run -------------------------------------------------------------


@dataclass(frozen=True)
class EvalSettings:
    """The search parameters of a run (0 / None = the service's defaults)."""

    mode: str = "hybrid"
    fusion: str = ""
    rrf_k: float = 0.0
    alpha: float | None = None

    def check(self) -> EvalSettings:
        """These settings, or InvalidInput (a ValueError) for one retrieval_svc would refuse: said before a service
        starts and a collection is ingested, not as a traceback after."""
        check_fusion(0.0 if self.alpha is None else self.alpha, self.rrf_k)
        return self

    def request(self, query: str) -> retrieval_pb2.SearchRequest:
        request = retrieval_pb2.SearchRequest(
            query=query, top_k=DEPTH, mode=MODES[self.mode], rrf_k=self.rrf_k, no_cache=True, per_document=True
        )
        request.fusion = {"rrf": retrieval_pb2.RRF, "convex": retrieval_pb2.CONVEX}.get(self.fusion, 0)
        if self.alpha is not None:
            request.alpha = self.alpha
        return request


@dataclass
class QueryRun:
    """What one pass over the queries found: each query's documents, latencies, and the refused queries."""

    run: dict[str, dict[str, float]]
    latencies_ms: list[float]
    refused: dict[str, str]
    """query id -> why the service refused it (such a query finds nothing and scores 0)."""


def run_queries(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, queries: Mapping[str, str], settings: EvalSettings
) -> QueryRun:
    """Every query's documents with their best chunk's score, and its round-trip latency in ms, one at a time.

    Scores rather than the order alone, so ties are broken as trec_eval breaks them (see trec_ranking). A query
    the service refuses as invalid (longer than MAX_QUERY_CHARS, say) is counted as finding nothing, not left
    out, so the figures stay comparable with other systems' on the same queries.
    """
    found = QueryRun({}, [], {})
    searching = tqdm(queries.items(), desc=f"searching ({settings.mode})", unit="query", file=sys.stderr, leave=False)
    for query_id, text in searching:
        started = time.perf_counter()
        try:
            response = stub.Search(settings.request(text), timeout=30)
        except grpc.RpcError as exc:
            if exc.code() != INVALID_INPUT_STATUS:  # type: ignore[attr-defined]
                raise
            found.refused[query_id] = str(exc.details())  # type: ignore[attr-defined]
            found.run[query_id] = {}
            continue
        found.latencies_ms.append((time.perf_counter() - started) * 1000)
        found.run[query_id] = document_scores(response.hits)
    return found


def evaluate(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, dataset: Dataset, settings: EvalSettings, config: Config
) -> dict[str, object]:
    """The figures of one run, as ``--json`` prints them; config gives the service's fusion defaults."""
    status = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=10)
    stub.Search(settings.request("warm-up"), timeout=60)  # the first search allocates: not timed
    found = run_queries(stub, dataset.queries, settings)
    figures: dict[str, object] = {key: round(value, 4) for key, value in score_run(found.run, dataset.qrels).items()}
    figures["latency_ms"] = {f"p{p}": round(percentile(found.latencies_ms, p) or 0.0, 2) for p in (50, 95, 99)}
    figures.update(mode=settings.mode, docs=status.documents, chunks=status.chunks, queries=len(dataset.queries))
    if found.refused:
        figures["refused"] = {"queries": len(found.refused), "first": next(iter(found.refused.items()))}
    figures["fusion"] = {
        "method": settings.fusion or config.fusion,
        "rrf_k": settings.rrf_k or config.rrf_k,
        "alpha": config.fusion_alpha if settings.alpha is None else settings.alpha,
    }
    return figures


# -- the private retrieval_svc -----------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_retrieval(data_dir: Path, log_path: Path, overrides: Mapping[str, str] | None = None) -> Iterator[str]:
    """A retrieval_svc of our own on a free loopback port, with overrides of this environment's settings; yields
    its address once SERVING. Its caches are off, cache_svc and the near caches in process alike: configurations
    sharing it would otherwise find the queries embedded by the first, and their latencies would not compare."""
    host = "127.0.0.1"
    port = free_port(host)
    settings = {  # chunking, model and fusion settings pass through from this environment
        "LIKEOPT_HOST": host,
        "LIKEOPT_RETRIEVAL_PORT": str(port),
        "LIKEOPT_DATA_DIR": str(data_dir),
        "LIKEOPT_CACHE_ENABLED": "0",
        "LIKEOPT_NEAR_CACHE_ENTRIES": "0",
        "LIKEOPT_RETRIEVAL_METRICS_PORT": "0",
        "LIKEOPT_MILVUS_COLLECTION": eval_collection(data_dir),
        **(overrides or {}),
    }
    with private_service("retrieval_svc", f"{host}:{port}", settings, log_path) as address:
        yield address


@contextmanager
def private_service(module: str, address: str, settings: dict[str, str], log_path: Path) -> Iterator[str]:
    """``python -m module`` with this environment plus settings, logging to log_path; yields address once it
    answers SERVING, and stops the process (SIGTERM, then SIGKILL after 30 s) when the block ends."""
    env = {**os.environ, **settings, **CHILD_ENV}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=log)
    try:
        try:
            wait_serving(address, process)
        except ServiceFailed as failed:
            raise ServiceFailed(f"{module} {failed}{last_words(log_path)}") from None
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


class ServiceFailed(RuntimeError):
    """A private service ended before it served (a setting it refused, say); the message says why."""


def last_words(log_path: Path) -> str:
    """The last line a failed service wrote to its log (its reason), as ": line", or "" when it wrote none."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1][:500]}" if lines else ""


def eval_collection(data_dir: Path) -> str:
    """The Milvus collection of one evaluation collection (with the milvus backend): never the user's own."""
    return "likeopt_eval_" + re.sub(r"[^A-Za-z0-9_]", "_", data_dir.name)


def wait_serving(address: str, process: subprocess.Popen[bytes], timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll gRPC health until SERVING; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceFailed(f"exited with code {process.returncode} before serving")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"retrieval_svc at {address} did not serve within {timeout_s:.0f} s")


def run_eval(
    data: Path, settings: EvalSettings, config: Config, base_dir: Path = Path("var/eval"), split: str = "test"
) -> dict[str, object]:
    """Start the private service, ingest the corpus unless that was done before (ingest_once), and evaluate
    on the queries judged in qrels/<split>.tsv."""
    return run_evals(data, [settings], config, base_dir=base_dir, split=split)[0]


def run_evals(
    data: Path,
    runs: Sequence[EvalSettings],
    config: Config,
    overrides: Mapping[str, str] | None = None,
    base_dir: Path = Path("var/eval"),
    split: str = "test",
) -> list[dict[str, object]]:
    """run_eval for several search settings against one private service started with overrides.

    An interrupted ingestion leaves its acknowledged batches behind; the next run ingests the collection
    again (upserts replace, so nothing is doubled), and later runs do not (ingest_once). Every split of a
    collection shares its store.
    """
    dataset = Dataset.load(data, split)
    data_dir = eval_data_dir(dataset, config, base_dir)
    with private_retrieval(data_dir, data_dir / "retrieval_svc.log", overrides) as address:
        ingest_once(address, data, data_dir, dataset.corpus_size(), quiet=False)
        with grpc.insecure_channel(address) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            return [evaluate(stub, dataset, settings, config) for settings in runs]


INGESTED_MARK = "ingested"
"""Written into an evaluation's data directory when an ingestion of its whole collection returned."""


def ingest_once(address: str, source: Path, data_dir: Path, documents: int, quiet: bool) -> None:
    """Ingest source through the retrieval_svc at address unless that finished before for this data directory.

    A collection's documents that cannot be stored (no title or text) keep the store short of its line count
    for good, so that count alone cannot tell a finished ingestion from an interrupted one; the mark can. A
    store from before the mark counts as finished when it holds at least ``documents``. A mark over an empty index
    counts for nothing: it was left by the other backend (the Milvus collection is named after the data directory),
    or the collection was emptied since.
    """
    mark = data_dir / INGESTED_MARK
    with grpc.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stored = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=10).documents
    if mark.is_file() and stored > 0:
        return
    if stored < documents:
        with contextlib.redirect_stdout(sys.stderr):  # what it stored and skipped; stdout is the run's report (JSON)
            ingest_paths([str(source)], address, quiet=quiet, expected=documents)
    mark.write_text(f"{source.resolve()}\n", encoding="utf-8")


def format_report(figures: Mapping[str, object]) -> str:
    """The figures as a few human-readable lines."""
    latency = figures["latency_ms"]
    assert isinstance(latency, dict)
    fusion = figures["fusion"]
    assert isinstance(fusion, dict)
    fused = f"  fusion {fusion['method']} (k={fusion['rrf_k']:g}, alpha={fusion['alpha']:g})"
    return "\n".join(
        [
            f"mode {figures['mode']}: {figures['docs']} documents, {figures['queries']} queries"
            + (fused if figures["mode"] == "hybrid" else ""),
            f"nDCG@10     {figures['ndcg@10']:.4f}",
            f"Recall@100  {figures['recall@100']:.4f}",
            f"MRR@10      {figures['mrr@10']:.4f}",
            f"latency ms  p50 {latency['p50']:.2f}  p95 {latency['p95']:.2f}  p99 {latency['p99']:.2f}",
            *refused_line(figures),
        ]
    )


def refused_line(figures: Mapping[str, object]) -> list[str]:
    """The report's line on refused queries (scored as finding nothing), if any were."""
    refused = figures.get("refused")
    if not isinstance(refused, dict):
        return []
    query_id, reason = refused["first"]
    return [f"refused     {refused['queries']} queries, scored as finding nothing (query {query_id}: {reason})"]
