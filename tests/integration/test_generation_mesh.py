"""Answers through the whole mesh: a two-turn conversation on the demo corpus, and cached replays."""

from __future__ import annotations

import httpx

from tests.integration.test_mesh import parse_sse
from tests.support import MeshProcess


def chat(mesh: MeshProcess, query: str, **extra: object) -> list[tuple[str, dict]]:
    with httpx.stream("POST", f"{mesh.base_url}/api/v1/chat", json={"query": query, **extra}, timeout=120) as reply:
        assert reply.status_code == 200
        events = parse_sse("".join(reply.iter_text()))
    assert events[-1][0] == "done", events[-1]
    return events


def cited_docs(events: list[tuple[str, dict]]) -> set[str]:
    return {data["doc_id"] for kind, data in events if kind == "citation"}


def test_a_follow_up_is_answered_from_the_earlier_turn(mesh: MeshProcess) -> None:
    first = chat(mesh, "How does Like-Opt keep answers in Redis?")
    conversation_id = first[-1][1]["conversation_id"]
    assert "docs/caching.md" in cited_docs(first)

    follow_up = chat(mesh, "and what about its cost?", conversation_id=conversation_id)
    assert follow_up[-1][1]["conversation_id"] == conversation_id
    # Alone, "and what about its cost?" names no subject; with the earlier turn's, most passages are from the
    # document that turn cited (the first may be another about Redis: docs/operations.md's backups say how much
    # losing Redis costs).
    found = [hit["doc_id"] for hit in follow_up[0][1]["hits"]]
    assert found.count("docs/caching.md") > len(found) / 2, found
    assert "docs/caching.md" in cited_docs(follow_up)

    stored = httpx.get(f"{mesh.base_url}/api/v1/conversations/{conversation_id}", timeout=10)
    assert stored.status_code == 200, stored.text
    turns = stored.json()["turns"]
    assert [t["question"] for t in turns] == ["How does Like-Opt keep answers in Redis?", "and what about its cost?"]


def test_a_repeated_question_replays_the_same_answer_from_the_cache(mesh: MeshProcess) -> None:
    question = "What does the gateway hold, and what does it translate?"
    first = chat(mesh, question)
    second = chat(mesh, "  what does the GATEWAY hold, and what does it translate? ")
    assert first[-1][1]["cached"] is False and second[-1][1]["cached"] is True
    assert [e for e in first if e[0] in ("delta", "citation")] == [e for e in second if e[0] in ("delta", "citation")]
    assert second[-1][1]["conversation_id"] != first[-1][1]["conversation_id"]


def test_a_client_that_asks_for_json_gets_the_streamed_answer_in_one_reply(mesh: MeshProcess) -> None:
    question = "Which port does Envoy listen on?"
    streamed = chat(mesh, question)
    reply = httpx.post(
        f"{mesh.base_url}/api/v1/chat", json={"query": question}, headers={"Accept": "application/json"}, timeout=120
    )
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json", reply.text
    body = reply.json()
    assert body["answer"] == "".join(data["text"] for kind, data in streamed if kind == "delta")
    assert body["citations"] == [data for kind, data in streamed if kind == "citation"]
    assert [h["chunk_id"] for h in body["hits"]] == [h["chunk_id"] for h in streamed[0][1]["hits"]]
    assert body["cached"] is True and body["answer_id"] and body["trace_id"]

    follow_up = httpx.post(
        f"{mesh.base_url}/api/v1/chat",
        json={"query": "and its admin port?", "conversation_id": body["conversation_id"]},
        headers={"Accept": "application/json"},
        timeout=120,
    )
    assert follow_up.json()["conversation_id"] == body["conversation_id"]


def test_an_unknown_conversation_is_404(mesh: MeshProcess) -> None:
    reply = httpx.get(f"{mesh.base_url}/api/v1/conversations/no-such-conversation", timeout=10)
    assert reply.status_code == 404


def test_a_deleted_conversation_is_forgotten_and_its_id_starts_afresh(mesh: MeshProcess) -> None:
    first = chat(mesh, "How does Like-Opt keep answers in Redis?")
    conversation_id = first[-1][1]["conversation_id"]
    url = f"{mesh.base_url}/api/v1/conversations/{conversation_id}"

    deleted = httpx.delete(url, timeout=10)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"conversation_id": conversation_id, "deleted": True}
    assert httpx.get(url, timeout=10).status_code == 404
    again = httpx.delete(url, timeout=10)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NOT_FOUND"

    chat(mesh, "and what about its cost?", conversation_id=conversation_id)
    assert [t["question"] for t in httpx.get(url, timeout=10).json()["turns"]] == ["and what about its cost?"]


def test_deleting_a_malformed_conversation_id_is_a_json_422(mesh: MeshProcess) -> None:
    reply = httpx.delete(f"{mesh.base_url}/api/v1/conversations/not%20an%20id", timeout=10)
    assert reply.status_code == 422 and "error" in reply.json()


def test_after_a_delete_the_same_question_no_longer_cites_the_document(mesh: MeshProcess) -> None:
    auth = {"Authorization": f"Bearer {mesh.api_key}"}
    note = b"# Otters\n\nThe Quillbrook otter sanctuary feeds its otters smoked trout at dusk."
    question = "What does the Quillbrook otter sanctuary feed its otters?"
    upload = httpx.post(
        f"{mesh.base_url}/api/v1/documents",
        files=[("files", ("otters.md", note, "text/markdown"))],
        headers=auth,
        timeout=60,
    )
    assert upload.status_code == 200 and upload.json()["upserted"] == 1
    first = chat(mesh, question)
    assert "otters.md" in cited_docs(first)
    assert httpx.delete(f"{mesh.base_url}/api/v1/documents/otters.md", headers=auth, timeout=30).status_code == 200
    after = chat(mesh, question)
    assert after[-1][1]["cached"] is False
    assert "otters.md" not in cited_docs(after)
    assert "otters.md" not in {h["doc_id"] for h in after[0][1]["hits"]}
