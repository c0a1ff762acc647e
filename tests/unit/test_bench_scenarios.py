"""Scenario query streams: the Zipf sampler, re-typing, and the cache behaviour each scenario claims."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from likeopt.caching.cache_keys import normalise_query
from likeopt.ops.bench.scenarios import (
    CACHED_SET_SIZE,
    CHAT_PATH,
    SCENARIOS,
    SEARCH_PATH,
    ZipfSampler,
    build,
    invisible,
    load_queries,
    marked,
    retype,
    run_word,
)
from likeopt.runtime.text import tokenize

QUERIES = [f"question number {n} about cells" for n in range(200)]
RUN = 0x5EED


def test_zipf_ranks_follow_the_power_law() -> None:
    sample = ZipfSampler(1109, 1.1, random.Random(7))
    counts = Counter(sample() for _ in range(200_000))
    assert min(counts) >= 0 and max(counts) < 1109
    assert counts[0] / counts[1] == pytest.approx(2**1.1, rel=0.05)
    assert counts[0] / counts[9] == pytest.approx(10**1.1, rel=0.1)
    # P(rank 1) = 1 / H(1109, 1.1), about 0.178
    assert counts[0] / 200_000 == pytest.approx(1 / sum(k**-1.1 for k in range(1, 1110)), rel=0.03)


def test_zipf_with_one_item_and_with_none() -> None:
    assert {ZipfSampler(1, 1.1, random.Random(1))() for _ in range(50)} == {0}
    with pytest.raises(ValueError):
        ZipfSampler(0, 1.1, random.Random(1))


def test_retyped_questions_look_different_but_normalise_to_the_same_key() -> None:
    rng = random.Random(3)
    text = "What is the role of p53 in DNA repair?"
    variants = {retype(text, rng) for _ in range(50)}
    assert len(variants) > 10 and text not in variants
    assert {normalise_query(v) for v in variants} == {normalise_query(text)}


def test_search_cached_cycles_a_small_warmed_set() -> None:
    scenario = build("search-cached", QUERIES, random.Random(1), RUN)
    assert scenario.path == SEARCH_PATH and scenario.cache_namespace == "search"
    assert len(scenario.warmup) == CACHED_SET_SIZE
    assert set(itertools.islice(scenario.queries, 100)) == set(scenario.warmup)


def test_search_uncached_never_repeats_a_normalised_query() -> None:
    scenario = build("search-uncached", QUERIES, random.Random(1), RUN)
    sent = [normalise_query(q) for q in itertools.islice(scenario.queries, 5000)]
    assert len(set(sent)) == len(sent)
    assert scenario.warmup == ()


def test_chat_sends_every_question_once_before_repeating() -> None:
    scenario = build("chat", QUERIES, random.Random(1), RUN)
    assert scenario.streaming and scenario.path == CHAT_PATH and scenario.cache_namespace == "answer"
    first_pass = list(itertools.islice(scenario.queries, len(QUERIES)))
    assert sorted(first_pass) == sorted(f"{q} {run_word(RUN)}" for q in QUERIES)


def test_mixed_is_skewed_retyped_and_marked_with_the_run_token() -> None:
    scenario = build("mixed", QUERIES, random.Random(1), RUN)
    sent = list(itertools.islice(scenario.queries, 3000))
    assert all(normalise_query(q).endswith(invisible(RUN, 16)) for q in sent)
    retyped = sum(q != normalise_query(q) for q in sent)  # the queries above are already in normal form
    assert 0.25 < retyped / len(sent) < 0.42
    top = Counter(normalise_query(q) for q in sent).most_common(1)[0][0]
    assert top == normalise_query(marked(QUERIES[0], RUN))


def test_marks_are_distinct_per_run_and_request() -> None:
    marks = {marked("q", run, request) for run in (0, 1, 4, 2**32 - 1) for request in [None, *range(300)]}
    assert len(marks) == 4 * 301
    assert len({invisible(n) for n in range(1000)}) == 1000 and invisible(0) and len(invisible(5, 16)) == 16


def test_run_words_are_short_distinct_words() -> None:
    words = {run_word(run) for run in (0, 1, 25, 26, 2**32 - 1)}
    assert len(words) == 5 and all(w.isalpha() and w.startswith("zq") and len(w) <= 9 for w in words)


def test_a_marked_query_has_its_own_cache_key_but_reads_as_the_question_to_both_tokenizers() -> None:
    from tokenizers import Tokenizer

    from retrieval_svc.embedder import default_model_path

    question = "Vitamin D supplementation reduces fractures in older adults."
    word_pieces = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    for query in (marked(question, 2**32 - 1, 12345), retype(marked(question, 7), random.Random(2))):
        assert normalise_query(query) != normalise_query(question)
        assert word_pieces.encode(query).ids == word_pieces.encode(question).ids
        assert tokenize(query) == tokenize(question)


def test_every_named_scenario_builds_and_others_are_refused() -> None:
    for name in SCENARIOS:
        assert build(name, QUERIES, random.Random(1), RUN).name == name
    with pytest.raises(ValueError, match="unknown scenario"):
        build("search-everything", QUERIES, random.Random(1), RUN)


def test_load_queries_reads_beir_queries_in_order(tmp_path: Path) -> None:
    lines = [json.dumps({"_id": str(n), "text": f"q{n}"}) for n in range(3)]
    (tmp_path / "queries.jsonl").write_text("\n".join(lines) + "\n\n")
    assert load_queries(tmp_path) == ["q0", "q1", "q2"]
    with pytest.raises(FileNotFoundError, match=r"queries\.jsonl"):
        load_queries(tmp_path / "missing")
