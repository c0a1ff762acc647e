"""The /v1 app in process: the official openai client (over an ASGI transport) against real generation_svc
code on an in-process gRPC server. Status codes and error shapes for what can go wrong before Envoy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import grpc
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.openai_api import openai_app
from generation_svc.backends import AnswerFailed
from generation_svc.extractive import ExtractiveBackend
from likeopt.ops.ports import free_port
from likeopt.runtime.config import Config
from likeopt.v1 import generation_pb2, generation_pb2_grpc
from tests.unit.test_generation_harness import generation_server

QUESTION = "Which port does Envoy listen on?"
JSON_TYPE = {"content-type": "application/json"}


@asynccontextmanager
async def v1_client(generation: object, **settings: object) -> AsyncIterator[openai.AsyncOpenAI]:
    """An OpenAI client whose requests go straight into the /v1 app (no sockets, no Envoy)."""
    config = Config.from_env({}).replace(**settings)
    v1 = openai_app(config, lambda: SimpleNamespace(generation=generation, least_version=0))  # type: ignore[arg-type,return-value]
    transport = httpx2.ASGITransport(app=Starlette(routes=[Mount("/v1", app=v1)]))  # mounted as in the gateway
    async with httpx2.AsyncClient(transport=transport, base_url="http://like-opt/v1") as http:
        yield openai.AsyncOpenAI(base_url="http://like-opt/v1", api_key="k", http_client=http, max_retries=0)


async def test_a_completion_and_a_stream_carry_the_answer_and_its_citations() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        whole = await client.chat.completions.create(model="like-opt", messages=[{"role": "user", "content": QUESTION}])
        stream = await client.chat.completions.create(
            model="like-opt",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert "8080" in (whole.choices[0].message.content or "") and whole.choices[0].finish_reason == "stop"
    assert whole.model_extra is not None and whole.model_extra["citations"][0]["doc_id"] == "envoy.md"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra is not None
    assert last.model_extra["citations"] == whole.model_extra["citations"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    # The backend is known at the end: the last chunks name it, as the whole reply does (it was null in every one).
    assert whole.system_fingerprint == last.system_fingerprint == chunks[-1].system_fingerprint == "extractive"


async def test_max_tokens_cuts_the_answer_with_finish_reason_length_and_counts_its_usage() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        asked = {"model": "like-opt", "messages": [{"role": "user", "content": QUESTION}]}
        whole = await client.chat.completions.create(**asked)  # type: ignore[call-overload]
        short = await client.chat.completions.create(**asked, max_completion_tokens=6)  # type: ignore[call-overload]
        older = await client.chat.completions.create(**asked, max_tokens=6)  # type: ignore[call-overload]
        with pytest.raises(openai.BadRequestError) as zero:
            await client.chat.completions.create(**asked, max_tokens=0)  # type: ignore[call-overload]
    assert whole.choices[0].finish_reason == "stop" and whole.usage is not None and whole.usage.completion_tokens > 4
    assert whole.usage.prompt_tokens > whole.usage.completion_tokens
    assert short.choices[0].finish_reason == "length" and short.usage is not None
    assert short.usage.completion_tokens == 6 and (short.choices[0].message.content or "").endswith("[1]")
    assert short.model_extra is not None and short.model_extra["citations"][0]["doc_id"] == "envoy.md"
    assert older.choices[0].message.content == short.choices[0].message.content
    assert zero.value.body["param"] == "max_tokens"  # type: ignore[index]
    assert zero.value.body["code"] == "integer_below_min_value"  # type: ignore[index]


async def test_stop_ends_the_answer_before_the_sequence_and_cites_only_what_is_left() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        asked = {"model": "like-opt", "messages": [{"role": "user", "content": "How does the cache work?"}]}
        whole = await client.chat.completions.create(**asked)  # type: ignore[call-overload]
        stopped = await client.chat.completions.create(**asked, stop="Running")  # type: ignore[call-overload]
        stream = await client.chat.completions.create(**asked, stop=["Running", "\n\n"], stream=True)  # type: ignore[call-overload]
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(**asked, stop=list("abcde"))  # type: ignore[call-overload]
    text = whole.choices[0].message.content or ""
    assert stopped.choices[0].message.content == streamed == text[: text.index("Running")]
    assert stopped.choices[0].finish_reason == "stop" and stopped.model_extra is not None
    assert [c["n"] for c in stopped.model_extra["citations"]] == [1]
    assert whole.model_extra is not None and len(whole.model_extra["citations"]) > 1
    assert refused.value.body["param"] == "stop"  # type: ignore[index]


async def test_earlier_messages_reach_the_answer_as_its_conversation() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        first = await client.chat.completions.create(model="like-opt", messages=[{"role": "user", "content": QUESTION}])
        follow_up = [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "and its admin interface?"},
        ]
        await client.chat.completions.create(model="like-opt", messages=follow_up)  # type: ignore[arg-type]
    assert h.retrieval.queries[-1].startswith("and its admin interface?") and "Envoy" in h.retrieval.queries[-1]


async def test_bad_requests_get_openai_errors_with_the_right_status() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        with pytest.raises(openai.BadRequestError) as empty:
            await client.chat.completions.create(model="like-opt", messages=[])
        with pytest.raises(openai.BadRequestError) as role:
            await client.chat.completions.create(model="like-opt", messages=[{"role": "robot", "content": "x"}])
        with pytest.raises(openai.BadRequestError) as blank:
            await client.chat.completions.create(model="like-opt", messages=[{"role": "user", "content": "  "}])
        with pytest.raises(openai.BadRequestError) as schema:
            await client.chat.completions.create(model="like-opt", messages="not a list")  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as model:
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
        with pytest.raises(openai.APIStatusError) as huge:
            await client.chat.completions.create(model="like-opt", messages=[{"role": "user", "content": "x" * 2**21}])
    assert empty.value.body["param"] == "messages" and role.value.body["param"] == "messages[0].role"  # type: ignore[index]
    assert (blank.value.body["code"], blank.value.body["param"]) == ("invalid_value", "messages[0].content")  # type: ignore[index]
    assert schema.value.body["param"] == "messages" and model.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert schema.value.body["code"] == "invalid_type"  # type: ignore[index]
    assert huge.value.status_code == 413 and huge.value.body["code"] == "request_too_large"  # type: ignore[index]


async def test_bad_json_is_400_and_unknown_paths_404_in_openai_shape() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        http = client._client
        bad = await http.post(
            "http://like-opt/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        missing = await http.get("http://like-opt/v1/embeddings")
        form = {"content-type": "application/x-www-form-urlencoded"}  # what curl -d sends
        curled = await http.post("http://like-opt/v1/chat/completions", content=b'{"model": "like-opt"}', headers=form)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert curled.status_code == 400 and "Content-Type: application/json" in curled.json()["error"]["message"]
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}
    said = missing.json()["error"]["message"]  # a client pointed at an endpoint there is not learns which there are
    assert said.startswith("Invalid URL (GET /v1/embeddings)") and "POST /v1/chat/completions" in said, said


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "like-opt", "messages": [{"role": "user", "content": "cut \ud83d"}]}),
        (
            "/v1/chat/completions",
            {"model": "like-opt", "stream": True, "messages": [{"role": "user", "content": "\udc00"}]},
        ),
        ("/v1/responses", {"model": "like-opt", "input": "cut \ud83d"}),
        ("/v1/completions", {"model": "like-opt", "prompt": "cut \ud83d"}),
    ],
)
async def test_half_a_surrogate_pair_is_a_400_naming_it_not_a_crash(path: str, body: dict[str, object]) -> None:
    """JavaScript's and Python's JSON escape a string cut inside an emoji as "\\ud83d": the standard library read it,
    the gRPC request could not carry it, and the client got a plain-text 500."""
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        escaped = json.dumps(body).encode()  # as the standard library writes it (httpx's own json= cannot)
        reply = await client._client.post(f"http://like-opt{path}", content=escaped, headers=JSON_TYPE)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "invalid_value" and "surrogate" in reply.json()["error"]["message"]


class Broken:
    """A generation stub with a bug of its own."""

    def Answer(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")


async def test_a_bug_is_a_500_in_openai_shape_not_plain_text() -> None:
    """Starlette's own 500 is the text "Internal Server Error", which the OpenAI SDKs cannot read as an error."""
    v1 = openai_app(Config.from_env({}), lambda: SimpleNamespace(generation=Broken(), least_version=0))  # type: ignore[arg-type,return-value]
    transport = httpx2.ASGITransport(app=Starlette(routes=[Mount("/v1", app=v1)]), raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://like-opt") as http:
        reply = await http.post("/v1/completions", json={"model": "like-opt", "prompt": "hi"})
    assert reply.status_code == 500
    assert reply.json()["error"]["type"] == "server_error" and "X-Trace-Id" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "stream", "yes"),
        ("/v1/chat/completions", "max_tokens", "5"),
        ("/v1/completions", "echo", 1),
        ("/v1/responses", "stream", "true"),
        ("/v1/responses", "max_output_tokens", 5.5),
    ],
)
async def test_a_field_of_the_wrong_type_is_refused_not_coerced(path: str, field: str, value: object) -> None:
    # Pydantic's lax mode read "yes" as true: the client's mistake changed the reply instead of being told.
    question = {"role": "user", "content": QUESTION}
    bodies = {
        "/v1/chat/completions": {"model": "like-opt", "messages": [question]},
        "/v1/completions": {"model": "like-opt", "prompt": QUESTION},
        "/v1/responses": {"model": "like-opt", "input": QUESTION},
    }
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        reply = await client._client.post(f"http://like-opt{path}", json={**bodies[path], field: value})
        ignored = await client._client.post(f"http://like-opt{path}", json={**bodies[path], "logit_bias": "unused"})
    error = reply.json()["error"]
    assert reply.status_code == 400 and (error["param"], error["code"]) == (field, "invalid_type"), reply.text
    assert ignored.status_code == 200, ignored.text  # what Like-Opt ignores is still not checked


