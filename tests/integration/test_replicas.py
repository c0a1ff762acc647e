"""``likeopt up --replicas``: Envoy and the gateway balance over replicas; readers follow the writer; a killed
replica loses no search."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest

from likeopt.runtime.addresses import host_port
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.conftest import DEMO_CORPUS
from tests.support import MeshProcess, descendants, mesh_environment


def children_running(mesh: MeshProcess, module: str) -> list[dict[str, str]]:
    """The environment of every live child running ``python -m module``."""
    assert mesh.process is not None
    found = []
    for pid in descendants(mesh.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:3] == [b"-m", module.encode()]:
            env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
            found.append({**env, "PID": str(pid)})
    return found


def rpc_count(env: dict[str, str], service: str, method: str) -> float:
    """Calls of method answered OK by the replica whose environment is env."""
    metrics = host_port(env["LIKEOPT_HOST"], env[f"LIKEOPT_{service.upper()}_METRICS_PORT"])
    text = httpx.get(f"http://{metrics}/metrics", timeout=5).text
    prefix = f'likeopt_rpc_calls_total{{code="OK",method="{method}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshProcess]:
    work = tmp_path_factory.mktemp("replicas")
    mesh = MeshProcess(
        env=mesh_environment(work), args=["--replicas", "retrieval=2,generation=2", "--ingest", str(DEMO_CORPUS)]
    )
    with mesh.running():
        yield mesh


def assert_every_replica_serves(mesh: MeshProcess) -> None:
    """Searches through Envoy and chats through the gateway reach both replicas of each service."""
    retrieval = children_running(mesh, "retrieval_svc")
    generation = children_running(mesh, "generation_svc")
    assert len(retrieval) == len(generation) == 2
    with grpc.insecure_channel(mesh.address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for n in range(30):
            stub.Search(retrieval_pb2.SearchRequest(query=f"envoy port {n}", no_cache=True), timeout=30)
    with httpx.Client(base_url=mesh.base_url, timeout=60) as client:
        for n in range(8):
            assert client.post("/api/v1/chat", json={"query": f"what does the gateway do {n}"}).status_code == 200
    assert all(rpc_count(r, "retrieval", "Search") > 0 for r in retrieval)
    assert all(rpc_count(g, "generation", "Answer") > 0 for g in generation)


def test_both_replicas_of_each_service_serve(replicated: MeshProcess) -> None:
    assert_every_replica_serves(replicated)


def test_a_mesh_on_ipv6_loopback_balances_over_its_replicas_too(tmp_path: Path) -> None:
    mesh = MeshProcess(
        env=mesh_environment(tmp_path, LIKEOPT_HOST="::1"),
        args=["--replicas", "retrieval=2,generation=2", "--ingest", str(DEMO_CORPUS)],
    )
    with mesh.running():
        assert any(f"Like-Opt is ready: http://[::1]:{mesh.port('envoy')}/" in line for line in mesh.output)
        assert_every_replica_serves(mesh)


def test_a_document_ingested_through_the_writer_is_searchable_on_every_replica(replicated: MeshProcess) -> None:
    note = b"# Harbour\n\nThe Zyzzlemouth harbour master raises the storm flag at noon."
    reply = httpx.post(
        f"{replicated.base_url}/api/v1/documents",
        files=[("files", ("harbour.md", note, "text/markdown"))],
        headers={"Authorization": f"Bearer {replicated.api_key}"},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.json()["upserted"] == 1
    for replica in children_running(replicated, "retrieval_svc"):
        with grpc.insecure_channel(f"127.0.0.1:{replica['LIKEOPT_RETRIEVAL_PORT']}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            deadline = time.monotonic() + 20
            while True:
                hits = stub.Search(
                    retrieval_pb2.SearchRequest(query="Zyzzlemouth storm flag", top_k=1, no_cache=True), timeout=10
                ).hits
                if hits and hits[0].doc_id == "harbour.md":
                    break
                assert time.monotonic() < deadline, f"replica on {replica['LIKEOPT_RETRIEVAL_PORT']} never saw it"
                time.sleep(0.2)


def reader_searches(mesh: MeshProcess) -> float:
    """Searches the read-only retrieval replica answered so far."""
    replica = next(r for r in children_running(mesh, "retrieval_svc") if r.get("LIKEOPT_RETRIEVAL_READ_ONLY") == "1")
    return rpc_count(replica, "retrieval", "Search")


def test_a_write_through_the_gateway_is_what_the_next_search_and_chat_see_whichever_replica_answers(
    replicated: MeshProcess,
) -> None:
    key = {"Authorization": f"Bearer {replicated.api_key}"}
    before = reader_searches(replicated)
    with httpx.Client(base_url=replicated.base_url, timeout=60) as client:
        for n in range(6):  # round robin: some of these searches reach the replica straight after the write
            doc_id, word = f"ryw-{n}.md", f"Quillbarrow{n}"
            text = f"The {word} harbour master raises the storm flag at noon."
            written = client.post("/api/v1/documents", json={"documents": [{"id": doc_id, "text": text}]}, headers=key)
            assert written.status_code == 200, written.text
            found = client.post("/api/v1/search", json={"query": f"{word} storm flag"}).json()
            assert found["index_version"] >= written.json()["index_version"]
            assert doc_id in [hit["doc_id"] for hit in found["hits"]], f"search {n} missed the write"
            asked = {"query": f"When does the {word} harbour master raise the storm flag?"}
            chat = client.post("/api/v1/chat", json=asked, headers={"Accept": "application/json"}).json()
            assert doc_id in [hit["doc_id"] for hit in chat["hits"]], f"chat {n} missed the write"
            deleted = client.delete(f"/api/v1/documents/{doc_id}", headers=key)
            assert deleted.status_code == 200, deleted.text
            gone = client.post("/api/v1/search", json={"query": f"{word} storm flag"}).json()
            assert doc_id not in [hit["doc_id"] for hit in gone["hits"]], f"search {n} found the deleted document"
    assert reader_searches(replicated) > before


def test_a_grpc_client_passing_its_writes_version_reads_it_through_envoy(replicated: MeshProcess) -> None:
    key = (("authorization", f"Bearer {replicated.api_key}"),)
    before = reader_searches(replicated)
    with grpc.insecure_channel(replicated.address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for n in range(6):
            doc_id, word = f"grpc-ryw-{n}", f"Marrowvale{n}"
            doc = retrieval_pb2.Document(id=doc_id, text=f"The {word} ferry leaves at dawn.")
            written = stub.UpsertDocuments(iter([doc]), timeout=60, metadata=key)
            asked = retrieval_pb2.SearchRequest(query=f"{word} ferry", min_index_version=written.index_version)
            assert doc_id in [hit.doc_id for hit in stub.Search(asked, timeout=30).hits], f"search {n} missed it"
            deleted = stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=[doc_id]), timeout=60, metadata=key)
            asked.min_index_version = deleted.index_version
            assert doc_id not in [hit.doc_id for hit in stub.Search(asked, timeout=30).hits], f"search {n} found it"
    assert reader_searches(replicated) > before


def reader_address(mesh: MeshProcess) -> str:
    """host:port of the read-only retrieval replica, which follows the writer's store."""
    replica = next(r for r in children_running(mesh, "retrieval_svc") if r.get("LIKEOPT_RETRIEVAL_READ_ONLY") == "1")
    return f"127.0.0.1:{replica['LIKEOPT_RETRIEVAL_PORT']}"


