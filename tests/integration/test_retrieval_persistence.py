"""retrieval_svc as a real process: NOT_SERVING until loaded, and acknowledged writes survive kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from likeopt.ops.evaluate import wait_serving
from likeopt.ops.processes import CHILD_ENV
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.ingestion import UPSERT_BATCH_DOCS
from tests.support import ROOT, free_port

DOCUMENTS = 6000
"""Enough for the ingest to run for many acknowledged batches before the kill."""
ACKS_BEFORE_KILL = 3


def start(data_dir: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    env.update(
        LIKEOPT_HOST="127.0.0.1",
        LIKEOPT_RETRIEVAL_PORT=str(port),
        LIKEOPT_DATA_DIR=str(data_dir),
        LIKEOPT_CACHE_ENABLED="0",
        LIKEOPT_RETRIEVAL_METRICS_PORT="0",
        **CHILD_ENV,
        **settings,
    )
    log = (data_dir.parent / "retrieval_svc.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "retrieval_svc"], cwd=ROOT, env=env, stdout=log, stderr=log)


def document(i: int) -> retrieval_pb2.Document:
    return retrieval_pb2.Document(id=f"doc-{i}", title=f"Record {i}", text=f"Entry marker{i} about item{i}.")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def port() -> int:
    return free_port()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=60)


def test_health_is_not_serving_until_the_model_and_indexes_are_loaded(data_dir: Path, port: int) -> None:
    # Queries on torch: the model's import (seconds on any machine) is then part of the start, so the test sees
    # the loading phase; the default writer serves about a second after it listens, torch loading behind.
    process = start(data_dir, port, LIKEOPT_QUERY_ENCODER="torch")
    seen: list[tuple[int, bool]] = []  # (health status, GetIndexStatus.ready) in the order observed
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            while status != health_pb2.HealthCheckResponse.SERVING:
                assert process.poll() is None, "retrieval_svc exited"
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=True).status
                    ready = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=5).ready
                except grpc.RpcError:
                    continue
                seen.append((status, ready))
                if not ready:  # a search while loading is refused as retryable, never an internal error
                    try:
                        stub.Search(retrieval_pb2.SearchRequest(query="anything"), timeout=5)
                    except grpc.RpcError as error:
                        assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert seen[0] == (health_pb2.HealthCheckResponse.NOT_SERVING, False)
            assert seen[-1] == (health_pb2.HealthCheckResponse.SERVING, True)
            assert all(ready for status, ready in seen if status == health_pb2.HealthCheckResponse.SERVING)
    finally:
        stop(process)


def _ingest_until_killed(address: str, process: subprocess.Popen) -> list[str]:
    """Stream DOCUMENTS into the server and SIGKILL it once ACKS_BEFORE_KILL batches are acknowledged; the
    ids it acknowledged before it died."""
    acknowledged: list[str] = []
    enough = threading.Event()

    def ingest() -> None:
        with grpc.insecure_channel(address) as channel:
            progress_stream = retrieval_pb2_grpc.RetrievalServiceStub(channel).IngestDocuments(
                (document(i) for i in range(DOCUMENTS)), timeout=600
            )
            try:
                for progress in progress_stream:
                    acknowledged.extend(progress.ids)
                    if len(acknowledged) >= ACKS_BEFORE_KILL * UPSERT_BATCH_DOCS:
                        enough.set()
            except grpc.RpcError:
                pass  # the server was killed mid-stream
            finally:
                enough.set()

    sender = threading.Thread(target=ingest)
    sender.start()
    assert enough.wait(timeout=600)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    sender.join(timeout=60)
    return acknowledged


def _unsearchable(stub: retrieval_pb2_grpc.RetrievalServiceStub, acknowledged: list[str]) -> list[str]:
    """The acknowledged documents a BM25 search for their marker does not find first."""
    missing = []
    for doc_id in acknowledged:
        i = doc_id.removeprefix("doc-")
        request = retrieval_pb2.SearchRequest(query=f"marker{i}", top_k=1, mode=retrieval_pb2.BM25)
        hits = stub.Search(request, timeout=10).hits
        if not hits or hits[0].doc_id != doc_id:
            missing.append(doc_id)
    return missing


def test_every_acknowledged_document_survives_kill_9(data_dir: Path, port: int) -> None:
    address = f"127.0.0.1:{port}"
    process = start(data_dir, port)
    try:
        wait_serving(address, process)
        acknowledged = _ingest_until_killed(address, process)
    finally:
        if process.poll() is None:
            process.kill()
    assert 0 < len(acknowledged) < DOCUMENTS, "the kill must land in the middle of the ingest"

    restarted = start(data_dir, port)
    try:
        wait_serving(address, restarted)
        with grpc.insecure_channel(address) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            status = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=10)
            assert status.documents >= len(acknowledged)
            assert status.chunks == status.bm25_chunks == status.vector_chunks == status.documents
            missing = _unsearchable(stub, acknowledged)
            assert not missing, f"{len(missing)} acknowledged documents are not searchable: {missing[:5]}"
            dense = stub.Search(
                retrieval_pb2.SearchRequest(
                    query=f"Record {acknowledged[0].removeprefix('doc-')}", mode=retrieval_pb2.DENSE
                ),
                timeout=30,
            )
            assert dense.hits
        stop(restarted)
        with sqlite3.connect(data_dir / "store.sqlite3") as db:
            stored_docs, stored_chunks = db.execute(
                "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)"
            ).fetchone()
        assert (stored_docs, stored_chunks) == (status.documents, status.chunks)
    finally:
        stop(restarted)
