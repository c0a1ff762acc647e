"""Document-level dense scoring: mean chunk vectors, the blend of chunk and document, and the engine using them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval_svc.backend import DocumentInput, SearchParams
from retrieval_svc.doc_vectors import DocumentVectors, blend
from retrieval_svc.engine import RetrievalEngine
from tests.unit.test_retrieval_harness import FakeEmbedder

TOPICS = ("zebras stripes savanna", "engines wheels roads", "rivers fish water", "bread flour ovens")


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_a_document_vector_is_the_normalised_mean_of_its_chunks() -> None:
    vectors = DocumentVectors(dim=2)
    vectors.set("d", np.vstack([unit(1, 0), unit(0, 1)]))
    scores = vectors.scores(["d"], unit(1, 1))
    assert scores["d"] == pytest.approx(1.0, abs=2e-3)  # mean (0.5, 0.5) normalised is the query itself
    assert vectors.scores(["d"], unit(1, -1))["d"] == pytest.approx(0.0, abs=2e-3)


def test_one_chunk_documents_keep_no_vector_and_forgotten_slots_are_reused() -> None:
    vectors = DocumentVectors(dim=2)
    vectors.set("single", unit(1, 0)[None, :])
    assert len(vectors) == 0 and vectors.scores(["single"], unit(1, 0)) == {}
    for n in range(1500):  # past the first allocation
        vectors.set(f"d{n}", np.vstack([unit(1, 0), unit(1, 1)]))
    size = vectors.nbytes
    vectors.forget("d7")
    vectors.set("again", np.vstack([unit(0, 1), unit(1, 1)]))
    assert len(vectors) == 1500 and vectors.nbytes == size
    assert vectors.scores(["again", "d7"], unit(0, 1)).keys() == {"again"}


def test_blend_mixes_each_chunk_with_its_document_and_reorders() -> None:
    vectors = DocumentVectors(dim=2)
    vectors.set("about", np.vstack([unit(1, 0), unit(1, 0.2)]))  # on the query's topic throughout
    vectors.set("stray", np.vstack([unit(1, 0.1), unit(0, 1), unit(-0.2, 1)]))  # one matching chunk in three
    query = unit(1, 0)
    ranked = [(10, 0.995), (20, 0.98), (5, 0.3)]  # (row, chunk cosine): row 10 is stray's, 20 about's, 5 single's
    owner = {10: "stray", 20: "about", 5: "single"}.__getitem__
    assert blend(ranked, owner, vectors, query, 0.0) == ranked
    mixed = blend(ranked, owner, vectors, query, 0.3)
    assert [row for row, _ in mixed] == [20, 10, 5]
    whole = vectors.scores(["about", "stray"], query)
    assert dict(mixed)[10] == pytest.approx(0.7 * 0.995 + 0.3 * whole["stray"])
    assert dict(mixed)[5] == pytest.approx(0.3)  # a one-chunk document is its chunk


def long_text(topic: str, other: str, chunks: int) -> str:
    """A text whose first sentence is on topic and the rest on other, one sentence per chunk."""
    return " ".join([f"The {topic} one."] + [f"The {other} {n}." for n in range(1, chunks)])


@pytest.fixture
def corpus(tmp_path: Path) -> RetrievalEngine:
    engine = RetrievalEngine(tmp_path, FakeEmbedder(), chunk_tokens=8, chunk_overlap=0, document_weight=0.4)
    engine.load()
    docs = [DocumentInput(f"{a}-{b}", "", long_text(a, b, 4), {}) for a in TOPICS for b in TOPICS if a != b]
    docs += [DocumentInput(f"{a}-only", "", long_text(a, a, 3), {}) for a in TOPICS]
    engine.upsert(docs, [engine.prepare(d) for d in docs])
    return engine


def dense_documents(engine: RetrievalEngine, query: str, weight: float | None = None) -> dict[str, float]:
    params = SearchParams(100, "dense", "rrf", 60, 0.5, per_document=True, document_weight=weight)
    return {hit.doc_id: hit.score for hit in engine.search(query, params, engine.embed_query(query))}


def expected(engine: RetrievalEngine, query: str, weight: float) -> dict[str, float]:
    """(1 - w) * best chunk + w * cosine with the normalised mean chunk vector, from the stored embeddings."""
    q = engine.embed_query(query)
    by_doc: dict[str, list[np.ndarray]] = {}
    for chunk in engine.store.chunks():
        by_doc.setdefault(chunk.doc_id, []).append(chunk.embedding)
    out = {}
    for doc_id, vectors in by_doc.items():
        matrix = np.vstack(vectors)
        mean = matrix.sum(axis=0) / np.linalg.norm(matrix.sum(axis=0))
        out[doc_id] = (1 - weight) * float((matrix @ q).max()) + weight * float(mean @ q)
    return out


def test_engine_ranks_documents_by_best_chunk_plus_a_share_of_the_whole(corpus: RetrievalEngine) -> None:
    query = "zebras stripes savanna"
    scores = dense_documents(corpus, query)
    truth = expected(corpus, query, 0.4)
    assert scores.keys() == truth.keys()
    for doc_id, score in scores.items():
        assert score == pytest.approx(truth[doc_id], abs=3e-3)  # float16 document vectors
    assert max(scores, key=scores.__getitem__) == "zebras stripes savanna-only"
    # the documents opening with the same zebra sentence tie on their best chunk; their wholes part them
    openers = [d for d in scores if d.startswith("zebras") and not d.endswith("-only")]
    alone = dense_documents(corpus, query, weight=0.0)
    assert len({round(alone[d], 6) for d in openers}) == 1
    assert len({round(scores[d], 6) for d in openers}) == len(openers)


def test_weight_zero_is_the_best_chunk_alone(corpus: RetrievalEngine) -> None:
    query = "engines wheels roads"
    scores = dense_documents(corpus, query, weight=0.0)
    for doc_id, score in scores.items():
        assert score == pytest.approx(expected(corpus, query, 0.0)[doc_id], abs=1e-5)


def test_document_vectors_follow_upserts_deletes_and_restarts(corpus: RetrievalEngine, tmp_path: Path) -> None:
    replaced = DocumentInput("rivers fish water-only", "", "The bread flour ovens one.", {})
    corpus.upsert([replaced], [corpus.prepare(replaced)])
    corpus.delete(["bread flour ovens-only"])
    multi = sum(1 for rows in corpus.rows_by_doc.values() if len(rows) > 1)
    assert len(corpus.doc_vectors) == multi
    before = dense_documents(corpus, "rivers fish water")
    assert before == pytest.approx(expected(corpus, "rivers fish water", 0.4), abs=3e-3)
    corpus.store.close()
    restarted = RetrievalEngine(tmp_path, FakeEmbedder(), chunk_tokens=8, chunk_overlap=0, document_weight=0.4)
    restarted.load()
    assert len(restarted.doc_vectors) == multi
    assert dense_documents(restarted, "rivers fish water") == pytest.approx(before, abs=1e-6)


def test_an_engine_scoring_chunks_alone_keeps_no_document_vectors(tmp_path: Path) -> None:
    engine = RetrievalEngine(tmp_path, FakeEmbedder(), chunk_tokens=8, chunk_overlap=0)
    engine.load()
    docs = [DocumentInput(a, "", long_text(a, b, 4), {}) for a, b in zip(TOPICS, reversed(TOPICS), strict=True)]
    engine.upsert(docs, [engine.prepare(d) for d in docs])
    assert len(engine.doc_vectors) == 0
    asked = dense_documents(engine, "rivers fish water", weight=0.4)
    assert asked == pytest.approx(expected(engine, "rivers fish water", 0.0), abs=1e-5)


def test_the_service_keys_searches_by_the_configured_weight() -> None:
    from likeopt.caching.cache_keys import cache_key
    from likeopt.runtime.config import Config
    from likeopt.v1 import retrieval_pb2
    from retrieval_svc.search_messages import search_params

    request = retrieval_pb2.SearchRequest(query="zebras", top_k=5)
    light = search_params(request, Config.from_env({"LIKEOPT_DOCUMENT_WEIGHT": "0.1"}))
    heavy = search_params(request, Config.from_env({"LIKEOPT_DOCUMENT_WEIGHT": "0.6"}))
    assert (light.document_weight, heavy.document_weight) == (0.1, 0.6)
    assert cache_key("zebras", light, 1) != cache_key("zebras", heavy, 1)
    with pytest.raises(ValueError, match="LIKEOPT_DOCUMENT_WEIGHT"):
        Config.from_env({"LIKEOPT_DOCUMENT_WEIGHT": "1.5"})
