"""Search reply bodies rendered by orjson, in two parts, for the gateway's hot path.

Starlette renders with ``json.dumps``: 6-10 % of the gateway's samples (py-spy) during cached
searches, whose replies carry 10 hits with their text. orjson writes the same JSON (compact
separators, UTF-8 unescaped; identical bytes except the spelling of some exponents, 1e-7 for
1e-07) in 8 µs of CPU instead of 100 µs per SciFact search reply.

The body is a head (hits, index version, cached), which a repeated search reuses as it is
(gateway/near_search.py), and this request's ``took_ms`` appended to it. The hits, the bulk
of it, are rendered once even when a reply gets two heads (as sent, and as remembered).
"""

from __future__ import annotations

from typing import Any

import orjson


def hits_json(hits: list[dict[str, Any]]) -> bytes:
    """The hits as a JSON array, rendered once per computed reply; a non-finite score becomes null."""
    return orjson.dumps(hits, option=orjson.OPT_NON_STR_KEYS)


def search_head(hits: bytes, index_version: int, cached: bool) -> bytes:
    """The reply's JSON object without its closing brace, around hits already rendered (hits_json)."""
    flag = b"true" if cached else b"false"
    return b'{"hits":' + hits + b',"index_version":' + str(index_version).encode() + b',"cached":' + flag


def search_body(head: bytes, took_ms: float) -> bytes:
    """The whole JSON body: a head and this request's time."""
    return head + b',"took_ms":' + orjson.dumps(round(took_ms, 3)) + b"}"
