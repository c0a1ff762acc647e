"""The OpenAI-compatible API through Envoy, with the official openai client as the client."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.integration.test_mesh import KNOWN_DOC, KNOWN_QUESTION
from tests.integration.test_streams_under_stress import QUESTION, metric, wait_until
from tests.support import MeshProcess

TRACE_ID = re.compile(r"[0-9a-f]{32}")


def client_of(mesh: MeshProcess, **options: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mesh.base_url}/v1", api_key="unused", max_retries=0, **options)  # type: ignore[arg-type]


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_models_lists_like_opt(mesh: MeshProcess) -> None:
    assert [model.id for model in client_of(mesh).models.list()] == ["like-opt"]


def test_a_completion_cites_the_passages_it_used(mesh: MeshProcess) -> None:
    raw = client_of(mesh).chat.completions.with_raw_response.create(model="like-opt", messages=ask(KNOWN_QUESTION))
    completion = raw.parse()
    text = completion.choices[0].message.content or ""
    assert "8080" in text and "[1]" in text and completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra or {}
    assert extra["citations"][0]["doc_id"] == KNOWN_DOC and extra["citations"][0]["n"] == 1
    assert {"doc_id", "title", "chunk_id", "text"} <= set(extra["citations"][0])
    assert TRACE_ID.fullmatch(raw.headers["x-trace-id"]) and extra["conversation_id"]


def test_a_stream_ends_with_citations_finish_reason_and_usage(mesh: MeshProcess) -> None:
    with client_of(mesh).chat.completions.create(
        model="like-opt", messages=ask(KNOWN_QUESTION), stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert "8080" in text and "[1]" in text
    final = with_choices[-1]
    assert final.choices[0].finish_reason == "stop" and final.model_extra is not None
    assert final.model_extra["citations"][0]["doc_id"] == KNOWN_DOC
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def conversation(mesh: MeshProcess, conversation_id: str) -> list[str]:
    reply = httpx.get(f"{mesh.base_url}/api/v1/conversations/{conversation_id}", timeout=30)
    assert reply.status_code == 200, reply.text
    return [turn["question"] for turn in reply.json()["turns"]]


def test_a_follow_up_turn_uses_the_conversation(mesh: MeshProcess) -> None:
    client = client_of(mesh)
    first = client.chat.completions.create(model="like-opt", messages=ask(KNOWN_QUESTION))
    history = [*ask(KNOWN_QUESTION), {"role": "assistant", "content": first.choices[0].message.content or ""}]
    second = client.chat.completions.create(model="like-opt", messages=[*history, *ask("And its admin interface?")])
    stored = (second.model_extra or {})["conversation_id"]
    assert conversation(mesh, stored) == [KNOWN_QUESTION, "And its admin interface?"]
    # A client that keeps the id instead of the messages continues the stored conversation.
    third = client.chat.completions.create(
        model="like-opt", messages=ask("What does it do with traces?"), extra_body={"conversation_id": stored}
    )
    assert (third.model_extra or {})["conversation_id"] == stored
    assert conversation(mesh, stored)[-1] == "What does it do with traces?" and len(conversation(mesh, stored)) == 3


def test_bad_requests_get_openai_shaped_errors(mesh: MeshProcess) -> None:
    client = client_of(mesh)
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="like-opt", messages=[])
    with pytest.raises(openai.BadRequestError) as role:
        client.chat.completions.create(model="like-opt", messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as last:
        client.chat.completions.create(model="like-opt", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as schema:  # 400, as OpenAI's API answers, not FastAPI's 422
        client.chat.completions.create(model="like-opt", messages=[{"content": "no role"}])  # type: ignore[list-item]
    for failure in (empty, role, last, schema):
        assert set(failure.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]
    assert schema.value.body["param"] == "messages[0].role"  # type: ignore[index]
    assert schema.value.body["code"] == "missing_required_parameter"  # type: ignore[index]


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 40 * 1024 * 1024])
def test_a_huge_body_is_413_in_openai_shape_from_the_gateway_or_envoy(mesh: MeshProcess, size: int) -> None:
    """2 MiB passes Envoy's limit (32 MiB) and meets the gateway's; 40 MiB is refused by Envoy itself."""
    with pytest.raises(openai.APIStatusError) as refused:
        client_of(mesh, timeout=60).chat.completions.create(model="like-opt", messages=ask("x" * size))
    assert refused.value.status_code == 413
    assert refused.value.body["code"] == "request_too_large"  # type: ignore[index]


def test_a_client_that_leaves_mid_stream_cancels_the_answer(local_mesh: MeshProcess) -> None:
    cancelled = 'likeopt_rpc_calls_total{code="CANCELLED",method="Answer"}'
    before = metric(local_mesh, cancelled)
    stream = client_of(local_mesh, timeout=60).chat.completions.create(
        model="like-opt", messages=ask(f"{QUESTION} (OpenAI client leaving)"), stream=True
    )
    with stream:
        first = next(iter(stream))  # the role chunk, sent with the first words: the model is writing
        assert first.choices[0].delta.role == "assistant"
    wait_until(lambda: metric(local_mesh, cancelled) > before, "the gateway did not cancel the gRPC stream")
    wait_until(lambda: metric(local_mesh, "likeopt_generation_running") == 0, "the model kept generating")


def test_a_client_that_gives_up_on_a_whole_completion_cancels_it(local_mesh: MeshProcess) -> None:
    cancelled = 'likeopt_rpc_calls_total{code="CANCELLED",method="Answer"}'
    before = metric(local_mesh, cancelled)
    with pytest.raises(openai.APITimeoutError):
        client_of(local_mesh, timeout=0.5).chat.completions.create(
            model="like-opt", messages=ask(f"{QUESTION} (OpenAI client impatient)")
        )
    wait_until(lambda: metric(local_mesh, cancelled) > before, "the gateway did not cancel the gRPC call")
    wait_until(lambda: metric(local_mesh, "likeopt_generation_running") == 0, "the model kept generating")


def test_the_responses_api_streams_through_envoy_and_continues_or_branches_the_conversation(mesh: MeshProcess) -> None:
    client = client_of(mesh)
    with client.responses.stream(model="like-opt", input=KNOWN_QUESTION) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "8080" in first.output_text and first.output[0].content[0].annotations  # type: ignore[union-attr]
    follow_up = client.responses.create(
        model="like-opt", input="and its admin interface?", previous_response_id=first.id
    )
    assert follow_up.model_extra is not None and first.model_extra is not None
    conversation_id = follow_up.model_extra["conversation_id"]
    assert conversation_id == first.model_extra["conversation_id"]
    assert conversation(mesh, conversation_id) == [KNOWN_QUESTION, "and its admin interface?"]
    made_up = f"resp_{'0' * 32}_{conversation_id}"  # our shape, but no turn of this conversation
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model="like-opt", input="and then?", previous_response_id=made_up)
    assert unknown.value.code == "previous_response_not_found"
    branch = client.responses.create(model="like-opt", input="and its log format?", previous_response_id=first.id)
    assert branch.model_extra is not None and branch.model_extra["conversation_id"] != conversation_id
    assert conversation(mesh, branch.model_extra["conversation_id"]) == [KNOWN_QUESTION, "and its log format?"]
    assert conversation(mesh, conversation_id) == [KNOWN_QUESTION, "and its admin interface?"]


def test_a_streamed_reply_sent_back_as_an_item_reference_is_the_follow_ups_history(mesh: MeshProcess) -> None:
    """Vercel's AI SDK (its default provider speaks Responses) sends a kept reply back by its message id."""
    client = client_of(mesh)
    with client.responses.stream(model="like-opt", input=KNOWN_QUESTION) as stream:
        first = stream.get_final_response()
    turns = [
        {"role": "user", "content": KNOWN_QUESTION},
        {"type": "item_reference", "id": first.output[0].id},
        {"role": "user", "content": "and its admin interface?"},
    ]
    follow_up = client.responses.create(model="like-opt", input=turns)  # type: ignore[arg-type]
    assert follow_up.model_extra is not None and follow_up.output_text
    stored = httpx.get(f"{mesh.base_url}/api/v1/conversations/{follow_up.model_extra['conversation_id']}", timeout=30)
    assert stored.json()["turns"][0]["answer"] == first.output_text