def test_a_search_asking_for_a_version_no_store_holds_leaves_read_your_writes_on_for_the_next(
    replicated: MeshProcess,
) -> None:
    """A caller's impossible min_index_version (another store's, say) is answered from what the store holds, and
    the next caller's write, not followed yet, is still caught up with before its search is answered."""
    key = (("authorization", f"Bearer {replicated.api_key}"),)
    with (
        grpc.insecure_channel(replicated.address) as envoy,
        grpc.insecure_channel(reader_address(replicated)) as direct,
    ):
        writer, reader = retrieval_pb2_grpc.RetrievalServiceStub(envoy), retrieval_pb2_grpc.RetrievalServiceStub(direct)
        for n in range(6):
            doc_id, word = f"gave-up-{n}", f"Thistlecombe{n}"
            impossible = reader.Search(
                retrieval_pb2.SearchRequest(query="harbour", min_index_version=2**62), timeout=30
            )
            doc = retrieval_pb2.Document(id=doc_id, text=f"The {word} lantern is lit at dusk.")
            written = writer.UpsertDocuments(iter([doc]), timeout=60, metadata=key)
            assert impossible.index_version < written.index_version
            asked = retrieval_pb2.SearchRequest(query=f"{word} lantern", min_index_version=written.index_version)
            assert doc_id in [hit.doc_id for hit in reader.Search(asked, timeout=30).hits], f"search {n} missed it"
            writer.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=[doc_id]), timeout=60, metadata=key)


