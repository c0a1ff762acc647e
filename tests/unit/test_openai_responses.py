"""The Responses API ⇄ Answer translation, without a mesh; responses and events are read back with the official
openai package's own types, so "OpenAI-shaped" means what its clients accept."""

from __future__ import annotations

import json

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.openai_responses import (
    InputItem,
    ResponseEvents,
    ResponseShape,
    ResponsesRequest,
    annotations,
    referenced_turns,
    responses_answer_request,
    turn_named,
)
from gateway.openai_translate import AnswerParts, OpenAIError
from likeopt.v1 import generation_pb2

CITATIONS = [
    {"n": 1, "doc_id": "envoy.md", "chunk_id": "envoy.md#0", "title": "Envoy", "text": "…"},
    {"n": 2, "doc_id": "cache.md", "chunk_id": "cache.md#0", "title": "", "text": "…"},
]
ANSWER = "Envoy listens on 8080. [1] Answers are cached. [2] Its admin port is 9901. [1]"


def request(**fields: object) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "like-opt", "input": "Which port?", **fields})


def answered(finish_reason: str = "stop") -> AnswerParts:
    done = generation_pb2.DoneEvent(finish_reason=finish_reason, prompt_tokens=40, completion_tokens=12)
    return AnswerParts(text=[ANSWER], citations=CITATIONS, done=done)


def test_input_as_a_string_or_as_messages_becomes_the_question_and_its_turns() -> None:
    assert responses_answer_request(request()).query == "Which port?"
    items = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "Which port does Envoy use?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "8080 [1]"}]},
        {"role": "user", "content": "and its admin port?"},
    ]
    asked = responses_answer_request(request(input=items, max_output_tokens=9))
    assert asked.query == "and its admin port?" and asked.max_tokens == 9
    assert [(t.question, t.answer) for t in asked.history] == [("Which port does Envoy use?", "8080 [1]")]
    assert len(asked.conversation_id) == 32  # a new conversation, named before the answer starts


def test_another_models_tool_calls_and_reasoning_in_the_input_are_skipped() -> None:
    asked = responses_answer_request(
        request(
            input=[
                {"role": "user", "content": "Which port does Envoy use?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c", "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "8080"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "8080 [1]"}]},
                {"role": "user", "content": "and its admin port?"},
            ]
        )
    )
    assert asked.query == "and its admin port?"
    assert [(t.question, t.answer) for t in asked.history] == [("Which port does Envoy use?", "8080 [1]")]


@pytest.mark.parametrize(
    "item",
    [
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
        {"type": "file_search_call", "id": "fs_1", "queries": ["x"], "status": "completed"},
        {"type": "code_interpreter_call", "id": "ci_1", "code": "1+1", "status": "completed"},
        {"type": "image_generation_call", "id": "ig_1", "status": "completed"},
        {"type": "mcp_list_tools", "id": "ml_1", "server_label": "s", "tools": []},
        {"type": "mcp_call", "id": "mc_1", "server_label": "s", "name": "f", "arguments": "{}"},
        {"type": "local_shell_call_output", "id": "lo_1", "output": "x"},
    ],
)
def test_another_models_built_in_tool_items_are_skipped_as_its_function_calls_are(item: dict[str, object]) -> None:
    """A conversation switched to like-opt from a model that searched the web (or ran code) keeps those items in its
    input: each turn would be a 400 if they were refused, as it was before function calls were skipped."""
    asked = responses_answer_request(
        request(
            input=[
                {"role": "user", "content": "Which port does Envoy use?"},
                item,
                {"role": "assistant", "content": [{"type": "output_text", "text": "8080 [1]"}]},
                {"role": "user", "content": "and its admin port?"},
            ]
        )
    )
    assert asked.query == "and its admin port?"
    assert [(t.question, t.answer) for t in asked.history] == [("Which port does Envoy use?", "8080 [1]")]


def test_an_earlier_refusal_in_the_input_is_that_reply_as_in_chat_completions() -> None:
    """OpenAI's output holds a refusal as its own part; a client sending its history back sends that part."""
    refused = {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot."}]}
    asked = responses_answer_request(
        request(input=[{"role": "user", "content": "the weather?"}, refused, {"role": "user", "content": "Ports?"}])
    )
    assert asked.query == "Ports?" and [(t.question, t.answer) for t in asked.history] == [
        ("the weather?", "I cannot.")
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "gpt-5"}, "model"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input[0].role"),
        ({"input": [{"type": "telepathy_call", "id": "t"}, {"role": "user", "content": "q"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]},
            "input[0].content",
        ),
        ({"input": [{"role": "assistant", "content": "hi"}]}, "input[0].role"),
        ({"input": ""}, "input"),  # a bare string is the client's "input" itself, not a message it never wrote
        ({"input": [{"role": "user", "content": " "}]}, "input[0].content"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "text.format"),
        ({"conversation": "conv_1"}, "conversation"),
        (
            {"tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function"}]}},
            "tool_choice",
        ),
        ({"prompt": {"id": "pmpt_1", "variables": {"question": "Which port?"}}}, "prompt"),
        ({"input": None, "prompt": {"id": "pmpt_1"}}, "prompt"),  # OpenAI's input is optional beside a prompt
        ({"input": None}, "input"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"previous_response_id": "resp_short"}, "previous_response_id"),
        ({"previous_response_id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"}, "previous_response_id"),
    ],
)
def test_what_cannot_be_answered_is_refused_naming_the_field(fields: dict[str, object], param: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        responses_answer_request(request(**fields))
    assert refused.value.param == param and refused.value.status in (400, 404)


def test_a_response_id_names_its_turn_so_previous_response_id_continues_from_that_turn() -> None:
    first = responses_answer_request(request())
    shape = ResponseShape(request(), "conv-1_a", first.turn_id)
    assert shape.id.startswith("resp_") and turn_named(shape.id) == ("conv-1_a", first.turn_id)
    assert referenced_turns([InputItem(type="item_reference", id=shape.message_id)]) == {
        shape.message_id: ("conv-1_a", first.turn_id)
    }  # its message names the same turn, for an item_reference to it
    with pytest.raises(OpenAIError) as no_id:
        referenced_turns([InputItem(role="user", content="q"), InputItem(type="item_reference")])
    assert (no_id.value.param, no_id.value.code) == ("input[1].id", "missing_required_parameter")
    asked = responses_answer_request(request(previous_response_id=shape.id))
    assert asked.conversation_id == "conv-1_a" and asked.after_turn_id == first.turn_id and not asked.history
    assert asked.turn_id not in ("", first.turn_id)  # every response its own turn
    assert not first.after_turn_id  # a new conversation continues nothing
    assert ResponseShape(request(), "conv-1_a").id != shape.id


def test_tools_the_model_may_leave_uncalled_are_answered_in_text() -> None:
    """The Responses API's allowed_tools in mode auto, as Agents-style clients send it, asks for no tool call."""
    allowed = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]}
    assert responses_answer_request(request(tools=[{"type": "function", "name": "f"}], tool_choice=allowed)).query


