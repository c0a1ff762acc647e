"""Many users, one deployment: identity at Envoy, permission-aware retrieval, and a hunt for leaks.

A real mesh with LIKEOPT_AUTH=jwt, Envoy verifying tokens against a JWKS file this test made. Two tenants,
users in overlapping groups, documents each with a marker word of its own (in its id, title and text). For
every read path (REST search, chat over SSE, conversations, index status, dashboard, gRPC Search, Answer and
the listing calls through Envoy, gRPC-web, the OpenAI-compatible API, MCP) Bob never receives a marker, id,
title or count of a document he may not read: also right after Alice asked the same question (every cache
warm), and after a document's access changes in either direction. Every token failure is a 401 with a JSON
error (a write without the role a 403), and no token reaches a log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from likeopt.ops.envoy.protocol_errors import TOKEN_GROUPS_FITTING
from likeopt.runtime.principal import (
    LACKS_WRITER_ROLE,
    PRINCIPAL_HEADER,
    TOKEN_FAILURE_HEADER,
    WRITES_NEED,
    WRONG_KEY,
    token_write_refusal,
)
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc
from tests.identity import WRITER_ROLE, IdentityProvider, bearer
from tests.integration.test_mesh import grpc_web_frames, grpc_web_refusal, grpc_web_search, parse_sse
from tests.support import ROOT, MeshProcess, ValkeyServer, mesh_environment
from tests.unit.test_mcp_server import refusal_of

TOPIC = "quarterly ledger rollout"
QUESTION = "What does the quarterly ledger rollout plan say?"


@dataclass(frozen=True)
class Doc:
    id: str
    marker: str
    access: dict | None

    def body(self) -> dict:
        text = (
            f"The {TOPIC} for this team is recorded under the codeword {self.marker}. "
            f"Every {TOPIC} review mentions {self.marker} twice: {self.marker}."
        )
        doc = {"id": self.id, "title": f"{self.marker.title()} {TOPIC}", "text": text}
        return {**doc, "access": self.access} if self.access is not None else doc

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never reach someone who may not read it: marker, id and title (lower-cased)."""
        return (self.marker, self.id, f"{self.marker} {TOPIC}")


DOCS = [
    Doc("acme-eng-plan", "zirconia", {"tenant": "acme", "groups": ["eng"]}),
    Doc("acme-alice-notes", "obsidian", {"tenant": "acme", "users": ["alice"]}),
    Doc("acme-handbook", "heliotrope", {"tenant": "acme"}),
    Doc("globex-eng-plan", "tourmaline", {"tenant": "globex", "groups": ["eng"]}),
    Doc("globex-handbook", "vermilion", {"tenant": "globex"}),
    Doc("public-faq", "marigold", None),
]
BOB_GROUPS = ["sales", "staff", *(f"team-{n:02d}" for n in range(98))]  # 100 groups, none of them "eng"
SEES = {
    "alice": {"acme-eng-plan", "acme-alice-notes", "acme-handbook", "public-faq"},
    "bob": {"acme-handbook", "public-faq"},
    "carol": {"globex-eng-plan", "globex-handbook", "public-faq"},
}


@dataclass
class Person:
    name: str
    token: str
    mesh: MeshProcess

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def hidden(self) -> list[Doc]:
        return [d for d in DOCS if d.id not in SEES[self.name]]

    def assert_sees_nothing_hidden(self, text: str, where: str) -> None:
        lowered = text.lower()
        for doc in self.hidden():
            for secret in doc.secrets:
                assert secret.lower() not in lowered, f"{self.name} got {secret!r} of {doc.id} through {where}"

    def rest(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, f"{self.mesh.base_url}{path}", headers=self.headers, timeout=60, **kwargs)

    def chat(self, question: str, conversation_id: str = "") -> tuple[str, str]:
        body = {"query": question, **({"conversation_id": conversation_id} if conversation_id else {})}
        reply = self.rest("POST", "/api/v1/chat", json=body)
        assert reply.status_code == 200, reply.text
        done = [data for kind, data in parse_sse(reply.text) if kind == "done"]
        assert done, reply.text
        return reply.text, done[0]["conversation_id"]

    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]


@pytest.fixture(scope="module")
def jwt_mesh(
    tmp_path_factory: pytest.TempPathFactory, valkey: ValkeyServer, idp: IdentityProvider
) -> Iterator[MeshProcess]:
    """The mesh with tokens required; the relevance floor off (answers always quote their passages, which is
    what could leak) and the semantic cache on (a paraphrase must not be answered from another's answer)."""
    settings = idp.settings(
        LIKEOPT_REDIS_URL=valkey.url, LIKEOPT_RELEVANCE_FLOOR="0", LIKEOPT_SEMANTIC_CACHE_THRESHOLD="0.75"
    )
    mesh = MeshProcess(env=mesh_environment(tmp_path_factory.mktemp("jwt-mesh"), **settings), args=[])
    with mesh.running():
        key = bearer(mesh.api_key)
        reply = httpx.post(
            f"{mesh.base_url}/api/v1/documents", json={"documents": [d.body() for d in DOCS]}, headers=key
        )
        assert reply.status_code == 200 and reply.json()["upserted"] == len(DOCS), reply.text
        yield mesh


@pytest.fixture(scope="module")
def people(jwt_mesh: MeshProcess, idp: IdentityProvider) -> dict[str, Person]:
    tokens = {
        "alice": idp.token("alice", "acme", ["eng", "staff"]),
        "bob": idp.token("bob", "acme", BOB_GROUPS),
        "carol": idp.token("carol", "globex", ["eng"]),
        "writer": idp.token("wendy", "acme", ["staff"], roles=[WRITER_ROLE]),
    }
    return {name: Person(name, token, jwt_mesh) for name, token in tokens.items()}