async def test_an_integer_written_with_a_point_is_an_integer() -> None:
    """JSON Schema's integer, as the document declares it: a client's arithmetic that sends 256.0 is not refused."""
    question = {"role": "user", "content": QUESTION}
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        http = client._client
        chat = await http.post(
            "http://like-opt/v1/chat/completions",
            json={"model": "like-opt", "messages": [question], "max_tokens": 64.0, "top_k": 3.0},
        )
        response = await http.post(
            "http://like-opt/v1/responses", json={"model": "like-opt", "input": QUESTION, "max_output_tokens": 64.0}
        )
        completion = await http.post(
            "http://like-opt/v1/completions", json={"model": "like-opt", "prompt": QUESTION, "n": 1.0}
        )
    assert [reply.status_code for reply in (chat, response, completion)] == [200, 200, 200], chat.text


NULLED = {
    "/v1/chat/completions": {
        "messages": [{"role": "user", "content": QUESTION, "name": None}],
        **dict.fromkeys(["stream", "stream_options", "n", "max_tokens", "max_completion_tokens", "stop", "user"]),
        **dict.fromkeys(["response_format", "tools", "tool_choice", "logprobs", "top_k", "mode", "conversation_id"]),
    },
    "/v1/completions": {
        "prompt": QUESTION,
        **dict.fromkeys(["stream", "echo", "n", "best_of", "suffix", "max_tokens", "stream_options"]),
    },
    "/v1/responses": {
        "input": [{"type": None, "role": "user", "content": QUESTION}],
        **dict.fromkeys(["stream", "store", "text", "max_output_tokens", "previous_response_id", "metadata", "user"]),
    },
}


