"""The openai backend: any OpenAI-compatible Chat Completions server, streamed over SSE.

vLLM, Ollama, llama.cpp's server and OpenAI itself all speak this protocol. Every
failure maps to one gRPC status with a message that names the cause, and nothing
can hang: connecting has its own timeout and the service's deadline bounds the rest.
Closing the stream (caller cancelled) closes the HTTP response, which drops the
connection, so the server sees the disconnect and stops generating.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
import httpx

from generation_svc.backends import AnswerFailed, Passage, Turn, Usage, renumbered, token_budget
from generation_svc.prompts import PROMPT_VERSION, build_messages

CONNECT_TIMEOUT_S = 5.0


def status_failure(status: int, body: str, retry_after: str | None) -> AnswerFailed:
    """The gRPC failure matching an HTTP error answer from the model server."""
    detail = f"model server answered HTTP {status}: {body.strip()[:200]}"
    if status == 429:
        retry = float(retry_after) if retry_after and retry_after.isdigit() else None
        return AnswerFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, detail, retry_after_s=retry)
    if status in (401, 403):
        return AnswerFailed(grpc.StatusCode.FAILED_PRECONDITION, detail + " (check LIKEOPT_OPENAI_API_KEY)")
    if status == 408 or status == 504:
        return AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, detail)
    if status >= 500:
        return AnswerFailed(grpc.StatusCode.UNAVAILABLE, detail)
    return AnswerFailed(grpc.StatusCode.INTERNAL, detail)


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event (multi-line data joined; comments skipped)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def parse_chunk(data: str) -> dict[str, Any]:
    """One chat.completion.chunk; a chunk that is not one is the server's fault (INTERNAL)."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise AnswerFailed(grpc.StatusCode.INTERNAL, f"model server sent a malformed chunk: {data[:120]!r}") from None
    if not isinstance(chunk, dict):
        raise AnswerFailed(grpc.StatusCode.INTERNAL, f"model server sent a malformed chunk: {data[:120]!r}")
    if "error" in chunk:
        raise AnswerFailed(grpc.StatusCode.UNAVAILABLE, f"model server failed mid-answer: {chunk['error']}")
    return chunk


class OpenAIBackend:
    """Streams Chat Completions from base_url (e.g. http://127.0.0.1:8000/v1)."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str, max_tokens: int, timeout_s: float) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_tokens = max_tokens
        self.fingerprint = f"openai/{self.url}/{model}/{max_tokens}/prompt{PROMPT_VERSION}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        )

    def request_body(
        self, question: str, passages: list[Passage], history: list[Turn], limit: int = 0
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": build_messages(question, passages, history),
            "stream": True,
            "max_tokens": token_budget(self.max_tokens, limit),
            "temperature": 0,
            "stream_options": {"include_usage": True},
        }
        if self.model:
            body["model"] = self.model
        return body

    def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncGenerator[str, None]:
        """The answer with the prompt's numbers (every passage, numbered in order) mapped to the passages' own,
        and markers naming no passage dropped."""
        pieces = self._pieces(self.request_body(question, passages, history, limit), usage)
        return renumbered(pieces, [p.n for p in passages])

    async def _pieces(self, body: dict[str, Any], usage: Usage) -> AsyncGenerator[str, None]:
        try:
            async with self._client.stream("POST", self.url, json=body) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode("utf-8", "replace")
                    raise status_failure(response.status_code, text, response.headers.get("retry-after"))
                async for data in sse_data(response.aiter_lines()):
                    if data.strip() == "[DONE]":
                        return
                    chunk = parse_chunk(data)
                    if chunk.get("usage"):
                        usage.prompt_tokens = int(chunk["usage"].get("prompt_tokens") or 0)
                        usage.completion_tokens = int(chunk["usage"].get("completion_tokens") or 0)
                    for choice in chunk.get("choices") or []:
                        if choice.get("finish_reason"):
                            usage.finish_reason = str(choice["finish_reason"])
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
        except httpx.TimeoutException as exc:
            raise AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, f"model server timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise AnswerFailed(grpc.StatusCode.UNAVAILABLE, f"model server unreachable: {exc!r}") from exc

    async def close(self) -> None:
        await self._client.aclose()
