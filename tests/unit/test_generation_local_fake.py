"""The local backend's prompt and answer handling around the model, with a scripted stand-in for llama.cpp.

What the real model writes is not needed here: what matters is what the backend shows it and what it makes of
the text that comes back. tests/unit/test_generation_local.py runs the real model.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from generation_svc.admission import Admission
from generation_svc.backends import AnswerFailed, Passage, Turn, Usage
from generation_svc.local import CONTEXT_TOKENS, LocalBackend
from generation_svc.prompts import ANSWER_PREFIX, local_prompt
from likeopt.v1 import generation_pb2, retrieval_pb2
from tests.unit.test_generation_harness import collect, generation_server, text_of


class ScriptedModel:
    """Stands in for llama_cpp.Llama: answers every prompt with the same pieces, one token each."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.prompts: list[str] = []
        self.n_tokens = 0

    def create_completion(self, prompt: str, **_: Any) -> Iterator[dict[str, Any]]:
        self.prompts.append(prompt)
        for piece in self.pieces:
            yield {"choices": [{"text": piece, "finish_reason": None}]}
        yield {"choices": [{"text": "", "finish_reason": "stop"}]}

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """One token a character."""
        return list(range(len(text.decode()) + add_bos))


def render(messages: list[dict[str, str]]) -> SimpleNamespace:
    return SimpleNamespace(prompt="".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>")


def scripted_backend(pieces: list[str], passage_chars: int = 300, max_tokens: int = 48) -> LocalBackend:
    """A LocalBackend whose model is ScriptedModel (built without loading a GGUF file)."""
    backend = LocalBackend.__new__(LocalBackend)
    backend.max_tokens = max_tokens
    backend.answer_prefix = ANSWER_PREFIX
    backend.admission = Admission(1)
    backend._llm = ScriptedModel(pieces)  # type: ignore[assignment]
    backend._format = render
    backend._stop = []
    backend._thread = ThreadPoolExecutor(max_workers=1)
    backend._current = None
    backend.produced_tokens = 0
    backend.passage_chars = passage_chars
    backend.excerpt_chars = passage_chars // 3
    backend.prompt = partial(local_prompt, count=3)
    backend.fingerprint = "local/scripted"
    return backend


VEGAN = [
    Passage(1, "menu", "menu#0", "Menu", "The cafeteria serves vegan food every day of the week."),
    Passage(2, "parking", "parking#0", "Parking", "Bicycles are parked in the yard behind building B."),
    Passage(3, "hours", "hours#0", "Hours", "On Fridays the cafeteria serves vegan food until two."),
]


def test_the_local_prompt_numbers_the_passages_it_shows_from_one_and_says_which_they_are() -> None:
    prompt = local_prompt("Does the cafeteria serve vegan food?", VEGAN, [], count=3, chars=100)
    assert prompt.shown == [1, 3]  # passage 2 shares no word with the question
    user = prompt.messages[-1]["content"]
    assert user.startswith("[1] The cafeteria serves") and "\n\n[2] On Fridays" in user and "[3]" not in user


async def test_the_models_markers_are_mapped_back_to_the_passages_it_was_shown() -> None:
    """The model copies the prompt's [2] (passage 3) split over tokens, and invents [3], which it never read."""
    pieces = ["2", "] On Fridays the cafeteria serves vegan food until two", " [", "3", "]. It serves", " daily [1]."]
    backend = scripted_backend(pieces)
    text = "".join([p async for p in backend.stream("Does the cafeteria serve vegan food?", VEGAN, [], Usage())])
    assert text == "[3] On Fridays the cafeteria serves vegan food until two. It serves daily [1]."


async def test_an_answer_cites_the_passage_the_model_copied_not_the_one_it_never_saw() -> None:
    pieces = ["2", "] On Fridays the cafeteria serves vegan food until two."]
    hits = [retrieval_pb2.SearchHit(doc_id=p.doc_id, chunk_id=p.chunk_id, title=p.title, text=p.text) for p in VEGAN]
    async with generation_server(scripted_backend(pieces)) as h:
        request = generation_pb2.GenerateRequest(query="Does the cafeteria serve vegan food?", contexts=hits)
        events = [event async for event in h.stub.Generate(request, timeout=30)]
    citations = [e.citation for e in events if e.HasField("citation")]
    assert [(c.n, c.doc_id, c.supported) for c in citations] == [(3, "hours", True)]
    assert text_of(events).startswith("[3] On Fridays")


async def test_a_follow_ups_prompt_holds_the_earlier_answer_without_its_markers() -> None:
    """Stored turns (a REST conversation, a Responses previous_response_id) and sent ones (OpenAI messages) alike."""
    backend = scripted_backend(["1", "] Envoy listens on port 8080."])
    async with generation_server(backend) as h:
        first = await h.answer("Which port does Envoy listen on?")
        await h.answer("and its admin interface?", conversation_id=first[-1].done.conversation_id)
        sent = [generation_pb2.Turn(question="Which port does Envoy listen on?", answer="It is 8080 [2].")]
        await h.answer("and its admin interface?", history=sent)
    stored_prompt, sent_prompt = backend._llm.prompts[-2:]  # type: ignore[attr-defined]
    assert "<assistant>Envoy listens on port 8080.\n" in stored_prompt
    assert "<assistant>It is 8080.\n" in sent_prompt


def long_passages(chars: int) -> list[Passage]:
    sentence = "The Quokka pump moves water through the cooling loop of the plant. "
    return [Passage(n, f"d{n}", f"d{n}#0", f"Doc {n}", sentence * (chars // len(sentence))) for n in (1, 2, 3)]


async def test_a_prompt_over_the_context_drops_the_earlier_turn_then_shortens_the_excerpts() -> None:
    """ScriptedModel counts a token a character: the question and full excerpts fit 4,096 only without the turn
    and with shorter excerpts."""
    backend = scripted_backend(["1", "] It moves water."], passage_chars=1800)
    question = "How does the Quokka pump move water? " * 80  # about 3,000 characters
    history = [Turn("What is the Quokka pump?", "A pump. " * 40)]
    text = "".join([p async for p in backend.stream(question, long_passages(2000), history, Usage())])
    assert text == "[1] It moves water."
    [prompt] = backend._llm.prompts  # type: ignore[attr-defined]
    assert "What is the Quokka pump?" not in prompt and "cooling loop" in prompt
    assert len(prompt) + backend.max_tokens <= CONTEXT_TOKENS


async def test_a_question_too_long_for_the_context_is_refused_as_invalid_and_never_read() -> None:
    backend = scripted_backend(["1", "] It moves water."])
    with pytest.raises(AnswerFailed) as refused:
        async for _ in backend.stream("물은 어떻게 흐르나요? " * 330, long_passages(300), [], Usage()):
            pass
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and "too long" in refused.value.message
    assert backend._llm.prompts == []  # type: ignore[attr-defined]
    async with generation_server(backend) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="Quokka pump " * 340), timeout=30)
        events = await collect(call)
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert events[-1].error.code == "INVALID_ARGUMENT"
