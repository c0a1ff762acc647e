"""The whole mesh through Envoy's one port: REST, SSE, gRPC, and the cache in Redis."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from likeopt.caching.cache_keys import normalise_query
from likeopt.runtime.loaders import document_path
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.pdfs import pdf_bytes
from tests.support import MeshProcess, ValkeyServer
from tests.unit.test_loaders_email import message
from tests.unit.test_loaders_epub import CHAPTERS, PACKAGE, epub_file
from tests.unit.test_loaders_mailbox import mbox_bytes
from tests.unit.test_loaders_notebook import code, markdown, notebook, result
from tests.unit.test_loaders_opendocument import odf_file

KNOWN_QUESTION = "Which port does Envoy listen on?"
KNOWN_DOC = "docs/architecture.md"


def parse_sse(body: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of an SSE body; comments (heartbeats) ignored."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def search(mesh: MeshProcess, query: str, **extra: object) -> dict:
    reply = httpx.post(f"{mesh.base_url}/api/v1/search", json={"query": query, **extra}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_rest_search_finds_the_known_document(mesh: MeshProcess) -> None:
    result = search(mesh, KNOWN_QUESTION, top_k=5)
    assert result["hits"], result
    assert result["hits"][0]["doc_id"] == KNOWN_DOC
    assert result["index_version"] >= 1
    for key in ("doc_id", "chunk_id", "title", "text", "score", "bm25_score", "dense_score"):
        assert key in result["hits"][0]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_every_mode_answers(mesh: MeshProcess, mode: str) -> None:
    hits = search(mesh, "Redis time to live and promotion into L1", mode=mode, top_k=3)["hits"]
    assert hits and hits[0]["doc_id"] == "docs/caching.md"
    if mode == "bm25":
        assert hits[0]["bm25_score"] > 0 and hits[0]["dense_rank"] == 0
    if mode == "dense":
        assert hits[0]["dense_score"] > 0 and hits[0]["bm25_rank"] == 0


def test_chat_streams_deltas_then_citations_of_ingested_documents(mesh: MeshProcess) -> None:
    with httpx.stream(
        "POST", f"{mesh.base_url}/api/v1/chat", json={"query": "How does Like-Opt cache answers in Redis?"}, timeout=60
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        body = "".join(reply.iter_text())
    events = parse_sse(body)
    kinds = [k for k, _ in events]
    assert kinds[0] == "retrieval"
    assert kinds.count("delta") >= 2
    assert kinds[-1] == "done"
    citations = [d for k, d in events if k == "citation"]
    assert citations, kinds
    ingested = {h["doc_id"] for h in events[0][1]["hits"]}
    assert all(c["doc_id"] in ingested for c in citations)
    answer = "".join(d["text"] for k, d in events if k == "delta")
    assert all(f"[{c['n']}]" in answer for c in citations)
    done = events[-1][1]
    assert len(done["trace_id"]) == 32 and done["conversation_id"]


def test_a_search_per_document_gives_each_document_once(mesh: MeshProcess) -> None:
    query = "How does the cache keep search results in Redis?"
    chunks = [h["doc_id"] for h in search(mesh, query, top_k=5)["hits"]]
    documents = [h["doc_id"] for h in search(mesh, query, top_k=5, per_document=True)["hits"]]
    assert len(set(chunks)) < len(chunks), "the corpus should give one document several of the top chunks"
    assert len(documents) == len(set(documents)) and len(documents) > len(set(chunks))
    assert documents[0] == chunks[0]


def test_a_greeting_gets_a_greeting_not_a_quoted_passage(mesh: MeshProcess) -> None:
    events = parse_sse(httpx.post(f"{mesh.base_url}/api/v1/chat", json={"query": "Hi!"}, timeout=60).text)
    assert [k for k, _ in events] == ["retrieval", "delta", "done"] and not events[0][1]["hits"]
    assert events[-1][1]["small_talk"] is True and "documents" in events[1][1]["text"]


def test_a_chat_with_max_tokens_ends_early_with_finish_reason_length(mesh: MeshProcess) -> None:
    body = {"query": "How does Like-Opt cache answers in Redis?", "max_tokens": 5}
    reply = httpx.post(f"{mesh.base_url}/api/v1/chat", json=body, timeout=60)
    events = parse_sse(reply.text)
    done = events[-1][1]
    assert events[-1][0] == "done" and done["finish_reason"] == "length", events
    assert 0 < len("".join(d["text"] for k, d in events if k == "delta").split()) <= 5


def test_a_chat_with_a_stop_sequence_ends_before_it(mesh: MeshProcess) -> None:
    question = {"query": "How does Like-Opt cache answers in Redis?", "top_k": 3}
    chats = [
        httpx.post(f"{mesh.base_url}/api/v1/chat", json=body, timeout=60)
        for body in (question, question | {"stop": ["Redis"]})
    ]
    whole, stopped = ["".join(d["text"] for k, d in parse_sse(chat.text) if k == "delta") for chat in chats]
    assert "Redis" in whole and stopped == whole[: whole.index("Redis")]
    assert parse_sse(chats[1].text)[-1][1]["finish_reason"] == "stop"


def test_documents_are_listed_page_by_page_and_read_chunk_by_chunk(mesh: MeshProcess) -> None:
    first = httpx.get(f"{mesh.base_url}/api/v1/documents", params={"limit": 2}, timeout=30).json()
    assert len(first["documents"]) == 2 and first["next_after_id"] == first["documents"][-1]["id"]
    rest = httpx.get(f"{mesh.base_url}/api/v1/documents", params={"after_id": first["next_after_id"]}, timeout=30)
    ids = [d["id"] for d in first["documents"]] + [d["id"] for d in rest.json()["documents"]]
    assert ids == sorted(ids) and len(ids) == first["total"] and KNOWN_DOC in ids and rest.json()["next_after_id"] == ""
    doc = httpx.get(f"{mesh.base_url}/api/v1/documents/{KNOWN_DOC}", timeout=30).json()
    assert doc["id"] == KNOWN_DOC and doc["chunks"][0]["chunk_id"] == f"{KNOWN_DOC}#0" and "8080" in json.dumps(doc)
    missing = httpx.get(f"{mesh.base_url}/api/v1/documents/no/such.md", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    too_many = httpx.get(f"{mesh.base_url}/api/v1/documents", params={"limit": 5000}, timeout=30)
    assert too_many.status_code == 422 and "limit" in too_many.json()["error"]["message"]


def test_grpc_search_through_envoy_matches_rest(mesh: MeshProcess) -> None:
    rest_top = search(mesh, KNOWN_QUESTION, top_k=5)["hits"][0]
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port('envoy')}") as channel:
        reply = retrieval_pb2_grpc.RetrievalServiceStub(channel).Search(
            retrieval_pb2.SearchRequest(query=KNOWN_QUESTION, top_k=5), timeout=30
        )
    assert reply.hits[0].doc_id == rest_top["doc_id"]
    assert reply.hits[0].chunk_id == rest_top["chunk_id"]


def reflect(address: str, request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=30)))


def test_reflection_through_envoy_lists_and_describes_every_service_of_the_port(mesh: MeshProcess) -> None:
    """What ``grpcurl -plaintext HOST:8080 list`` and ``describe`` ask; on generation_svc's own port the list is
    its own."""
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    public = {s.name for s in reflect(mesh.address, listing).list_services_response.service}
    assert {"likeopt.v1.RetrievalService", "likeopt.v1.GenerationService", "grpc.health.v1.Health"} <= public
    own = {s.name for s in reflect(f"127.0.0.1:{mesh.port('generation')}", listing).list_services_response.service}
    assert "likeopt.v1.GenerationService" in own and "likeopt.v1.RetrievalService" not in own
    symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol="likeopt.v1.RetrievalService")
    described = reflect(mesh.address, symbol).file_descriptor_response.file_descriptor_proto
    assert any(b"RetrievalService" in proto for proto in described)


def test_health_checks_through_envoy_answer_for_every_service_of_the_port(mesh: MeshProcess) -> None:
    """What ``grpc-health-probe -addr=HOST:8080`` and a load balancer's gRPC check ask."""
    with grpc.insecure_channel(mesh.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        names = ("", "likeopt.v1.RetrievalService", "likeopt.v1.GenerationService")
        statuses = [health.Check(health_pb2.HealthCheckRequest(service=name), timeout=30).status for name in names]
    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * 3


def test_repeated_search_is_cached_in_redis(mesh: MeshProcess, valkey: ValkeyServer) -> None:
    query = "What does the gateway translate?"
    first = search(mesh, query)
    second = search(mesh, query)
    assert second["cached"] is True
    assert second["hits"] == first["hits"]
    deadline = time.monotonic() + 10  # written in the background, batched with others within a window
    with valkey.client() as client:
        while not client.keys("likeopt:search:*"):
            assert time.monotonic() < deadline, "no search entry in Redis"
            time.sleep(0.02)
    assert normalise_query("  WHAT does the   gateway translate? ") == normalise_query(query)


def near_cache_hits(mesh: MeshProcess) -> float:
    """The gateway's near-cache hits so far, from its own /metrics."""
    metrics = httpx.get(f"{mesh.base_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(NEAR_HITS))


NEAR_HITS = 'likeopt_near_cache_lookups_total{name="search",result="hit"}'


def test_the_gateway_answers_repeats_itself_until_a_write_lands_anywhere(mesh: MeshProcess) -> None:
    query = "Which lighthouse keeper logs the ospreys?"
    first = search(mesh, query, top_k=3)
    hits_before = near_cache_hits(mesh)
    again = search(mesh, "  which LIGHTHOUSE keeper logs the ospreys? ", top_k=3)
    assert near_cache_hits(mesh) == hits_before + 1
    assert again["cached"] is True and again["hits"] == first["hits"]

    # A write straight to retrieval_svc over gRPC, past the gateway: its index watch retires the reply.
    doc = retrieval_pb2.Document(id="osprey-log.md", title="Osprey log", text="The lighthouse keeper logs the ospreys.")
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port('envoy')}") as channel:
        summary = retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments(
            iter([doc]), timeout=60, metadata=[("authorization", f"Bearer {mesh.api_key}")]
        )
    deadline = time.monotonic() + 10
    while (after := search(mesh, query, top_k=3))["index_version"] < summary.index_version:
        assert time.monotonic() < deadline, "the gateway kept serving a reply older than the write"
        time.sleep(0.05)
    assert after["hits"][0]["doc_id"] == "osprey-log.md"
    httpx.delete(
        f"{mesh.base_url}/api/v1/documents/osprey-log.md", headers={"Authorization": f"Bearer {mesh.api_key}"}
    ).raise_for_status()


def test_grpc_writes_through_envoy_need_the_key(mesh: MeshProcess) -> None:
    delete = retrieval_pb2.DeleteDocumentsRequest(ids=[KNOWN_DOC])
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port('envoy')}") as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for metadata in ([], [("authorization", "Bearer wrong")]):
            with pytest.raises(grpc.RpcError) as refused:
                stub.DeleteDocuments(delete, timeout=10, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert search(mesh, KNOWN_QUESTION, top_k=3)["hits"][0]["doc_id"] == KNOWN_DOC  # nothing was deleted


def test_readiness_and_liveness(mesh: MeshProcess) -> None:
    assert httpx.get(f"{mesh.base_url}/healthz", timeout=5).status_code == 200
    ready = httpx.get(f"{mesh.base_url}/api/v1/readyz", timeout=5)
    assert ready.status_code == 200
    assert set(ready.json()["upstreams"].values()) == {"SERVING"}


def test_home_page_is_served(mesh: MeshProcess) -> None:
    page = httpx.get(f"{mesh.base_url}/", timeout=5)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_bad_requests_get_clear_json_errors(mesh: MeshProcess) -> None:
    url = f"{mesh.base_url}/api/v1/search"
    blank = httpx.post(url, json={"query": "   "}, timeout=5)
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "INVALID_ARGUMENT"
    too_many = httpx.post(url, json={"query": "x", "top_k": 1000}, timeout=5)
    assert too_many.status_code == 422
    broken = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}, timeout=5)
    assert broken.status_code == 400


