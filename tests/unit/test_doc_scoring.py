"""benchmarks/doc_scoring reads the store likeopt eval wrote for a collection, wherever the store's shape puts it,
and scores BM25 as the service it stands in for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.doc_scoring import bm25_runs, load
from likeopt.ops.evaluate import Dataset, EvalSettings, document_scores, store_shape
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2
from retrieval_svc.store import NewDocument, Store
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_server


def collection_folder(tmp_path: Path, corpus: dict[str, str], query: str) -> tuple[Path, Path]:
    """A BEIR folder of corpus (id -> text) and one query judged to find the first document, and the (empty)
    data directory likeopt eval would keep its store in, with tmp_path as the working directory."""
    folder = tmp_path / "collection"
    (folder / "qrels").mkdir(parents=True)
    lines = "".join(json.dumps({"_id": d, "title": "", "text": text}) + "\n" for d, text in corpus.items())
    (folder / "corpus.jsonl").write_text(lines)
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": query}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\t{next(iter(corpus))}\t1\n")
    where = Dataset.load(folder).data_dir(tmp_path / "var/eval", store_shape(Config.from_env()))
    where.mkdir(parents=True)
    return folder, where


def test_the_chunks_come_from_the_store_likeopt_eval_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder, where = collection_folder(tmp_path, {"d1": "apt installs packages"}, "package manager")
    embedder = FakeEmbedder()
    store = Store(where / "store.sqlite3")
    store.upsert([NewDocument("d1", "", {}, ["apt installs packages"], embedder.encode(["apt installs packages"]))])
    store.close()
    collection = load(folder, embedder)
    assert collection.doc_ids == ["d1"]
    assert collection.chunk_vectors.shape == (1, embedder.dim)


CASED = {
    "d1": "The OpenAPI schema lists every endpoint.",
    "d2": "Open questions about the api gateway.",
    "d3": "Gardening tools and seeds.",
}
"""d1 spells an identifier in mixed case (its terms include open and api); d2 has those words alone."""


async def test_bm25_scores_each_query_as_the_service_searches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service casefolds a query before its terms: "OpenAPI" does not find d2 by open or api."""
    monkeypatch.chdir(tmp_path)
    folder, where = collection_folder(tmp_path, CASED, "OpenAPI")
    embedder = FakeEmbedder()
    async with retrieval_server(where, embedder, DictCache()) as (_, stub):
        await stub.UpsertDocuments(iter([retrieval_pb2.Document(id=d, text=text) for d, text in CASED.items()]))
        served = document_scores((await stub.Search(EvalSettings(mode="bm25").request("OpenAPI"))).hits)
    scored = bm25_runs(load(folder, embedder))["bm25-chunks"]["q1"]
    assert set(served) == {"d1"}
    assert scored == pytest.approx(served, rel=1e-6)
