"""OpenAI Chat Completions ⇄ generation_svc's Answer: messages to a question with its history, answer
events to a completion or to ``chat.completion.chunk`` lines, gRPC failures to OpenAI's error shape.

Pure translation (no I/O), so every rule here has a unit test without a mesh.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson

from gateway.convert import citation_json
from gateway.errors import retry_after, status_of
from gateway.openai_models import (
    MODEL_ID,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    Usage,
    error_json,
)
from likeopt.runtime.contract import ANSWER_MAX_TOKENS, InvalidInput, check_query, check_stop
from likeopt.v1 import generation_pb2

INSTRUCTION_ROLES = frozenset({"system", "developer"})
"""Accepted and skipped: Like-Opt's answers follow its own grounded prompt, not a client's persona."""
TOOL_ROLES = frozenset({"tool", "function"})
"""Accepted and skipped: tool results another model asked for, in a chat a client switched to Like-Opt (a chat UI
that changes models mid-conversation); Like-Opt calls no tools, so they hold nothing it asked."""
SKIPPED_ROLES = INSTRUCTION_ROLES | TOOL_ROLES
ROLES = frozenset({"user", "assistant"}) | SKIPPED_ROLES
BAD_REQUEST_CODES = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION}
)
"""OpenAI answers 400 where the REST API answers 422: its clients raise BadRequestError for these."""
DONE_LINE = b"data: [DONE]\n\n"
NO_LOGPROBS = "log probabilities are not available: answers are composed and checked against their passages"


class OpenAIError(Exception):
    """A request that ends with an OpenAI-shaped error (in the body, or as a stream's last data line)."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers

    @property
    def type(self) -> str:
        """OpenAI's error type for the status: what its clients and dashboards group errors by."""
        if self.status == 429:
            return "rate_limit_error"
        return "server_error" if self.status >= 500 else "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return error_json(self.message, self.type, self.param, self.code)


def upstream_error(code_name: str, message: str, retry_after_s: float = 0.0) -> OpenAIError:
    """The error for a failed Answer (its error event or its gRPC status), by gRPC code name."""
    code = grpc.StatusCode.__members__.get(code_name)
    status = 400 if code in BAD_REQUEST_CODES else status_of(code_name)
    return OpenAIError(status, message, code=code_name.lower(), headers=retry_after(retry_after_s))


def message_text(message: ChatMessage, position: int, field: str = "messages") -> str:
    """The text of a message: a string, or its text parts joined; other parts (images, audio) are refused.
    field names the request's list of messages in an error (``messages``; the Responses API's ``input``)."""
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        refusal = (part.model_extra or {}).get("refusal") if part.type == "refusal" else None
        if isinstance(refusal, str):  # an earlier reply's refusal, sent back as history
            texts.append(refusal)
            continue
        if part.type == "text" and part.text is None:
            raise OpenAIError(
                400,
                f"{field}[{position}].content[{index}]: a text part needs its 'text'",
                param=f"{field}[{position}].content[{index}].text",
                code="missing_required_parameter",
            )
        if part.type != "text":
            raise OpenAIError(
                400,
                f"{field}[{position}]: only text content can be answered, not {part.type!r}",
                param=f"{field}[{position}].content",
                code="unsupported_content",
            )
        texts.append(part.text)
    return "\n".join(texts)


def question_and_history(
    messages: Sequence[ChatMessage], field: str = "messages"
) -> tuple[str, list[generation_pb2.Turn]]:
    """The question (the last user message) and the turns before it, oldest first; after the question may come
    only messages that are skipped anyway (instructions, tool results) and replies that only called tools."""
    if not messages:
        raise OpenAIError(400, f"{field!r} must hold at least one message", param=field, code="empty_messages")
    for position, message in enumerate(messages):
        if message.role not in ROLES:
            raise OpenAIError(
                400,
                f"{field}[{position}].role {message.role!r} is not supported"
                " (user, assistant, system, developer, tool or function)",
                param=f"{field}[{position}].role",
                code="invalid_role",
            )
    asked = question_position(messages, field)
    question = checked_question(message_text(messages[asked], asked, field), f"{field}[{asked}].content")
    return question, history_turns(messages[:asked], field)


def question_position(messages: Sequence[ChatMessage], field: str) -> int:
    """Where the question is: the last user message, unless a reply with text follows it (then nothing is asked)."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.role == "user":
            return position
        if message.role == "assistant" and message_text(message, position, field):
            break
    raise OpenAIError(
        400,
        f"the last message must be the user's question (role 'user'), not {message.role!r}",
        param=f"{field}[{position}].role",
        code="invalid_role",
    )


def checked_question(text: str, param: str) -> str:
    """The question as generation_svc takes it, or the 400 naming the client's own field (OpenAI's API has no
    "query", which generation_svc's refusal would name)."""
    try:
        return check_query(text, param)
    except InvalidInput as exc:
        raise OpenAIError(400, str(exc), param=param, code="invalid_value") from None


def refuse_other_shapes(options: dict[str, Any]) -> None:
    """A 400 for options that ask for an answer of another shape than text with citations (a tool call, log
    probabilities, audio): answered as text they would break the client that asked, as n > 1 would. Tools a
    model may choose not to call (tool_choice absent, "auto" or "none") are fine: it answers in text."""
    choice = options.get("tool_choice")
    if choice == "required" or (isinstance(choice, dict) and not may_leave_uncalled(choice)):
        raise OpenAIError(
            400, "tool_choice must be 'auto', 'none' or allowed_tools in mode 'auto': Like-Opt answers in text and"
            " calls no tools",
            param="tool_choice", code="unsupported_value",
        )  # fmt: skip
    if isinstance(options.get("function_call"), dict):
        raise OpenAIError(
            400, "function_call must be 'auto' or 'none': Like-Opt calls no functions",
            param="function_call", code="unsupported_value",
        )  # fmt: skip
    logprobs, top_logprobs = options.get("logprobs"), options.get("top_logprobs")
    if (logprobs is not None and logprobs is not False) or top_logprobs:
        raise OpenAIError(
            400, NO_LOGPROBS,
            param="logprobs" if logprobs is not None and logprobs is not False else "top_logprobs",
            code="unsupported_value",
        )  # fmt: skip
    modalities = options.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise OpenAIError(400, "modalities must be ['text']", param="modalities", code="unsupported_value")


def may_leave_uncalled(choice: dict[str, Any]) -> bool:
    """Whether a tool_choice object lets the model answer without calling a tool: ``allowed_tools`` in mode
    ``auto`` (its mode beside the list in the Responses API, inside ``allowed_tools`` in Chat Completions)."""
    listed = choice.get("allowed_tools")
    mode = choice.get("mode") or (listed.get("mode") if isinstance(listed, dict) else None)
    return choice.get("type") == "allowed_tools" and mode == "auto"


def history_turns(messages: Sequence[ChatMessage], field: str = "messages") -> list[generation_pb2.Turn]:
    """Earlier messages as turns: each user message with the assistant reply after it (empty when none); a reply
    without text only called tools, so it answers nothing."""
    turns: list[generation_pb2.Turn] = []
    asked: str | None = None
    for position, message in enumerate(messages):
        if message.role == "user":
            if asked is not None:
                turns.append(generation_pb2.Turn(question=asked))
            asked = message_text(message, position, field)
        elif message.role == "assistant" and (answer := message_text(message, position, field)):
            turns.append(generation_pb2.Turn(question=asked or "", answer=answer))
            asked = None
    if asked is not None:
        turns.append(generation_pb2.Turn(question=asked))
    return turns


def check_model(model: str) -> None:
    """OpenAI's 404 for a model other than Like-Opt's one."""
    if model != MODEL_ID:
        raise OpenAIError(
            404,
            f"The model {model!r} does not exist: Like-Opt serves {MODEL_ID!r}",
            param="model",
            code="model_not_found",
        )


def answer_request(body: ChatCompletionRequest) -> generation_pb2.AnswerRequest:
    """The Answer call for a chat completion request, or the OpenAIError that refuses it."""
    check_model(body.model)
    if body.n not in (None, 1):
        raise OpenAIError(400, "'n' must be 1: one answer is generated", param="n", code="unsupported_value")
    if body.response_format is not None and body.response_format.type != "text":
        raise OpenAIError(
            400,
            f"response_format {body.response_format.type!r} is not supported: answers are text with [n] citations",
            param="response_format",
            code="unsupported_value",
        )
    refuse_other_shapes(body.model_extra or {})
    question, history = question_and_history(body.messages)
    return generation_pb2.AnswerRequest(
        stop=stop_sequences(body.stop),
        query=question,
        **body.retrieval(),
        history=history,
        max_tokens=answer_budget(body.max_completion_tokens or body.max_tokens),
    )


def answer_budget(asked: int | None) -> int:
    """A client's token limit as AnswerRequest.max_tokens: 0 (the server's limit) when absent, and never past what
    the field holds (a larger ask means the server's limit anyway)."""
    return min(asked or 0, ANSWER_MAX_TOKENS.high)


def stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    """OpenAI's ``stop`` (one string or a list) as generation_svc takes it, or the 400 that refuses it."""
    try:
        return check_stop([stop] if isinstance(stop, str) else stop or [])
    except InvalidInput as exc:
        raise OpenAIError(400, str(exc), param="stop", code="invalid_value") from None


def new_completion_id(prefix: str = "chatcmpl") -> str:
    """A fresh id as OpenAI shapes them: ``chatcmpl-…`` for chat, ``cmpl-…`` for text completions."""
    return f"{prefix}-{uuid.uuid4().hex}"


def finish_reason(done: generation_pb2.DoneEvent) -> str:
    """OpenAI's finish reason: ``length`` when the token budget ended the answer, else ``stop``."""
    return "length" if done.finish_reason == "length" else "stop"


def usage_json(done: generation_pb2.DoneEvent) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


@dataclass
class AnswerParts:
    """What an answer stream said, gathered for a whole completion or for the stream's final chunk."""

    text: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    done: generation_pb2.DoneEvent | None = None

    def take(self, event: generation_pb2.AnswerEvent) -> str | None:
        """Keep an event's part; returns its text when it is a delta. An error event raises its OpenAIError."""
        kind = event.WhichOneof("event")
        if kind == "delta":
            self.text.append(event.delta.text)
            return event.delta.text
        if kind == "citation":
            self.citations.append(citation_json(event.citation))
        elif kind == "done":
            self.done = event.done
        elif kind == "error":
            raise upstream_error(event.error.code, event.error.message, event.error.retry_after_s)
        return None


def completion(completion_id: str, created: int, parts: AnswerParts) -> ChatCompletion:
    """The whole answer as one ``chat.completion``."""
    done = parts.done or generation_pb2.DoneEvent()
    return ChatCompletion(
        id=completion_id,
        created=created,
        choices=[
            Choice(message=AssistantMessage(content="".join(parts.text)), finish_reason=finish_reason(done))  # type: ignore[arg-type]
        ],
        usage=Usage(**usage_json(done)),
        system_fingerprint=done.backend or None,
        citations=parts.citations,  # type: ignore[arg-type]
        conversation_id=done.conversation_id,
    )


class ChunkLines:
    """The SSE lines of one streamed completion. A delta is the hot path: its constant head and tail are
    encoded once, so each delta costs one JSON string encoding."""

    def __init__(self, completion_id: str, include_usage: bool, created: int | None = None) -> None:
        self.include_usage = include_usage
        self.head: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()) if created is None else created,
            "model": MODEL_ID,
            "system_fingerprint": None,
        }
        opening = b"data: " + orjson.dumps(self.head)[:-1]
        self._delta_head = opening + b',"choices":[{"index":0,"delta":{"content":'
        self._delta_tail = b'},"logprobs":null,"finish_reason":null}]' + self._usage_null() + b"}\n\n"

    def _usage_null(self) -> bytes:
        """With include_usage every chunk but the last carries ``"usage": null``, as OpenAI's do."""
        return b',"usage":null' if self.include_usage else b""

    def _line(self, data: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(data) + b"\n\n"

    ending = DONE_LINE
    route = "/v1/chat/completions"

    def opening(self) -> bytes:
        """The first chunk: who speaks, no text yet."""
        return self._choice({"role": "assistant", "content": ""}, None)

    def delta(self, text: str) -> bytes:
        return self._delta_head + orjson.dumps(text) + self._delta_tail

    def _choice(self, delta: dict[str, Any], reason: str | None, **extra: Any) -> bytes:
        data = {**self.head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
        if self.include_usage:
            data["usage"] = None
        return self._line({**data, **extra})

    def closing(self, parts: AnswerParts) -> bytes:
        """The last chunk with a choice: the finish reason, and Like-Opt's citations and conversation id;
        then, when asked for, the usage chunk (no choices) that OpenAI sends before ``[DONE]``."""
        done = parts.done or generation_pb2.DoneEvent()
        known = {"system_fingerprint": done.backend or None}  # known at the end only; the non-streamed reply's
        line = self._choice(
            {}, finish_reason(done), citations=parts.citations, conversation_id=done.conversation_id, **known
        )
        if self.include_usage:
            line += self._line({**self.head, **known, "choices": [], "usage": usage_json(done)})
        return line

    def failure(self, failure: OpenAIError) -> bytes:
        """A failure after the stream began: OpenAI's clients raise it from the ``error`` member of a data line."""
        return self._line(failure.body())