@contextmanager
def grpc_and_rest(mesh: MeshProcess) -> Iterator[tuple[retrieval_pb2_grpc.RetrievalServiceStub, httpx.Client]]:
    """A RetrievalService stub and an HTTP client, both through Envoy."""
    with grpc.insecure_channel(mesh.address) as channel, httpx.Client(base_url=mesh.base_url, timeout=60) as client:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel), client


def test_a_rest_read_naming_the_version_a_grpc_write_returned_reflects_it_whichever_replica_answers(
    replicated: MeshProcess,
) -> None:
    key = (("authorization", f"Bearer {replicated.api_key}"),)
    json_reply = {"Accept": "application/json"}
    with grpc_and_rest(replicated) as (stub, client):
        for n in range(6):
            doc_id, word = f"named-{n}", f"Brackenholt{n}"
            query = {"query": f"{word} bell"}
            for _ in range(2):  # a reply in the gateway's near cache from before the write
                assert client.post("/api/v1/search", json=query).status_code == 200
            doc = retrieval_pb2.Document(id=doc_id, text=f"The {word} bell rings at noon over the harbour.")
            written = stub.UpsertDocuments(iter([doc]), timeout=60, metadata=key).index_version
            found = client.post("/api/v1/search", json={**query, "min_index_version": written})
            assert found.status_code == 200, found.text
            assert doc_id in [hit["doc_id"] for hit in found.json()["hits"]], f"search {n} missed the write"
            asked = {"query": f"When does the {word} bell ring?", "min_index_version": written}
            chat = client.post("/api/v1/chat", json=asked, headers=json_reply).json()
            assert doc_id in [hit["doc_id"] for hit in chat["hits"]], f"chat {n} missed the write"
            deleted = stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=[doc_id]), timeout=60, metadata=key)
            gone = client.post("/api/v1/search", json={**query, "min_index_version": deleted.index_version}).json()
            assert doc_id not in [hit["doc_id"] for hit in gone["hits"]], f"search {n} found the deleted document"


def near_cache_hits(client: httpx.Client) -> float:
    """Searches the gateway answered from its near cache so far (its /metrics, through Envoy)."""
    prefix = 'likeopt_near_cache_lookups_total{name="search",result="hit"} '
    lines = client.get("/metrics").text.splitlines()
    return sum(float(line[len(prefix) :]) for line in lines if line.startswith(prefix))


def near_search(client: httpx.Client, query: str) -> tuple[list[str], bool]:
    """The ids a REST search found, and whether the gateway's near cache answered it."""
    before = near_cache_hits(client)
    reply = client.post("/api/v1/search", json={"query": query})
    assert reply.status_code == 200, reply.text
    return [hit["doc_id"] for hit in reply.json()["hits"]], near_cache_hits(client) > before