@pytest.mark.parametrize("path", NULLED)
async def test_null_is_an_optional_field_left_out_and_a_required_one_still_missing(path: str) -> None:
    """OpenAI's reference types these fields "boolean or null" (and so on); clients generated from it send null for
    every field they leave unset, and ``"stream": null`` was a 400."""
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        reply = await client._client.post(f"http://like-opt{path}", json={"model": "like-opt", **NULLED[path]})
        no_model = await client._client.post(f"http://like-opt{path}", json={"model": None, **NULLED[path]})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json", reply.text
    assert "8080" in reply.text
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model", no_model.text


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "messages", [{"role": "user", "content": 5}]),
        ("/v1/chat/completions", "stop", 5),
        ("/v1/completions", "prompt", 5),
    ],
)
async def test_a_refused_field_is_named_as_the_client_wrote_it_not_by_pydantic_s_union_member(
    path: str, field: str, value: object
) -> None:
    body = {"model": "like-opt", "messages": [{"role": "user", "content": QUESTION}], "prompt": QUESTION}
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        reply = await client._client.post(f"http://like-opt{path}", json={**body, field: value})
    param = reply.json()["error"]["param"]
    assert reply.status_code == 400 and param in (field, "messages[0].content"), reply.text


@pytest.mark.parametrize("path", NULLED)
async def test_a_conversation_id_that_cannot_be_one_is_refused_naming_it(path: str) -> None:
    """generation_svc refused it, so the client got param null and the gRPC code "invalid_argument"."""
    required = {key: value for key, value in NULLED[path].items() if value is not None}
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        body = {"model": "like-opt", **required, "conversation_id": "../other"}
        reply = await client._client.post(f"http://like-opt{path}", json=body)
    error = reply.json()["error"]
    assert reply.status_code == 400 and (error["param"], error["code"]) == ("conversation_id", "invalid_value"), error
    assert error["message"] == "conversation_id must be 1 to 64 letters, digits, '-' or '_'"


