"""Request bodies: read within a size limit, parsed and checked by a pydantic model in one pass.

FastAPI's own body parameters trust the Content-Type (``curl -d`` sends a form type) and read bodies of any
size; here any body is read as JSON, a body past its limit is a 413 before it is parsed, and a bad one is a 400
(not JSON, not an object) or a 422 naming the first bad field, in the error shape of every other error. The
models still describe the bodies in the OpenAPI document: request_body() puts them there.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request

from gateway.errors import ApiError

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 1024 * 1024
"""Largest JSON body of a search, chat, feedback, OpenAI-style or MCP request (uploads have
LIKEOPT_MAX_REQUEST_BYTES)."""
BODY_MODELS: list[type[BaseModel]] = []
"""Every model named by schema_ref() (request_body() included), for the OpenAPI document's components."""
SCHEMA_REF = "#/components/schemas/{model}"
LONE_SURROGATE = (
    "a string holds half of a UTF-16 surrogate pair (an escape from \\ud800 to \\udfff without its partner), which is"
    " no character: text cut inside an emoji, say; send whole characters"
)
"""Why a body whose JSON escapes half a character is refused (JavaScript's and Python's JSON write such escapes)."""


def declared_over(headers: Headers, limit: int) -> bool:
    """Whether the request declares a body (Content-Length) longer than limit, so it can be refused unread."""
    declared = headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON, parameters such as charset aside (as the MCP SDK reads it)."""
    return content_type.partition(";")[0].strip() == "application/json"


def encoding_problem(headers: Headers) -> str | None:
    """Why a body cannot be read as sent: a Content-Encoding (gzip, br, ...), which nothing here decompresses;
    read as it is, a compressed body only failed later as "not valid JSON"."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    return f"request bodies are read uncompressed; Content-Encoding {encoding!r} is not supported"


def refuse_encoded(headers: Headers) -> None:
    """415 for a compressed body (see encoding_problem)."""
    if problem := encoding_problem(headers):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", problem)


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {max_bytes} bytes")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or a 413 as soon as it is declared or grows past max_bytes (415 if it is compressed)."""
    refuse_encoded(request.headers)
    if declared_over(request.headers, max_bytes):
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    return bytes(body)


def field_path(location: Sequence[int | str]) -> str:
    """A pydantic error location as a client writes it: ``documents[0].metadata``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")


def client_location(error: Any, sourced: bool) -> list[int | str]:
    """A pydantic error's location as the client wrote it. A sourced error's starts with where the value came
    from ("body", "query", "path" or "header", as FastAPI reports it), which the client did not write; a body
    model's own errors start at the field, which may itself be called "query"."""
    return list(error.get("loc", ()))[1 if sourced else 0 :]


def problem_text(error: Any, location: Sequence[int | str]) -> str:
    """One pydantic error as a sentence naming its field (at location, see client_location)."""
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown field; check its spelling against /api/v1/openapi.json"
    return f"'{field_path(location)}': {message}" if location else message


def invalid(errors: Sequence[Any], sourced: bool = False) -> ApiError:
    """The error for a body, parameter or header that does not fit its model (sourced: see client_location)."""
    first = errors[0] if errors else {}
    location = client_location(first, sourced)
    if first.get("type") == "json_invalid":
        reason = str(first.get("msg", ""))
        lone = "surrogate" in reason or "end of hex escape" in reason  # pydantic's words for the two halves
        return ApiError(400, "BAD_JSON", LONE_SURROGATE if lone else f"body is not valid UTF-8 JSON: {reason}")
    if first.get("type") == "model_type" and not location:
        return ApiError(400, "BAD_JSON", "body must be a JSON object")
    return ApiError(422, "INVALID_ARGUMENT", problem_text(first, location))


def parse(model: type[M], body: bytes | str) -> M:
    """body checked by model, or the 400/422 saying what is wrong."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
    if isinstance(body, bytes) and (text := other_unicode(body)) is not None:
        return parse(model, text)
    raise invalid(errors)


def other_unicode(body: bytes) -> str | None:
    """body's text when it is JSON in a Unicode encoding other than bare UTF-8: with a byte-order mark (Windows
    tools write one; RFC 8259 lets a parser ignore it) or in UTF-16 or UTF-32, as the standard library's JSON (and
    so the OpenAI-compatible routes) reads it. Tried only once a body failed as UTF-8, so costs a valid one nothing."""
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        return None
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        return None


def json_body(model: type[M], max_bytes: int = MAX_JSON_BYTES) -> Callable[[Request], Awaitable[M]]:
    """A dependency giving the request's body as model (async: FastAPI would run a plain function in a thread)."""

    async def body(request: Request) -> M:
        return parse(model, await read_body(request, max_bytes))

    return body


def request_body(media: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """An operation's ``requestBody`` (``openapi_extra``), each media type described by its model."""
    content = {kind: {"schema": schema_ref(model)} for kind, model in media.items()}
    return {"requestBody": {"required": True, "content": content}}


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to model's schema, which the OpenAPI document's components then hold with the models it uses."""
    BODY_MODELS.append(model)
    return {"$ref": SCHEMA_REF.format(model=model.__name__)}