def test_writes_need_the_api_key(mesh: MeshProcess) -> None:
    doc = {"documents": [{"id": "auth-check", "title": "t", "text": "some text"}]}
    refused = httpx.post(f"{mesh.base_url}/api/v1/documents", json=doc, timeout=10)
    assert refused.status_code == 401
    wrong = httpx.post(
        f"{mesh.base_url}/api/v1/documents", json=doc, headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401


def test_uploaded_file_becomes_searchable_and_deleted_one_disappears(mesh: MeshProcess) -> None:
    auth = {"Authorization": f"Bearer {mesh.api_key}"}
    note = b"# Zebra husbandry\n\nThe quokka-zebra enclosure is cleaned every Tuesday at dawn."
    upload = httpx.post(
        f"{mesh.base_url}/api/v1/documents",
        files=[("files", ("zebra.md", note, "text/markdown")), ("files", ("blob.bin", b"\x00\x01", "application/x"))],
        headers=auth,
        timeout=60,
    )
    assert upload.status_code == 200, upload.text
    result = upload.json()
    assert result["upserted"] == 1 and result["chunks"] >= 1
    assert [s["id"] for s in result["skipped"]] == ["blob.bin"]
    hits = search(mesh, "When is the quokka-zebra enclosure cleaned?", top_k=3)["hits"]
    assert hits[0]["doc_id"] == "zebra.md" and hits[0]["title"] == "Zebra husbandry"

    deleted = httpx.delete(f"{mesh.base_url}/api/v1/documents/zebra.md", headers=auth, timeout=30)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 1
    after = search(mesh, "When is the quokka-zebra enclosure cleaned?", top_k=3)
    assert "zebra.md" not in {h["doc_id"] for h in after["hits"]}
    assert after["index_version"] > result["index_version"]
    missing = httpx.delete(f"{mesh.base_url}/api/v1/documents/zebra.md", headers=auth, timeout=30)
    assert missing.status_code == 404


@contextlib.contextmanager
def uploaded(mesh: MeshProcess, files: dict[str, tuple[bytes, str]], ids: list[str] | None = None) -> Iterator[None]:
    """Files (name: (bytes, content type)) uploaded in one request, stored as the documents ids names (by default
    one each, under its name), deleted afterwards."""
    auth = {"Authorization": f"Bearer {mesh.api_key}"}
    fields = [("files", (name, data, content_type)) for name, (data, content_type) in files.items()]
    stored = list(files) if ids is None else ids
    upload = httpx.post(f"{mesh.base_url}/api/v1/documents", files=fields, headers=auth, timeout=60)
    try:
        assert upload.status_code == 200, upload.text
        assert upload.json()["upserted"] == len(stored) and upload.json()["skipped"] == []
        yield
    finally:
        for doc_id in stored:
            httpx.delete(f"{mesh.base_url}{document_path(doc_id)}", headers=auth, timeout=30)


def test_an_uploaded_pdf_with_a_blank_page_and_a_csv_with_doubled_quotes_are_stored_and_found(
    mesh: MeshProcess,
) -> None:
    """Files as users upload them: a blank page made the whole PDF unreadable, and a quote written twice inside a
    CSV value split it into wrong columns."""
    guild = pdf_bytes(["The Wexford lamplighter guild was founded in 1702 by Odile Marchetti."], [])
    mottos = b'city,motto\nOsterkamp,"The mayor said ""never, ever"" about the toll bridge"\n'
    with uploaded(mesh, {"guild.pdf": (guild, "application/pdf"), "mottos.csv": (mottos, "text/csv")}):
        founded = search(mesh, "Who founded the Wexford lamplighter guild?", top_k=3)["hits"][0]
        assert founded["doc_id"] == "guild.pdf" and "Odile Marchetti" in founded["text"]
        said = search(mesh, "What did the Osterkamp mayor say about the toll bridge?", top_k=3)["hits"][0]
        assert said["doc_id"] == "mottos.csv"
        assert 'motto: The mayor said "never, ever" about the toll bridge' in said["text"]


def test_an_uploaded_rich_text_letter_and_a_pdf_behind_a_mail_header_are_stored_and_found(mesh: MeshProcess) -> None:
    """Rich Text was refused as an unsupported type, and a PDF that a mail gateway wrapped, named "scan.bin", too;
    the letter's emoji is two \\u escapes in the file, one character in the stored text (protobuf takes no lone
    surrogate)."""
    letter = (
        rb"{\rtf1\ansi\ansicpg1252{\info{\title Roaster's letter}}\f0 The Vellmar roaster in Z\u252?rich sells"
        rb" caf\'e9 cr\'e8me for \'80 4 \u-10179?\u-8704?.\par}"
    )
    wrapped = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n"
    scan = wrapped + pdf_bytes(["The Osterkamp ferry crosses the Wexford sound at dawn."])
    with uploaded(mesh, {"letter.rtf": (letter, "application/rtf"), "scan.bin": (scan, "application/x")}):
        sold = search(mesh, "What does the Vellmar roaster in Zürich sell?", top_k=3)["hits"][0]
        assert sold["doc_id"] == "letter.rtf" and sold["title"] == "Roaster's letter"
        assert "caf\u00e9 cr\u00e8me for \u20ac 4 \U0001f600." in sold["text"]
        crossed = search(mesh, "When does the Osterkamp ferry cross the Wexford sound?", top_k=3)["hits"][0]
        assert crossed["doc_id"] == "scan.bin" and "at dawn" in crossed["text"]


def test_uploaded_opendocument_epub_mail_and_code_files_are_stored_and_found_by_their_type(mesh: MeshProcess) -> None:
    """Each was refused as an unsupported type; the OpenDocument text is named .docx, as a misnamed file is read as
    what its bytes show."""
    body = "<office:text><text:p>The Halvorsen weir is inspected every ninth of October.</text:p></office:text>"
    weir = odf_file("odt", body, title="Weir log")
    book = epub_file({"OEBPS/content.opf": PACKAGE, **CHAPTERS})
    mail = message("Brannock kiln", "The Brannock kiln is fired with larch on Thursdays.\n").as_bytes()
    script = b"def tern_census(colony):\n    # the Skerryvane terns are counted at low tide\n    return colony.size\n"
    files = {
        "weir.docx": (weir, "application/octet-stream"),
        "herons.epub": (book, "application/epub+zip"),
        "kiln.eml": (mail, "message/rfc822"),
        "census.py": (script, "text/x-python"),
    }
    with uploaded(mesh, files):
        for question, doc_id, kind in (
            ("When is the Halvorsen weir inspected?", "weir.docx", "odt"),
            ("When do herons nest?", "herons.epub", "epub"),
            ("What is the Brannock kiln fired with?", "kiln.eml", "eml"),
            ("When are the Skerryvane terns counted?", "census.py", "python"),
        ):
            [hit] = search(mesh, question, top_k=1, filters={"file_type": kind})["hits"]
            assert hit["doc_id"] == doc_id, (question, hit)
        assert "    # the Skerryvane terns" in hit["text"]  # code keeps its indentation


def test_uploaded_repository_files_json_notebooks_and_mailboxes_are_stored_and_found_by_their_type(
    mesh: MeshProcess, tmp_path: Path
) -> None:
    """Each was refused: a Dockerfile and a LICENSE for having no suffix, a .gitignore too (and by the page, which
    took its name for a suffix), a package.json for holding no documents, a notebook and a mailbox as unsupported
    types. A mailbox's messages are a document each."""
    docker = b"FROM python:3.12-slim\n# the Quillon relay listens on port 7413\nEXPOSE 7413\n"
    licence = b"The Marrowick licence lets anyone copy the tide tables.\n"
    ignore = b"# Tessaly build output\n/tessaly-out/\n"
    package = json.dumps({"name": "ardlow-sundial", "description": "Ardlow sundials are calibrated at noon."}).encode()
    survey = notebook(
        [
            markdown("# Owl survey"),
            code("count_owls('Fennick wood')", result(**{"text/plain": "The Fennick wood owls number 212"})),
        ]
    )
    box = mbox_bytes(
        tmp_path,
        [
            message("Lock keeper", "The Drummond lock opens at six.\n"),
            message("Mill", "The Corran mill grinds oats.\n"),
        ],
    )
    files = {
        "Dockerfile": (docker, "application/octet-stream"),
        "LICENSE": (licence, "text/plain"),
        ".gitignore": (ignore, "text/plain"),
        "package.json": (package, "application/json"),
        "owls.ipynb": (survey, "application/x-ipynb+json"),
        "village.mbox": (box, "application/mbox"),
    }
    with uploaded(mesh, files, ids=[*list(files)[:-1], "village.mbox/1", "village.mbox/2"]):
        for question, doc_id, kind in (
            ("Which port does the Quillon relay listen on?", "Dockerfile", "dockerfile"),
            ("What does the Marrowick licence let anyone copy?", "LICENSE", "text"),
            ("Where does the Tessaly build output go?", ".gitignore", "config"),
            ("When are Ardlow sundials calibrated?", "package.json", "json"),
            ("How many owls are in Fennick wood?", "owls.ipynb", "notebook"),
            ("When does the Drummond lock open?", "village.mbox/1", "mbox"),
            ("What does the Corran mill grind?", "village.mbox/2", "mbox"),
        ):
            [hit] = search(mesh, question, top_k=1, filters={"file_type": kind})["hits"]
            assert hit["doc_id"] == doc_id, (question, hit)
        assert "The Corran mill grinds oats." in hit["text"] and hit["title"] == "Mill"


def test_uploaded_dockerfile_variants_json_with_comments_and_undeclared_8bit_mail_are_stored_and_found(
    mesh: MeshProcess,
) -> None:
    """Dockerfile.dev and api.Dockerfile were refused for their suffixes, a tsconfig.json with comments as invalid
    JSON, and a Latin-1 message without a charset was stored with U+FFFD in place of its accented letters."""
    dev = b"FROM python:3.12-slim\n# the Halloran relay listens on port 7431\nEXPOSE 7431\n"
    api = b"FROM node:22-alpine\n# the Tavistock gateway image runs as user 1001\nUSER 1001\n"
    tsconfig = b'{\n  // the Pelling build\n  "compilerOptions": {"outDir": "pelling-dist", /* emitted */},\n}\n'
    mail = (
        "Subject: Caf\xe9 Morwenna\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n"
        "The caf\xe9 Morwenna serves cr\xe8me br\xfbl\xe9e on Sundays.\n"
    ).encode("latin-1")
    files = {
        "Dockerfile.dev": (dev, "application/octet-stream"),
        "api.Dockerfile": (api, "application/octet-stream"),
        "tsconfig.json": (tsconfig, "application/json"),
        "morwenna.eml": (mail, "message/rfc822"),
    }
    with uploaded(mesh, files):
        for question, doc_id, kind in (
            ("Which port does the Halloran relay listen on?", "Dockerfile.dev", "dockerfile"),
            ("Which user does the Tavistock gateway image run as?", "api.Dockerfile", "dockerfile"),
            ("Where does the Pelling build emit to?", "tsconfig.json", "json"),
            ("What does the Morwenna cafe serve on Sundays?", "morwenna.eml", "eml"),
        ):
            [hit] = search(mesh, question, top_k=1, filters={"file_type": kind})["hits"]
            assert hit["doc_id"] == doc_id, (question, hit)
        assert hit["title"] == "Caf\u00e9 Morwenna" and "cr\u00e8me br\u00fbl\u00e9e" in hit["text"]


def test_every_service_exposes_prometheus_metrics(mesh: MeshProcess) -> None:
    search(mesh, "metrics check")
    gateway = httpx.get(f"{mesh.base_url}/metrics", timeout=5).text
    assert 'likeopt_http_requests_total{method="POST",route="/api/v1/search",status="200"}' in gateway
    retrieval = httpx.get(f"http://127.0.0.1:{mesh.port('retrieval_metrics')}/metrics", timeout=5).text
    assert 'likeopt_rpc_calls_total{code="OK",method="Search"}' in retrieval
    assert "process_resident_memory_bytes" in retrieval
    cache = httpx.get(f"http://127.0.0.1:{mesh.port('cache_metrics')}/metrics", timeout=5).text
    assert 'likeopt_cache_lookups_total{layer="l1",namespace="search"' in cache
    assert "likeopt_cache_l2_healthy 1.0" in cache


def test_dashboard_reports_traffic_memory_and_cache(mesh: MeshProcess) -> None:
    search(mesh, "dashboard check")
    board = httpx.get(f"{mesh.base_url}/api/v1/dashboard", timeout=5).json()
    assert set(board["services"]) == {"gateway", "retrieval_svc", "generation_svc", "cache_svc"}
    assert all(s["rss_mb"] > 0 for s in board["services"].values())
    assert board["requests"]["rps"] > 0 and board["requests"]["p95_ms"] > 0
    assert board["cache"]["l2_healthy"] is True and 0 <= board["cache"]["hit_ratio"] <= 1


def grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    """(flag, payload) frames of a gRPC-web body: 0x00 data, 0x80 trailers."""
    frames, offset = [], 0
    while offset < len(body):
        flag, length = body[offset], int.from_bytes(body[offset + 1 : offset + 5], "big")
        frames.append((flag, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    return frames


GRPC_WEB = "application/grpc-web+proto"


def grpc_web_search(base_url: str, request: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """RetrievalService.Search as a browser's gRPC-web client calls it: one data frame over HTTP/1.1."""
    return httpx.post(
        f"{base_url}/likeopt.v1.RetrievalService/Search",
        content=b"\x00" + len(request).to_bytes(4, "big") + request,
        headers={"content-type": GRPC_WEB, "x-grpc-web": "1", **(headers or {})},
        timeout=30,
    )


def grpc_web_refusal(reply: httpx.Response) -> tuple[str, str]:
    """grpc-status and grpc-message of a refusal, which a gRPC-web client reads only from a "trailers-only" reply:
    HTTP 200 with no body (it reports an HTTP 401 as an HTTP error, whatever grpc-status that carries)."""
    assert (reply.status_code, reply.headers["content-type"], reply.content) == (200, GRPC_WEB, b""), reply
    return reply.headers["grpc-status"], reply.headers["grpc-message"]


def test_grpc_web_search_through_envoy(mesh: MeshProcess) -> None:
    message = retrieval_pb2.SearchRequest(query=KNOWN_QUESTION, top_k=3).SerializeToString()
    reply = grpc_web_search(mesh.base_url, message, {"origin": "http://localhost:3000"})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
    frames = grpc_web_frames(reply.content)
    data = [payload for flag, payload in frames if flag == 0x00]
    trailers = b"".join(payload for flag, payload in frames if flag & 0x80).decode()
    assert "grpc-status:0" in trailers.replace(" ", "")
    response = retrieval_pb2.SearchResponse.FromString(data[0])
    assert response.hits[0].doc_id == KNOWN_DOC
