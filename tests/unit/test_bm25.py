"""BM25Index must score exactly like rank_bm25.BM25Okapi on the live corpus, through adds and removals."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from likeopt.runtime.text import tokenize
from retrieval_svc.access import RowMask
from retrieval_svc.bm25 import BM25Index

SCIFACT = Path("/work/shared/data/scifact/corpus.jsonl")
TOLERANCE = 1e-6


def random_corpus(rng: random.Random, n_docs: int) -> list[list[str]]:
    """Zipf-like documents over a small vocabulary, so some terms are in most documents (negative idf)."""
    vocabulary = [f"w{i}" for i in range(60)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [rng.choices(vocabulary, weights, k=rng.randint(0, 40)) for _ in range(n_docs)]


def scifact_corpus(n_docs: int) -> list[list[str]]:
    if not SCIFACT.exists():
        pytest.skip(f"{SCIFACT} not available")
    with SCIFACT.open() as lines:
        records = [json.loads(line) for _, line in zip(range(n_docs), lines, strict=False)]
    return [tokenize(f"{r['title']} {r['text']}") for r in records]


def queries_for(rng: random.Random, docs: list[list[str]], n: int) -> list[list[str]]:
    """Slices of documents, with a repeated token and an unknown one mixed in."""
    queries = []
    for _ in range(n):
        source = rng.choice([d for d in docs if d])
        start = rng.randrange(len(source))
        query = source[start : start + rng.randint(1, 8)]
        query += [rng.choice(query), "zz-not-a-term"] * rng.randint(0, 2)
        queries.append(query)
    return queries


def assert_matches_rank_bm25(index: BM25Index, live: dict[int, list[str]], queries: list[list[str]]) -> None:
    keys = sorted(live)
    reference = BM25Okapi([live[k] for k in keys])
    assert len(index) == len(keys)
    for query in queries:
        expected = reference.get_scores(query)
        got = index.scores(query)
        assert np.allclose([got.get(k, 0.0) for k in keys], expected, rtol=0, atol=TOLERANCE), query
        containing = {k for k in keys if set(query) & set(live[k])}
        assert set(got) == containing, query


def assert_part_scores_as_its_own_index(index: BM25Index, live: dict[int, list[str]], part: list[int]) -> None:
    """Searched within part, every score is what rank_bm25 gives over part's documents alone."""
    keys = sorted(k for k in part if k in live)
    reference = BM25Okapi([live[k] for k in keys])
    mask = RowMask.of_rows(part, max(*live, *part) + 1)
    for query in queries_for(random.Random(len(keys)), [live[k] for k in keys], 30):
        got = dict(index.search(query, top_k=len(live), allowed=mask, part=mask))
        expected = reference.get_scores(query)
        assert set(got) == {k for k in keys if set(query) & set(live[k])}, query
        assert np.allclose([got.get(k, 0.0) for k in keys], expected, rtol=0, atol=TOLERANCE), query


def build(docs: dict[int, list[str]]) -> BM25Index:
    index = BM25Index()
    for key, tokens in docs.items():
        index.add(key, tokens)
    return index


def test_random_corpus_exercises_the_negative_idf_rule() -> None:
    docs = random_corpus(random.Random(1), 300)
    common = sum("w0" in d for d in docs)
    assert common > len(docs) / 2
    assert BM25Okapi(docs).idf["w0"] > 0  # rank_bm25 replaced its negative idf by epsilon * mean


@pytest.mark.parametrize("source", ["random", "scifact"])
def test_scores_equal_rank_bm25(source: str) -> None:
    rng = random.Random(2)
    docs = random_corpus(rng, 300) if source == "random" else scifact_corpus(300)
    live = {key * 3 + 100: tokens for key, tokens in enumerate(docs)}
    assert_matches_rank_bm25(build(live), live, queries_for(rng, docs, 60))


