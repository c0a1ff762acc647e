"""Who is asking: the principal of a request, as Envoy verified it, and the fingerprint of what it may read.

With ``LIKEOPT_AUTH=jwt`` Envoy's jwt_authn filter checks the bearer token (signature, issuer, audience, times)
and forwards the verified payload, base64url-encoded JSON, in the ``x-likeopt-principal`` header. Envoy refuses
any request that brings that header itself, so behind Envoy only Envoy sets it; every hop after it (gateway,
generation_svc, retrieval_svc) passes the same value on as gRPC metadata. A direct gRPC client through Envoy
therefore reaches the services with exactly the principal a browser going through the gateway would have.

No header means a call from inside the mesh (generation_svc's relevance probes, ``likeopt ingest`` on the
service port): it is not restricted. That is why only Envoy, never a client, may reach the services' ports.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from likeopt.runtime.api_key import BEARER_SCHEME
from likeopt.runtime.config import Config

PRINCIPAL_HEADER = "x-likeopt-principal"
"""The header (HTTP) and metadata key (gRPC) carrying the verified token payload: Envoy puts it there and refuses
a client that sends it."""
TOKEN_FAILURE_HEADER = "x-likeopt-token-failure"
"""Why Envoy refused the request's bearer token where a token is optional (writes, which the API key may authorise
instead): Envoy sets it and drops any copy a client sent. It only words a refusal; it never authorises."""
WRITES_NEED = "writes need a token with the writer role or the API key"
LACKS_WRITER_ROLE = "this token may not write: it lacks the writer role (LIKEOPT_JWT_WRITER_ROLE)"
"""The refusal (403) of a write by a verified token without the role, by the gateway (REST) and Envoy (gRPC) alike."""
NOT_A_TOKEN = BEARER_SCHEME + r"([^.]+|[^.]*\.[^.]*|([^.]*\.){3}.*)"
"""An Authorization header whose bearer value is no JWT (three parts joined by two dots), matched whole (by Python's
fullmatch and Envoy's RE2 alike): a mistyped API key, as a token is pasted, not typed."""
WRONG_KEY = f"{WRITES_NEED}; the API key is wrong"
"""The refusal of a write that brought such a value: Envoy's reason ("Jwt is not in the form of
Header.Payload.Signature…") speaks of a token to someone who typed a key."""
ROLES_CLAIM = "roles"
"""Where a writer role is looked for, besides the groups claim (Keycloak maps realm roles to it)."""
MAX_HEADER_CHARS = 256 * 1024


class BadPrincipal(ValueError):
    """A principal header that does not hold a token payload: refused, never read as "no principal"."""


@dataclass(frozen=True, eq=False, repr=False)
class Reader:
    """What decides which documents a caller may read: its tenant, its subject and its groups.

    Equal readers see the same documents, so results may be shared between them and no one else: the
    fingerprint, a digest of the three, is what every cache key and single-flight key includes. Equality, hash
    and repr are the fingerprint's (cache keys JSON-encode their parts through ``str``).
    """

    tenant: str
    subject: str
    groups: frozenset[str]
    fingerprint: str

    @classmethod
    def of(cls, tenant: str, subject: str, groups: Iterable[str]) -> Reader:
        group_set = frozenset(groups)
        encoded = json.dumps([tenant, subject, sorted(group_set)], ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.blake2b(encoded.encode("utf-8"), digest_size=16).hexdigest()
        return cls(tenant, subject, group_set, digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reader) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Reader({self.fingerprint})"


@dataclass(frozen=True)
class Principal:
    """The caller a verified token names: subject, tenant, groups and roles, and the header to pass on."""

    subject: str
    tenant: str
    groups: frozenset[str]
    roles: frozenset[str]
    header: str
    """The header's value as Envoy set it, passed on unchanged to the next hop."""
    reader: Reader

    @property
    def owner(self) -> str:
        """Whose conversations these are: tenant and subject (groups change; the person does not)."""
        return hashlib.blake2b(json.dumps([self.tenant, self.subject]).encode(), digest_size=16).hexdigest()

    def may_write(self, writer_role: str) -> bool:
        """Whether the token carries LIKEOPT_JWT_WRITER_ROLE in its roles or its groups."""
        return bool(writer_role) and (writer_role in self.roles or writer_role in self.groups)

    def public(self) -> dict[str, Any]:
        """What the UI shows of who is signed in."""
        return {"subject": self.subject, "tenant": self.tenant, "groups": sorted(self.groups)}


def _strings(value: object) -> frozenset[str]:
    """A claim as a set of strings: a list of strings, or one string; anything else counts as none."""
    if isinstance(value, str):
        return frozenset((value,)) if value else frozenset()
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str) and v)
    return frozenset()