async def test_the_key_is_needed_when_reads_need_it() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        async with v1_client(h.stub, api_key="s3cret", reads_need_key=True) as client:
            with pytest.raises(openai.AuthenticationError) as refused:
                await client.models.list()
            keyed = client.with_options(api_key="s3cret")
            assert [m.id async for m in keyed.models.list()] == ["like-opt"]
    assert refused.value.body["code"] == "invalid_api_key"  # type: ignore[index]


async def test_an_unreachable_generation_svc_is_503_before_the_stream_starts() -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        async with v1_client(generation_pb2_grpc.GenerationServiceStub(channel)) as client:
            for stream in (False, True):
                with pytest.raises(openai.InternalServerError) as unavailable:
                    await client.chat.completions.create(
                        model="like-opt", messages=[{"role": "user", "content": QUESTION}], stream=stream
                    )
                assert unavailable.value.status_code == 503
                assert unavailable.value.body["code"] == "unavailable"  # type: ignore[index]


async def test_the_responses_api_answers_continues_and_streams_through_the_sdks_helpers() -> None:
    cut_short = {"model": "like-opt", "input": QUESTION, "max_output_tokens": 4}
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        first = await client.responses.create(model="like-opt", input=QUESTION)
        follow_up = await client.responses.create(
            model="like-opt", input="and its admin interface?", previous_response_id=first.id
        )
        async with client.responses.stream(model="like-opt", input=QUESTION) as stream:
            deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
            whole = await stream.get_final_response()
        events = [event async for event in await client.responses.create(**cut_short, stream=True)]
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="like-opt", input="q", previous_response_id="resp_unknown")
    assert first.status == "completed" and "8080" in first.output_text
    [note, *_] = first.output[0].content[0].annotations  # type: ignore[union-attr]
    assert note.type == "file_citation" and note.file_id == "envoy.md"
    assert first.model_extra is not None and follow_up.model_extra is not None
    assert follow_up.model_extra["conversation_id"] == first.model_extra["conversation_id"]
    assert "9901" in follow_up.output_text  # the follow-up was read with the first turn
    assert whole.status == "completed" and whole.output_text == "".join(deltas) == first.output_text
    cut = events[-1].response  # type: ignore[union-attr]
    assert events[-1].type == "response.incomplete" and cut.usage is not None and cut.usage.output_tokens == 4
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]


async def test_a_stored_prompt_or_logprobs_asked_of_the_responses_api_is_a_400_naming_it() -> None:
    """Neither can be honoured (a stored prompt's text is OpenAI's; an answer has no log probabilities), so
    neither may be dropped silently, and a prompt's request (which needs no input) is refused for the prompt."""
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        refusals = []
        for options in (
            {"prompt": {"id": "pmpt_1", "variables": {"question": QUESTION}}},
            {"input": QUESTION, "prompt": {"id": "pmpt_1"}},
            {"input": QUESTION, "include": ["message.output_text.logprobs"], "top_logprobs": 0},
        ):
            with pytest.raises(openai.BadRequestError) as refused:
                await client.responses.create(model="like-opt", **options)  # type: ignore[call-overload]
            refusals.append(refused.value)
        kept = await client.responses.create(model="like-opt", input=QUESTION, include=["reasoning.encrypted_content"])
    assert [(r.param, r.code) for r in refusals] == [("prompt", "unsupported_value")] * 2 + [
        ("include", "unsupported_value")
    ]
    assert "8080" in kept.output_text  # what include asks for otherwise holds nothing an answer lacks


