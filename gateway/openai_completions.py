"""OpenAI's legacy Completions API (``POST /v1/completions``) ⇄ generation_svc's Answer.

LlamaIndex's ``OpenAILike`` (by default), text-completion clients and evaluation harnesses send a ``prompt``
rather than messages. The prompt is the question; the completion is the cited answer, as a chat completion's
is. Where the legacy API's defaults would cut an answer short (``max_tokens`` defaults to 16 there), a prompt
without ``max_tokens`` gets the server's own limit. Pure translation (no I/O), as openai_translate.py.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import Field

from gateway.models import WholeNumber
from gateway.openai_models import MODEL_ID, LikeOptOptions, StreamOptions, TokenCount
from gateway.openai_translate import (
    DONE_LINE,
    AnswerParts,
    OpenAIError,
    answer_budget,
    check_model,
    checked_question,
    finish_reason,
    refuse_other_shapes,
    stop_sequences,
    usage_json,
)
from likeopt.v1 import generation_pb2


class CompletionRequest(LikeOptOptions):
    """``POST /v1/completions``: OpenAI's request, plus Like-Opt's retrieval options. Sampling options are
    accepted and ignored; the answer is grounded on the passages."""

    model: str = Field(description=f"Must be {MODEL_ID!r}.")
    prompt: str | list[Any] = Field(description="The question: one string (or a list holding one).")
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = Field(
        None, description="Most tokens in the answer; absent means the server's limit, not OpenAI's 16."
    )
    stop: str | list[str] | None = Field(None, description="Up to 4 sequences; the answer ends before the first.")
    echo: bool = Field(False, description="Begin the text with the prompt.")
    n: WholeNumber | None = Field(None, description="Only 1 is supported.")
    best_of: WholeNumber | None = Field(None, description="Only 1 is supported.")
    suffix: str | None = Field(None, description="Not supported: answers are not insertions.")


def prompt_text(prompt: str | list[Any]) -> str:
    """The one text prompt; a batch of prompts or token arrays is refused (one answer is generated)."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, str):
        return prompt
    raise OpenAIError(
        400, "'prompt' must be one text prompt: batches and token arrays are not supported", "prompt", "invalid_value"
    )


def completion_answer_request(body: CompletionRequest) -> generation_pb2.AnswerRequest:
    """The Answer call for a completion request, or the OpenAIError that refuses it."""
    check_model(body.model)
    for name in ("n", "best_of"):
        if getattr(body, name) not in (None, 1):
            raise OpenAIError(400, f"'{name}' must be 1: one answer is generated", param=name, code="unsupported_value")
    if body.suffix:
        raise OpenAIError(400, "'suffix' is not supported: answers are not insertions", "suffix", "unsupported_value")
    refuse_other_shapes(body.model_extra or {})
    return generation_pb2.AnswerRequest(
        query=checked_question(prompt_text(body.prompt), "prompt"),
        **body.retrieval(),
        max_tokens=answer_budget(body.max_tokens),
        stop=stop_sequences(body.stop),
    )


def text_completion(completion_id: str, created: int, parts: AnswerParts, echoed: str = "") -> dict[str, Any]:
    """The whole answer as one ``text_completion``, echoed prompt first when asked for."""
    done = parts.done or generation_pb2.DoneEvent()
    choice = {"text": echoed + "".join(parts.text), "index": 0, "logprobs": None, "finish_reason": finish_reason(done)}
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [choice],
        "usage": usage_json(done),
        "system_fingerprint": done.backend or None,
        "citations": parts.citations,
        "conversation_id": done.conversation_id,
    }


class CompletionLines:
    """The SSE lines of one streamed text completion, ``[DONE]`` last, as OpenAI sends them."""

    ending = DONE_LINE
    route = "/v1/completions"

    def __init__(self, completion_id: str, include_usage: bool, echoed: str = "") -> None:
        self.head = {"id": completion_id, "object": "text_completion", "created": int(time.time()), "model": MODEL_ID}
        self.include_usage = include_usage
        self.echoed = echoed

    def _line(self, data: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def _choice(self, text: str, reason: str | None, **extra: Any) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}
        usage = {"usage": None} if self.include_usage else {}
        return self._line({**self.head, "choices": [choice], **usage, **extra})

    def opening(self) -> bytes:
        """The echoed prompt, when asked for; otherwise nothing before the first delta."""
        return self._choice(self.echoed, None) if self.echoed else b""

    def delta(self, text: str) -> bytes:
        return self._choice(text, None)

    def closing(self, parts: AnswerParts) -> bytes:
        """The finish reason with Like-Opt's citations and conversation id; then the usage chunk, when asked for."""
        done = parts.done or generation_pb2.DoneEvent()
        line = self._choice("", finish_reason(done), citations=parts.citations, conversation_id=done.conversation_id)
        if self.include_usage:
            line += self._line({**self.head, "choices": [], "usage": usage_json(done)})
        return line

    def failure(self, failure: OpenAIError) -> bytes:
        return self._line(failure.body())
