"""The API key check every HTTP surface of the gateway shares (REST, the OpenAI-compatible API, MCP).

One function decides, each surface words the refusal in its own error shape, so the rule (writes always
need the key; reads only with LIKEOPT_READS_NEED_KEY; no key configured refuses what needs one) cannot
drift between them.
"""

from __future__ import annotations

import hmac

from likeopt.config import Config


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None for any other scheme."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def key_refusal(config: Config, authorization: str, write: bool) -> str | None:
    """Why a request with this Authorization header may not go on, or None when it may.

    The key is compared in constant time, so its length and prefix cannot be probed by timing.
    """
    if not write and not config.reads_need_key:
        return None
    if not config.api_key:
        return "disabled: no LIKEOPT_API_KEY is configured"
    token = bearer_token(authorization)
    if token is None or not hmac.compare_digest(token.encode(), config.api_key.encode()):
        return "missing or wrong API key"
    return None
