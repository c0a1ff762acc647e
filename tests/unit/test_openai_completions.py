"""The legacy Completions API ⇄ Answer translation; completions and chunks are read back with the official
openai package's own types."""

from __future__ import annotations

import json

import pytest
from openai.types import Completion

from gateway.openai_completions import (
    CompletionLines,
    CompletionRequest,
    completion_answer_request,
    text_completion,
)
from gateway.openai_translate import AnswerParts, OpenAIError
from likeopt.v1 import generation_pb2

CITATIONS = [{"n": 1, "doc_id": "envoy.md", "chunk_id": "envoy.md#0", "title": "Envoy", "text": "…"}]


def request(**fields: object) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "like-opt", "prompt": "Which port?", **fields})


def answered(finish_reason: str = "stop") -> AnswerParts:
    done = generation_pb2.DoneEvent(finish_reason=finish_reason, prompt_tokens=20, completion_tokens=6)
    return AnswerParts(text=["Port 8080. [1]"], citations=CITATIONS, done=done)


def test_the_prompt_is_the_question_and_no_max_tokens_means_the_servers_limit() -> None:
    asked = completion_answer_request(request(prompt=["Which port?"], stop="\n"))
    assert (asked.query, asked.max_tokens, list(asked.stop)) == ("Which port?", 0, ["\n"])
    assert completion_answer_request(request(max_tokens=7)).max_tokens == 7


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"n": 2}, "n"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"model": "gpt-3.5-turbo-instruct"}, "model"),
        ({"stop": list("abcde")}, "stop"),
    ],
)
def test_what_cannot_be_answered_is_refused_naming_the_field(fields: dict[str, object], param: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        completion_answer_request(request(**fields))
    assert refused.value.param == param and refused.value.status in (400, 404)


def test_a_completion_reads_as_openais_with_the_prompt_echoed_when_asked() -> None:
    reply = Completion.model_validate(text_completion("cmpl-1", 1700000000, answered("length"), "Which port? "))
    assert reply.choices[0].text == "Which port? Port 8080. [1]" and reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.total_tokens == 26
    assert reply.model_extra is not None and reply.model_extra["citations"] == CITATIONS


def test_a_stream_is_text_chunks_then_the_finish_then_usage_then_done() -> None:
    lines = CompletionLines("cmpl-1", include_usage=True)
    stream = (
        lines.opening() + lines.delta("Port ") + lines.delta("8080. [1]") + lines.closing(answered()) + lines.ending
    )
    frames = [frame.removeprefix("data: ") for frame in stream.decode().split("\n\n") if frame]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"} and len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Port 8080. [1]"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, None, "stop"]
    finish, usage = Completion.model_validate(chunks[-2]), Completion.model_validate(chunks[-1])
    assert finish.model_extra is not None and finish.model_extra["citations"] == CITATIONS
    assert usage.choices == [] and usage.usage is not None and usage.usage.completion_tokens == 6