def search_ids(person: Person, query: str = QUESTION) -> set[str]:
    reply = person.rest("POST", "/api/v1/search", json={"query": query, "top_k": 20})
    assert reply.status_code == 200, reply.text
    person.assert_sees_nothing_hidden(reply.text, "REST search")
    return {hit["doc_id"] for hit in reply.json()["hits"]}


# --- tokens ---------------------------------------------------------------------------------------------------


def assert_json_401(reply: httpx.Response, what: str) -> None:
    assert reply.status_code == 401, f"{what}: {reply.status_code} {reply.text}"
    assert reply.headers["content-type"].startswith("application/json"), what
    assert reply.json()["error"]["message"], what


def test_every_bad_token_is_refused_with_a_json_401(jwt_mesh: MeshProcess, idp: IdentityProvider) -> None:
    url = f"{jwt_mesh.base_url}/api/v1/search"
    for what, token in idp.forgeries("bob", "acme", BOB_GROUPS).items():
        reply = httpx.post(url, json={"query": QUESTION}, headers=bearer(token), timeout=30)
        assert_json_401(reply, what)
        if what == "never expires":  # as README says: Envoy words it as it does a bad signature
            assert reply.json()["error"]["message"] == "Jwt verification fails"
    assert_json_401(httpx.post(url, json={"query": QUESTION}, timeout=30), "missing token")
    assert_json_401(httpx.get(f"{jwt_mesh.base_url}/api/v1/index", headers=bearer(jwt_mesh.api_key)), "API key read")
    for path in ("/", "/healthz", "/api/v1/readyz", "/static/app.js", "/static/config.js"):
        assert httpx.get(f"{jwt_mesh.base_url}{path}", timeout=30).status_code == 200, path
    assert "LIKEOPT_AUTH" in httpx.get(f"{jwt_mesh.base_url}/static/config.js").text


def guid_groups(count: int) -> list[str]:
    """Groups as Entra ID names them in a token: GUIDs, 36 characters each."""
    return [str(uuid.UUID(int=n + 1)) for n in range(count)]


async def mcp_search_ids(mesh: MeshProcess, kind: str, token: str) -> set[str]:
    from tests.integration.test_mcp import session

    async with session(mesh, kind, key=token) as client:
        found = await client.call_tool("search", {"query": QUESTION, "top_k": 20})
    return {passage["doc_id"] for passage in found.structured_content["passages"]}


async def test_a_token_of_a_thousand_guid_groups_reads_on_every_surface(
    jwt_mesh: MeshProcess, idp: IdentityProvider
) -> None:
    """The bound README states: its payload (53 KB) travels on to every service as metadata, past gRPC's defaults."""
    token = idp.token("bob", "acme", [*BOB_GROUPS, *guid_groups(TOKEN_GROUPS_FITTING - len(BOB_GROUPS))])
    bob = Person("bob", token, jwt_mesh)
    assert search_ids(bob) == SEES["bob"]
    bob.chat(QUESTION)
    chat = {"model": "like-opt", "messages": [{"role": "user", "content": QUESTION}]}
    assert bob.rest("POST", "/v1/chat/completions", json=chat).status_code == 200
    assert bob.rest("GET", "/api/v1/whoami").json()["principal"]["subject"] == "bob"
    for kind in ("http", "stdio"):
        assert await mcp_search_ids(jwt_mesh, kind, token) == SEES["bob"], kind
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        request = retrieval_pb2.SearchRequest(query=QUESTION, top_k=20)
        hits = retrieval_pb2_grpc.RetrievalServiceStub(channel).Search(request, metadata=bob.metadata()).hits
        answer = generation_pb2_grpc.GenerationServiceStub(channel).Answer(
            generation_pb2.AnswerRequest(query=QUESTION), metadata=bob.metadata()
        )
        assert list(answer)[-1].WhichOneof("event") == "done"
    assert {hit.doc_id for hit in hits} == SEES["bob"]
    web = grpc_web_search(jwt_mesh.base_url, request.SerializeToString(), bob.headers)
    assert web.status_code == 200 and "grpc-status:0" in web.text.replace(" ", "")


