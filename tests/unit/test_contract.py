"""One contract for limits, modes and bad input, and the one gRPC status bad input gets."""

from __future__ import annotations

import re

import grpc
import pytest

from likeopt.runtime.contract import (
    ANSWER_TOP_K,
    INVALID_INPUT_STATUS,
    MODE_NAMES,
    MODES,
    QUERY_PATTERN,
    SEARCH_TOP_K,
    InvalidInput,
    check_conversation_id,
    check_mode,
    check_query,
    rejects_invalid_input,
)
from likeopt.v1 import retrieval_pb2


def test_unset_top_k_takes_the_default_and_the_bounds_hold() -> None:
    assert SEARCH_TOP_K.check(0) == 10 and ANSWER_TOP_K.check(0) == 5
    assert SEARCH_TOP_K.check(100) == 100
    with pytest.raises(InvalidInput, match="between 1 and 20"):
        ANSWER_TOP_K.check(21)
    with pytest.raises(InvalidInput):
        SEARCH_TOP_K.check(-1)


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "\x1c", "\x1e\x85", "\u3000\ufeff", "a\x00b", "a" * 4097])
def test_unanswerable_queries_are_refused(query: str) -> None:
    with pytest.raises(InvalidInput):
        check_query(query)


def accepted(query: str) -> bool:
    try:
        check_query(query)
    except InvalidInput:
        return False
    return True


QUERIES = ["x", " a ", "Which port?", "\x1c", "\x1e", "\x85", "\ufeff", "\u200b", " \u00e9 ", "a\x00b", "   "]


def test_the_documented_pattern_accepts_what_the_check_accepts() -> None:
    pattern = re.compile(QUERY_PATTERN)
    for query in QUERIES:
        assert (pattern.match(query) is not None) == accepted(query), query


def test_json_schema_reads_the_pattern_as_the_check_does() -> None:
    """As clients and schemathesis read the OpenAPI document: ECMA-262's ``\\s`` is not Python's."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="jsonschema-rs comes with schemathesis ([dev])")
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": QUERY_PATTERN})
    for query in QUERIES:
        assert validator.is_valid(query) == accepted(query), repr(query)


def test_modes_both_ways() -> None:
    assert MODES["bm25"] == retrieval_pb2.BM25 and MODE_NAMES[retrieval_pb2.DENSE] == "dense"
    assert check_mode(retrieval_pb2.HYBRID) == "hybrid"
    with pytest.raises(InvalidInput, match="unknown mode"):
        check_mode(42)


def test_conversation_ids() -> None:
    assert check_conversation_id("") == "" and check_conversation_id("a-b_9") == "a-b_9"
    for bad in ("a b", "x" * 65, "é"):
        with pytest.raises(InvalidInput):
            check_conversation_id(bad)


class Aborted(Exception):
    pass


class Context:
    """Records the status a servicer aborts with, as grpc.aio's context would end the call."""

    code: grpc.StatusCode | None = None
    details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted


class Servicer:
    @rejects_invalid_input
    async def Search(self, request: str, context: Context) -> str:
        return check_query(request)


async def test_bad_input_ends_a_call_with_the_one_status_and_its_reason() -> None:
    context = Context()
    assert await Servicer().Search("fine", context) == "fine" and context.code is None
    with pytest.raises(Aborted):
        await Servicer().Search("  ", context)
    assert context.code == INVALID_INPUT_STATUS == grpc.StatusCode.INVALID_ARGUMENT
    assert "non-space" in context.details