@pytest.mark.parametrize("source", ["random", "scifact"])
def test_scores_equal_rank_bm25_after_removals_and_re_adds(source: str) -> None:
    """Searched within a part (a reader's readable chunks), as an index of that part alone would score."""
    rng = random.Random(3)
    docs = random_corpus(rng, 400) if source == "random" else scifact_corpus(400)
    live = dict(enumerate(docs[:300]))
    index = build(live)
    queries = queries_for(rng, docs, 40)
    part = rng.sample(sorted(live), 120)
    assert_part_scores_as_its_own_index(index, live, part)  # index the first batch before changing it
    for key in rng.sample(sorted(live), 120):
        index.remove(key)
        del live[key]
    assert_matches_rank_bm25(index, live, queries)
    assert_part_scores_as_its_own_index(index, live, part)
    for key, tokens in zip(rng.sample(range(300), 80), docs[300:380], strict=True):
        index.add(key, tokens)  # re-adds replace, adds of removed keys come back
        live[key] = tokens
    assert_matches_rank_bm25(index, live, queries)
    assert_part_scores_as_its_own_index(index, live, part)


def test_scores_stay_exact_while_interleaving_adds_removes_and_searches() -> None:
    """Small changes to a large index are searched before being folded in: check every step."""
    rng = random.Random(4)
    docs = random_corpus(rng, 700)
    queries = queries_for(rng, docs, 3)
    live = dict(enumerate(docs[:400]))
    index = build(live)
    for step, tokens in enumerate(docs[400:]):
        key = rng.randrange(450)
        index.add(key, tokens)
        live[key] = tokens
        if step % 2:
            gone = rng.choice(sorted(live))
            index.remove(gone)
            del live[gone]
        assert_matches_rank_bm25(index, live, queries)


def test_empty_documents_count_towards_corpus_size_and_average_length() -> None:
    live = {0: ["a", "b"], 1: [], 2: ["b", "c", "c"], 3: []}
    assert_matches_rank_bm25(build(live), live, [["a"], ["c", "c"], ["b", "a"]])


def test_search_ranks_best_first_and_agrees_with_rank_bm25() -> None:
    docs = scifact_corpus(300)
    index = build(dict(enumerate(docs)))
    reference = BM25Okapi(docs).get_scores(["cancer", "cell"])
    hits = index.search(["cancer", "cell"], top_k=10)
    assert [k for k, _ in hits] == list(np.argsort(-reference, kind="stable")[:10])
    assert [s for _, s in hits] == pytest.approx(sorted(reference, reverse=True)[:10], abs=TOLERANCE)


def test_search_returns_only_documents_containing_a_query_term() -> None:
    index = build({1: ["apple", "pie"], 2: ["banana"], 3: ["apple"], 4: ["cherry"]})
    assert {k for k, _ in index.search(["apple", "durian"], top_k=10)} == {1, 3}
    assert index.search(["durian"], top_k=10) == []
    assert index.search([], top_k=10) == []


def test_search_breaks_ties_by_key_and_cuts_at_top_k() -> None:
    index = build({9: ["x", "y"], 5: ["x", "y"], 7: ["x", "y"], 1: ["y"]})
    assert [k for k, _ in index.search(["x"], top_k=2)] == [5, 7]
    assert index.search(["x"], top_k=0) == []


def test_search_restricts_to_allowed_keys() -> None:
    index = build({1: ["apple"], 2: ["apple", "apple"], 3: ["apple"], 4: ["pear"]})
    hits = index.search(["apple"], top_k=10, allowed=np.array([3, 4, 1], dtype=np.int64))
    assert [k for k, _ in hits] == [1, 3]
    assert index.search(["apple"], top_k=10, allowed=np.array([], dtype=np.int64)) == []


def test_a_hidden_document_changes_no_score_within_the_part() -> None:
    index = build({1: ["pelican", "bay"], 2: ["walrus", "bay"], 3: ["gull"]})
    part = RowMask.of_rows([1, 2, 3], 10)
    before = [index.search([word], 5, part, part=part) for word in ("pelican", "walrus")]
    index.add(7, ["layoffs", "pelican"])  # a document the reader may not read
    assert [index.search([word], 5, part, part=part) for word in ("pelican", "walrus")] == before
    assert index.search(["pelican"], 5)[0][1] != before[0][0][1]  # unrestricted, it counts


