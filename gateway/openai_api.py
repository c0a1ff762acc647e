"""The OpenAI-compatible API (``/v1/chat/completions``, ``/v1/responses``, ``/v1/completions``, ``/v1/models``):
a FastAPI app mounted at /v1.

Open WebUI, LibreChat and every OpenAI SDK can talk to Like-Opt through it. A completion is one call of
generation_svc's Answer, as the web UI's chat is, so caching, conversations, tracing and cancellation
are the same: a client that goes away (mid-stream or not) cancels the gRPC call and the model stops.
The answer's first event after retrieval (its first text, an error or done) is awaited before the response
starts, so an unreachable generation_svc is a 503, a refused question a 400 and a full queue a 429 with
Retry-After, streamed or not, never a 200 with an error inside; a stream's opening chunk comes with its first text.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.bodies import LONE_SURROGATE, MAX_JSON_BYTES, declared_over, encoding_problem, field_path, is_json
from gateway.disconnect import unless_left, until_disconnect
from gateway.errors import BEARER_CHALLENGE, CRASHED, http_error_headers, public_details
from gateway.keys import caller_of, caller_refusal
from gateway.observe import first_text_timed, stream_failed
from gateway.openai_completions import (
    CompletionLines,
    CompletionRequest,
    completion_answer_request,
    prompt_text,
    text_completion,
)
from gateway.openai_models import (
    MODEL_ID,
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    Model,
    ModelList,
    error_json,
)
from gateway.openai_responses import (
    ResponseEvents,
    ResponseShape,
    ResponsesRequest,
    referenced_answers,
    referenced_turns,
    response_not_found,
    responses_answer_request,
)
from gateway.openai_translate import (
    AnswerParts,
    ChunkLines,
    OpenAIError,
    answer_request,
    completion,
    new_completion_id,
    upstream_error,
)
from gateway.request_spans import NO_NATIVE_TELEMETRY
from gateway.routes.conversations import LOOKUP_TIMEOUT_S
from gateway.slashes import serve_without_trailing_slash
from gateway.sse import with_heartbeats
from gateway.upstreams import Upstreams
from likeopt.runtime.config import Config
from likeopt.runtime.principal import forwarded
from likeopt.v1 import generation_pb2

T = TypeVar("T")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 415, 422, 429, 503, 504)
}


def rpc_error(exc: grpc.aio.AioRpcError) -> OpenAIError:
    return upstream_error(exc.code().name, public_details(exc))


async def first_event(
    call: Any, started: float
) -> tuple[generation_pb2.AnswerEvent, AsyncIterator[generation_pb2.AnswerEvent]]:
    """The Answer stream's first event and the iterator for the rest (its first text timed from ``started``).

    The stream is read past the retrieval event to the answer's own first event (text, error or done), so a
    failure before any answer raises: a full queue comes after retrieval, and the SDKs retry only on a 429.
    """
    events = aiter(first_text_timed(call, started))
    read: list[generation_pb2.AnswerEvent] = []
    try:
        while not read or read[-1].HasField("retrieval"):
            read.append(await anext(events))
    except StopAsyncIteration:
        if not read:
            raise OpenAIError(502, "the answer stream ended before it began", code="empty_stream") from None
    except grpc.aio.AioRpcError as exc:
        raise rpc_error(exc) from None
    if read[-1].HasField("error"):
        call.cancel()
        raise upstream_error(read[-1].error.code, read[-1].error.message, read[-1].error.retry_after_s)
    return read[0], after(read[1:], events)


async def after(
    read: list[generation_pb2.AnswerEvent], rest: AsyncIterator[generation_pb2.AnswerEvent]
) -> AsyncIterator[generation_pb2.AnswerEvent]:
    """The events already read, then the rest."""
    for event in read:
        yield event
    async for event in rest:
        yield event


class StreamShape(Protocol):
    """How one answer is written as a stream: Chat Completions' chunks (ChunkLines) or the Responses API's
    events (ResponseEvents)."""

    ending: bytes
    route: str
    """The route it answers, as likeopt_http_requests_total labels it."""

    def opening(self) -> bytes: ...
    def delta(self, text: str) -> bytes: ...
    def closing(self, parts: AnswerParts) -> bytes: ...
    def failure(self, failure: OpenAIError) -> bytes: ...


async def stream_frames(
    call: Any, first: generation_pb2.AnswerEvent, events: AsyncIterator[Any], shape: StreamShape
) -> AsyncGenerator[bytes, None]:
    """One answer's stream in the shape asked for; a failure midway is the shape's failure frame.

    Closing this generator (the client left) cancels the gRPC call, which stops generation.
    """
    parts = AnswerParts()
    try:
        if opening := shape.opening():
            yield opening
        parts.take(first)
        async for event in events:
            if text := parts.take(event):
                yield shape.delta(text)
        yield shape.closing(parts)
    except OpenAIError as failure:
        stream_failed(shape.route, str(failure.code), failure.status)
        yield shape.failure(failure)
    except grpc.aio.AioRpcError as exc:
        translated = rpc_error(exc)
        stream_failed(shape.route, exc.code().name, translated.status)
        yield shape.failure(translated)
    finally:
        call.cancel()
    if shape.ending:
        yield shape.ending


async def whole_answer(call: Any, first: generation_pb2.AnswerEvent, events: AsyncIterator[Any]) -> AnswerParts:
    """Every part of an answer, for a non-streamed completion."""
    parts = AnswerParts()
    try:
        parts.take(first)
        async for event in events:
            parts.take(event)
    except grpc.aio.AioRpcError as exc:
        raise rpc_error(exc) from None
    finally:
        call.cancel()
    return parts


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """work's result; if the client disconnects first, work is cancelled (and with it the gRPC call)."""
    task = await unless_left(work, until_disconnect(request.receive))
    if task.cancelled():
        raise OpenAIError(499, "the client closed the request", code="cancelled")
    return task.result()


