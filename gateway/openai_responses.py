"""OpenAI's Responses API (``POST /v1/responses``) ⇄ generation_svc's Answer.

Newer OpenAI clients (the Agents SDK, Vercel's AI SDK, Codex-style tools) speak Responses rather than Chat
Completions. A response is one Answer call, as a completion is: ``input`` (a string, or messages whose last is
the user's question) becomes the question and its turns. A response id carries its conversation's id and the
name of its turn there, so ``previous_response_id`` continues from that turn (branching when it is not the
last) and nothing is stored beyond the conversation itself. Citations become
``file_citation`` annotations at each ``[n]`` marker, and the reply also carries Like-Opt's ``citations`` and
``conversation_id``. Pure translation (no I/O), as openai_translate.py.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import Field

from gateway.openai_models import MODEL_ID, ChatMessage, ContentPart, LikeOptOptions, RequestPart, TokenCount
from gateway.openai_translate import (
    NO_LOGPROBS,
    AnswerParts,
    OpenAIError,
    answer_budget,
    check_model,
    checked_question,
    question_and_history,
    refuse_other_shapes,
    usage_json,
)
from likeopt.runtime.contract import ID_RE
from likeopt.runtime.text import MARKER
from likeopt.v1 import generation_pb2

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"
TURN_NONCE = re.compile(r"[0-9a-f]{32}")
"""A response's id and its message's are the prefix, a fresh hex nonce naming its turn, "_", then the conversation's
id (one OpenAI gave has no "_"): so previous_response_id and an item_reference to the message find that turn."""
TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
BUILT_IN_TOOL_CALLS = (
    "web_search_call",
    "file_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "computer_call",
    "local_shell_call",
    "shell_call",
    "apply_patch_call",
    "mcp_call",
    "mcp_list_tools",
    "mcp_approval_request",
)
"""The items OpenAI's own tools leave in a response's output, which a client sends back in its next input."""
BUILT_IN_TOOL_RESULTS = (
    "computer_call_output",
    "local_shell_call_output",
    "shell_call_output",
    "apply_patch_call_output",
    "mcp_approval_response",
)
OTHER_MODELS_ITEMS = {
    "function_call": "assistant",
    "custom_tool_call": "assistant",
    "reasoning": "assistant",
    **dict.fromkeys(BUILT_IN_TOOL_CALLS, "assistant"),
    "function_call_output": "tool",
    "custom_tool_call_output": "tool",
    **dict.fromkeys(BUILT_IN_TOOL_RESULTS, "tool"),
}
"""Items another model's turns leave in a history, as the chat message that reads the same: a reply without text
(a tool call, its reasoning) or a tool's result; both are skipped, as Chat Completions skips them."""
LOGPROBS_INCLUDE = "message.output_text.logprobs"
"""How a Responses request asks for log probabilities, which Chat Completions asks for with ``logprobs``."""


class InputItem(RequestPart):
    """An item of ``input``: a message, an ``item_reference`` to the message of an earlier response (as Vercel's
    AI SDK sends a stored reply back), or an item of another model's tool use (OTHER_MODELS_ITEMS)."""

    type: str = "message"
    role: str | None = None
    content: str | list[ContentPart] | None = None
    id: str | None = None


class TextFormat(RequestPart):
    type: str


class TextOptions(RequestPart):
    format: TextFormat | None = None


class ResponsesRequest(LikeOptOptions):
    """``POST /v1/responses``: OpenAI's request, plus Like-Opt's retrieval options. Sampling options, tools and
    instructions are accepted and ignored, as in Chat Completions: the answer is grounded on the passages."""

    model: str = Field(description=f"Must be {MODEL_ID!r}.")
    input: str | list[InputItem] | None = Field(
        None, description="The question, or messages whose last is the user's question (required)."
    )
    instructions: Any = None
    stream: bool = False
    max_output_tokens: TokenCount | None = Field(None, description="Most tokens in the answer (capped by the server).")
    previous_response_id: str | None = Field(None, description="Continue the conversation of this response.")
    text: TextOptions | None = Field(None, description="Only the format type 'text' is supported.")
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    conversation: Any = Field(None, description="Not supported: use previous_response_id.")
    prompt: Any = Field(None, description="Not supported: send the question as input.")
    include: list[str] | None = Field(None, description=f"{LOGPROBS_INCLUDE!r} is not supported.")
    store: bool = Field(
        True, description="false: keep nothing of this turn; no later request can continue from it or rate it."
    )