def test_store_false_asks_for_an_ephemeral_answer_and_is_echoed() -> None:
    assert not responses_answer_request(request()).ephemeral
    assert responses_answer_request(request(store=False)).ephemeral
    assert ResponseShape(request(), "c1").snapshot(None)["store"] is True
    assert ResponseShape(request(store=False), "c1").snapshot(None)["store"] is False


def test_each_marker_of_a_cited_passage_becomes_a_file_citation_at_its_place() -> None:
    notes = annotations(ANSWER, CITATIONS)
    assert [(n["file_id"], n["filename"], ANSWER[n["index"] : n["index"] + 3]) for n in notes] == [
        ("envoy.md", "Envoy", "[1]"),
        ("cache.md", "cache.md", "[2]"),  # no title: the id names it
        ("envoy.md", "Envoy", "[1]"),
    ]
    assert annotations("Nothing cited [7].", CITATIONS) == []


def test_a_whole_response_reads_as_openais_with_usage_and_like_opts_extras() -> None:
    reply = Response.model_validate(ResponseShape(request(), "c1").snapshot(answered()))
    assert reply.status == "completed" and reply.output_text == ANSWER and reply.model == "like-opt"
    assert reply.usage is not None and (reply.usage.input_tokens, reply.usage.output_tokens) == (40, 12)
    assert reply.model_extra is not None and reply.model_extra["conversation_id"] == "c1"
    cut = Response.model_validate(ResponseShape(request(), "c1").snapshot(answered("length")))
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


def events_of(stream: bytes) -> list[dict[str, object]]:
    frames = [frame for frame in stream.decode().split("\n\n") if frame]
    parsed = []
    for frame in frames:
        kind, data = frame.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        parsed.append(event)
    return parsed


def test_a_stream_is_numbered_in_order_and_ends_with_the_whole_response() -> None:
    shape = ResponseShape(request(), "c1")
    events = ResponseEvents(shape)
    stream = events.opening() + events.delta("Envoy listens") + events.delta(ANSWER[13:]) + events.closing(answered())
    parsed = events_of(stream)
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    kinds = [e["type"] for e in parsed]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds.count("response.output_text.annotation.added") == 3 and kinds[-1] == "response.completed"
    deltas = "".join(str(e["delta"]) for e in parsed if e["type"] == "response.output_text.delta")
    final = Response.model_validate(parsed[-1]["response"])
    assert deltas == final.output_text == ANSWER and final.id == shape.id
    typed = [TypeAdapter(ResponseStreamEvent).validate_python(event) for event in parsed]  # each as OpenAI's types
    assert typed[0].type == "response.created" and typed[0].response.status == "in_progress"


def test_a_failure_midway_is_an_error_event_then_the_response_failed() -> None:
    events = ResponseEvents(ResponseShape(request(), "c1"))
    events.opening()
    error, failed = events_of(events.failure(OpenAIError(503, "generation_svc is unavailable", code="unavailable")))
    [TypeAdapter(ResponseStreamEvent).validate_python(event) for event in (error, failed)]
    assert (error["type"], error["code"], error["sequence_number"]) == ("error", "unavailable", 4)
    assert failed["type"] == "response.failed"
    assert Response.model_validate(failed["response"]).status == "failed"
