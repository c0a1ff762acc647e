"""Reads keyed by configuration: with LIKEOPT_READS_NEED_KEY=1 REST and gRPC reads need the API key."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.support import MeshProcess, mesh_environment


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshProcess]:
    mesh = MeshProcess(env=mesh_environment(tmp_path_factory.mktemp("keyed"), LIKEOPT_READS_NEED_KEY="1"), args=[])
    with mesh.running():
        yield mesh


def test_rest_reads_need_the_key_and_health_stays_open(keyed: MeshProcess) -> None:
    auth = {"Authorization": f"Bearer {keyed.api_key}"}
    with httpx.Client(base_url=keyed.base_url, timeout=30) as client:
        for path, body in (("/api/v1/search", {"query": "x"}), ("/api/v1/chat", {"query": "x"})):
            assert client.post(path, json=body).status_code == 401
            assert client.post(path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/v1/index").status_code == 401
        assert client.post("/api/v1/search", json={"query": "x"}, headers=auth).status_code == 200
        assert client.get("/api/v1/index", headers=auth).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/readyz").status_code == 200


def test_grpc_reads_through_envoy_need_the_key(keyed: MeshProcess) -> None:
    request = retrieval_pb2.SearchRequest(query="envoy")
    with grpc.insecure_channel(f"127.0.0.1:{keyed.port('envoy')}") as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Search(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.Search(request, timeout=30, metadata=[("authorization", f"Bearer {keyed.api_key}")])
    assert reply.index_version >= 0