def test_re_adding_a_key_replaces_its_document() -> None:
    index = build({1: ["old"], 2: ["other"]})
    index.add(1, ["new"])
    assert len(index) == 2
    assert index.search(["old"], top_k=5) == []
    assert [k for k, _ in index.search(["new"], top_k=5)] == [1]


def test_removing_unknown_or_removed_keys_is_a_no_op() -> None:
    index = build({1: ["a"], 2: ["b"]})
    index.remove(42)
    index.remove(1)
    index.remove(1)
    assert len(index) == 1
    assert [k for k, _ in index.search(["a", "b"], top_k=5)] == [2]


def test_empty_index() -> None:
    index = BM25Index()
    assert len(index) == 0
    assert index.search(["a"], top_k=5) == []
    index.add(1, ["a"])
    index.remove(1)
    assert index.search(["a"], top_k=5) == []
    assert index.scores(["a"]) == {}


def test_adding_pages_at_once_scores_as_rank_bm25_and_replaces_like_add() -> None:
    rng = random.Random(11)
    docs = dict(enumerate(random_corpus(rng, 120)))
    index = BM25Index()
    index.add_many([])
    keys = list(docs)
    for start in range(0, len(keys), 50):
        index.add_many([(k, docs[k]) for k in keys[start : start + 50]])
    queries = queries_for(rng, list(docs.values()), 30)
    assert_matches_rank_bm25(index, docs, queries)
    replaced = {3: ["w1", "w2"], 200: ["w5"], 7: []}
    index.add_many(list(replaced.items()))
    docs.update(replaced)
    index.remove(11)
    del docs[11]
    assert_matches_rank_bm25(index, docs, queries)


def test_adding_a_page_needs_distinct_keys() -> None:
    index = build({1: ["a"]})
    with pytest.raises(ValueError, match="distinct keys"):
        index.add_many([(2, ["b"]), (2, ["c"])])
    assert len(index) == 1 and index.search(["b", "c"], top_k=5) == []


def unique_terms(rng: random.Random, n: int) -> list[str]:
    """Terms no other document has, as in logs, ids and hashes."""
    return [f"id{rng.getrandbits(64):x}" for _ in range(n)]


def assert_holds_only_live_terms(index: BM25Index, live: dict[int, list[str]]) -> None:
    """The vocabulary, and every array sized by it, is the live documents' terms and no more."""
    vocabulary = {term for tokens in live.values() for term in tokens}
    assert set(index._term_ids) == vocabulary
    assert len(index._df) == len(index._offsets) - 1 == len(vocabulary)


@pytest.mark.parametrize("settled_by", ["compact", "settle"])
def test_the_terms_of_removed_documents_are_forgotten(settled_by: str) -> None:
    """Documents full of unique terms added and removed round after round: the vocabulary comes back to the live
    documents' terms, at once by compact and, as the service runs (settle), by the rebuild a removal brings about
    once unused terms are a large share of it. Scores stay rank_bm25's."""
    rng = random.Random(12)
    live = dict(enumerate(random_corpus(rng, 40)))
    index = build(live)
    queries = queries_for(rng, list(live.values()), 30)
    for round_ in range(3):
        batch = {100 + 10 * round_ + i: [*unique_terms(rng, 200), "w1"] for i in range(10)}
        index.add_many(list(batch.items()))
        index.settle()
        for key in [*batch, round_]:
            index.remove(key)
        del live[round_]
        getattr(index, settled_by)()
        assert_holds_only_live_terms(index, live)
    assert_matches_rank_bm25(index, live, queries)
    assert_part_scores_as_its_own_index(index, live, rng.sample(sorted(live), 15))
    index.add(7, ["w2", "new"])
    live[7] = ["w2", "new"]
    assert_matches_rank_bm25(index, live, [*queries, ["new", "w2"]])
