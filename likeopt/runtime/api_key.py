"""The API key as a bearer token: one reading of the Authorization header for every process that checks it."""

from __future__ import annotations

import hmac


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case), or None for any other."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def holds_key(authorization: str, api_key: str) -> bool:
    """Whether the header carries api_key as its bearer token, compared in constant time, so the key's length and
    prefix cannot be probed by timing. No key configured matches nothing."""
    token = bearer_token(authorization)
    return bool(api_key) and token is not None and hmac.compare_digest(token.encode(), api_key.encode())
