"""The whole mesh on the milvus backend: ``LIKEOPT_RETRIEVAL_BACKEND=milvus likeopt up --replicas retrieval=2``
against a real ``milvus-lite server``, the demo corpus ingested. Every replica reads and writes; a write through
one is seen through the other at once; Milvus going away costs UNAVAILABLE, never a wrong answer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.upstreams import retrieval_waits
from likeopt.ops.healthcheck import grpc_serving
from likeopt.ops.processes import CHILD_ENV
from likeopt.runtime.addresses import host_port
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.conftest import DEMO_CORPUS
from tests.integration.test_mesh import KNOWN_DOC, KNOWN_QUESTION, parse_sse
from tests.integration.test_replicas import children_running
from tests.support import ROOT, MeshProcess, MilvusServer, distinct_free_ports, mesh_environment


@pytest.fixture(scope="module")
def milvus_mesh(tmp_path_factory: pytest.TempPathFactory, milvus: MilvusServer) -> Iterator[MeshProcess]:
    work = tmp_path_factory.mktemp("milvus-mesh-run")
    env = mesh_environment(work, LIKEOPT_RETRIEVAL_BACKEND="milvus", LIKEOPT_MILVUS_URI=milvus.uri)
    mesh = MeshProcess(env=env, args=["--replicas", "retrieval=2", "--ingest", str(DEMO_CORPUS)])
    with mesh.running():
        yield mesh


def replica_stubs(mesh: MeshProcess) -> list[tuple[grpc.Channel, retrieval_pb2_grpc.RetrievalServiceStub]]:
    """A channel and stub straight to each retrieval_svc replica, bypassing Envoy."""
    found = []
    for env in children_running(mesh, "retrieval_svc"):
        assert env.get("LIKEOPT_RETRIEVAL_READ_ONLY", "0") == "0", "a Milvus replica must take writes"
        channel = grpc.insecure_channel(host_port(env["LIKEOPT_HOST"], env["LIKEOPT_RETRIEVAL_PORT"]))
        found.append((channel, retrieval_pb2_grpc.RetrievalServiceStub(channel)))
    assert len(found) == 2
    return found


def doc_ids(stub: retrieval_pb2_grpc.RetrievalServiceStub, query: str, **extra: object) -> list[str]:
    reply = stub.Search(retrieval_pb2.SearchRequest(query=query, top_k=10, **extra), timeout=30)  # type: ignore[arg-type]
    return [hit.doc_id for hit in reply.hits]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_searches_through_envoy_find_the_known_document(milvus_mesh: MeshProcess, mode: str) -> None:
    reply = httpx.post(
        f"{milvus_mesh.base_url}/api/v1/search", json={"query": KNOWN_QUESTION, "top_k": 5, "mode": mode}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert KNOWN_DOC in [hit["doc_id"] for hit in reply.json()["hits"]]


def test_a_chat_through_envoy_cites_ingested_documents(milvus_mesh: MeshProcess) -> None:
    reply = httpx.post(f"{milvus_mesh.base_url}/api/v1/chat", json={"query": "What does cache_svc do?"}, timeout=60)
    assert reply.status_code == 200
    events = parse_sse(reply.text)
    assert events[-1][0] == "done"
    citations = [data for kind, data in events if kind == "citation"]
    assert citations and all(c["doc_id"].endswith(".md") for c in citations)


def test_a_delete_through_one_replica_is_never_undone_by_the_other(milvus_mesh: MeshProcess) -> None:
    (first_channel, first), (second_channel, second) = replica_stubs(milvus_mesh)
    with first_channel, second_channel:
        doc = retrieval_pb2.Document(id="okapi.txt", title="Okapi", text="The okapi is a giraffid of the Congo.")
        first.UpsertDocuments(iter([doc]), timeout=60)
        assert doc_ids(second, "okapi giraffid Congo")[0] == "okapi.txt"  # second's caches now hold it
        assert doc_ids(second, "okapi giraffid Congo")[0] == "okapi.txt"
        second.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["okapi.txt"]), timeout=60)
        assert "okapi.txt" not in doc_ids(first, "okapi giraffid Congo")
        assert "okapi.txt" not in doc_ids(second, "okapi giraffid Congo")


def test_the_gateway_hears_of_writes_from_either_replica(milvus_mesh: MeshProcess) -> None:
    (first_channel, first), (second_channel, _) = replica_stubs(milvus_mesh)
    with first_channel, second_channel, httpx.Client(base_url=milvus_mesh.base_url, timeout=30) as client:
        before = client.get("/api/v1/index").json()["index_version"]
        doc = retrieval_pb2.Document(id="tapir.txt", title="Tapir", text="Tapirs are odd-toed ungulates.")
        written = first.UpsertDocuments(iter([doc]), timeout=60).index_version
        assert written > before
        deadline = time.monotonic() + 30
        hits: list[str] = []
        while time.monotonic() < deadline:
            body = client.post("/api/v1/search", json={"query": "tapirs odd-toed ungulates"}).json()
            hits = [hit["doc_id"] for hit in body["hits"]]
            if "tapir.txt" in hits and body["index_version"] >= written:
                break
            time.sleep(0.2)
        assert "tapir.txt" in hits
        first.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["tapir.txt"]), timeout=60)


def test_milvus_away_means_unavailable_then_service_resumes(milvus_mesh: MeshProcess, milvus: MilvusServer) -> None:
    (channel, stub), (other_channel, _) = replica_stubs(milvus_mesh)
    with channel, other_channel:
        milvus.send(signal.SIGSTOP)  # accepts connections, answers nothing: the harder outage
        try:
            with pytest.raises(grpc.RpcError) as refused:
                stub.Search(retrieval_pb2.SearchRequest(query="a question nobody asked before 7"), timeout=60)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            reply = httpx.post(
                f"{milvus_mesh.base_url}/api/v1/search", json={"query": "another new question 8"}, timeout=60
            )
            assert reply.status_code == 503 and "error" in reply.json()
        finally:
            milvus.send(signal.SIGCONT)
        deadline = time.monotonic() + 60
        while True:
            try:
                assert doc_ids(stub, KNOWN_QUESTION)[0] == KNOWN_DOC
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def test_retrieval_is_not_serving_while_milvus_is_unreachable_at_start_or_later(tmp_path: Path) -> None:
    """Health follows Milvus mid-run too (readyz and Envoy see it), and the process lives on through it; its
    metrics say the backend is the cause (likeopt_retrieval_backend_reachable), as cache_svc's say Redis is."""
    server = MilvusServer(tmp_path / "milvus")  # its port chosen, not started yet
    port, metrics = distinct_free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    env.update(
        CHILD_ENV,
        LIKEOPT_HOST="127.0.0.1",
        LIKEOPT_RETRIEVAL_PORT=str(port),
        LIKEOPT_RETRIEVAL_METRICS_PORT=str(metrics),
        LIKEOPT_CACHE_ENABLED="0",
        LIKEOPT_DATA_DIR=str(tmp_path / "data"),
        LIKEOPT_RETRIEVAL_BACKEND="milvus",
        LIKEOPT_MILVUS_URI=server.uri,
    )
    log_path = tmp_path / "retrieval_svc.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "retrieval_svc"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while f"LIKEOPT_MILVUS_URI={server.uri}" not in log_path.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        assert not grpc_serving(f"127.0.0.1:{port}")
        assert backend_reachable(metrics) == 0
        loading = index_status(f"127.0.0.1:{port}")  # what `likeopt ingest` says it waits for
        assert not loading.ready and f"LIKEOPT_MILVUS_URI={server.uri} is unavailable" in loading.waiting_for
        assert asyncio.run(readyz_reason(f"127.0.0.1:{port}")) == "waiting for its retrieval backend"
        server.start()
        try:
            for serving, change in ((True, server.stop), (False, server.start), (True, None)):
                while grpc_serving(f"127.0.0.1:{port}") != serving:
                    assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
                    time.sleep(0.2)
                assert backend_reachable(metrics) == float(serving)
                if change is not None:
                    change()
        finally:
            process.terminate()
            assert process.wait(timeout=60) == 0
            server.stop()
    finally:
        process.kill()


def index_status(address: str) -> retrieval_pb2.IndexStatus:
    with grpc.insecure_channel(address) as channel:
        return retrieval_pb2_grpc.RetrievalServiceStub(channel).GetIndexStatus(
            retrieval_pb2.GetIndexStatusRequest(), timeout=10
        )


async def readyz_reason(address: str) -> str:
    """What the gateway's readyz says of the replica at address (gateway/upstreams.py's retrieval_waits)."""
    async with grpc.aio.insecure_channel(address) as channel:
        return await retrieval_waits(channel)


def backend_reachable(metrics_port: int) -> float:
    """retrieval_svc's likeopt_retrieval_backend_reachable, as Prometheus scrapes it."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "likeopt_retrieval_backend_reachable":
            return family.samples[0].value
    raise AssertionError("retrieval_svc exports no likeopt_retrieval_backend_reachable")