def input_messages(items: str | list[InputItem], answers: Mapping[str, str] | None = None) -> list[ChatMessage]:
    """``input`` as chat messages (position for position, so errors name the right item); an item_reference is the
    assistant message it names, whose text ``answers`` holds by item id (see referenced_turns)."""
    if isinstance(items, str):
        return [ChatMessage(role="user", content=items)]
    messages = []
    for position, item in enumerate(items):
        if item.type == "item_reference":
            answer = (answers or {}).get(item.id or "")
            if answer is None:
                raise item_not_found(item.id or "")
            messages.append(ChatMessage(role="assistant", content=answer))
            continue
        if item.type in OTHER_MODELS_ITEMS:
            messages.append(ChatMessage(role=OTHER_MODELS_ITEMS[item.type]))
            continue
        if item.type != "message":
            raise OpenAIError(
                400,
                f"input[{position}]: items of type {item.type!r} are not supported; Like-Opt answers messages only",
                param=f"input[{position}].type",
                code="unsupported_value",
            )
        content: str | list[ContentPart] | None = (
            item.content
            if item.content is None or isinstance(item.content, str)
            else [p.model_copy(update={"type": "text"}) if p.type in TEXT_PARTS else p for p in item.content]
        )
        messages.append(ChatMessage(role=item.role or "", content=content))
    return messages


def turn_item_id(prefix: str, turn_id: str, conversation_id: str) -> str:
    """The id of a response (RESPONSE_PREFIX) or of its message (MESSAGE_PREFIX), naming its conversation's turn."""
    return f"{prefix}{turn_id}_{conversation_id}"


def turn_of_item(prefix: str, item_id: str) -> tuple[str, str] | None:
    """The conversation and turn an id made by turn_item_id names, or None when it cannot be one of ours."""
    turn_id, _, conversation_id = item_id.removeprefix(prefix).partition("_")
    if not item_id.startswith(prefix) or not TURN_NONCE.fullmatch(turn_id) or not ID_RE.match(conversation_id):
        return None
    return conversation_id, turn_id


