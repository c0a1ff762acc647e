"""A test identity provider: its own RSA keys, a JWKS file, and tokens good or bad in every way that matters.

Nothing is fetched: the tests make the keys, write the JWKS Envoy reads (``LIKEOPT_JWT_JWKS_FILE``) and sign
tokens with PyJWT, including the forgeries (``alg: none``, another key, an unknown key id) a real provider
never issues.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.likeopt.test/realms/test"
AUDIENCE = "like-opt"
WRITER_ROLE = "likeopt-writer"


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityProvider:
    """Signs tokens with key ``test-key-1``, published in the JWKS; ``stranger`` signs with a key it is not."""

    def __init__(self, directory: Path) -> None:
        self.key = _rsa_key()
        self.stranger = _rsa_key()
        self.kid = "test-key-1"
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks_path = directory / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}))

    def settings(self, **overrides: str) -> dict[str, str]:
        """The LIKEOPT_* settings of a mesh that trusts this provider."""
        return {
            "LIKEOPT_AUTH": "jwt",
            "LIKEOPT_JWT_ISSUER": ISSUER,
            "LIKEOPT_JWT_AUDIENCE": AUDIENCE,
            "LIKEOPT_JWT_JWKS_FILE": str(self.jwks_path),
            "LIKEOPT_JWT_WRITER_ROLE": WRITER_ROLE,
            **overrides,
        }

    def claims(self, subject: str, tenant: str | None, groups: list[str], **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 3600}
        if tenant is not None:
            claims["tenant"] = tenant
        claims["groups"] = groups
        return {**claims, **extra}

    def token(self, subject: str, tenant: str | None = None, groups: list[str] | None = None, **extra: Any) -> str:
        """A good token (claims overridable through extra: exp, nbf, iss, aud, roles…)."""
        return self.sign(self.claims(subject, tenant, groups or [], **extra))

    def sign(self, claims: dict[str, Any], key: rsa.RSAPrivateKey | None = None, kid: str | None = None) -> str:
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def forgeries(self, subject: str, tenant: str, groups: list[str]) -> dict[str, str]:
        """Tokens Envoy must refuse, by what is wrong with them."""
        claims = self.claims(subject, tenant, groups)
        now = int(time.time())
        unsigned = ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
            for part in ({"alg": "none", "typ": "JWT", "kid": self.kid}, claims)
        )
        return {
            "expired": self.sign({**claims, "iat": now - 7200, "exp": now - 3600}),
            "not yet valid": self.sign({**claims, "nbf": now + 3600}),
            "wrong issuer": self.sign({**claims, "iss": "https://evil.example"}),
            "wrong audience": self.sign({**claims, "aud": "someone-else"}),
            "alg none": unsigned + ".",
            "bad signature": self.sign(claims, key=self.stranger),
            "unknown key id": self.sign(claims, key=self.stranger, kid="who-knows"),
            "not a token": "not-a-jwt",
            "never expires": self.sign({k: v for k, v in claims.items() if k != "exp"}),
        }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