@dataclass
class StartedAnswer:
    """An Answer call whose first event has come (so a failure before any text was an HTTP error), to be sent
    as a stream in a client's shape or gathered whole."""

    call: Any
    first: generation_pb2.AnswerEvent
    events: AsyncIterator[generation_pb2.AnswerEvent]

    def streamed(self, shape: StreamShape) -> StreamingResponse:
        frames = stream_frames(self.call, self.first, self.events, shape)
        return StreamingResponse(with_heartbeats(frames), media_type="text/event-stream", headers=STREAM_HEADERS)

    async def whole(self, request: Request) -> AnswerParts:
        """Every part of the answer; the call is cancelled if the client leaves first."""
        return await unless_client_leaves(request, whole_answer(self.call, self.first, self.events))


async def start_answer(
    config: Config, upstreams: Upstreams, request: Request, asked: generation_pb2.AnswerRequest
) -> StartedAnswer:
    """Ask generation_svc as the person asking (jwt) and wait for the answer's first event."""
    started = time.perf_counter()
    caller = forwarded(caller_of(config, request.headers))
    asked.min_index_version = upstreams.least_version
    call = upstreams.generation.Answer(asked, timeout=config.answer_timeout_s, metadata=caller)
    first, events = await first_event(call, started)
    return StartedAnswer(call, first, events)


async def start_response(
    config: Config, upstreams: Upstreams, request: Request, asked: generation_pb2.AnswerRequest, previous: str | None
) -> StartedAnswer:
    """start_answer for a response; NOT_FOUND (generation_svc keeps no turn of the previous response) is OpenAI's
    400 for a previous_response_id it does not know."""
    try:
        return await start_answer(config, upstreams, request, asked)
    except OpenAIError as failure:
        if failure.status == 404 and previous:
            raise response_not_found(previous) from None
        raise


async def stored_turns(
    config: Config, upstreams: Upstreams, request: Request, conversation_id: str
) -> Sequence[generation_pb2.Turn]:
    """The turns generation_svc keeps of a conversation for the caller; none when it keeps none for them (unknown,
    expired or someone else's), as GET /api/v1/conversations/{id} would answer 404."""
    lookup = generation_pb2.GetConversationRequest(conversation_id=conversation_id)
    caller = forwarded(caller_of(config, request.headers))
    try:
        found = await upstreams.generation.GetConversation(lookup, timeout=LOOKUP_TIMEOUT_S, metadata=caller)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return []
        raise rpc_error(exc) from None
    return list(found.turns)


