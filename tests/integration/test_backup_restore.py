"""An operator's backup and restore on a real mesh: ``likeopt backup`` while it serves, documents written after it,
then ``likeopt restore`` and a mesh started on it beside the Redis that still holds those later writes' cached
searches, answers and conversations. Nothing the restored store lacks may be served from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.test_mesh import parse_sse
from tests.support import ROOT, MeshProcess, ValkeyServer, mesh_environment

KEPT = {"id": "kept.md", "title": "Kept", "text": "The lighthouse keeper logs every passing ship by lantern."}
LATER = {"id": "later.md", "title": "Later", "text": "Zorbluxite crystals hum at dawn in the Quellmar caves."}
LATER_QUESTION = "What do zorbluxite crystals do in the Quellmar caves?"


def likeopt(env: dict[str, str], *args: str) -> str:
    """Run a likeopt command as an operator would; its output, after it succeeded."""
    done = subprocess.run([sys.executable, "-m", "likeopt.ops.cli", *args], cwd=ROOT, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def write(mesh: MeshProcess, document: dict[str, str]) -> int:
    headers = {"Authorization": f"Bearer {mesh.api_key}"}
    reply = httpx.post(f"{mesh.base_url}/api/v1/documents", json={"documents": [document]}, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["index_version"])


def search_ids(mesh: MeshProcess, query: str) -> set[str]:
    reply = httpx.post(f"{mesh.base_url}/api/v1/search", json={"query": query, "top_k": 5}, timeout=30)
    assert reply.status_code == 200, reply.text
    return {hit["doc_id"] for hit in reply.json()["hits"]}


def chat(mesh: MeshProcess, body: dict[str, str]) -> list[tuple[str, dict]]:
    return parse_sse(httpx.post(f"{mesh.base_url}/api/v1/chat", json=body, timeout=90).text)


def cited(events: list[tuple[str, dict]]) -> set[str]:
    return {data["doc_id"] for name, data in events if name == "citation"}


def test_a_restored_store_beside_a_kept_redis_serves_nothing_it_lacks(tmp_path: Path, valkey: ValkeyServer) -> None:
    env = mesh_environment(tmp_path, LIKEOPT_REDIS_URL=valkey.url, LIKEOPT_GENERATION_BACKEND="extractive")
    with MeshProcess(env=env, args=[]).running() as mesh:
        backed_up = write(mesh, KEPT)
        report = likeopt(env, "backup", str(tmp_path / "backup"))
        assert f"1 documents, 1 chunks, index version {backed_up}" in report
        write(mesh, LATER)
        for _ in range(2):  # the second from the caches
            assert "later.md" in search_ids(mesh, "zorbluxite crystals")
            answer = chat(mesh, {"query": LATER_QUESTION})
            assert "later.md" in cited(answer)
        conversation = next(data for name, data in answer if name == "done")["conversation_id"]
    likeopt(env, "restore", str(tmp_path / "backup"))
    with MeshProcess(env=env, args=[]).running() as mesh:
        index = httpx.get(f"{mesh.base_url}/api/v1/index", timeout=30).json()
        assert (index["documents"], index["index_version"]) == (1, backed_up)
        assert "later.md" not in search_ids(mesh, "zorbluxite crystals")
        assert "kept.md" in search_ids(mesh, "lighthouse keeper")
        assert "later.md" not in cited(chat(mesh, {"query": LATER_QUESTION}))
        follow_up = chat(mesh, {"query": LATER_QUESTION, "conversation_id": conversation})
        assert "later.md" not in cited(follow_up)
        turns = httpx.get(f"{mesh.base_url}/api/v1/conversations/{conversation}", timeout=30)
        assert turns.status_code == 200 and LATER_QUESTION in turns.text, turns.text
        assert "Zorbluxite" not in turns.text, turns.text  # the answer quoted a passage the store no longer holds
