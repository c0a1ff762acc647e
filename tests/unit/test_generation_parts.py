"""The small parts of generation_svc: follow-up rewriting, admission, prompts, SSE parsing, shared streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from prometheus_client import REGISTRY

from generation_svc.admission import Admission
from generation_svc.backends import AnswerFailed, Passage, Renumbering, Turn, Usage
from generation_svc.conversations import NAMESPACE as CONVERSATIONS
from generation_svc.conversations import ConversationStore, history_of, is_follow_up, is_refusal, rewrite_query
from generation_svc.openai_backend import OpenAIBackend, parse_chunk, sse_data, status_failure
from generation_svc.prompts import build_messages
from generation_svc.relevance import NOT_COVERED
from generation_svc.shared_stream import SharedStreams
from likeopt.runtime.contract import MAX_QUERY_CHARS
from likeopt.runtime.text import cited_numbers
from likeopt.v1 import generation_pb2
from tests.unit.test_generation_harness import FakeCache

EARLIER = [Turn("How does Like-Opt cache answers in Redis?", "In Redis [1].")]
EARLIER_PAIRS = [(turn.question, turn.answer) for turn in EARLIER]


def test_follow_ups_borrow_the_earlier_questions_salient_words() -> None:
    rewritten = rewrite_query("and what about its cost?", EARLIER)
    assert rewritten.startswith("and what about its cost? ")
    assert {"Like-Opt", "cache", "answers", "Redis"} <= set(rewritten.split())
    assert "How" not in rewritten and "does" not in rewritten


def test_standalone_questions_and_first_questions_are_left_alone() -> None:
    standalone = "Which port does the Envoy admin interface listen on?"
    assert not is_follow_up(standalone)
    assert rewrite_query(standalone, EARLIER) == standalone
    assert rewrite_query("and what about its cost?", []) == "and what about its cost?"
    assert is_follow_up("Why?") and is_follow_up("How is it keyed?")


def test_refused_turns_whole_or_cut_short_are_left_out_of_the_history() -> None:
    turns = [("Who painted the Mona Lisa?", NOT_COVERED), ("Who wrote Hamlet?", NOT_COVERED[:20]), *EARLIER_PAIRS]
    conversation = generation_pb2.Conversation(turns=[generation_pb2.Turn(question=q, answer=a) for q, a in turns])
    assert [turn.question for turn in history_of(conversation)] == [q for q, _ in EARLIER_PAIRS]
    assert not is_refusal("") and not is_refusal("This is not in your documents, but it is in mine.")


async def test_an_unreadable_stored_conversation_starts_afresh_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    cache = FakeCache()
    cache.values[(CONVERSATIONS, "c1")] = b"\xff\xff not a conversation"
    assert await ConversationStore(cache, 60).load("c1") is None  # type: ignore[arg-type]
    assert "stored conversation unreadable" in caplog.text


def test_words_the_follow_up_already_has_are_not_repeated() -> None:
    assert rewrite_query("what about caching costs?", EARLIER).split().count("cache") == 0


def test_a_follow_up_near_the_query_limit_borrows_only_what_fits() -> None:
    """The rewritten query is searched: it must stay within the limit the question itself was held to."""
    long_follow_up = "What about " + "it " * ((MAX_QUERY_CHARS - 20) // 3)
    rewritten = rewrite_query(long_follow_up, EARLIER)
    assert rewritten.startswith(long_follow_up) and len(rewritten) <= MAX_QUERY_CHARS
    assert rewritten != long_follow_up  # a short word or two still fit
    assert rewrite_query("And this?", [Turn("é" * MAX_QUERY_CHARS, "Yes.")]) == "And this?"


def test_prompt_numbers_passages_and_carries_the_conversation() -> None:
    passages = [Passage(1, "a", "a#0", "Alpha", "First text."), Passage(2, "b", "b#0", "Beta", "Second text.")]
    messages = build_messages("what now?", passages, EARLIER)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == EARLIER[0].question and messages[2]["content"] == "In Redis."
    assert "[1] Alpha: First text." in messages[-1]["content"]
    assert "[2] Beta: Second text." in messages[-1]["content"]
    assert messages[-1]["content"].index("[2]") < messages[-1]["content"].index("Question: what now?")


async def test_admission_is_first_come_first_served_and_bounded() -> None:
    admission = Admission(limit=2)
    order: list[int] = []
    release = asyncio.Event()

    async def answer(n: int) -> None:
        async with admission.turn():
            order.append(n)
            await release.wait()

    tasks = [asyncio.create_task(answer(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert admission.waiting == 2 and REGISTRY.get_sample_value("likeopt_generation_queue_length") == 2
    with pytest.raises(AnswerFailed) as refused:
        async with admission.turn():
            pass
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and refused.value.retry_after_s
    assert "(2 answers waiting)" in refused.value.message
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and admission.waiting == 0


async def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    admission = Admission(limit=1)
    hold = asyncio.Event()

    async def holder() -> None:
        async with admission.turn():
            await hold.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    second = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert admission.waiting == 0
    waiting = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    with pytest.raises(AnswerFailed, match=r"\(1 answer waiting\)"):  # not "1 answers"
        async with admission.turn():
            pass
    hold.set()
    await asyncio.gather(first, waiting)


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_sse_data_joins_lines_and_skips_comments() -> None:
    found = [d async for d in sse_data(lines(": hi", 'data: {"a":', "data: 1}", "", "data: [DONE]", ""))]
    assert found == ['{"a":\n1}', "[DONE]"]


def test_malformed_chunks_and_http_errors_map_to_grpc_codes() -> None:
    with pytest.raises(AnswerFailed) as malformed:
        parse_chunk("{oops")
    assert malformed.value.code == grpc.StatusCode.INTERNAL
    assert status_failure(429, "slow down", "7").code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_failure(429, "slow down", "7").retry_after_s == 7
    assert status_failure(500, "boom", None).code == grpc.StatusCode.UNAVAILABLE
    assert status_failure(401, "who", None).code == grpc.StatusCode.FAILED_PRECONDITION
    assert status_failure(404, "no model", None).code == grpc.StatusCode.INTERNAL


async def test_shared_stream_survives_one_watcher_leaving_and_stops_when_all_leave() -> None:
    flights: SharedStreams[int] = SharedStreams()
    produced: list[int] = []
    stopped = asyncio.Event()

    async def counter() -> AsyncIterator[int]:
        try:
            for n in range(1000):
                produced.append(n)
                yield n
                await asyncio.sleep(0.001)
        finally:
            stopped.set()

    async def take(count: int) -> list[int]:
        got = []
        async for n in flights.watch("k", counter):
            got.append(n)
            if len(got) == count:
                break
        return got

    short, longer = await asyncio.gather(take(3), take(10))
    assert short == [0, 1, 2] and longer == list(range(10))
    await asyncio.wait_for(stopped.wait(), 5)
    assert len(produced) < 1000 and len(flights) == 0


def test_many_long_passages_stay_within_the_prompt_budget() -> None:
    passages = [Passage(n, f"d{n}", f"d{n}#0", "T", "word " * 2000) for n in range(1, 21)]
    content = build_messages("q?", passages, [])[-1]["content"]
    assert len(content) < 9000 and all(f"[{n}] T:" in content for n in range(1, 21))


def test_renumbering_maps_marker_lists_and_drops_what_names_no_shown_passage() -> None:
    renumbering = Renumbering([2, 5])
    pieces = ["[1, ", "2] Both", " [3]. One [", "2", "] [x] and [9", "9]", " then [1"]
    text = "".join(renumbering.feed(p) for p in pieces) + renumbering.flush()
    assert text == "[2][5] Both. One [5] [x] and then"  # a cut marker's opening goes: its number is the prompt's
    assert cited_numbers(text, 5) == [2, 5]  # a list the model wrote cites each passage, as the UI draws it


async def test_the_openai_backend_drops_markers_naming_no_passage_it_was_sent() -> None:
    """Every passage is in the openai prompt, numbered in order; a marker past them names nothing."""
    passages = [Passage(1, "a", "a#0", "Alpha", "First text."), Passage(2, "b", "b#0", "Beta", "Second text.")]
    pieces = ["Second text [", "2]. First", " text [7].", " Both [1, 7]."]
    chunks = "".join(f'data: {{"choices": [{{"delta": {{"content": "{p}"}}}}]}}\n\n' for p in pieces)

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=chunks + "data: [DONE]\n\n", headers={"content-type": "text/event-stream"})

    backend = OpenAIBackend("http://model.invalid/v1", "m", "", 64, 5.0)
    backend._client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    text = "".join([p async for p in backend.stream("q?", passages, [], Usage())])
    assert text == "Second text [2]. First text. Both [1]."