def test_a_rest_search_after_a_write_made_another_way_reflects_it_once_the_gateway_has_heard_of_it(
    replicated: MeshProcess,
) -> None:
    """The gateway hears of a gRPC client's write from the writer's WatchIndex stream: until then its near cache
    answers as before the write (the window README states); from then on no replica answers from before it."""
    key = (("authorization", f"Bearer {replicated.api_key}"),)
    with grpc_and_rest(replicated) as (stub, client):
        for n in range(8):
            doc_id, query = f"heard-{n}", f"Wyndlecote{n} ferry"
            doc = retrieval_pb2.Document(id=doc_id, text=f"The {query} leaves at dawn.")
            stub.UpsertDocuments(iter([doc]), timeout=60, metadata=key)
            for _ in range(100):  # until the near cache answers with the document: it holds the current version
                found, near = near_search(client, query)
                if near and doc_id in found:
                    break
            assert near and doc_id in found, f"round {n}: the near cache never answered with the document"
            if n % 2:  # one more search upstream: round robin sends the next to each replica in turn
                near_search(client, f"Wyndlecote{n} ferry timetable")
            stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=[doc_id]), timeout=60, metadata=key)
            for _ in range(1000):  # until the gateway has heard of the delete: its near cache no longer answers
                found, near = near_search(client, query)
                if not near:
                    break
            assert not near and doc_id not in found, f"search {n} found the deleted document"


def test_readers_refuse_writes(replicated: MeshProcess) -> None:
    reader = next(
        r for r in children_running(replicated, "retrieval_svc") if r.get("LIKEOPT_RETRIEVAL_READ_ONLY") == "1"
    )
    with grpc.insecure_channel(f"127.0.0.1:{reader['LIKEOPT_RETRIEVAL_PORT']}") as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["harbour.md"]), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_killing_a_replica_loses_no_search(replicated: MeshProcess) -> None:
    reader = next(
        r for r in children_running(replicated, "retrieval_svc") if r.get("LIKEOPT_RETRIEVAL_READ_ONLY") == "1"
    )
    failures = []
    with (
        grpc.insecure_channel(f"127.0.0.1:{replicated.port('envoy')}") as channel,
        httpx.Client(base_url=replicated.base_url, timeout=30) as client,
    ):
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for n in range(120):
            if n == 20:
                os.kill(int(reader["PID"]), signal.SIGKILL)
            try:
                stub.Search(retrieval_pb2.SearchRequest(query=f"cache keys {n}", no_cache=True), timeout=30)
            except grpc.RpcError as exc:
                failures.append(f"gRPC {exc.code().name}")
            rest = client.post("/api/v1/search", json={"query": f"cache keys rest {n}"})
            if rest.status_code != 200:
                failures.append(f"REST {rest.status_code}")
            time.sleep(0.01)
    assert failures == []


def test_a_frozen_generation_replica_loses_its_share_of_chats_and_readyz_names_it(replicated: MeshProcess) -> None:
    """A SIGSTOPped replica keeps its connections open but answers nothing: the gateway's keepalive pings find it
    dead, and its chats go to the other replica; readyz says the same on every poll, naming the frozen one."""
    frozen = children_running(replicated, "generation_svc")[-1]
    frozen_address = f"127.0.0.1:{frozen['LIKEOPT_GENERATION_PORT']}"
    os.kill(int(frozen["PID"]), signal.SIGSTOP)
    try:
        with httpx.Client(base_url=replicated.base_url, timeout=30) as client:
            ready = [client.get("/api/v1/readyz") for _ in range(4)]
            assert [reply.status_code for reply in ready] == [200] * 4
            assert all(
                any(
                    line.startswith(f"generation_svc: 1 of 2 replicas serving; {frozen_address} ")
                    for line in r.json()["detail"]
                )
                for r in ready
            ), [r.json() for r in ready]
            in_a_row, deadline = 0, time.monotonic() + 120
            while in_a_row < 8:
                assert time.monotonic() < deadline, "chats kept reaching the frozen replica"
                in_a_row = in_a_row + 1 if chat_answered(client, f"what does the gateway do {in_a_row}") else 0
    finally:
        os.kill(int(frozen["PID"]), signal.SIGCONT)


def chat_answered(client: httpx.Client, query: str) -> bool:
    try:
        reply = client.post("/api/v1/chat", json={"query": query}, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        return False
    return reply.status_code == 200
