"""The caller checks every HTTP surface of the gateway shares (REST, the OpenAI-compatible API, MCP).

One function decides, each surface words the refusal in its own error shape, so the rule cannot drift between
them. API-key mode: writes always need the key; reads only with LIKEOPT_READS_NEED_KEY; no key configured
refuses what needs one. JWT mode (LIKEOPT_AUTH=jwt): see caller_refusal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from likeopt.runtime.api_key import KEY_REFUSED, bearer_token, holds_key
from likeopt.runtime.config import Config
from likeopt.runtime.principal import (
    LACKS_WRITER_ROLE,
    NOT_A_TOKEN,
    TOKEN_FAILURE_HEADER,
    WRONG_KEY,
    BadPrincipal,
    Principal,
    principal_in,
    token_write_refusal,
)


def key_refusal(config: Config, authorization: str, write: bool) -> str | None:
    """Why a request with this Authorization header may not go on, or None when it may."""
    if not write and not config.reads_need_key:
        return None
    if not config.api_key:
        return "disabled: no LIKEOPT_API_KEY is configured"
    if not holds_key(authorization, config.api_key.get_secret_value()):
        return KEY_REFUSED
    return None


def caller_refusal(config: Config, headers: Mapping[str, str], write: bool) -> tuple[int, str] | None:
    """Why a request may not go on, as (HTTP status, reason), or None when it may.

    API-key mode: the key rule above (401). With LIKEOPT_AUTH=jwt Envoy has verified the token and set the
    principal header; reads need a principal, writes a principal with the writer role (403 without it) or the
    API key (401 with neither). A principal header that does not parse is refused, never read as "nobody".
    """
    if not config.jwt:
        refusal = key_refusal(config, headers.get("authorization", ""), write)
        return None if refusal is None else (401, refusal)
    try:
        principal = principal_in(headers.items(), config)
    except BadPrincipal as exc:
        return 401, str(exc)
    if not write:
        return None if principal is not None else (401, "a bearer token is needed (LIKEOPT_AUTH=jwt)")
    if key_refusal(config, headers.get("authorization", ""), write=True) is None:
        return None
    if principal is None:
        return 401, write_refusal(headers)
    if principal.may_write(config.jwt_writer_role):
        return None
    return 403, LACKS_WRITER_ROLE


def write_refusal(headers: Mapping[str, str]) -> str:
    """Why a write that brought neither a writer's token nor the API key is refused: a bearer value that is no
    token was meant as the key, so it is called a wrong key; otherwise why Envoy refused the token it brought."""
    if re.fullmatch(NOT_A_TOKEN, headers.get("authorization", "")):
        return WRONG_KEY
    return token_write_refusal(token_failure(headers))


def token_failure(headers: Mapping[str, str]) -> str:
    """Why Envoy refused the request's bearer token; "" when it brought none (Envoy then notes "Jwt is missing",
    which is no reason to give someone who sent no token)."""
    return headers.get(TOKEN_FAILURE_HEADER, "") if bearer_token(headers.get("authorization", "")) else ""


def caller_of(config: Config, headers: Mapping[str, str]) -> Principal | None:
    """The request's principal once caller_refusal let it through (None in API-key mode). A header that does not
    parse raises BadPrincipal: None would pass the call on as one from inside the mesh, which reads everything."""
    return principal_in(headers.items(), config)
