"""The gateway's orjson responses write what Starlette's JSONResponse writes."""

from __future__ import annotations

import json
import math

from starlette.responses import JSONResponse

from gateway.fast_json import FastJSONResponse

REPLY = {
    "hits": [
        {
            "doc_id": "4983",
            "title": "Microstructural development of human newborn cerebral white matter",
            "text": 'Alterations \u2014 \u00e9t\u00e9, \u4e16\u754c, "quoted", back\\slash, tab\t, \U0001f600',
            "score": 0.032522474881261,
            "bm25_score": 12.5,
            "dense_score": 0.61803398875,
            "bm25_rank": 1,
            "metadata": {"source": "scifact", "year": "2003"},
        }
    ],
    "index_version": 37,
    "cached": True,
    "took_ms": 1.234,
    "empty": [],
    "none": None,
}


def test_bodies_are_byte_identical_to_starlettes() -> None:
    assert FastJSONResponse(REPLY).body == JSONResponse(REPLY).body
    assert FastJSONResponse(REPLY).headers["content-type"] == "application/json"


def test_tiny_and_huge_floats_keep_their_exact_values() -> None:
    values = [-1e-07, 1.5e-05, 1e22, 0.1 + 0.2, 123456789012345678.0]
    assert json.loads(FastJSONResponse(values).body) == values == json.loads(JSONResponse(values).body)


def test_non_string_keys_are_written_as_strings_like_json_dumps() -> None:
    assert FastJSONResponse({1: "a"}).body == JSONResponse({1: "a"}).body == b'{"1":"a"}'


def test_a_non_finite_score_becomes_null_instead_of_failing_the_request() -> None:
    assert FastJSONResponse({"score": math.nan}).body == b'{"score":null}'