def referring_to(reply_id: str) -> list[dict[str, str]]:
    """A follow-up as Vercel's AI SDK sends it: a kept reply goes back as an item_reference to its message."""
    return [
        {"role": "user", "content": QUESTION},
        {"type": "item_reference", "id": reply_id},
        {"role": "user", "content": "and its admin interface?"},
    ]


async def test_an_item_reference_to_an_earlier_reply_is_that_reply_and_one_to_none_is_400() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        kept = await client.responses.create(model="like-opt", input=QUESTION)
        unkept = await client.responses.create(model="like-opt", input=QUESTION, store=False)
        follow_up = await client.responses.create(model="like-opt", input=referring_to(kept.output[0].id))  # type: ignore[arg-type,union-attr]
        refusals = []
        for reply_id in (unkept.output[0].id, f"msg_{'0' * 32}_nowhere", "msg_abc"):  # type: ignore[union-attr]
            with pytest.raises(openai.BadRequestError) as refused:
                await client.responses.create(model="like-opt", input=referring_to(reply_id))  # type: ignore[arg-type]
            refusals.append(refused.value)
        asked_in = (follow_up.model_extra or {})["conversation_id"]
        stored = await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=asked_in))
    assert stored.turns[0].answer == kept.output_text  # the reply the reference named
    assert "9901" in follow_up.output_text
    assert [(r.code, r.param) for r in refusals] == [("item_not_found", "input")] * 3


async def test_the_completions_api_answers_a_prompt_streamed_or_whole_within_its_bounds() -> None:
    async with generation_server(ExtractiveBackend()) as h, v1_client(h.stub) as client:
        whole = await client.completions.create(model="like-opt", prompt=QUESTION)
        stream = await client.completions.create(model="like-opt", prompt=QUESTION, stream=True, echo=True)
        streamed = "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])
        short = await client.completions.create(model="like-opt", prompt=QUESTION, max_tokens=3, stop=["8080"])
        with pytest.raises(openai.BadRequestError) as refused:
            await client.completions.create(model="like-opt", prompt=["one", "two"])
    text = whole.choices[0].text
    assert "8080" in text and whole.choices[0].finish_reason == "stop" and whole.id.startswith("cmpl-")
    assert whole.model_extra is not None and whole.model_extra["citations"][0]["doc_id"] == "envoy.md"
    assert streamed == QUESTION + text  # echo: the prompt first
    assert short.choices[0].text == "Envoy listens on" and short.choices[0].finish_reason == "length"
    assert refused.value.body["param"] == "prompt"  # type: ignore[index]


class FullQueue:
    """A backend whose queue is full: every answer is refused after retrieval, as the local model's Admission does."""

    name, fingerprint = "local", "local/full"

    async def stream(self, *_: object, **__: object) -> AsyncIterator[str]:
        raise AnswerFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "the model's queue is full", retry_after_s=2.0)
        yield ""  # a generator, as a backend is


async def test_a_full_queue_is_a_429_with_retry_after_streamed_or_not() -> None:
    """OpenAI's SDKs retry on the status alone: a 200 with an error chunk inside would never be retried."""
    asked = {"model": "like-opt", "messages": [{"role": "user", "content": QUESTION}]}
    async with generation_server(FullQueue()) as h, v1_client(h.stub) as client:
        for stream in (False, True):
            with pytest.raises(openai.RateLimitError) as refused:
                await client.chat.completions.create(**asked, stream=stream)  # type: ignore[call-overload]
            assert refused.value.response.headers["retry-after"] == "2"
            with pytest.raises(openai.RateLimitError):
                await client.responses.create(model="like-opt", input=QUESTION, stream=stream)
            with pytest.raises(openai.RateLimitError):
                await client.completions.create(model="like-opt", prompt=QUESTION, stream=stream)
