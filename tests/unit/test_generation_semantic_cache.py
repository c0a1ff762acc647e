"""The semantic answer cache: similar questions share an answer, reversed claims never do."""

from __future__ import annotations

import base64
import json

import numpy as np

from generation_svc.semantic_cache import SemanticIndex, direction_of
from likeopt.runtime.principal import PRINCIPAL_HEADER
from likeopt.v1 import generation_pb2
from tests.unit.test_generation_harness import collect, generation_server
from tests.unit.test_generation_service import ScriptedBackend


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_finds_the_closest_question_above_the_threshold_within_its_scope() -> None:
    index = SemanticIndex(threshold=0.9)
    index.remember("v1", unit(1, 0, 0), "aspirin lowers fever", "k1")
    index.remember("v1", unit(0, 1, 0), "statins and cholesterol", "k2")
    assert index.find("v1", unit(1, 0.1, 0), "does aspirin lower fever") is None  # "lower" is not "lowers"
    assert index.find("v1", unit(1, 0.1, 0), "aspirin lowers fevers") == "k1"
    assert index.find("v1", unit(1, 1, 0), "aspirin lowers fever") is None  # cosine 0.71
    assert index.find("v2", unit(1, 0, 0), "aspirin lowers fever") is None  # another index version


def test_a_reversed_claim_is_never_a_hit() -> None:
    assert direction_of("Aspirin increases bleeding") != direction_of("Aspirin decreases bleeding")
    assert direction_of("Vitamin D doesn't prevent falls") == {"not", "prevent"}
    index = SemanticIndex(threshold=0.5)
    index.remember("s", unit(1, 0), "Vitamin D prevents falls", "k")
    assert index.find("s", unit(1, 0), "Vitamin D doesn't prevent falls") is None


def test_oldest_entries_go_first_past_the_capacity() -> None:
    index = SemanticIndex(threshold=0.99, capacity=2)
    for n in range(3):
        index.remember("s", unit(1, n), f"question {n}", f"k{n}")
    assert len(index) == 2
    assert index.find("s", unit(1, 0), "question 0") is None
    assert index.find("s", unit(1, 2), "question 2") == "k2"


async def test_a_reworded_question_is_answered_from_the_cache_and_a_reversed_one_is_not() -> None:
    backend = ScriptedBackend(["Aspirin ", "reduces it [1]."])
    async with generation_server(backend, semantic=SemanticIndex(threshold=0.95)) as h:
        first = await h.answer("Does aspirin reduce heart attack risk?")
        reworded = await h.answer("Heart attack risk: does aspirin reduce it?")
        reversed_claim = await h.answer("Does aspirin increase heart attack risk?")
    assert not first[-1].done.cached and reworded[-1].done.cached
    assert not reversed_claim[-1].done.cached
    assert len(backend.calls) == 2


async def test_without_a_threshold_a_reworded_question_is_generated_again() -> None:
    backend = ScriptedBackend(["Aspirin ", "reduces it [1]."])
    async with generation_server(backend) as h:
        await h.answer("Does aspirin reduce heart attack risk?")
        reworded = await h.answer("Heart attack risk: does aspirin reduce it?")
    assert not reworded[-1].done.cached and len(backend.calls) == 2


JWT = {
    "auth": "jwt",
    "jwt_issuer": "https://idp.example",
    "jwt_audiences": ("a",),
    "jwt_jwks_uri": "https://idp.example/k",
}


def as_reader(subject: str) -> tuple[tuple[str, str], ...]:
    payload = json.dumps({"sub": subject, "tenant": "acme", "groups": [subject]}).encode()
    return ((PRINCIPAL_HEADER, base64.urlsafe_b64encode(payload).decode().rstrip("=")),)


async def test_a_similar_question_is_answered_from_the_cache_only_for_the_same_reader() -> None:
    """The semantic cache keys on the same scope as the answer cache, the reader's permissions included."""
    backend = ScriptedBackend(["Aspirin ", "reduces it [1]."])
    asked = ("Does aspirin reduce heart attack risk?", "Heart attack risk: does aspirin reduce it?")
    async with generation_server(backend, semantic=SemanticIndex(threshold=0.95), **JWT) as h:
        replies = [
            await collect(h.stub.Answer(generation_pb2.AnswerRequest(query=question), metadata=as_reader(who)))
            for who, question in (("alice", asked[0]), ("bob", asked[1]), ("alice", asked[1]))
        ]
    assert [reply[-1].done.cached for reply in replies] == [False, False, True]
    assert len(backend.calls) == 2
