"""``likeopt eval`` end to end on a collection with awkward documents: a real retrieval_svc on a loopback port."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from likeopt.caching.hit_rate import NEAR_LOOKUPS
from likeopt.ops import evaluate
from likeopt.ops.evaluate import EvalSettings, run_eval, run_evals
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2_grpc
from tests.support import MilvusServer

CORPUS = [
    {"_id": "zebra", "title": "Zebras", "text": "Zebras have black and white stripes."},
    {"_id": "flu", "title": "Household transmission of influenza", "text": ""},
    {"_id": 7, "title": "", "text": "Cars have wheels and engines."},
    {"_id": "blank", "title": "", "text": "   "},
]
QUERIES = {
    "q1": "striped animals",
    "q2": "influenza spreading within households",
    "q3": "engines and wheels",
    "q4": "zebras " * 1000,  # longer than MAX_QUERY_CHARS: the service refuses it
}
QRELS = {"q1": "zebra", "q2": "flu", "q3": "7", "q4": "zebra"}


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "awkward"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in CORPUS))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    rows = "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items())
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\tflu\t1\n")
    return root


def test_an_awkward_collection_is_scored_whole_and_ingested_once(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The title-only document is found, the over-long query scores 0 instead of ending the run, and the blank
    document, which can never be stored, does not make every run ingest the collection again."""
    ingestions: list[list[str]] = []
    real = evaluate.ingest_paths
    monkeypatch.setattr(
        evaluate, "ingest_paths", lambda paths, *a, **k: ingestions.append(paths) or real(paths, *a, **k)
    )
    config = Config.from_env({})
    first = run_eval(collection, EvalSettings(mode="bm25"), config, base_dir=tmp_path / "eval")
    printed = capsys.readouterr()
    assert printed.out == "" and "ingested 3 documents" in printed.err  # `likeopt eval --json`'s stdout is JSON alone
    assert (first["ndcg@10"], first["docs"], first["queries"]) == (0.75, 3, 4)
    assert first["refused"]["queries"] == 1 and first["refused"]["first"][0] == "q4"  # type: ignore[index]
    assert "refused     1 queries, scored as finding nothing (query q4:" in evaluate.format_report(first)
    again = run_eval(collection, EvalSettings(), config, base_dir=tmp_path / "eval")
    assert again["docs"] == 3 and len(ingestions) == 1
    (next((tmp_path / "eval").iterdir()) / evaluate.INGESTED_MARK).unlink()  # as if the first run was cut off
    dev = run_eval(collection, EvalSettings(mode="bm25"), config, base_dir=tmp_path / "eval", split="dev")
    assert len(ingestions) == 2 and (dev["queries"], dev["ndcg@10"]) == (1, 1.0)
    smaller = Config.from_env({"LIKEOPT_CHUNK_TOKENS": "64"})  # another store shape: a store of its own
    run_eval(collection, EvalSettings(mode="bm25"), smaller, base_dir=tmp_path / "eval")
    assert len(ingestions) == 3 and len(list((tmp_path / "eval").iterdir())) == 2


def test_a_collection_evaluated_on_the_embedded_engine_is_ingested_into_milvus_when_evaluated_there(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both backends share the evaluation's data directory, and so its mark of a finished ingestion: a mark over
    an empty collection counts for nothing (it scored nDCG 0 over 0 documents, and exited 0)."""
    config = Config.from_env({})
    embedded = run_eval(collection, EvalSettings(mode="bm25"), config, base_dir=tmp_path / "eval")
    milvus = MilvusServer(tmp_path / "milvus")
    milvus.start()
    try:
        on_milvus = {"LIKEOPT_RETRIEVAL_BACKEND": "milvus", "LIKEOPT_MILVUS_URI": milvus.uri}
        capsys.readouterr()
        [there] = run_evals(collection, [EvalSettings(mode="bm25")], config, on_milvus, base_dir=tmp_path / "eval")
    finally:
        milvus.stop()
    assert "ingested 3 documents" in capsys.readouterr().err
    assert there["docs"] == embedded["docs"] == 3
    assert there["ndcg@10"] > 0 and embedded["ndcg@10"] > 0


def test_configurations_sharing_a_private_service_each_embed_their_queries(tmp_path: Path) -> None:
    """`likeopt eval --compare` runs configurations with the same settings on one retrieval_svc: the first one
    embedding the queries paid for them (p95 450 ms on long queries) while the next read them from the
    service's memory (5-65 ms), which read as a slow start. Each configuration's latency must include them."""
    metrics_port = evaluate.free_port("127.0.0.1")
    overrides = {"LIKEOPT_RETRIEVAL_METRICS_PORT": str(metrics_port)}
    with evaluate.private_retrieval(tmp_path / "data", tmp_path / "retrieval.log", overrides) as address:
        with grpc.insecure_channel(address) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            for mode in ("hybrid", "dense"):
                stub.Search(EvalSettings(mode=mode).request("striped animals"), timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
            families = text_string_to_metric_families(reply.read().decode())
    lookups = {
        sample.labels["result"]: sample.value
        for family in families
        for sample in family.samples
        if sample.name == NEAR_LOOKUPS and sample.labels.get("name") == "embedding"
    }
    assert lookups == {"hit": 0.0, "miss": 2.0}  # each configuration embedded the query itself
