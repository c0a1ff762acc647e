"""The relevance floor on the milvus backend with tokens required: each new reader's background is measured as
that reader, through the access filter of what it may read, and its very first question is judged by it. A
tenant's notes make that filter pass a few hundred chunks, which Milvus scores one search at a time by reading
their vectors: searched one by one, the 30 probes outlasted the first question's wait, and an off-topic question
was answered with citations where the embedded engine refused it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from generation_svc.relevance import NOT_COVERED
from tests.conftest import DEMO_CORPUS
from tests.identity import IdentityProvider, bearer
from tests.integration.test_mesh import KNOWN_QUESTION, parse_sse
from tests.support import MeshProcess, MilvusServer, mesh_environment

OFF_TOPIC = "Who won the 1998 football world cup?"
UNJUDGED = "likeopt_relevance_unjudged_total"
NOTES = 400


def note(n: int) -> dict:
    """One of the tenant's ledger notes, none about football."""
    text = (
        f"Ledger note {n}: batch {n % 37} of part {n % 101} left warehouse {n % 11} on day {n % 28}. "
        f"The invoice for batch {n % 37} was reconciled against purchase order {n * 7 % 997}."
    )
    return {"id": f"acme-note-{n}", "title": f"Ledger note {n}", "text": text, "access": {"tenant": "acme"}}


@pytest.fixture(scope="module")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, milvus: MilvusServer, idp: IdentityProvider
) -> Iterator[MeshProcess]:
    """The demo corpus, readable by everyone, and the tenant's notes."""
    settings = idp.settings(LIKEOPT_RETRIEVAL_BACKEND="milvus", LIKEOPT_MILVUS_URI=milvus.uri)
    env = mesh_environment(tmp_path_factory.mktemp("relevance-mesh"), **settings)
    mesh = MeshProcess(env=env, args=["--ingest", str(DEMO_CORPUS)])
    with mesh.running():
        notes = [note(n) for n in range(NOTES)]
        reply = httpx.post(
            f"{mesh.base_url}/api/v1/documents", json={"documents": notes}, headers=bearer(mesh.api_key), timeout=600
        )
        assert reply.status_code == 200 and reply.json()["upserted"] == NOTES, reply.text
        yield mesh


def ask(mesh: MeshProcess, token: str, question: str) -> tuple[str, list[dict]]:
    """The answer and the citations of a chat."""
    reply = httpx.post(f"{mesh.base_url}/api/v1/chat", json={"query": question}, headers=bearer(token), timeout=120)
    assert reply.status_code == 200, reply.text
    events = parse_sse(reply.text)
    answer = "".join(d["text"] for kind, d in events if kind == "delta")
    return answer, [d for kind, d in events if kind == "citation"]


def unjudged(mesh: MeshProcess) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{mesh.port('generation_metrics')}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(UNJUDGED + " "))


def test_a_new_reader_s_off_topic_first_question_is_refused(mesh: MeshProcess, idp: IdentityProvider) -> None:
    """Refused by the floor, not merely left without a quote by the extractive backend (which finds no sentence
    sharing the question's words, and says so in other words)."""
    for reader in ("first-reader", "second-reader"):
        answer, citations = ask(mesh, idp.token(reader, "acme", ["staff"]), OFF_TOPIC)
        assert answer == NOT_COVERED and not citations, reader
    answer, citations = ask(mesh, idp.token("third-reader", "acme", ["staff"]), KNOWN_QUESTION)
    assert answer != NOT_COVERED and citations
    assert unjudged(mesh) == 0
