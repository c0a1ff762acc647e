"""Answers people can trust, through the whole mesh on the demo corpus: support marks, "not in your
documents", feedback stored and refused, citations in every path, likeopt eval --answers --from-feedback."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.integration.test_generation_mesh import chat, cited_docs
from tests.integration.test_mesh import parse_sse
from tests.support import ROOT, MeshProcess


def done_of(events: list[tuple[str, dict]]) -> dict:
    return events[-1][1]


def feedback_count(mesh: MeshProcess) -> int:
    listing = httpx.get(
        f"{mesh.base_url}/api/v1/feedback", headers={"Authorization": f"Bearer {mesh.api_key}"}, timeout=10
    )
    assert listing.status_code == 200, listing.text
    return int(listing.json()["up"]) + int(listing.json()["down"])


def exported_cases(mesh: MeshProcess, rating: str) -> list[dict]:
    """What ``likeopt eval --answers --from-feedback --rating RATING`` prints for this mesh, parsed."""
    exported = subprocess.run(
        [sys.executable, "-m", "likeopt.ops.cli", "eval", "--answers", "--from-feedback", "--rating", rating],
        cwd=ROOT,
        env=mesh.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def test_a_demo_answer_carries_support_and_supported_citations(mesh: MeshProcess) -> None:
    events = chat(mesh, "Which port does Envoy listen on?")
    done = done_of(events)
    assert not done["no_answer"] and done["support"] == 1.0 and len(done["answer_id"]) == 32
    citations = [data for kind, data in events if kind == "citation"]
    assert "docs/architecture.md" in cited_docs(events) and all(c["supported"] is True for c in citations)
    stored = httpx.get(f"{mesh.base_url}/api/v1/conversations/{done['conversation_id']}", timeout=10).json()
    kept = stored["turns"][-1]["citations"]
    assert [c.pop("withdrawn") for c in kept] == [False] * len(citations)  # every cited document still readable
    assert kept == citations  # the conversation keeps them, marks included


def test_an_off_topic_question_is_not_answered_from_unrelated_passages(mesh: MeshProcess) -> None:
    events = chat(mesh, "Who painted the Mona Lisa?")
    done = done_of(events)
    assert done["no_answer"] is True and done["support"] == 0.0
    assert not cited_docs(events) and events[0][1]["hits"] == []
    assert "not in your documents" in "".join(d["text"] for kind, d in events if kind == "delta")


def test_feedback_is_stored_only_when_valid(mesh: MeshProcess) -> None:
    url = f"{mesh.base_url}/api/v1/feedback"
    answer_id = done_of(chat(mesh, "What happens when Redis is down?"))["answer_id"]
    before = feedback_count(mesh)
    for body, status in (
        ({"answer_id": "0" * 32, "rating": "up"}, 404),
        ({"answer_id": answer_id, "rating": "meh"}, 422),
        ({"answer_id": answer_id, "rating": "down", "comment": "x" * 2001}, 422),
        ({"answer_id": answer_id, "rating": "down", "comment": 7}, 422),
        ({"rating": "down"}, 422),
    ):
        refused = httpx.post(url, json=body, timeout=10)
        assert refused.status_code == status, (body, refused.text)
        assert refused.json()["error"]["code"]
    too_big = httpx.post(url, content=json.dumps({"answer_id": answer_id, "rating": "up", "comment": "y" * 40_000}))
    assert too_big.status_code == 413
    assert feedback_count(mesh) == before  # nothing written on error
    stored = httpx.post(url, json={"answer_id": answer_id, "rating": "down", "comment": "misses the L1 cache"})
    assert stored.status_code == 200 and stored.json()["answer_id"] == answer_id
    assert feedback_count(mesh) == before + 1
    assert httpx.get(url, timeout=10).status_code == 401  # users' words need the key
    assert httpx.post(url, json={"answer_id": answer_id, "rating": "up", "comment": "second"}).status_code == 200
    key = {"Authorization": f"Bearer {mesh.api_key}"}
    [newest] = httpx.get(url, params={"limit": 1}, headers=key, timeout=10).json()["items"]
    page = {"limit": 1, "before_feedback_id": newest["feedback_id"]}
    [older] = httpx.get(url, params=page, headers=key, timeout=10).json()["items"]
    assert (newest["comment"], older["comment"]) == ("second", "misses the L1 cache")


def test_a_thumbs_down_comes_back_as_an_answer_eval_case(mesh: MeshProcess) -> None:
    answer_id = done_of(chat(mesh, "How is the cache keyed?"))["answer_id"]
    body = {"answer_id": answer_id, "rating": "down", "comment": "regression case"}
    assert httpx.post(f"{mesh.base_url}/api/v1/feedback", json=body, timeout=10).status_code == 200
    cases = exported_cases(mesh, "down")
    case = next(c for c in cases if c["answer_id"] == answer_id)
    assert case["question"] == "How is the cache keyed?" and case["comment"] == "regression case"
    assert case["cited"] and case["answer"]


def resumed(mesh: MeshProcess, question: dict, last_event_id: int) -> tuple[list[int], list[tuple[str, dict]]]:
    """A chat sent as a reconnecting EventSource sends it: the ids of the events that came, and the events."""
    with httpx.stream(
        "POST", f"{mesh.base_url}/api/v1/chat", json=question, headers={"Last-Event-ID": str(last_event_id)}, timeout=60
    ) as reply:
        body = "".join(reply.iter_text())
    return [int(line[3:]) for line in body.splitlines() if line.startswith("id:")], parse_sse(body)


def test_a_reconnect_with_last_event_id_gets_the_rest_with_its_citations(mesh: MeshProcess) -> None:
    question = {"query": "What does the gateway do?"}
    first = chat(mesh, question["query"])
    ids, rest = resumed(mesh, question, last_event_id=2)
    assert ids[0] == 3 and len(rest) == len(first) - 2
    assert rest == [*first[2:-1], rest[-1]]  # the same events (a cached replay), then its own done
    assert [c for kind, c in first if kind == "citation"] == rest[-1][1]["citations"]


def test_a_last_event_id_sent_with_another_question_gets_the_whole_new_answer(mesh: MeshProcess) -> None:
    """Only the question asked again is the answer resumed; another one must not lose its first events."""
    conversation_id = done_of(chat(mesh, "What does the gateway do?"))["conversation_id"]
    question = {"query": "How is the cache keyed?", "conversation_id": conversation_id}
    ids, events = resumed(mesh, question, last_event_id=3)
    assert ids[0] == 1 and events[0][0] == "retrieval" and events[-1][0] == "done"
    assert events == [*chat(mesh, **question)[:-1], events[-1]]  # then asked again: replayed whole
