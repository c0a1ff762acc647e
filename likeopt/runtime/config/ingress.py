"""Ingress settings: what Envoy's public port lets through, and its TLS."""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from likeopt.runtime.config.envoy_text import one_line, regex_both_read
from likeopt.runtime.config.fields import Flag, setting
from likeopt.runtime.config.processes import ENVOY, GATEWAY


class IngressSettings(BaseModel):
    """What Envoy's ingress lets through: rate, body size, browser origins, reads behind the key."""

    rate_limit_rps: int = setting(
        10000,
        "Requests per second each client address may make to `/api/`, `/v1/` and `/mcp` through Envoy, one budget"
        " for all three; more get 429.",
        (ENVOY,),
        ge=1,
    )
    max_request_bytes: int = setting(
        33554432,
        "Largest request body Envoy accepts on `/api/`, `/v1/` and `/mcp` (the gateway checks it too); a larger one"
        " gets 413.",
        (ENVOY, GATEWAY),
        ge=1,
    )
    cors_origins: str = setting(
        r"^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$",
        "Regular expression (RE2) of the browser origins Envoy's CORS policy allows; the gateway reads it with"
        " Python's `re`, so it must be valid in both (no lookaround or backreferences).",
        (ENVOY, GATEWAY),
    )
    reads_need_key: Flag = setting(
        False,
        "`1` makes searches, answers and status reads need the API key too (REST and gRPC through Envoy).",
        (ENVOY, GATEWAY),
    )

    @field_validator("cors_origins")
    @classmethod
    def _regex(cls, value: str) -> str:
        """Envoy's file holds it in single quotes, and Envoy (RE2) and the gateway (Python) both compile it, so
        a pattern either refuses would fail Envoy's start or the gateway's origin checks."""
        if not value:
            raise ValueError("must be a non-empty one-line regex without single quotes")
        return regex_both_read(one_line(value))


class TlsSettings(BaseModel):
    """HTTPS on Envoy's port."""

    tls_cert_file: str = setting(
        "", "PEM certificate chain; with the key below, Envoy's port speaks HTTPS only.", (ENVOY,)
    )
    tls_key_file: str = setting("", "PEM private key of that certificate.", (ENVOY,))