def test_a_response_with_store_false_keeps_no_turn_to_continue_from(mesh: MeshProcess) -> None:
    client = client_of(mesh)
    kept = client.responses.create(model="like-opt", input=KNOWN_QUESTION)
    unkept = client.responses.create(
        model="like-opt", input="and its admin interface?", previous_response_id=kept.id, store=False
    )
    assert unkept.store is False and unkept.output_text and kept.store is True
    assert unkept.model_extra is not None and kept.model_extra is not None
    assert conversation(mesh, kept.model_extra["conversation_id"]) == [KNOWN_QUESTION]
    alone = client.responses.create(model="like-opt", input=KNOWN_QUESTION, store=False)
    assert alone.model_extra is not None
    missing = httpx.get(f"{mesh.base_url}/api/v1/conversations/{alone.model_extra['conversation_id']}", timeout=30)
    assert missing.status_code == 404
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model="like-opt", input="and then?", previous_response_id=alone.id)
    assert unknown.value.code == "previous_response_not_found"


def test_the_completions_api_streams_a_cited_answer_through_envoy(mesh: MeshProcess) -> None:
    chunks = list(client_of(mesh).completions.create(model="like-opt", prompt=KNOWN_QUESTION, stream=True))
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert "8080" in text and "[1]" in text and chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra is not None and chunks[-1].model_extra["citations"][0]["doc_id"] == KNOWN_DOC
