"""The OpenAI Chat Completions wire shapes the gateway accepts and returns, as pydantic models.

Requests are lenient where OpenAI clients are chatty (temperature, tools, logit_bias… are accepted and
ignored: the answer is Like-Opt's, grounded on its passages) and strict where a mistake would silently
change the answer (the model id, ``n``, a ``response_format`` asking for JSON the answer would not be).
Responses add Like-Opt's ``citations`` and ``conversation_id`` beside OpenAI's fields; clients that do not
know them ignore them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.models import ConversationId, WholeNumber, whole_number
from likeopt.runtime.contract import ANSWER_TOP_K, MODES, Mode

LENIENT_BUT_TYPED = ConfigDict(extra="allow", strict=True)
"""Request models: fields Like-Opt does not use are accepted and ignored, but a field it uses must have its type
(``"stream": "yes"`` and ``"max_tokens": "5"`` are 400s, as OpenAI's API answers, not quietly coerced; an integer
written ``5.0`` is one, as in JSON Schema)."""


class RequestPart(BaseModel):
    """A request model (or a part of one) read as OpenAI's API reads it: its reference types most optional fields
    "boolean or null", "integer or null"…, so null is the field left out (its default), as clients generated from
    that reference send every field they do not set; a required field's null is still refused."""

    model_config = LENIENT_BUT_TYPED

    @model_validator(mode="before")
    @classmethod
    def null_is_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        optional = {name for name, declared in cls.model_fields.items() if not declared.is_required()}
        return {name: value for name, value in data.items() if value is not None or name not in optional}


TokenCount = whole_number(ge=1)
"""A number of tokens asked for (``max_tokens`` and its kin)."""
PassageCount = whole_number(ge=ANSWER_TOP_K.low, le=ANSWER_TOP_K.high)
"""Passages an answer is grounded on (Like-Opt's ``top_k``)."""

MODEL_ID = "like-opt"
MODEL_CREATED = 1_735_689_600
"""2025-01-01T00:00:00Z: a fixed ``created`` for the model list, so it is the same on every replica."""


class ContentPart(RequestPart):
    """One part of a multi-part message; only ``text`` parts can be answered."""

    type: str
    text: str | None = None


class ChatMessage(RequestPart):
    """A message of the conversation; the role is checked after parsing so a wrong one is a 400, as OpenAI's."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(RequestPart):
    include_usage: bool = False


class ResponseFormat(RequestPart):
    """OpenAI's ``response_format``: only ``text`` can be honoured (answers are grounded prose with citations)."""

    type: str


class LikeOptOptions(RequestPart):
    """Like-Opt's own options, which every OpenAI-style request (chat, responses, completions) may add."""

    conversation_id: ConversationId | None = Field(
        None, description="Like-Opt: continue a stored conversation (its turns are used when no earlier messages)."
    )
    top_k: PassageCount | None = Field(
        None,
        description=f"Like-Opt: passages to retrieve (default {ANSWER_TOP_K.default}).",
    )
    mode: Mode | None = Field(None, description="Like-Opt: which retrievers to use.")

    def retrieval(self) -> dict[str, Any]:
        """These options as AnswerRequest fields, 0 and hybrid standing for the defaults."""
        return {
            "conversation_id": self.conversation_id or "",
            "top_k": self.top_k or 0,
            "mode": MODES[self.mode or "hybrid"],
        }


class ChatCompletionRequest(LikeOptOptions):
    """``POST /v1/chat/completions``: OpenAI's request, plus Like-Opt's retrieval options."""

    model: str = Field(description=f"Must be {MODEL_ID!r} (GET /v1/models lists it).")
    messages: list[ChatMessage] = Field(description="The conversation; the last message is the user's question.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: WholeNumber | None = Field(None, description="Only 1 is supported.")
    max_completion_tokens: TokenCount | None = Field(
        None, description="Most tokens in the answer; more than the server's configured limit means that limit."
    )
    max_tokens: TokenCount | None = Field(None, description="The older name of max_completion_tokens.")
    stop: str | list[str] | None = Field(
        None, description="Up to 4 sequences; the answer (and its citations) ends before the first of them."
    )
    response_format: ResponseFormat | None = Field(None, description="Only type 'text' is supported.")
    user: str | None = None


class Citation(BaseModel):
    """A passage the answer cites with ``[n]``: the same fields as the chat API's ``citation`` event."""

    model_config = ConfigDict(extra="allow")  # e.g. `supported`, once the grounding check reports it

    n: int
    doc_id: str
    chunk_id: str
    title: str
    text: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """A whole answer (``stream: false``)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = MODEL_ID
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    conversation_id: str = ""


class Model(BaseModel):
    id: str = MODEL_ID
    object: Literal["model"] = "model"
    created: int = MODEL_CREATED
    owned_by: str = "like-opt"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, which its clients parse into their exceptions."""

    error: ErrorBody


def error_json(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    """The body of an error response, as a plain dict (also written into a stream)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
