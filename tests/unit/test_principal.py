"""Principals from Envoy's verified payload header, their permission fingerprint, document access keys, row
masks, and the access a write gets."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from gateway.keys import caller_of, caller_refusal
from likeopt.runtime.config import Config
from likeopt.runtime.principal import (
    PRINCIPAL_HEADER,
    TOKEN_FAILURE_HEADER,
    WRITES_NEED,
    WRONG_KEY,
    BadPrincipal,
    Reader,
    forwarded,
    principal_in,
    scope_of,
    token_write_refusal,
)
from likeopt.v1 import retrieval_pb2
from retrieval_svc.access import Access, RowMask, reader_keys
from retrieval_svc.document_checks import document_access

JWT = {
    "LIKEOPT_AUTH": "jwt",
    "LIKEOPT_JWT_ISSUER": "https://idp.example",
    "LIKEOPT_JWT_AUDIENCE": "like-opt",
    "LIKEOPT_JWT_JWKS_URI": "https://idp.example/keys",
}


def header(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_the_principal_is_read_from_the_payload_with_the_configured_claims() -> None:
    config = Config.from_env({**JWT, "LIKEOPT_JWT_GROUPS_CLAIM": "https://x/groups", "LIKEOPT_JWT_TENANT_CLAIM": "org"})
    value = header({"sub": "alice", "org": "acme", "https://x/groups": ["eng", "ops", 7], "roles": "writer"})
    principal = principal_in([("other", "x"), (PRINCIPAL_HEADER, value)], config)
    assert principal is not None
    assert (principal.subject, principal.tenant, principal.groups) == ("alice", "acme", frozenset({"eng", "ops"}))
    assert principal.may_write("writer") and not principal.may_write("") and not principal.may_write("admin")
    assert forwarded(principal) == ((PRINCIPAL_HEADER, value),)
    assert principal.public() == {"subject": "alice", "tenant": "acme", "groups": ["eng", "ops"]}


def test_api_key_mode_and_calls_from_inside_the_mesh_have_no_principal() -> None:
    assert principal_in([(PRINCIPAL_HEADER, header({"sub": "a"}))], Config.from_env({})) is None
    assert principal_in([("authorization", "Bearer k")], Config.from_env(JWT)) is None
    assert forwarded(None) == () and scope_of(None) == ""


@pytest.mark.parametrize("value", ["%%%", header({"groups": ["g"]}), header(["sub"]), "e30", "x" * 300_000])
def test_a_header_that_is_not_a_payload_with_a_subject_is_refused(value: str) -> None:
    with pytest.raises(BadPrincipal):
        principal_in([(PRINCIPAL_HEADER, value)], Config.from_env(JWT))


@pytest.mark.parametrize(
    "tenant", [["acme", "globex"], [], 7, {"name": "acme"}, [["acme"]], True, "", " ", None, [""], [None]]
)
def test_a_tenant_claim_that_is_not_one_string_is_refused_not_read_as_no_tenant(tenant: object) -> None:
    """No tenant lets a writer write into every tenant: an unreadable claim must not fail open."""
    with pytest.raises(BadPrincipal, match="tenant"):
        principal_in([(PRINCIPAL_HEADER, header({"sub": "w", "tenant": tenant}))], Config.from_env(JWT))


@pytest.mark.parametrize(("claims", "read"), [({"tenant": ["acme"]}, "acme"), ({}, ""), ({"tenant": "acme"}, "acme")])
def test_a_tenant_claim_may_be_one_string_in_a_list_or_absent(claims: dict, read: str) -> None:
    principal = principal_in([(PRINCIPAL_HEADER, header({"sub": "w", **claims}))], Config.from_env(JWT))
    assert principal is not None and principal.tenant == read


def test_the_gateway_never_reads_an_unparseable_principal_as_nobody() -> None:
    """None is a call from inside the mesh, which reads everything: a bad header must not become it."""
    headers = {PRINCIPAL_HEADER: header({"groups": ["g"]})}  # no subject
    assert caller_refusal(Config.from_env(JWT), headers, write=False) is not None
    with pytest.raises(BadPrincipal):
        caller_of(Config.from_env(JWT), headers)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [("Bearer eyJx.y.z", "Jwt is expired"), ("bearer eyJx.y.z", "Jwt is expired"), ("", ""), ("Basic dTpw", "")],
)
def test_a_refused_write_names_why_envoy_refused_the_token_it_brought(authorization: str, reason: str) -> None:
    """Envoy notes "Jwt is missing" for a request without a bearer token: no reason to give, as none was refused."""
    headers = {TOKEN_FAILURE_HEADER: reason or "Jwt is missing", "authorization": authorization}
    assert caller_refusal(Config.from_env(JWT), headers, write=True) == (401, token_write_refusal(reason))
    assert token_write_refusal("") == WRITES_NEED and token_write_refusal(reason).endswith(reason)


NOT_A_JWT = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
"""Envoy's reason for a bearer value that has not two dots, as it words it."""