async def answers_referenced(
    config: Config, upstreams: Upstreams, request: Request, body: ResponsesRequest
) -> dict[str, str]:
    """The text of each earlier message ``input`` names by item_reference (clients that let the server keep
    responses, as Vercel's AI SDK does by default, send these rather than the text), read from its conversation."""
    named = referenced_turns(body.input)
    conversations = {conversation_id for conversation_id, _ in named.values()}
    stored = {each: await stored_turns(config, upstreams, request, each) for each in conversations}
    return referenced_answers(named, stored)


def openai_router(config: Config, upstreams: Callable[[], Upstreams]) -> APIRouter:
    """The routes; every one needs the API key when reads do (LIKEOPT_READS_NEED_KEY), or a token (jwt)."""

    async def require_key(request: Request) -> None:
        refusal = caller_refusal(config, request.headers, write=False)
        if refusal is not None:
            raise OpenAIError(401, refusal[1], code="invalid_api_key", headers=BEARER_CHALLENGE)

    router = APIRouter(dependencies=[Depends(require_key)], responses=ERRORS)

    @router.get("/models", response_model=ModelList)
    async def list_models() -> ModelList:
        """The one model, ``like-opt``: answers grounded on your documents, with citations."""
        return ModelList(data=[Model()])

    @router.get("/models/{model_id}", response_model=Model)
    async def get_model(model_id: str) -> Model:
        if model_id != MODEL_ID:
            raise OpenAIError(404, f"The model {model_id!r} does not exist", param="model", code="model_not_found")
        return Model()

    @router.post("/chat/completions", response_model=ChatCompletion)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        """An answer to the last user message, with ``[n]`` markers and a top-level ``citations`` array;
        with ``stream: true``, ``chat.completion.chunk`` events whose last one carries the citations."""
        answer = await start_answer(config, upstreams(), request, answer_request(body))
        completion_id, created = new_completion_id(), int(time.time())
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return answer.streamed(ChunkLines(completion_id, include_usage, created))
        reply = completion(completion_id, created, await answer.whole(request))
        return Response(reply.model_dump_json(), media_type="application/json")

    @router.post("/responses")
    async def create_response(body: ResponsesRequest, request: Request) -> Response:
        """OpenAI's Responses API: the answer as one message with ``file_citation`` annotations at its ``[n]``
        markers; with ``stream: true``, the Responses API's events. ``previous_response_id`` continues from that
        response, in a new conversation (a branch) when it was not the last in its own."""
        asked = responses_answer_request(body, await answers_referenced(config, upstreams(), request, body))
        answer = await start_response(config, upstreams(), request, asked, body.previous_response_id)
        answered_in = answer.first.retrieval.conversation_id or asked.conversation_id
        shape = ResponseShape(body, answered_in, asked.turn_id)
        if body.stream:
            return answer.streamed(ResponseEvents(shape))
        return Response(orjson.dumps(shape.snapshot(await answer.whole(request))), media_type="application/json")

    @router.post("/completions")
    async def text_completions(body: CompletionRequest, request: Request) -> Response:
        """The legacy Completions API: the prompt is the question, the text its cited answer (``citations`` as
        in chat completions); with ``stream: true``, ``text_completion`` chunks and ``[DONE]``."""
        answer = await start_answer(config, upstreams(), request, completion_answer_request(body))
        completion_id, echoed = new_completion_id("cmpl"), prompt_text(body.prompt) if body.echo else ""
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return answer.streamed(CompletionLines(completion_id, include_usage, echoed))
        reply = text_completion(completion_id, int(time.time()), await answer.whole(request), echoed)
        return Response(orjson.dumps(reply), media_type="application/json")

    return router


SCHEMA_CODES = {
    "missing": "missing_required_parameter",
    "greater_than": "integer_below_min_value",
    "greater_than_equal": "integer_below_min_value",
    "less_than": "integer_above_max_value",
    "less_than_equal": "integer_above_max_value",
    "extra_forbidden": "unknown_parameter",
}
"""OpenAI's error codes for pydantic's kinds of problem; a wrong type is "invalid_type", the rest "invalid_value"."""


UNION_BRANCH = re.compile(r"[A-Z]\w*|str|int|float|bool|none|[\w-]+\[.*\]")
"""How pydantic names the member of a union it tried (``str``, ``list[ContentPart]``) in an error's location;
OpenAI's fields are lower-case names, so a client never sees these in a param."""


def is_union_branch(part: int | str) -> bool:
    return isinstance(part, str) and UNION_BRANCH.fullmatch(part) is not None


