"""Identity settings: the API key, or JWTs and the claims that say who a caller is."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, field_validator
from pydantic_settings import NoDecode

from likeopt.runtime.config.envoy_text import one_line
from likeopt.runtime.config.fields import Secret, setting, stripped
from likeopt.runtime.config.processes import ENVOY, GATEWAY, GENERATION, PRINCIPAL_READERS, RETRIEVAL


class IdentitySettings(BaseModel):
    """Who a caller is: the API key, or JWTs Envoy verifies and the claims the services read."""

    api_key: Secret = setting(
        "",
        "Bearer key for writes and administration; `likeopt up` generates one when empty or blank.",
        (GATEWAY, GENERATION, ENVOY),
    )
    auth: Literal["apikey", "jwt"] = setting(
        "apikey",
        "`apikey`: one user (reads open or behind the key, writes behind the key); `jwt`: Envoy verifies a bearer"
        " JWT on every API route and gRPC method, and each caller sees only the documents its token may read.",
        PRINCIPAL_READERS,
    )
    jwt_issuer: str = setting(
        "", "With `jwt`: the `iss` every token must carry (the identity provider's issuer).", (ENVOY,)
    )
    jwt_audiences: Annotated[tuple[str, ...], NoDecode] = setting(
        (),
        "With `jwt`: an `aud` every token must carry (comma-separated: any of them).",
        (ENVOY,),
        validation_alias="LIKEOPT_JWT_AUDIENCE",
    )
    jwt_jwks_file: str = setting(
        "", "With `jwt`: a file holding the identity provider's public keys (JWKS); or give the URI below.", (ENVOY,)
    )
    jwt_jwks_uri: str = setting(
        "",
        "With `jwt`: where Envoy fetches the public keys (JWKS, `http://` or `https://`, refreshed every 10 min;"
        " over `https://` the provider's certificate must check out against the system CA bundle, or the one"
        " `SSL_CERT_FILE` names).",
        (ENVOY,),
    )
    jwt_groups_claim: str = setting(
        "groups", "The claim holding a token's groups (a list of strings).", PRINCIPAL_READERS
    )
    jwt_tenant_claim: str = setting(
        "tenant", "The claim holding a token's tenant (a string); none: no tenant.", (RETRIEVAL, GENERATION, GATEWAY)
    )
    jwt_writer_role: str = setting(
        "",
        "A value in a token's `roles` claim or its groups that lets it write documents; empty: only the API key"
        " writes.",
        (ENVOY, GATEWAY),
    )

    @field_validator("auth", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        """``JWT`` and ``jwt`` mean the same mode."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("jwt_audiences", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Several audiences in one variable; Envoy accepts a token carrying any of them."""
        if not isinstance(value, str):
            return value
        one_line(value)
        return tuple(part.strip() for part in value.split(",") if part.strip())

    @field_validator("jwt_issuer", "jwt_jwks_file", "jwt_jwks_uri", "jwt_writer_role", mode="before")
    @classmethod
    def _strip_one_line(cls, value: Any) -> Any:
        """Envoy's file holds these in single quotes, and a blank around an issuer would never match a token."""
        return one_line(value.strip()) if isinstance(value, str) else value

    @field_validator("jwt_groups_claim", "jwt_tenant_claim", mode="before")
    @classmethod
    def _claim(cls, value: Any) -> Any:
        """An empty claim name would read nothing from every token, silently."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a claim")
        return stripped(value)

    @property
    def jwt(self) -> bool:
        """Whether callers are people with tokens (LIKEOPT_AUTH=jwt) rather than holders of one key."""
        return self.auth == "jwt"
