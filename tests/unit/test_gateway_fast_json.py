"""The gateway's orjson search bodies write what Starlette's JSONResponse writes."""

from __future__ import annotations

import json
import math

from starlette.responses import JSONResponse

from gateway.fast_json import hits_json, search_body, search_head

HITS = [
    {
        "doc_id": "4983",
        "title": "Microstructural development of human newborn cerebral white matter",
        "text": 'Alterations \u2014 \u00e9t\u00e9, \u4e16\u754c, "quoted", back\\slash, tab\t, \U0001f600',
        "score": 0.032522474881261,
        "bm25_score": 12.5,
        "dense_score": 0.61803398875,
        "bm25_rank": 1,
        "metadata": {"source": "scifact", "year": "2003", "empty": "", "none": None},
    }
]


def test_bodies_are_byte_identical_to_starlettes() -> None:
    reply = {"hits": HITS, "index_version": 37, "cached": True, "took_ms": 1.234}
    assert search_body(search_head(hits_json(HITS), 37, True), 1.2341) == JSONResponse(reply).body


def test_tiny_and_huge_floats_keep_their_exact_values() -> None:
    scores = [-1e-07, 1.5e-05, 1e22, 0.1 + 0.2, 123456789012345678.0]
    hits = [{"score": s} for s in scores]
    body = json.loads(search_body(search_head(hits_json(hits), 1, False), 0.0))
    assert [h["score"] for h in body["hits"]] == scores


def test_non_string_keys_are_written_as_strings_like_json_dumps() -> None:
    hits = [{"metadata": {1: "a"}}]
    assert hits_json(hits) == JSONResponse(hits).body == b'[{"metadata":{"1":"a"}}]'


def test_a_non_finite_score_becomes_null_instead_of_failing_the_request() -> None:
    assert hits_json([{"score": math.nan}]) == b'[{"score":null}]'
