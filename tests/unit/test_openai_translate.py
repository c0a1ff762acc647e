"""OpenAI Chat Completions ⇄ Answer translation, without a mesh; rendered chunks and completions are read
back with the official openai package's own types, so "OpenAI-shaped" means what its clients accept."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion as OpenAICompletion
from openai.types.chat import ChatCompletionChunk

from gateway.openai_models import ChatCompletionRequest, ChatMessage
from gateway.openai_translate import (
    AnswerParts,
    ChunkLines,
    OpenAIError,
    answer_request,
    completion,
    question_and_history,
    upstream_error,
)
from likeopt.v1 import generation_pb2, retrieval_pb2


def messages(*pairs: tuple[str, object]) -> list[ChatMessage]:
    return [ChatMessage.model_validate({"role": role, "content": content}) for role, content in pairs]


def turns(history: list[generation_pb2.Turn]) -> list[tuple[str, str]]:
    return [(t.question, t.answer) for t in history]


def test_the_last_user_message_is_the_question_and_earlier_ones_the_turns() -> None:
    question, history = question_and_history(
        messages(
            ("system", "You are helpful."),
            ("user", "Which port does Envoy listen on?"),
            ("assistant", "Port 8080 [1]."),
            ("user", "And its admin interface?"),
        )
    )
    assert question == "And its admin interface?"
    assert turns(history) == [("Which port does Envoy listen on?", "Port 8080 [1].")]


def test_unanswered_questions_and_lone_replies_still_become_turns() -> None:
    _, history = question_and_history(
        messages(("assistant", "Hello! Ask me."), ("user", "first"), ("user", "second"), ("user", "third"))
    )
    assert turns(history) == [("", "Hello! Ask me."), ("first", ""), ("second", "")]


def test_text_parts_are_joined_and_other_parts_refused() -> None:
    parts = [{"type": "text", "text": "Which port"}, {"type": "text", "text": "does Envoy use?"}]
    question, _ = question_and_history(messages(("user", parts)))
    assert question == "Which port\ndoes Envoy use?"
    with pytest.raises(OpenAIError) as refused:
        question_and_history(messages(("user", [{"type": "image_url", "image_url": {"url": "data:,"}}])))
    assert (refused.value.status, refused.value.param) == (400, "messages[0].content")


@pytest.mark.parametrize("part", [{"type": "text"}, {"type": "text", "text": None}])
def test_a_text_part_without_its_text_is_refused_as_missing_not_as_another_kind(part: dict[str, object]) -> None:
    """It was refused as "only text content can be answered, not 'text'", which names the wrong problem."""
    with pytest.raises(OpenAIError) as refused:
        question_and_history(messages(("user", [{"type": "text", "text": "Which port?"}, part])))
    assert (refused.value.param, refused.value.code) == ("messages[0].content[1].text", "missing_required_parameter")
    assert "not 'text'" not in refused.value.message


def test_another_models_tool_use_and_instructions_after_the_question_are_skipped() -> None:
    history = [
        {"role": "user", "content": "Which port does Envoy use?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "8080"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot say."}]},
        {"role": "user", "content": "And its admin port?"},
        {"role": "system", "content": "Answer in one line."},
        {"role": "function", "name": "lookup", "content": "9901"},
    ]
    question, turns_before = question_and_history([ChatMessage.model_validate(m) for m in history])
    assert question == "And its admin port?"
    assert turns(turns_before) == [("Which port does Envoy use?", "I cannot say.")]


@pytest.mark.parametrize(
    ("conversation", "param"),
    [
        ([], "messages"),
        ([("user", "hi"), ("robot", "beep")], "messages[1].role"),
        ([("tool", "42")], "messages[0].role"),
        ([("user", "hi"), ("assistant", "hello")], "messages[1].role"),
        ([("system", "be brief")], "messages[0].role"),
    ],
)
def test_no_messages_wrong_roles_or_no_user_message_last_are_400(conversation: list, param: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        question_and_history(messages(*conversation))
    assert refused.value.status == 400 and refused.value.param == param
    assert refused.value.body()["error"]["type"] == "invalid_request_error"


def test_a_request_becomes_an_answer_request_with_like_opts_own_options() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "like-opt",
            "messages": [
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"},
            ],
            "temperature": 0.2,  # accepted and ignored, as OpenAI clients send it
            "conversation_id": "abc",
            "top_k": 3,
            "mode": "bm25",
        }
    )
    request = answer_request(body)
    assert (request.query, request.conversation_id, request.top_k, request.max_tokens) == ("q2", "abc", 3, 0)
    assert request.mode == retrieval_pb2.BM25 and turns(list(request.history)) == [("q1", "a1")]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"model": "gpt-4o"}, 404, "model_not_found"),
        ({"n": 2}, 400, "unsupported_value"),
        ({"response_format": {"type": "json_object"}}, 400, "unsupported_value"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, 400, "unsupported_value"),
        ({"tool_choice": "required", "tools": [{"type": "function"}]}, 400, "unsupported_value"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, 400, "unsupported_value"),
        (
            {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}},
            400,
            "unsupported_value",
        ),
        ({"function_call": {"name": "f"}}, 400, "unsupported_value"),
        ({"logprobs": True}, 400, "unsupported_value"),
        ({"top_logprobs": 2}, 400, "unsupported_value"),
        ({"modalities": ["text", "audio"]}, 400, "unsupported_value"),
    ],
)
def test_an_unknown_model_more_than_one_choice_or_a_json_reply_is_refused(
    fields: dict[str, object], status: int, code: str
) -> None:
    body = ChatCompletionRequest.model_validate(
        {"model": "like-opt", "messages": [{"role": "user", "content": "q"}], **fields}
    )
    with pytest.raises(OpenAIError) as refused:
        answer_request(body)
    assert (refused.value.status, refused.value.code, refused.value.param) == (status, code, next(iter(fields)))


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"},
        {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function"}]}}},
        {"tool_choice": "none", "function_call": "none", "logprobs": False, "modalities": ["text"]},
    ],
)
def test_tools_a_model_may_leave_uncalled_and_options_asking_for_nothing_else_are_answered(
    fields: dict[str, object],
) -> None:
    body = {"model": "like-opt", "messages": [{"role": "user", "content": "q"}], **fields}
    assert answer_request(ChatCompletionRequest.model_validate(body)).query == "q"


@pytest.mark.parametrize(("question", "why"), [("   ", "non-space"), ("x" * 5000, "5000 characters")])
def test_a_question_that_cannot_be_asked_is_refused_naming_its_message(question: str, why: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        question_and_history(messages(("user", "fine"), ("assistant", "ok"), ("user", question)))
    assert (refused.value.status, refused.value.param) == (400, "messages[2].content")
    assert why in refused.value.message and "query" not in refused.value.message


@pytest.mark.parametrize(
    ("limits", "asked"),
    [
        ({"max_tokens": 20}, 20),
        ({"max_completion_tokens": 7, "max_tokens": 20}, 7),
        ({"max_tokens": 10**12}, 1 << 20),  # past every configured limit: that limit, not a refusal
    ],
)
def test_max_completion_tokens_or_the_older_max_tokens_limits_the_answer(limits: dict[str, int], asked: int) -> None:
    body = {"model": "like-opt", "messages": [{"role": "user", "content": "q"}], **limits}
    assert answer_request(ChatCompletionRequest.model_validate(body)).max_tokens == asked


def test_a_text_response_format_is_what_is_answered_anyway() -> None:
    body = {"model": "like-opt", "messages": [{"role": "user", "content": "q"}], "response_format": {"type": "text"}}
    assert answer_request(ChatCompletionRequest.model_validate(body)).query == "q"


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("INVALID_ARGUMENT", 400, "invalid_request_error"),
        ("UNAVAILABLE", 503, "server_error"),
        ("RESOURCE_EXHAUSTED", 429, "rate_limit_error"),
        ("DEADLINE_EXCEEDED", 504, "server_error"),
        ("SOMETHING_NEW", 502, "server_error"),
    ],
)
def test_upstream_failures_get_the_matching_status(code: str, status: int, kind: str) -> None:
    failure = upstream_error(code, "why", retry_after_s=1.2 if status == 429 else 0.0)
    assert (failure.status, failure.type, failure.code) == (status, kind, code.lower())
    assert failure.headers == ({"Retry-After": "2"} if status == 429 else None)


def answer_events(finish: str = "stop") -> list[generation_pb2.AnswerEvent]:
    event = generation_pb2.AnswerEvent
    return [
        event(retrieval=generation_pb2.RetrievalEvent(index_version=3)),
        event(delta=generation_pb2.DeltaEvent(text="Envoy listens on ")),
        event(delta=generation_pb2.DeltaEvent(text='port 8080 "quoted" [1].')),
        event(citation=generation_pb2.CitationEvent(n=1, doc_id="envoy.md", chunk_id="envoy.md#0", title="Envoy")),
        event(
            done=generation_pb2.DoneEvent(
                conversation_id="c1", finish_reason=finish, prompt_tokens=7, completion_tokens=5, backend="local"
            )
        ),
    ]


def gathered(events: list[generation_pb2.AnswerEvent]) -> AnswerParts:
    parts = AnswerParts()
    for event in events:
        parts.take(event)
    return parts


def test_a_whole_answer_is_a_chat_completion_with_citations() -> None:
    body = completion("chatcmpl-1", 1700000000, gathered(answer_events("length"))).model_dump(mode="json")
    parsed = OpenAICompletion.model_validate(body)
    assert parsed.choices[0].message.content == 'Envoy listens on port 8080 "quoted" [1].'
    assert parsed.choices[0].finish_reason == "length"
    assert parsed.usage is not None and (parsed.usage.prompt_tokens, parsed.usage.total_tokens) == (7, 12)
    assert body["citations"][0]["doc_id"] == "envoy.md" and body["conversation_id"] == "c1"


def chunks_of(data: bytes) -> list[dict]:
    lines = [line for line in data.decode().split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [json.loads(line.removeprefix("data: ")) for line in lines]


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_lines_are_openai_chunks_and_the_last_carries_citations(include_usage: bool) -> None:
    lines = ChunkLines("chatcmpl-1", include_usage, created=1700000000)
    parts = AnswerParts()
    out = lines.opening()
    for event in answer_events():
        if (text := parts.take(event)) is not None:
            out += lines.delta(text)
    out += lines.closing(parts)
    chunks = chunks_of(out)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert text == 'Envoy listens on port 8080 "quoted" [1].'
    with_choice = [c for c in chunks if c["choices"]]
    assert with_choice[-1]["choices"][0]["finish_reason"] == "stop"
    assert with_choice[-1]["citations"][0]["chunk_id"] == "envoy.md#0"
    assert {c["id"] for c in chunks} == {"chatcmpl-1"}
    if include_usage:
        assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    else:
        assert all("usage" not in c for c in chunks)


def test_an_error_event_raises_its_openai_error() -> None:
    error = generation_pb2.AnswerEvent(error=generation_pb2.ErrorEvent(code="UNAVAILABLE", message="retrieval down"))
    with pytest.raises(OpenAIError) as failure:
        AnswerParts().take(error)
    line = ChunkLines("chatcmpl-1", False).failure(failure.value)
    assert chunks_of(line) == [
        {"error": {"message": "retrieval down", "type": "server_error", "param": None, "code": "unavailable"}}
    ]


def test_a_refused_tool_choice_names_every_choice_that_is_answered() -> None:
    """The 400 lists what a client may send instead, allowed_tools in mode auto among them."""
    body = {"model": "like-opt", "messages": [{"role": "user", "content": "q"}], "tool_choice": "required"}
    with pytest.raises(OpenAIError) as refused:
        answer_request(ChatCompletionRequest.model_validate(body))
    assert "'auto'" in refused.value.message and "'none'" in refused.value.message
    assert "allowed_tools in mode 'auto'" in refused.value.message
