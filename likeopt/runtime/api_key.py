"""The API key as a bearer token: one reading of the Authorization header for every process that checks it."""

from __future__ import annotations

import hmac
import re

BLANKS = " \t"
"""What may stand between the scheme and the token, and after the token (HTTP's blanks)."""
BEARER_SCHEME = f"(?i:bearer)[{BLANKS}]+"
"""The scheme and the blanks after it: any case (RFC 7235), one or more spaces or tabs. Python's ``re`` and Envoy's
RE2 read it alike, so the gateway, generation_svc and Envoy take the same headers."""
KEY_REFUSED = "missing or wrong API key"
"""Why a request that needs the key is refused when it does not hold it: the gateway's words for REST and Envoy's for
gRPC, so a client reads one reason whichever way it came."""


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case), or None for any other."""
    scheme = re.match(BEARER_SCHEME, authorization)
    return authorization[scheme.end() :].rstrip(BLANKS) if scheme else None


def holds_key(authorization: str, api_key: str) -> bool:
    """Whether the header carries api_key as its bearer token, compared in constant time, so the key's length and
    prefix cannot be probed by timing. No key configured matches nothing."""
    token = bearer_token(authorization)
    return bool(api_key) and token is not None and hmac.compare_digest(token.encode(), api_key.encode())


def key_pattern(api_key: str) -> str:
    """The headers holds_key accepts, as one pattern for Envoy's RE2, which matches it whole (anchored: linear in the
    header). The key is escaped, so one with regex metacharacters matches only itself: ``re.escape`` puts a backslash
    before ASCII punctuation and blanks alone, which RE2 reads as that character too."""
    return f"{BEARER_SCHEME}{re.escape(api_key)}[{BLANKS}]*"
