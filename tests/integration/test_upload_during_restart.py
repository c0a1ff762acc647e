"""A rolling restart of retrieval_svc on the Milvus backend while an upload goes through Envoy and the gateway:
SIGTERM to retrieval_svc alone (``likeopt up`` starts it again) between two batches of one ``POST
/api/v1/documents``. The upload is answered 200 with everything stored, or 503 saying how many of its documents
were stored (never a 500 or a hang); what Milvus holds is exactly that, each document whole; sending the stored
part again replaces it rather than duplicating it.

``tests/integration/test_stop_during_ingest.py`` stops the whole mesh under ``likeopt ingest`` on the embedded
store; nothing else stopped retrieval_svc in the middle of a Milvus write, nor checked what the gateway says then.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retrieval_svc.ingestion import UPSERT_BATCH_DOCS
from tests.integration.test_launcher import process_of
from tests.support import MeshProcess, MilvusServer, mesh_environment

HANG_S = 600.0
"""A bound only a hang exceeds (no timing is asserted): the first batch stored, the upload's answer, the restart."""
SMALL = [{"id": f"small/{n:03d}", "title": f"Small {n}", "text": f"brief note {n} tinyword{n}"} for n in range(300)]
"""More than one batch's worth of one-chunk documents: the first batch is stored in moments."""
LARGE_WORDS = 1200
"""Words in each large document: about twenty chunks, so their batch is still being embedded when the stop comes."""


def large_documents(count: int) -> list[dict[str, str]]:
    """Documents of many chunks, each ending with a word of its own (closingN) in its last chunk."""
    words = [f"w{n % 997}x{n % 13}" for n in range(LARGE_WORDS)]
    return [
        {"id": f"large/{n:02d}", "title": f"Large {n}", "text": " ".join(words[n:] + words[:n]) + f" closing{n}"}
        for n in range(count)
    ]


@pytest.fixture
def milvus_mesh(tmp_path: Path, milvus: MilvusServer) -> Iterator[MeshProcess]:
    env = mesh_environment(tmp_path, LIKEOPT_RETRIEVAL_BACKEND="milvus", LIKEOPT_MILVUS_URI=milvus.uri)
    with MeshProcess(env=env, args=[]).running() as mesh:
        yield mesh


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    """Until condition() holds; fails only past HANG_S."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def ready(mesh: MeshProcess) -> bool:
    try:
        return httpx.get(f"{mesh.base_url}/api/v1/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def stored_batches(mesh: MeshProcess) -> int:
    return (Path(mesh.env["LIKEOPT_RUN_DIR"]) / "logs" / "retrieval_svc.log").read_text().count('"msg": "upserted"')


def test_an_upload_across_a_restart_of_retrieval_svc_is_stored_whole_or_told_what_was(
    milvus_mesh: MeshProcess,
) -> None:
    documents = SMALL + large_documents(10)
    headers = {"Authorization": f"Bearer {milvus_mesh.api_key}"}
    client = httpx.Client(base_url=milvus_mesh.base_url, headers=headers, timeout=HANG_S)
    answers: list[httpx.Response] = []
    upload = threading.Thread(
        target=lambda: answers.append(client.post("/api/v1/documents", json={"documents": documents}))
    )
    upload.start()
    wait_for(lambda: stored_batches(milvus_mesh) > 0 or not upload.is_alive(), "no batch was stored")
    assert upload.is_alive(), f"the upload ended before the restart: {answers[0].text}"
    os.kill(process_of(milvus_mesh, "retrieval_svc"), signal.SIGTERM)
    upload.join(HANG_S)
    assert not upload.is_alive(), "the upload hung across the restart"
    answer = answers[0]
    assert answer.status_code in (200, 503), answer.text
    if answer.status_code == 200:
        told = len(documents)
    else:
        said = answer.json()["error"]
        found = re.search(r"(\d+) documents of this call were stored", said["message"])
        assert said["code"] == "UNAVAILABLE" and found is not None, said
        told = int(found[1])
    assert told >= UPSERT_BATCH_DOCS, answer.text  # the first batch was acknowledged before the stop

    wait_for(lambda: any("retrieval_svc exited with code 0" in x for x in milvus_mesh.output), "no clean exit")
    wait_for(lambda: ready(milvus_mesh), "the restarted retrieval_svc never became ready")
    listed = client.get("/api/v1/documents", params={"limit": 1000}).json()["documents"]
    index = client.get("/api/v1/index").json()
    assert index["documents"] == len(listed) == told, (index, answer.text)
    assert index["chunks"] == sum(d["chunks"] for d in listed)
    assert [d["id"] for d in listed] == sorted(d["id"] for d in documents[:told])
    for doc in [d for d in listed if d["id"].startswith("large/")]:  # each stored whole: its last chunk is found
        hits = client.post("/api/v1/search", json={"query": f"closing{int(doc['id'][6:])}", "mode": "bm25"})
        assert [h["doc_id"] for h in hits.json()["hits"][:1]] == [doc["id"]], hits.text

    again = client.post("/api/v1/documents", json={"documents": SMALL[:UPSERT_BATCH_DOCS]})
    assert again.status_code == 200 and again.json()["upserted"] == UPSERT_BATCH_DOCS, again.text
    assert client.get("/api/v1/index").json()["documents"] == told  # replaced, not duplicated
    client.close()
