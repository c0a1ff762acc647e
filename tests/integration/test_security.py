"""Reads keyed by configuration: with LIKEOPT_READS_NEED_KEY=1 REST and gRPC reads need the API key."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from likeopt.runtime.api_key import KEY_REFUSED
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.integration.test_mesh import grpc_web_refusal, grpc_web_search
from tests.support import MeshProcess, mesh_environment
from tests.unit.test_mcp_server import refusal_of


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
        for metadata in ([], [("authorization", f"Bearer {keyed.api_key}x")]):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Search(request, timeout=10, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert refused.value.details() == "missing or wrong API key"
        reply = stub.Search(request, timeout=30, metadata=[("authorization", f"Bearer {keyed.api_key}")])
        assert reply.index_version >= 0
        # The scheme in any case (RFC 7235), as the gateway takes it over REST.
        lower = stub.Search(request, timeout=30, metadata=[("authorization", f"bearer  {keyed.api_key}")])
    assert lower.index_version >= 0


def test_a_grpc_web_call_without_the_key_is_refused_as_grpc_web(keyed: MeshProcess) -> None:
    request = retrieval_pb2.SearchRequest(query="envoy").SerializeToString()
    assert grpc_web_refusal(grpc_web_search(keyed.base_url, request)) == ("16", "missing or wrong API key")


def test_the_openai_api_and_mcp_over_http_need_the_key_when_reads_do(keyed: MeshProcess) -> None:
    auth = {"Authorization": f"Bearer {keyed.api_key}"}
    chat = {"model": "like-opt", "messages": [{"role": "user", "content": "Which port does Envoy listen on?"}]}
    with httpx.Client(base_url=keyed.base_url, timeout=30) as client:
        refused = client.get("/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert client.post("/v1/chat/completions", json=chat).status_code == 401
        assert client.get("/v1/models", headers=auth).json()["data"][0]["id"] == "like-opt"
        assert client.post("/v1/chat/completions", json=chat, headers=auth).status_code == 200
        keyless = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refusal_of(keyless, 401) == ("UNAUTHENTICATED", KEY_REFUSED)  # what MCP's SDK raises, through Envoy


async def test_mcp_clients_with_the_key_get_answers(keyed: MeshProcess) -> None:
    from tests.integration.test_mcp import session

    async with session(keyed, "http", key=keyed.api_key) as client:
        assert not (await client.call_tool("list_documents", {})).is_error


async def test_likeopt_mcp_pointed_at_envoy_sends_the_key(keyed: MeshProcess) -> None:
    """Through Envoy (every service address at its port), gRPC reads need the key: `likeopt mcp` sends it."""
    from tests.integration.test_mcp import session

    envoy = {"LIKEOPT_RETRIEVAL_ADDR": keyed.address, "LIKEOPT_GENERATION_ADDR": keyed.address}
    with_key = MeshProcess(env={**keyed.env, **envoy}, args=[])  # never started: settings for `likeopt mcp` only
    without_key = MeshProcess(env={**keyed.env, **envoy, "LIKEOPT_API_KEY": ""}, args=[])
    async with session(with_key, "stdio") as client:
        assert not (await client.call_tool("search", {"query": "envoy"})).is_error
        assert not (await client.call_tool("list_documents", {})).is_error
    async with session(without_key, "stdio") as client:
        refused = await client.call_tool("search", {"query": "envoy"})
    assert refused.is_error and "UNAUTHENTICATED" in refused.content[0].text  # type: ignore[union-attr]