def tenant_in(payload: dict[str, Any], tenant_claim: str) -> str:
    """The tenant a token names ("" when it has no such claim). A list of one (a multivalued attribute mapper's
    output) names it too. Anything else is refused, an empty or null value included (an identity provider's
    blank attribute): a writer without a tenant may write into every tenant, so only an absent claim means none.
    """
    if tenant_claim not in payload:
        return ""
    claim = payload[tenant_claim]
    if isinstance(claim, list) and len(claim) == 1:
        claim = claim[0]
    if isinstance(claim, str) and claim.strip():
        return claim
    raise BadPrincipal(f"the token's tenant claim ({tenant_claim}) is not one non-empty string")


@functools.lru_cache(maxsize=4096)
def parse_principal(header: str, groups_claim: str, tenant_claim: str) -> Principal:
    """The principal in a header value (Envoy's base64url payload); remembered, as a caller sends the same
    token many times and a payload with 100 groups costs tens of microseconds to decode."""
    if len(header) > MAX_HEADER_CHARS:
        raise BadPrincipal("the principal header is too long")
    try:
        payload = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadPrincipal(f"the principal header is not a token payload: {exc}") from None
    if not isinstance(payload, dict):
        raise BadPrincipal("the principal header is not a JSON object")
    subject = payload.get("sub")
    if not isinstance(subject, str) or not subject:
        raise BadPrincipal("the token has no subject (sub)")
    tenant = tenant_in(payload, tenant_claim)
    groups = _strings(payload.get(groups_claim))
    reader = Reader.of(tenant, subject, groups)
    return Principal(subject, tenant, groups, _strings(payload.get(ROLES_CLAIM)), header, reader)


def principal_in(metadata: Iterable[tuple[str, Any]] | None, config: Config) -> Principal | None:
    """The principal of a gRPC call (its metadata) or an HTTP request (its headers, lower-cased names).

    None in API-key mode (no principals) and for calls from inside the mesh; BadPrincipal for a header that
    does not parse.
    """
    if not config.jwt:
        return None
    for key, value in metadata or ():
        if key == PRINCIPAL_HEADER:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            return parse_principal(text, config.jwt_groups_claim, config.jwt_tenant_claim)
    return None


def tenant_reader_header(tenant: str, tenant_claim: str, subject: str) -> str:
    """The principal header of a reader of one tenant's open documents (those of no tenant when tenant is ''), no
    user's or group's: how a call from inside the mesh reads no further than that tenant would."""
    payload = {"sub": subject, tenant_claim: tenant} if tenant else {"sub": subject}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode("ascii")


def forwarded(principal: Principal | None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata passing the principal on to the next hop (none for an unrestricted call)."""
    return ((PRINCIPAL_HEADER, principal.header),) if principal is not None else ()


def reader_of(principal: Principal | None) -> Reader | None:
    return principal.reader if principal is not None else None


def scope_of(principal: Principal | None) -> str:
    """The permission scope's fingerprint for cache keys: empty for an unrestricted caller."""
    return principal.reader.fingerprint if principal is not None else ""


def token_write_refusal(token_failure: str) -> str:
    """The refusal of a write that holds neither a writer's token nor the API key, naming why its bearer token was
    refused when it brought one: "writes need …" alone would leave an expired writer's token a mystery."""
    return f"{WRITES_NEED}; the bearer token was refused: {token_failure}" if token_failure else WRITES_NEED