@pytest.mark.parametrize("key", ["wrong-key", "secret.key", "a.b.c.d"])
def test_a_write_with_a_bearer_value_that_is_no_token_is_told_its_api_key_is_wrong(key: str) -> None:
    """Typed into the Documents view, a wrong API key was refused in Envoy's words on a JWT's form."""
    headers = {TOKEN_FAILURE_HEADER: NOT_A_JWT, "authorization": f"Bearer {key}"}
    assert caller_refusal(Config.from_env(JWT), headers, write=True) == (401, WRONG_KEY)
    assert "API key is wrong" in WRONG_KEY and "Jwt" not in WRONG_KEY


def test_readers_are_equal_when_they_may_read_the_same_and_never_otherwise() -> None:
    a = Reader.of("acme", "alice", ["eng", "ops"])
    assert a == Reader.of("acme", "alice", ["ops", "eng", "eng"]) and hash(a) == hash(
        Reader.of("acme", "alice", ["ops", "eng"])
    )
    others = [
        Reader.of("acme", "alice", ["eng"]),
        Reader.of("globex", "alice", ["eng", "ops"]),
        Reader.of("acme", "bob", ["eng", "ops"]),
    ]
    assert all(a != o and a.fingerprint != o.fingerprint for o in others)
    assert a.fingerprint in repr(a) and "eng" not in repr(a)


def test_access_keys_open_a_document_exactly_for_its_readers() -> None:
    open_to_tenant = Access.of("acme", [], [])
    eng = Access.of("acme", ["carol"], ["eng"])
    everyone = Access()
    alice = set(reader_keys(Reader.of("acme", "alice", ["eng"])))
    carol = set(reader_keys(Reader.of("acme", "carol", [])))
    outsider = set(reader_keys(Reader.of("globex", "alice", ["eng"])))
    assert alice & set(open_to_tenant.keys()) and alice & set(eng.keys()) and alice & set(everyone.keys())
    assert carol & set(eng.keys()) and not carol - set(reader_keys(Reader.of("acme", "carol", [])))
    assert not outsider & set(open_to_tenant.keys()) and not outsider & set(eng.keys())
    assert outsider & set(everyone.keys())
    assert Access.from_keys(eng.keys()) == eng and Access.from_json(eng.to_json()) == eng
    assert Access().to_json() is None and Access.from_json(None) == Access()


def test_access_lists_that_cannot_be_stored_say_why() -> None:
    assert Access.of("acme", ["a"], ["b"]).problem() is None
    assert "empty" in (Access.of("acme", [""], []).problem() or "")
    assert "longer" in (Access.of("acme", ["x" * 300], []).problem() or "")
    # A writer who sent no access list learns that it is the tenant (their token's) that is too long.
    assert Access.of("t" * 300, [], []).problem() == "the tenant's name is 300 characters; the limit is 256"
    assert "more than" in (Access.of("acme", [str(n) for n in range(1001)], []).problem() or "")


def test_a_write_gets_the_writer_s_tenant_and_may_not_name_another() -> None:
    config = Config.from_env(JWT)
    writer = principal_in([(PRINCIPAL_HEADER, header({"sub": "w", "tenant": "acme"}))], config)
    bare = retrieval_pb2.Document(id="d", text="t")
    grouped = retrieval_pb2.Document(id="d", text="t", access=retrieval_pb2.Access(groups=["eng"]))
    foreign = retrieval_pb2.Document(id="d", text="t", access=retrieval_pb2.Access(tenant="globex"))
    assert document_access(bare, writer) == Access.of("acme", [], [])
    assert document_access(grouped, writer) == Access.of("acme", [], ["eng"])
    assert "may not write" in str(document_access(foreign, writer))
    assert document_access(foreign, None) == Access.of("globex", [], [])
    assert document_access(bare, None) == Access()


def test_a_row_mask_answers_membership_for_bm25_and_faiss_alike() -> None:
    mask = RowMask.of_rows([1, 9, 17], size=40)
    assert len(mask) == 3
    assert mask.contains(np.array([0, 1, 9, 17, 39, 400, -1])).tolist() == [
        False,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    both = mask & RowMask.of_rows([9, 30], size=64)
    assert both.contains(np.array([1, 9, 30])).tolist() == [False, True, False]
    selector = mask.selector()
    assert [selector.is_member(i) for i in (1, 2, 9, 17, 39)] == [True, False, True, True, False]
