"""Who may call a route, as FastAPI dependencies applied per router; each also hands the handler the caller.

The rule itself is gateway/keys.py's, shared with the OpenAI-compatible API and MCP: reads are open unless
LIKEOPT_READS_NEED_KEY, or need a token with LIKEOPT_AUTH=jwt; writes need the API key or a token with the
writer role (401 without either, 403 for a token without the role); administration needs the API key itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from gateway.errors import BEARER_CHALLENGE, ApiError
from gateway.keys import caller_of, caller_refusal, key_refusal
from likeopt.runtime.api_key import bearer_token
from likeopt.runtime.principal import Principal

bearer = HTTPBearer(
    scheme_name="apiKey",
    description="LIKEOPT_API_KEY (writes and administration), or with LIKEOPT_AUTH=jwt a token Envoy verifies.",
    auto_error=False,
)
"""Declares the Authorization header in the OpenAPI document; the checks below read it themselves."""
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {bearer.scheme_name: []}]
"""A read's security in the OpenAPI document: none, or the bearer credential (LIKEOPT_READS_NEED_KEY, or a token
with LIKEOPT_AUTH=jwt). Generated clients attach credentials only to operations that declare them, so a read that
declared none was sent without the key or token it needed, and refused with 401."""


def allowed(request: Request, write: bool) -> Principal | None:
    """The caller once let through (None in API-key mode), or the 401/403 saying why not."""
    config = request.state.gateway.config
    refusal = caller_refusal(config, request.headers, write)
    if refusal is not None:
        status, reason = refusal
        if status == 401:
            raise ApiError(401, "UNAUTHENTICATED", reason, headers=BEARER_CHALLENGE)
        raise ApiError(status, "PERMISSION_DENIED", reason)
    return caller_of(config, request.headers)


async def reader(request: Request) -> Principal | None:
    """Routes that read: searches, answers, index status, conversations, the dashboard."""
    return allowed(request, write=False)


async def writer(request: Request, _: Credentials) -> Principal | None:
    """Routes that change the corpus."""
    return allowed(request, write=True)


async def administrator(request: Request, _: Credentials) -> str:
    """Routes that show users' own words (their feedback): the API key, whatever LIKEOPT_AUTH says. Gives the
    key as checked, for the upstream call that checks it again."""
    authorization = request.headers.get("authorization", "")
    refusal = key_refusal(request.state.gateway.config, authorization, write=True)
    if refusal is not None:
        raise ApiError(401, "UNAUTHENTICATED", refusal, headers=BEARER_CHALLENGE)
    return bearer_token(authorization) or ""


Reader = Annotated[Principal | None, Depends(reader)]
Writer = Annotated[Principal | None, Depends(writer)]
Administrator = Annotated[str, Depends(administrator)]