def validation_error(exc: RequestValidationError) -> OpenAIError:
    """A body that does not parse or does not fit the schema: a 400 naming the first bad field, as OpenAI's API
    answers (its clients raise BadRequestError for it)."""
    problem = exc.errors()[0]
    location = [part for part in problem.get("loc", ())[1:] if not is_union_branch(part)]  # [0] is "body"
    param = field_path(location) or None
    kind = str(problem.get("type", ""))
    if kind == "json_invalid":
        return OpenAIError(400, "the body is not valid JSON", code="invalid_json")
    code = SCHEMA_CODES.get(kind, "invalid_type" if kind.endswith("_type") else "invalid_value")
    reason = str(problem.get("msg", "invalid")).removeprefix("Value error, ")  # a contract check's own sentence
    message = reason if param and reason.startswith(param) else f"{param or 'body'}: {reason}"
    return OpenAIError(400, message, param, code)


class BodyLimit:
    """ASGI middleware: bodies past ``max_bytes`` get 413 in OpenAI's shape (a declared Content-Length at
    once; a chunked body as soon as it grows past the limit, through the app's HTTPException handler)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if problem := encoding_problem(headers):
            refused = OpenAIError(415, problem, code="unsupported_content_encoding")
            await JSONResponse(refused.body(), status_code=415)(scope, receive, send)
            return
        if declared_over(headers, self.max_bytes):
            too_large = OpenAIError(413, f"the body exceeds {self.max_bytes} bytes", code="request_too_large")
            await JSONResponse(too_large.body(), status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, f"the body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


def unknown_url(request: Request) -> str:
    """A 404's message, as OpenAI words it, with the routes there are: a client pointed at an endpoint Like-Opt does
    not serve (embeddings, images, a stored response) learns which ones it does, not just "Not Found"."""
    mounted_at = request.scope.get("root_path", "")
    paths = request.app.openapi()["paths"]  # the routes as the API's description lists them
    served = ", ".join(f"{method.upper()} {mounted_at}{path}" for path, methods in paths.items() for method in methods)
    return f"Invalid URL ({request.method} {request.url.path}): Like-Opt serves {served}"


def openai_app(config: Config, upstreams: Callable[[], Upstreams]) -> FastAPI:
    """The app to mount at /v1; every error, the framework's own included, comes in OpenAI's shape."""

    async def on_openai_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpenAIError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not is_json(request.headers.get("content-type", "")):  # curl -d sends a form type: say so
            unread = OpenAIError(400, "send the body as JSON, with Content-Type: application/json", code="invalid_json")
            return await on_openai_error(request, unread)
        return await on_openai_error(request, validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
        message = unknown_url(request) if exc.status_code == 404 else str(exc.detail)  # only routing raises a 404
        body = error_json(message, OpenAIError(exc.status_code, "").type, None, code)
        return JSONResponse(body, status_code=exc.status_code, headers=http_error_headers(request, exc))

    async def on_unencodable(request: Request, exc: Exception) -> Response:
        """The standard library's JSON reads an escaped half of a surrogate pair into a str, which no gRPC request
        can carry (UTF-8 has no such character): the client's text, refused as the REST routes refuse it."""
        assert isinstance(exc, UnicodeEncodeError)
        if exc.reason != "surrogates not allowed":
            raise exc
        return await on_openai_error(request, OpenAIError(400, LONE_SURROGATE, code="invalid_value"))

    async def on_crash(request: Request, exc: Exception) -> Response:
        """A bug's 500 in OpenAI's shape, which the SDKs read (Starlette's is plain text); its traceback is logged."""
        return await on_openai_error(request, OpenAIError(500, CRASHED, code="internal_error"))

    app = FastAPI(
        title="Like-Opt OpenAI-compatible API",
        version="1",
        telemetry=NO_NATIVE_TELEMETRY,
        docs_url=None,
        redoc_url=None,
        exception_handlers={
            OpenAIError: on_openai_error,
            RequestValidationError: on_invalid,
            HTTPException: on_http_error,
            UnicodeEncodeError: on_unencodable,
            Exception: on_crash,
        },
    )
    app.include_router(openai_router(config, upstreams))
    serve_without_trailing_slash(app.router)
    app.add_middleware(BodyLimit, max_bytes=min(config.max_request_bytes, MAX_JSON_BYTES))
    return app