def response_not_found(previous_response_id: str) -> OpenAIError:
    """The 400 OpenAI gives for a previous_response_id it does not know (malformed, expired or never given)."""
    return OpenAIError(
        400,
        f"Previous response with id {previous_response_id!r} not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def turn_named(previous_response_id: str) -> tuple[str, str]:
    """The conversation and turn a response id names, or response_not_found when it cannot be one of ours."""
    named = turn_of_item(RESPONSE_PREFIX, previous_response_id)
    if named is None:
        raise response_not_found(previous_response_id)
    return named


def item_not_found(item_id: str) -> OpenAIError:
    """The 400 OpenAI gives for an item_reference to an item it does not hold (never ours, not kept, or gone)."""
    return OpenAIError(400, f"Item with id {item_id!r} not found.", param="input", code="item_not_found")


def referenced_turns(items: str | list[InputItem] | None) -> dict[str, tuple[str, str]]:
    """The conversation and turn each item_reference of ``input`` names, by item id; one naming no message of ours
    is item_not_found."""
    named: dict[str, tuple[str, str]] = {}
    for position, item in enumerate(items if isinstance(items, list) else []):
        if item.type != "item_reference":
            continue
        if item.id is None:
            raise OpenAIError(
                400, f"input[{position}]: an item_reference needs the id of the item it stands for",
                param=f"input[{position}].id", code="missing_required_parameter",
            )  # fmt: skip
        turn = turn_of_item(MESSAGE_PREFIX, item.id)
        if turn is None:
            raise item_not_found(item.id)
        named[item.id] = turn
    return named


def referenced_answers(
    named: Mapping[str, tuple[str, str]], stored: Mapping[str, Sequence[generation_pb2.Turn]]
) -> dict[str, str]:
    """The answer text of each referenced turn, by item id, from the turns stored of each conversation; a turn no
    longer kept (or never: ``store: false``) is item_not_found."""
    answers = {}
    for item_id, (conversation_id, turn_id) in named.items():
        found = [turn.answer for turn in stored.get(conversation_id, ()) if turn.turn_id == turn_id]
        if not found:
            raise item_not_found(item_id)
        answers[item_id] = found[0]
    return answers


def refuse_unkept_options(body: ResponsesRequest) -> None:
    """A 400 naming ``prompt`` (a prompt stored in OpenAI's dashboard, whose text Like-Opt cannot read, so its
    variables would be lost) or an ``include`` of log probabilities (which would come back empty)."""
    if body.prompt is not None:
        raise OpenAIError(
            400, "prompt is not supported: stored prompts are OpenAI's; send the question as input",
            param="prompt", code="unsupported_value",
        )  # fmt: skip
    if LOGPROBS_INCLUDE in (body.include or []):
        raise OpenAIError(400, NO_LOGPROBS, param="include", code="unsupported_value")


def responses_answer_request(
    body: ResponsesRequest, answers: Mapping[str, str] | None = None
) -> generation_pb2.AnswerRequest:
    """The Answer call for a Responses request (its conversation id always set), or the OpenAIError refusing it;
    ``answers`` holds the text of the messages its item_references name (referenced_answers)."""
    check_model(body.model)
    if body.text is not None and body.text.format is not None and body.text.format.type != "text":
        raise OpenAIError(
            400,
            f"text.format {body.text.format.type!r} is not supported: answers are text with [n] citations",
            param="text.format",
            code="unsupported_value",
        )
    if body.conversation is not None:
        raise OpenAIError(
            400, "conversation is not supported; use previous_response_id", param="conversation", code="unsupported"
        )
    refuse_unkept_options(body)
    refuse_other_shapes(body.model_extra or {})
    if body.input is None:
        raise OpenAIError(400, "input: Field required", param="input", code="missing_required_parameter")
    if isinstance(body.input, str):  # a bare question: its errors name "input" itself, as the client wrote it
        question, history = checked_question(body.input, "input"), []
    else:
        question, history = question_and_history(input_messages(body.input, answers), field="input")
    options, after_turn_id = body.retrieval(), ""
    if not options["conversation_id"]:
        continued = body.previous_response_id
        options["conversation_id"], after_turn_id = turn_named(continued) if continued else (uuid.uuid4().hex, "")
    return generation_pb2.AnswerRequest(
        query=question,
        **options,
        history=history,
        max_tokens=answer_budget(body.max_output_tokens),
        turn_id=uuid.uuid4().hex,
        after_turn_id=after_turn_id,
        ephemeral=not body.store,
    )


def annotations(text: str, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ``file_citation`` at each ``[n]`` marker of text whose passage is cited."""
    by_n = {citation["n"]: citation for citation in citations}
    found = []
    for marker in MARKER.finditer(text):
        if (citation := by_n.get(int(marker.group(1)))) is not None:
            filename = citation["title"] or citation["doc_id"]
            found.append(
                {"type": "file_citation", "file_id": citation["doc_id"], "filename": filename, "index": marker.start()}
            )
    return found


@dataclass
class ResponseShape:
    """What every snapshot of one response repeats (its ids, its time, the request's echoed options)."""

    body: ResponsesRequest
    conversation_id: str
    turn_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = turn_item_id(RESPONSE_PREFIX, self.turn_id, self.conversation_id)
        self.message_id = turn_item_id(MESSAGE_PREFIX, self.turn_id, self.conversation_id)

    def message(self, parts: AnswerParts, status: str) -> dict[str, Any]:
        """The answer as one assistant message item."""
        text = "".join(parts.text)
        content = {
            "type": "output_text",
            "text": text,
            "annotations": annotations(text, parts.citations),
            "logprobs": [],
        }
        return {"type": "message", "id": self.message_id, "status": status, "role": "assistant", "content": [content]}

    def snapshot(self, parts: AnswerParts | None) -> dict[str, Any]:
        """The response object: in progress (no parts yet), completed, or incomplete (cut by max_output_tokens)."""
        done = None if parts is None else parts.done or generation_pb2.DoneEvent(finish_reason="stop")
        status = "in_progress" if done is None else "incomplete" if done.finish_reason == "length" else "completed"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": self.body.instructions,
            "max_output_tokens": self.body.max_output_tokens,
            "model": MODEL_ID,
            "output": [self.message(parts, status)] if parts is not None else [],
            "parallel_tool_calls": False,
            "previous_response_id": self.body.previous_response_id,
            "store": self.body.store,
            "temperature": self.body.temperature,
            "top_p": self.body.top_p,
            "text": {"format": {"type": "text"}},
            "tool_choice": "none",
            "tools": [],
            "truncation": "disabled",
            "usage": response_usage(done) if done is not None else None,
            "user": self.body.user,
            "metadata": self.body.metadata or {},
            "citations": parts.citations if parts is not None else [],
            "conversation_id": self.conversation_id,
        }


def failure_code(failure: OpenAIError) -> str:
    """A failed response's ``error.code``, from the few OpenAI defines (the ``error`` event keeps the exact one)."""
    return "rate_limit_exceeded" if failure.status == 429 else "server_error"


def response_usage(done: generation_pb2.DoneEvent) -> dict[str, Any]:
    counts = usage_json(done)
    return {
        "input_tokens": counts["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": counts["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counts["total_tokens"],
    }


class ResponseEvents:
    """The Server-Sent Events of one streamed response, numbered in order as OpenAI numbers them."""

    ending = b""
    route = "/v1/responses"
    """A Responses stream ends with its last event; there is no ``[DONE]``."""

    def __init__(self, shape: ResponseShape) -> None:
        self.shape = shape
        self.sequence = 0
        self.at = {"item_id": shape.message_id, "output_index": 0, "content_index": 0}

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def opening(self) -> bytes:
        """Created, in progress, and the empty message and text part the deltas fill."""
        started = self.shape.snapshot(None)
        item = {"type": "message", "id": self.shape.message_id, "status": "in_progress", "role": "assistant"}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return (
            self._event("response.created", response=started)
            + self._event("response.in_progress", response=started)
            + self._event("response.output_item.added", output_index=0, item={**item, "content": []})
            + self._event("response.content_part.added", **self.at, part=part)
        )

    def delta(self, text: str) -> bytes:
        return self._event("response.output_text.delta", **self.at, delta=text, logprobs=[])

    def closing(self, parts: AnswerParts) -> bytes:
        """Each citation, the whole text, part and item done, then completed (or incomplete when cut short)."""
        final = self.shape.snapshot(parts)
        [item] = final["output"]
        [part] = item["content"]
        frames = [
            self._event("response.output_text.annotation.added", **self.at, annotation_index=i, annotation=note)
            for i, note in enumerate(part["annotations"])
        ]
        frames.append(self._event("response.output_text.done", **self.at, text=part["text"], logprobs=[]))
        frames.append(self._event("response.content_part.done", **self.at, part=part))
        frames.append(self._event("response.output_item.done", output_index=0, item=item))
        frames.append(self._event(f"response.{final['status']}", response=final))
        return b"".join(frames)

    def failure(self, failure: OpenAIError) -> bytes:
        """OpenAI's ``error`` event, then the response marked failed."""
        failed = {
            **self.shape.snapshot(None),
            "status": "failed",
            "error": {"code": failure_code(failure), "message": failure.message},
        }
        return self._event("error", code=failure.code, message=failure.message, param=failure.param) + self._event(
            "response.failed", response=failed
        )