def test_a_token_past_the_headers_limit_is_a_431_naming_the_token(jwt_mesh: MeshProcess, idp: IdentityProvider) -> None:
    """Too large for Envoy to read, on every HTTP surface the refusal says why, a bearer token's groups included;
    a gRPC call over HTTP/2 is reset by Envoy's codec (HTTP/2 has no reply for it), never answered half-read."""
    token = idp.token("bob", "acme", guid_groups(TOKEN_GROUPS_FITTING + 200))
    bob = Person("bob", token, jwt_mesh)
    chat = {"model": "like-opt", "messages": [{"role": "user", "content": QUESTION}]}
    for method, path, body in (
        ("POST", "/api/v1/search", {"query": QUESTION}),
        ("POST", "/api/v1/chat", {"query": QUESTION}),
        ("POST", "/v1/chat/completions", chat),
        ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    ):
        reply = bob.rest(method, path, json=body)
        assert reply.status_code == 431, (path, reply.text)
        assert "bearer token" in reply.json()["error"]["message"] and "groups" in reply.json()["error"]["message"]
    request = retrieval_pb2.SearchRequest(query=QUESTION, top_k=20)
    assert grpc_web_search(jwt_mesh.base_url, request.SerializeToString(), bob.headers).status_code == 431
    with grpc.insecure_channel(jwt_mesh.address) as channel, pytest.raises(grpc.RpcError) as refused:
        retrieval_pb2_grpc.RetrievalServiceStub(channel).Search(request, metadata=bob.metadata(), timeout=30)
    assert refused.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_read_in_any_case(jwt_mesh: MeshProcess, people: dict[str, Person], scheme: str) -> None:
    """RFC 7235: the scheme ignores case. A token under any spelling of it reads and writes as under "Bearer"."""
    bob, writer = people["bob"], people["writer"]
    found = httpx.post(
        f"{jwt_mesh.base_url}/api/v1/search",
        json={"query": QUESTION, "top_k": 20},
        headers={"authorization": f"{scheme} {bob.token}"},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    assert {hit["doc_id"] for hit in found.json()["hits"]} == SEES["bob"]
    doc = {"documents": [{"id": f"case-{scheme}", "text": f"A {TOPIC} note written under {scheme}."}]}
    url, as_writer = f"{jwt_mesh.base_url}/api/v1/documents", {"authorization": f"{scheme} {writer.token}"}
    written = httpx.post(url, json=doc, headers=as_writer, timeout=60)
    assert written.status_code == 200 and written.json()["upserted"] == 1, written.text
    assert httpx.delete(f"{url}/case-{scheme}", headers=as_writer, timeout=60).status_code == 200
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        search = retrieval_pb2_grpc.RetrievalServiceStub(channel).Search
        hits = search(
            retrieval_pb2.SearchRequest(query=QUESTION, top_k=20),
            metadata=[("authorization", f"{scheme} {bob.token}")],
            timeout=30,
        ).hits
    assert {hit.doc_id for hit in hits} == SEES["bob"]


def test_a_client_supplied_principal_header_is_refused_on_rest_and_grpc(
    jwt_mesh: MeshProcess, people: dict[str, Person], idp: IdentityProvider
) -> None:
    forged = idp.claims("bob", "acme", ["eng"])  # what Bob would like to be
    import base64

    spoof = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    bob = people["bob"]
    for headers in ({PRINCIPAL_HEADER: spoof}, {**bob.headers, PRINCIPAL_HEADER: spoof}):
        reply = httpx.post(f"{jwt_mesh.base_url}/api/v1/search", json={"query": QUESTION}, headers=headers, timeout=30)
        assert_json_401(reply, "spoofed principal")
    assert reply.json()["error"]["message"] == f"a client may not send {PRINCIPAL_HEADER}"  # once, not as JSON in JSON
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for metadata in ([(PRINCIPAL_HEADER, spoof)], [*bob.metadata(), (PRINCIPAL_HEADER, spoof)]):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Search(retrieval_pb2.SearchRequest(query=QUESTION), metadata=metadata, timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_every_bad_token_is_refused_over_grpc(jwt_mesh: MeshProcess, idp: IdentityProvider) -> None:
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        search = retrieval_pb2_grpc.RetrievalServiceStub(channel).Search
        answer = generation_pb2_grpc.GenerationServiceStub(channel).Answer
        for what, token in {**idp.forgeries("bob", "acme", []), "missing": ""}.items():
            metadata = [("authorization", f"Bearer {token}")] if token else []
            with pytest.raises(grpc.RpcError) as refused:
                search(retrieval_pb2.SearchRequest(query=QUESTION), metadata=metadata, timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
            assert not refused.value.details().startswith("{"), f"{what}: the reason, not JSON in grpc-message"
            with pytest.raises(grpc.RpcError) as refused:
                list(answer(generation_pb2.AnswerRequest(query=QUESTION), metadata=metadata, timeout=30))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, what


def test_token_refusals_on_the_openai_routes_are_in_openai_s_shape(
    jwt_mesh: MeshProcess, idp: IdentityProvider
) -> None:
    for what, token in {**idp.forgeries("bob", "acme", []), "missing": ""}.items():
        client = openai.OpenAI(base_url=f"{jwt_mesh.base_url}/v1", api_key=token or "not-a-token", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            client.models.list()
        assert (refused.value.type, refused.value.code) == ("invalid_request_error", "invalid_api_key"), what
        assert refused.value.message, what


def test_writes_need_the_writer_role_or_the_api_key(jwt_mesh: MeshProcess, people: dict[str, Person]) -> None:
    doc = {"documents": [{"id": "wendy-note", "title": "Note", "text": f"A {TOPIC} note about garnetwood."}]}
    refused = people["bob"].rest("POST", "/api/v1/documents", json=doc)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "PERMISSION_DENIED"
    assert_json_401(httpx.post(f"{jwt_mesh.base_url}/api/v1/documents", json=doc, timeout=30), "anonymous write")
    assert people["writer"].rest("POST", "/api/v1/documents", json=doc).status_code == 200
    assert people["bob"].rest("DELETE", "/api/v1/documents/wendy-note").status_code == 403
    assert "wendy-note" in search_ids(people["bob"], "garnetwood note")  # no access given: the writer's tenant
    assert "wendy-note" not in search_ids(people["carol"], "garnetwood note")
    foreign = {"documents": [{**doc["documents"][0], "access": {"tenant": "globex"}}]}
    skipped = people["writer"].rest("POST", "/api/v1/documents", json=foreign).json()["skipped"]
    assert skipped and "may not write" in skipped[0]["reason"]
    assert people["writer"].rest("DELETE", "/api/v1/documents/wendy-note").status_code == 200
    hijack = {"documents": [{"id": "globex-handbook", "text": f"The {TOPIC} now says garnetwood."}]}
    skipped = people["writer"].rest("POST", "/api/v1/documents", json=hijack).json()["skipped"]
    assert skipped and "another tenant" in skipped[0]["reason"]  # acme's writer cannot replace globex's document
    assert people["writer"].rest("DELETE", "/api/v1/documents/globex-handbook").status_code == 404  # nor delete it
    assert "globex-handbook" in search_ids(people["carol"])
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        upsert = retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments
        grpc_doc = retrieval_pb2.Document(id="wendy-grpc", title="G", text=f"A {TOPIC} note about garnetwood.")
        with pytest.raises(grpc.RpcError) as denied:
            upsert(iter([grpc_doc]), metadata=people["bob"].metadata(), timeout=60)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert denied.value.details() == LACKS_WRITER_ROLE  # as the gateway words it, not "RBAC: access denied"
        assert upsert(iter([grpc_doc]), metadata=people["writer"].metadata(), timeout=60).upserted == 1
        key = [("authorization", f"bearer {jwt_mesh.api_key}")]  # the scheme in any case, as over REST
        deleted = retrieval_pb2_grpc.RetrievalServiceStub(channel).DeleteDocuments(
            retrieval_pb2.DeleteDocumentsRequest(ids=["wendy-grpc"]), metadata=key, timeout=60
        )
        assert deleted.deleted == 1


def test_a_write_with_a_refused_token_or_a_wrong_key_is_401_naming_why_over_rest_and_grpc(
    jwt_mesh: MeshProcess, idp: IdentityProvider
) -> None:
    """A write may bring the API key instead of a token, so a bad token does not end it at Envoy; its refusal
    still names why the token was refused, in the words a read with that token gets, but for a bearer value that
    is no token: a mistyped key, said to be a wrong key."""
    doc = {"documents": [{"id": "forged-note", "text": f"A {TOPIC} note."}]}
    refused = {**idp.forgeries("writer", "acme", [WRITER_ROLE]), "wrong key": f"{jwt_mesh.api_key}x"}
    url = f"{jwt_mesh.base_url}/api/v1/documents"
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        upsert = retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments
        for what, token in refused.items():
            read = httpx.post(f"{jwt_mesh.base_url}/api/v1/search", json={"query": QUESTION}, headers=bearer(token))
            assert_json_401(read, f"read, {what}")
            mistyped = what in ("wrong key", "not a token")  # no two dots: no token, so meant as the key
            expected = WRONG_KEY if mistyped else token_write_refusal(read.json()["error"]["message"])
            for reply in (
                httpx.post(url, json=doc, headers=bearer(token), timeout=30),
                httpx.delete(f"{url}/acme-handbook", headers=bearer(token), timeout=30),
            ):
                assert_json_401(reply, f"REST write, {what}")
                assert reply.json()["error"]["message"] == expected, what
            with pytest.raises(grpc.RpcError) as denied:
                upsert(
                    iter([retrieval_pb2.Document(id="forged-grpc", text="x")]),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=60,
                )
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED, f"gRPC write, {what}"
            assert denied.value.details() == expected, what


def test_a_client_cannot_word_the_reason_its_token_was_refused(jwt_mesh: MeshProcess, idp: IdentityProvider) -> None:
    """The reason reaches the gateway in a header Envoy sets: a copy the client sends is dropped, with no token,
    with a refused one and with the API key, whose write still goes through."""
    url, forged = f"{jwt_mesh.base_url}/api/v1/documents", {TOKEN_FAILURE_HEADER: "the moon is full"}
    expired = idp.forgeries("writer", "acme", [WRITER_ROLE])["expired"]
    anonymous = httpx.delete(f"{url}/acme-handbook", headers=forged, timeout=30)
    assert_json_401(anonymous, "no token")
    assert anonymous.json()["error"]["message"] == WRITES_NEED
    refused = httpx.delete(f"{url}/acme-handbook", headers={**forged, **bearer(expired)}, timeout=30)
    assert refused.json()["error"]["message"] == token_write_refusal("Jwt is expired")
    doc = {"documents": [{"id": "keyed-note", "text": f"A {TOPIC} note the key wrote."}]}
    keyed = httpx.post(url, json=doc, headers={**forged, **bearer(jwt_mesh.api_key)}, timeout=60)
    assert keyed.status_code == 200 and keyed.json()["upserted"] == 1, keyed.text
    assert httpx.delete(f"{url}/keyed-note", headers=bearer(jwt_mesh.api_key), timeout=60).status_code == 200


def test_a_tenant_writer_is_told_it_may_not_delete_a_document_it_can_read_and_nothing_of_one_it_cannot(
    jwt_mesh: MeshProcess, people: dict[str, Person]
) -> None:
    """public-faq has no tenant: acme's writer reads it but may not delete it (403, with why); globex-handbook is
    hidden from it, so its refusal is the one an unknown id gets (404), which tells nothing of it."""
    writer, url = people["writer"], "/api/v1/documents"
    assert writer.rest("GET", f"{url}/public-faq").status_code == 200
    refused = writer.rest("DELETE", f"{url}/public-faq")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "PERMISSION_DENIED"
    assert "'acme'" in refused.json()["error"]["message"]
    assert writer.rest("GET", f"{url}/public-faq").status_code == 200
    hidden, unknown = writer.rest("DELETE", f"{url}/globex-handbook"), writer.rest("DELETE", f"{url}/no-such-doc")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == json.loads(unknown.text.replace("no-such-doc", "globex-handbook"))
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        delete = retrieval_pb2_grpc.RetrievalServiceStub(channel).DeleteDocuments
        ids = ["public-faq", "globex-handbook", "no-such-doc"]
        reply = delete(retrieval_pb2.DeleteDocumentsRequest(ids=ids), metadata=writer.metadata(), timeout=60)
    assert reply.deleted == 0
    assert [(s.id, s.reason) for s in reply.skipped] == [("public-faq", refused.json()["error"]["message"])]


def test_likeopt_ingest_gives_every_document_of_the_run_its_access_list(
    jwt_mesh: MeshProcess, people: dict[str, Person], tmp_path: Path
) -> None:
    (tmp_path / "rota.md").write_text(f"# Rota\n\nThe {TOPIC} rota is kept under the codeword andalusite.\n")
    ingest = [sys.executable, "-m", "likeopt.ops.cli", "ingest", str(tmp_path / "rota.md"), "--quiet"]
    ingest += ["--tenant", "acme", "--allow-group", "eng", "--allow-user", "bob"]
    subprocess.run(ingest, env=jwt_mesh.env, check=True, timeout=300, capture_output=True)
    assert "rota.md" in search_ids(people["alice"], "andalusite rota")  # in eng
    assert "rota.md" in search_ids(people["bob"], "andalusite rota")  # named
    assert "rota.md" not in search_ids(people["carol"], "andalusite rota")  # eng, but of globex
    deleted = httpx.delete(f"{jwt_mesh.base_url}/api/v1/documents/rota.md", headers=bearer(jwt_mesh.api_key))
    assert deleted.status_code == 200


# --- the leak hunt ---------------------------------------------------------------------------------------------


def test_rest_search_ranks_only_readable_documents_even_after_alice_warmed_every_cache(
    people: dict[str, Person],
) -> None:
    for _ in range(2):  # the second round is answered by the caches
        assert search_ids(people["alice"]) == SEES["alice"]
        assert search_ids(people["bob"]) == SEES["bob"]
        assert search_ids(people["carol"]) == SEES["carol"]


def test_chat_cites_and_quotes_only_readable_documents(people: dict[str, Person]) -> None:
    alice_text, _ = people["alice"].chat(QUESTION)
    assert "zirconia" in alice_text.lower()  # the premise: the answer quotes what it may
    for _ in range(2):
        text, _ = people["bob"].chat(QUESTION)
        people["bob"].assert_sees_nothing_hidden(text, "chat")
        assert "heliotrope" in text.lower()
    paraphrase = "What is said in the plan for the quarterly ledger rollout?"
    alice_again, _ = people["alice"].chat(paraphrase)
    assert next(d for k, d in parse_sse(alice_again) if k == "done")["cached"]  # the premise: a semantic hit
    bobs, _ = people["bob"].chat(paraphrase)
    people["bob"].assert_sees_nothing_hidden(bobs, "chat (semantic cache)")


def test_conversations_belong_to_their_owner(jwt_mesh: MeshProcess, people: dict[str, Person]) -> None:
    alice, bob = people["alice"], people["bob"]
    _, conversation = alice.chat(QUESTION)
    stolen = bob.rest("GET", f"/api/v1/conversations/{conversation}")
    assert stolen.status_code == 404 and "zirconia" not in stolen.text.lower()
    text, continued = bob.chat("And what is its codeword?", conversation)
    bob.assert_sees_nothing_hidden(text, "a follow-up in another's conversation")
    own = bob.rest("GET", f"/api/v1/conversations/{continued}")
    assert own.status_code == 200 and len(own.json()["turns"]) == 1
    bob.assert_sees_nothing_hidden(own.text, "conversation")
    assert all(
        "codeword?" not in t["question"]
        for t in alice.rest("GET", f"/api/v1/conversations/{conversation}").json()["turns"]
    )
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        lookup = generation_pb2_grpc.GenerationServiceStub(channel).GetConversation
        request = generation_pb2.GetConversationRequest(conversation_id=conversation)
        his = lookup(request, metadata=bob.metadata(), timeout=30)  # the same id, now his own conversation
        assert [t.question for t in his.turns] == ["And what is its codeword?"]
        bob.assert_sees_nothing_hidden(str(his), "gRPC GetConversation")
        with pytest.raises(grpc.RpcError) as missing:
            lookup(request, metadata=people["carol"].metadata(), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_conversation_is_deleted_only_by_its_owner(jwt_mesh: MeshProcess, people: dict[str, Person]) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    _, conversation = alice.chat(QUESTION)
    bob.chat("And what is its codeword?", conversation)  # the same id, his own conversation
    path = f"/api/v1/conversations/{conversation}"
    assert carol.rest("DELETE", path).status_code == 404
    assert bob.rest("DELETE", path).json() == {"conversation_id": conversation, "deleted": True}
    assert bob.rest("GET", path).status_code == 404
    assert len(alice.rest("GET", path).json()["turns"]) == 1  # hers is untouched
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.DeleteConversationRequest(conversation_id=conversation)
        assert stub.DeleteConversation(request, metadata=alice.metadata(), timeout=30).conversation_id == conversation
    assert alice.rest("GET", path).status_code == 404


def test_an_answer_is_rated_only_by_the_person_it_was_given_to(
    jwt_mesh: MeshProcess, people: dict[str, Person]
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    text, _ = alice.chat(f"{QUESTION} (to be rated)")
    [done] = [data for kind, data in parse_sse(text) if kind == "done"]
    by_answer = {"answer_id": done["answer_id"], "rating": "down", "comment": "not mine"}
    by_trace = {"trace_id": done["trace_id"], "rating": "up"}
    for other in (bob, carol):
        assert other.rest("POST", "/api/v1/feedback", json=by_answer).status_code == 404
        refused = other.rest("POST", "/api/v1/feedback", json=by_trace)  # nor is the answer's id told
        assert refused.status_code == 404 and done["answer_id"] not in refused.text, refused.text
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        rate = generation_pb2_grpc.GenerationServiceStub(channel).Feedback
        with pytest.raises(grpc.RpcError) as missing:
            rate(generation_pb2.FeedbackRequest(**by_trace), metadata=carol.metadata(), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    rated = alice.rest("POST", "/api/v1/feedback", json=by_trace)
    assert rated.status_code == 200 and rated.json()["answer_id"] == done["answer_id"]


def test_index_status_and_dashboard_count_only_readable_documents(people: dict[str, Person]) -> None:
    for name in ("alice", "bob", "carol"):
        person = people[name]
        status = person.rest("GET", "/api/v1/index").json()
        assert status["documents"] == len(SEES[name]) and status["chunks"] == len(SEES[name])
        board = person.rest("GET", "/api/v1/dashboard")
        assert board.status_code == 200 and board.json()["index"]["documents"] == len(SEES[name])
        person.assert_sees_nothing_hidden(board.text, "dashboard")


def test_rest_document_listing_and_reading_show_only_readable_documents(people: dict[str, Person]) -> None:
    for name in ("alice", "bob", "carol"):
        person = people[name]
        listing = person.rest("GET", "/api/v1/documents?limit=1000")
        assert listing.status_code == 200, listing.text
        person.assert_sees_nothing_hidden(listing.text, "REST document listing")
        assert {d["id"] for d in listing.json()["documents"]} == SEES[name] and listing.json()["total"] == len(
            SEES[name]
        )
    own = people["alice"].rest("GET", "/api/v1/documents/acme-alice-notes")
    assert own.status_code == 200 and "obsidian" in own.text
    hidden = people["bob"].rest("GET", "/api/v1/documents/acme-alice-notes")
    assert hidden.status_code == 404 and "obsidian" not in hidden.text


def test_a_rest_listing_of_some_ids_names_those_of_them_the_caller_may_read(people: dict[str, Person]) -> None:
    """How the web UI learns which documents its saved conversations cite are still readable."""
    asked = [("ids", doc.id) for doc in DOCS] + [("ids", "no-such-document")]
    for name in ("alice", "bob", "carol"):
        listing = people[name].rest("GET", "/api/v1/documents", params=[("limit", "10"), *asked])
        assert listing.status_code == 200, listing.text
        people[name].assert_sees_nothing_hidden(listing.text, "REST document listing by ids")
        assert [d["id"] for d in listing.json()["documents"]] == sorted(SEES[name])
    some = people["alice"].rest("GET", "/api/v1/documents", params=[("ids", "acme-alice-notes"), ("ids", "public-faq")])
    assert [d["id"] for d in some.json()["documents"]] == ["acme-alice-notes", "public-faq"]


def test_grpc_through_envoy_gets_the_principal_from_the_verified_token(
    jwt_mesh: MeshProcess, people: dict[str, Person]
) -> None:
    with grpc.insecure_channel(jwt_mesh.address) as channel:
        retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        answer = generation_pb2_grpc.GenerationServiceStub(channel).Answer
        for name in ("alice", "bob"):  # Alice first: Bob's calls find every cache warm
            person = people[name]
            found = retrieval.Search(retrieval_pb2.SearchRequest(query=QUESTION, top_k=20), metadata=person.metadata())
            assert {h.doc_id for h in found.hits} == SEES[name]
            events = list(answer(generation_pb2.AnswerRequest(query=QUESTION), metadata=person.metadata(), timeout=60))
            person.assert_sees_nothing_hidden(str(events), "gRPC Answer")
            listed = retrieval.ListDocuments(retrieval_pb2.ListDocumentsRequest(), metadata=person.metadata())
            assert {d.id for d in listed.documents} == SEES[name] and listed.total == len(SEES[name])
            status = retrieval.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), metadata=person.metadata())
            assert status.documents == len(SEES[name])
        with pytest.raises(grpc.RpcError) as hidden:
            retrieval.GetDocument(
                retrieval_pb2.GetDocumentRequest(id="acme-eng-plan"), metadata=people["bob"].metadata()
            )
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_web_searches_as_the_token_s_principal(jwt_mesh: MeshProcess, people: dict[str, Person]) -> None:
    message = retrieval_pb2.SearchRequest(query=QUESTION, top_k=20).SerializeToString()
    for name in ("alice", "bob"):
        reply = grpc_web_search(jwt_mesh.base_url, message, people[name].headers)
        data = [payload for flag, payload in grpc_web_frames(reply.content) if flag == 0x00]
        assert {h.doc_id for h in retrieval_pb2.SearchResponse.FromString(data[0]).hits} == SEES[name]
    assert grpc_web_refusal(grpc_web_search(jwt_mesh.base_url, message)) == ("16", "Jwt is missing")


def test_the_openai_api_answers_as_the_token_s_principal(people: dict[str, Person]) -> None:
    aimed = "What does the zirconia codeword of the quarterly ledger rollout mean?"  # at a hidden document
    chat = {"model": "like-opt", "messages": [{"role": "user", "content": aimed}]}
    for name in ("alice", "bob", "bob"):
        reply = people[name].rest("POST", "/v1/chat/completions", json=chat)
        assert reply.status_code == 200, reply.text
        people[name].assert_sees_nothing_hidden(reply.text, "/v1/chat/completions")
        assert ("zirconia" in reply.text.lower()) == (name == "alice")
    streamed = people["bob"].rest("POST", "/v1/chat/completions", json={**chat, "stream": True})
    people["bob"].assert_sees_nothing_hidden(streamed.text, "/v1/chat/completions (stream)")
    asked = {"model": "like-opt", "input": aimed}
    alices = people["alice"].rest("POST", "/v1/responses", json=asked).json()
    assert "zirconia" in alices["output"][0]["content"][0]["text"].lower()  # the premise: hers quotes it
    follow_up = {**asked, "input": "And what is its codeword?", "previous_response_id": alices["id"]}
    for body in (asked, {**asked, "stream": True}):
        reply = people["bob"].rest("POST", "/v1/responses", json=body)
        assert reply.status_code == 200, reply.text
        people["bob"].assert_sees_nothing_hidden(reply.text, "/v1/responses")
    refused = people["bob"].rest("POST", "/v1/responses", json=follow_up)  # her response is none of his
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "previous_response_not_found"
    people["bob"].assert_sees_nothing_hidden(refused.text, "/v1/responses")
    hers = {"type": "item_reference", "id": alices["output"][0]["id"]}  # her reply's text is none of his either
    referring = {**asked, "input": [{"role": "user", "content": aimed}, hers, {"role": "user", "content": "And?"}]}
    unread = people["bob"].rest("POST", "/v1/responses", json=referring)
    assert unread.status_code == 400 and unread.json()["error"]["code"] == "item_not_found"
    people["bob"].assert_sees_nothing_hidden(unread.text, "/v1/responses")
    assert people["alice"].rest("POST", "/v1/responses", json=referring).status_code == 200
    completion = people["bob"].rest("POST", "/v1/completions", json={"model": "like-opt", "prompt": aimed})
    assert completion.status_code == 200, completion.text
    people["bob"].assert_sees_nothing_hidden(completion.text, "/v1/completions")
    assert people["bob"].rest("GET", "/v1/models").status_code == 200
    assert httpx.get(f"{people['bob'].mesh.base_url}/v1/models").status_code == 401


@pytest.mark.parametrize("kind", ["http", "stdio"])
async def test_mcp_tools_search_ask_and_list_as_the_token_s_principal(people: dict[str, Person], kind: str) -> None:
    from tests.integration.test_mcp import session

    for name in ("alice", "bob"):
        person = people[name]
        async with session(person.mesh, kind, key=person.token) as client:
            found = await client.call_tool("search", {"query": QUESTION, "top_k": 20})
            listed = await client.call_tool("list_documents", {})
            resources = {resource.name for resource in (await client.list_resources()).resources}
            asked = await client.call_tool("ask", {"question": QUESTION})
            hidden = await client.read_resource("likeopt://documents/acme-alice-notes") if name == "alice" else None
        texts = json.dumps([found.structured_content, listed.structured_content, asked.structured_content])
        person.assert_sees_nothing_hidden(texts, "MCP")
        assert {p["doc_id"] for p in found.structured_content["passages"]} == SEES[name]
        assert listed.structured_content["total"] == len(SEES[name]) and resources == SEES[name]
        if hidden is not None:
            assert "obsidian" in str(hidden.contents[0])
    async with session(people["bob"].mesh, kind, key=people["bob"].token) as client:
        with pytest.raises(Exception, match="no document"):
            await client.read_resource("likeopt://documents/acme-alice-notes")


def test_token_refusals_on_mcp_are_json_rpc_errors_naming_the_reason(
    jwt_mesh: MeshProcess, idp: IdentityProvider
) -> None:
    """Envoy refuses these before the gateway: MCP's SDK reports a JSON-RPC error's message, any other body as
    "Server returned an error response"."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    expired = idp.forgeries("bob", "acme", [])["expired"]
    for headers, reason in ((bearer(expired), "Jwt is expired"), ({}, "Jwt is missing")):
        refused = httpx.post(f"{jwt_mesh.base_url}/mcp", json=ping, headers=headers, timeout=30)
        code, message = refusal_of(refused, 401)
        assert code == "UNAUTHENTICATED" and reason in message, message


def test_likeopt_mcp_refuses_a_token_its_addresses_would_ignore(
    jwt_mesh: MeshProcess, people: dict[str, Person]
) -> None:
    """The mesh's own settings name the services' ports, which read no token: served there, Bob's MCP session would
    list every tenant's documents. So it does not start, and says where to point it (Envoy's port verifies)."""
    command = [sys.executable, "-m", "likeopt.ops.cli", "mcp", "--token", people["bob"].token]
    ran = subprocess.run(command, env=jwt_mesh.env, input=b"", capture_output=True, timeout=120, cwd=ROOT)
    assert ran.returncode != 0 and ran.stdout == b"", ran.stderr.decode()
    refusal = ran.stderr.decode()
    assert "LIKEOPT_RETRIEVAL_ADDR=" in refusal and "answers calls without a token" in refusal, refusal
    assert "Envoy's port" in refusal


def test_an_access_change_takes_effect_at_once_in_both_directions(people: dict[str, Person]) -> None:
    alice, bob, writer = people["alice"], people["bob"], people["writer"]
    question = "What is the chrysoberyl shift schedule?"

    def share(groups: list[str]) -> None:
        doc = {"id": "acme-shift", "title": "Shift", "text": "The chrysoberyl shift schedule starts at dawn."}
        reply = writer.rest("POST", "/api/v1/documents", json={"documents": [{**doc, "access": {"groups": groups}}]})
        assert reply.status_code == 200 and reply.json()["upserted"] == 1, reply.text

    def sees(person: Person) -> bool:
        in_search = "acme-shift" in search_ids(person, question)
        in_chat = "chrysoberyl" in person.chat(question)[0].lower()
        assert in_search == in_chat
        return in_search

    share(["eng"])
    assert sees(alice) and not sees(bob)  # both warm their caches for this question
    share(["sales"])
    assert sees(bob) and not sees(alice)
    share(["eng"])
    assert sees(alice) and not sees(bob)


def test_a_hidden_document_changes_no_score_a_reader_sees(jwt_mesh: MeshProcess, people: dict[str, Person]) -> None:
    """BM25's statistics are the reader's own: a word in a document bob may not read must not move his scores."""
    bob, key = people["bob"], bearer(jwt_mesh.api_key)

    def bobs_scores() -> dict[str, float]:
        reply = bob.rest("POST", "/api/v1/search", json={"query": "heliotrope rollout", "mode": "bm25", "top_k": 20})
        assert reply.status_code == 200, reply.text
        return {hit["doc_id"]: hit["bm25_score"] for hit in reply.json()["hits"]}

    before = bobs_scores()
    hidden = {"id": "initech-memo", "text": "heliotrope heliotrope memo", "access": {"tenant": "initech"}}
    reply = httpx.post(f"{jwt_mesh.base_url}/api/v1/documents", json={"documents": [hidden]}, headers=key, timeout=60)
    assert reply.status_code == 200 and reply.json()["upserted"] == 1, reply.text
    try:
        assert bobs_scores() == before and "acme-handbook" in before
    finally:
        httpx.delete(f"{jwt_mesh.base_url}/api/v1/documents/initech-memo", headers=key, timeout=60)


def write_for(writer: Person, doc: dict, groups: list[str]) -> None:
    """Write doc as writer, for these groups of the writer's tenant (again: its access list changes)."""
    reply = writer.rest("POST", "/api/v1/documents", json={"documents": [{**doc, "access": {"groups": groups}}]})
    assert reply.status_code == 200 and reply.json()["upserted"] == 1, reply.text


def read_back(person: Person, conversation: str) -> list[tuple[str, str]]:
    """The conversation as REST, gRPC and gRPC-web give it to person, each as (surface, what came back)."""
    rest = person.rest("GET", f"/api/v1/conversations/{conversation}")
    assert rest.status_code == 200, rest.text
    request = generation_pb2.GetConversationRequest(conversation_id=conversation)
    with grpc.insecure_channel(person.mesh.address) as channel:
        lookup = generation_pb2_grpc.GenerationServiceStub(channel).GetConversation
        over_grpc = lookup(request, metadata=person.metadata(), timeout=30)
    message = request.SerializeToString()
    web = httpx.post(
        f"{person.mesh.base_url}/likeopt.v1.GenerationService/GetConversation",
        content=b"\x00" + len(message).to_bytes(4, "big") + message,
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1", **person.headers},
        timeout=30,
    )
    [data] = [payload for flag, payload in grpc_web_frames(web.content) if flag == 0x00]
    over_web = generation_pb2.Conversation.FromString(data)
    assert over_grpc == over_web
    return [("REST", rest.text), ("gRPC", str(over_grpc)), ("gRPC-web", str(over_web))]


@pytest.mark.parametrize("change", ["re-scoped", "deleted"])
def test_a_saved_conversation_shows_no_passage_its_reader_may_no_longer_read(
    people: dict[str, Person], change: str
) -> None:
    """Alice asked about a document of group eng; it is then written for group ops only, or deleted. Her saved
    conversation keeps the turn, but neither the passage nor the answer that quoted it, on every surface that
    reads it back; a follow-up does not bring them back; and given back to eng, the passage shows again."""
    alice, writer = people["alice"], people["writer"]
    marker = "chalcedony" if change == "re-scoped" else "carnelian"
    doc = {
        "id": f"acme-furnace-{change}",
        "title": f"Furnace {marker} notes",
        "text": f"The furnace maintenance window opens every Tuesday at noon under the codeword {marker}.",
    }

    write_for(writer, doc, ["eng"])
    try:
        text, conversation = alice.chat("When does the furnace maintenance window open?")
        assert marker in text.lower()  # the premise: her answer quoted the passage
        assert all(marker in seen.lower() for _, seen in read_back(alice, conversation))
        if change == "re-scoped":
            write_for(writer, doc, ["ops"])
        else:
            assert writer.rest("DELETE", f"/api/v1/documents/{doc['id']}").status_code == 200
        for surface, seen in read_back(alice, conversation):
            assert marker not in seen.lower(), f"{surface} still shows the {change} passage"
        [turn] = alice.rest("GET", f"/api/v1/conversations/{conversation}").json()["turns"]
        withdrawn = [c for c in turn["citations"] if c["doc_id"] == doc["id"]]
        assert withdrawn and all(c["withdrawn"] and c["title"] == c["text"] == "" for c in withdrawn)
        assert turn["withdrawn"] and turn["answer"] == "" and "furnace" in turn["question"]
        follow_up, _ = alice.chat("And what is its codeword?", conversation)
        assert marker not in follow_up.lower()
        if change == "re-scoped":
            write_for(writer, doc, ["eng"])
            assert all(marker in seen.lower() for _, seen in read_back(alice, conversation))
    finally:
        writer.rest("DELETE", f"/api/v1/documents/{doc['id']}")


def test_an_answer_cut_short_before_its_citation_is_withheld_once_its_passage_is_hidden(
    people: dict[str, Person],
) -> None:
    """A stop sequence ending Alice's answer before its first marker leaves the passage's sentence in it and no
    citation; once the document is written for group ops only, her saved conversation shows that answer on no
    surface, nor does a follow-up bring it back."""
    alice, writer = people["alice"], people["writer"]
    text = "The kiln firing log is sealed under the codeword jasperite."
    doc = {"id": "acme-kiln", "title": "Kiln notes", "text": text}
    write_for(writer, doc, ["eng"])
    try:
        body = {"query": "What is the kiln firing log sealed under?", "stop": ["["]}
        reply = alice.rest("POST", "/api/v1/chat", json=body)
        assert reply.status_code == 200, reply.text
        events = parse_sse(reply.text)
        assert "jasperite" in reply.text.lower() and not [d for k, d in events if k == "citation"]  # the premise
        conversation = next(d for k, d in events if k == "done")["conversation_id"]
        write_for(writer, doc, ["ops"])
        for surface, seen in read_back(alice, conversation):
            assert "jasperite" not in seen.lower(), f"{surface} still shows the answer quoting the hidden passage"
        follow_up, _ = alice.chat("And what is it sealed under?", conversation)
        assert "jasperite" not in follow_up.lower()
    finally:
        writer.rest("DELETE", f"/api/v1/documents/{doc['id']}")


def test_no_token_reaches_a_log(jwt_mesh: MeshProcess, people: dict[str, Person], idp: IdentityProvider) -> None:
    run_dir = Path(jwt_mesh.env["LIKEOPT_RUN_DIR"])
    logs = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*.log"))
    assert logs, "the mesh wrote no logs"
    signatures = [t.rsplit(".", 1)[-1] for t in (p.token for p in people.values()) if t.count(".") == 2]
    assert not [s for s in signatures if s and s in logs]
