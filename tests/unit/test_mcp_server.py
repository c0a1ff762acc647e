"""The MCP server's tools and resources in process: the SDK's own client against real retrieval_svc and
generation_svc code on in-process gRPC servers. Failures must come back as tool errors, not crashes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx2
import pytest
import uvicorn
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import JSONRPCError, jsonrpc_message_adapter

from gateway import mcp_server, mcp_stdio
from gateway.bodies import MAX_JSON_BYTES
from gateway.mcp_http import McpEndpoint
from gateway.mcp_server import Mesh, build_mcp_server, document_text, document_uri
from generation_svc.extractive import ExtractiveBackend
from likeopt.runtime.api_key import KEY_REFUSED
from likeopt.runtime.config import Config
from likeopt.v1 import generation_pb2_grpc, retrieval_pb2
from tests.unit.test_generation_harness import generation_server
from tests.unit.test_generation_service import ScriptedBackend
from tests.unit.test_retrieval_harness import DictCache, GatedEmbedder, retrieval_server
from tests.unit.test_retrieval_service import DOCS, stream


@asynccontextmanager
async def mcp_client(tmp_path: Path, *extra: retrieval_pb2.Document) -> AsyncIterator[Client]:
    """An MCP client talking in process to the server built on in-process services (DOCS and extra ingested)."""
    async with (
        retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, retrieval),
        generation_server(ExtractiveBackend()) as generation,
    ):
        await retrieval.UpsertDocuments(stream([*DOCS, retrieval_pb2.Document(id="a/b c.md", text="Slashes."), *extra]))
        mesh = Mesh(retrieval=retrieval, documents=retrieval, generation=generation.stub)
        async with Client(build_mcp_server(lambda: mesh)) as client:
            yield client


def structured(result: object) -> dict:
    content = result.structured_content  # type: ignore[attr-defined]
    assert content is not None, result
    return content


async def test_tools_are_listed_with_their_schemas(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"search", "ask", "list_documents"}
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["search"].input_schema["properties"]["mode"]["enum"] == ["hybrid", "bm25", "dense"]
    assert "conversation_id" in tools["ask"].input_schema["properties"]
    assert all(tool.input_schema["additionalProperties"] is False for tool in tools.values())


async def test_tool_annotations_let_clients_call_without_a_warning(tmp_path: Path) -> None:
    """Clients confirm destructive tools with the user, and a tool that writes is destructive unless it says not:
    ask only adds a conversation turn."""
    async with mcp_client(tmp_path) as client:
        hints = {tool.name: tool.annotations for tool in (await client.list_tools()).tools}
    assert hints["search"].read_only_hint and hints["list_documents"].read_only_hint  # type: ignore[union-attr]
    asks = hints["ask"]
    assert asks is not None and asks.read_only_hint is False and asks.destructive_hint is False
    assert all(hint.open_world_hint is False for hint in hints.values())  # type: ignore[union-attr]


async def test_search_returns_passages_with_ids_scores_and_resource_uris(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as client:
        result = await client.call_tool("search", {"query": "wheels", "top_k": 2, "filters": {"kind": "machine"}})
    passages = structured(result)["passages"]
    assert [p["doc_id"] for p in passages] == ["car"] and passages[0]["chunk_id"] == "car#0"
    assert passages[0]["score"] > 0 and passages[0]["uri"] == "likeopt://documents/car"


async def test_search_per_document_gives_a_long_document_once(tmp_path: Path) -> None:
    manual = retrieval_pb2.Document(id="manual", text="The gearbox sprocket meshes with the chain. " * 150)
    async with mcp_client(tmp_path, manual) as client:
        chunks = structured(await client.call_tool("search", {"query": "gearbox sprocket", "top_k": 4}))["passages"]
        asked = {"query": "gearbox sprocket", "top_k": 4, "per_document": True}
        documents = structured(await client.call_tool("search", asked))["passages"]
    assert [p["doc_id"] for p in chunks[:2]] == ["manual", "manual"], "the long document fills the top chunks"
    assert [p["doc_id"] for p in documents].count("manual") == 1


async def test_ask_answers_with_citations_and_a_conversation_to_continue(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as client:
        first = structured(await client.call_tool("ask", {"question": "Which port does Envoy listen on?"}))
        follow = {"question": "and its admin interface?", "conversation_id": first["conversation_id"]}
        second = structured(await client.call_tool("ask", follow))
    assert "8080" in first["answer"] and first["citations"][0]["doc_id"] == "envoy.md"
    assert second["conversation_id"] == first["conversation_id"] and "9901" in second["answer"]
    assert not first["no_answer"] and 0 < first["support"] <= 1  # an agent tells an answer from "not in the documents"


async def test_ask_says_when_the_documents_do_not_answer(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as client:
        greeted = structured(await client.call_tool("ask", {"question": "Hi!"}))
    assert greeted["no_answer"] and greeted["citations"] == []


async def test_documents_are_listed_and_read_as_resources(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as client:
        page = structured(await client.call_tool("list_documents", {"limit": 2}))
        rest = structured(await client.call_tool("list_documents", {"after_id": page["next_after_id"]}))
        car = await client.read_resource("likeopt://documents/car")
        slashed = await client.read_resource(document_uri("a/b c.md"))
        templates = (await client.list_resource_templates()).resource_templates
    assert [d["id"] for d in page["documents"]] == ["a/b c.md", "car"] and page["total"] == 4
    assert [d["id"] for d in rest["documents"]] == ["horse", "zebra"] and rest["next_after_id"] == ""
    assert car.contents[0].text.startswith("# Cars") and "Cars have wheels." in car.contents[0].text  # type: ignore[union-attr]
    assert "Slashes." in slashed.contents[0].text  # type: ignore[union-attr]
    assert templates[0].uri_template == "likeopt://documents/{+doc_id}"


async def test_resources_list_pages_through_every_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_server, "RESOURCES_PER_PAGE", 3)
    async with mcp_client(tmp_path) as client:
        first = await client.list_resources()
        assert first.next_cursor is not None
        rest = await client.list_resources(cursor=first.next_cursor)
        car = await client.read_resource(next(r.uri for r in first.resources if r.name == "car"))
    listed = [*first.resources, *rest.resources]
    assert [r.name for r in listed] == ["a/b c.md", "car", "horse", "zebra"] and rest.next_cursor is None
    assert str(listed[0].uri) == document_uri("a/b c.md") and listed[1].title == "Cars"
    assert "Cars have wheels." in car.contents[0].text  # type: ignore[union-attr]


async def test_failures_are_tool_errors_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as client:
        empty = await client.call_tool("search", {"query": "   "})
        blank = await client.call_tool("ask", {"question": ""})
        bad_id = await client.call_tool("ask", {"question": "ports?", "conversation_id": "../etc"})
        out_of_range = await client.call_tool("search", {"query": "x", "top_k": 1000})
        misspelt = await client.call_tool("search", {"query": "zebras", "filter": {"source": "nope"}})
        with pytest.raises(MCPError):
            await client.read_resource("likeopt://documents/nothing-here")
        still = await client.call_tool("search", {"query": "zebras"})
    for result, argument in ((empty, "query"), (blank, "question"), (bad_id, "conversation_id")):
        said = result.content[0].text  # type: ignore[union-attr]
        assert result.is_error and f"invalid arguments\n{argument}: " in said, said
    assert out_of_range.is_error and not still.is_error
    assert misspelt.is_error and "filter" in misspelt.content[0].text  # type: ignore[union-attr]


async def test_bad_arguments_are_named_one_a_line_with_what_is_wrong(tmp_path: Path) -> None:
    """A model reads the tool error to correct its call: each argument and its fault, the ones a tool takes when it
    sent another; not pydantic's dump (its model's name, input types, a link per error)."""
    async with mcp_client(tmp_path) as client:
        extra = await client.call_tool("search", {"query": "zebras", "filter": {"source": "nope"}})
        several = await client.call_tool("search", {"top_k": 0, "mode": "fuzzy"})
    assert extra.is_error and several.is_error
    said = extra.content[0].text  # type: ignore[union-attr]
    assert said.endswith("filter: not an argument of search (it takes query, top_k, mode, filters, per_document)")
    lines = several.content[0].text.splitlines()  # type: ignore[union-attr]
    assert lines[0] == "Error executing tool search: invalid arguments", lines
    assert lines[1] == "query: Field required" and lines[2].startswith("top_k: Input should be greater than or equal")
    assert lines[3].startswith("mode: Input should be 'hybrid'") and len(lines) == 4, lines
    for text in (said, "\n".join(lines)):
        assert "pydantic" not in text and "Arguments" not in text and "input_type" not in text, text


def test_a_document_reads_as_markdown_with_its_chunk_ids() -> None:
    doc = retrieval_pb2.StoredDocument(id="d", title="T", metadata={"source": "d.md"})
    doc.chunks.add(chunk_id="d#0", text="One.")
    doc.chunks.add(chunk_id="d#1", text="Two.")
    assert document_text(doc) == "# T\n\n- id: d\n- source: d.md\n\n## [d#0]\n\nOne.\n\n## [d#1]\n\nTwo.\n"
    assert document_uri("x y") == "likeopt://documents/x%20y"


@pytest.mark.parametrize(
    ("settings", "headers", "status"),
    [
        ({}, {"origin": "https://evil.example"}, 403),
        ({"reads_need_key": True, "api_key": "k"}, {}, 401),
        (
            {"reads_need_key": True, "api_key": "k"},
            {"authorization": "Bearer k", "origin": "http://localhost:3000"},
            200,
        ),
        ({}, {}, 200),
    ],
)
async def test_the_http_endpoint_checks_the_key_and_the_origin_first(
    settings: dict, headers: dict, status: int
) -> None:
    """A browser page from another origin (DNS rebinding) is refused; so is a keyless client when reads need it."""
    config = Config.from_env({}).replace(**settings)
    endpoint = McpEndpoint(config, build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        reply = await http.post("http://like-opt/mcp", json=ping, headers={**accept, **headers})
    assert reply.status_code == status, reply.text


def refusal_of(reply: Any, status: int) -> tuple[str, str]:
    """A refusal of /mcp as the SDK's client reads it (a JSON-RPC error), as its REST code and its reason."""
    assert reply.status_code == status, reply.text
    parsed = jsonrpc_message_adapter.validate_json(reply.content, by_name=False)
    assert isinstance(parsed, JSONRPCError) and parsed.error.message, reply.text
    return parsed.error.data["code"], parsed.error.message  # type: ignore[index]


async def test_the_sdks_client_is_told_why_the_endpoint_refused_it() -> None:
    """The SDK reports a non-2xx reply's JSON-RPC error; any other body as "Server returned an error response"."""
    config = Config.from_env({}).replace(reads_need_key=True, api_key="k")
    endpoint = McpEndpoint(config, build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        told = pytest.RaisesExc(MCPError, check=lambda failure: failure.error.message == KEY_REFUSED)
        with pytest.RaisesGroup(told, flatten_subgroups=True):  # the SDK's task groups wrap it
            async with (
                streamable_http_client("http://like-opt/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()


async def test_a_message_over_the_limit_is_refused_in_the_error_shape() -> None:
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    huge = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * MAX_JSON_BYTES}}
    accept = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        reply = await http.post("http://like-opt/mcp", json=huge, headers=accept)
    assert refusal_of(reply, 413)[0] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
async def test_only_post_is_allowed_as_there_is_no_stream_to_hold_open_nor_session_to_end(method: str) -> None:
    """A 405 must name what is allowed (RFC 9110): POST alone, though the SDK's said GET and DELETE, or nothing."""
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    headers = {"accept": "text/event-stream", "mcp-protocol-version": "2025-06-18", "mcp-session-id": "ab12"}
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        reply = await http.request(method, "http://like-opt/mcp", headers=headers)
    assert refusal_of(reply, 405)[0] == "METHOD_NOT_ALLOWED" and reply.headers.get("allow") == "POST"


async def test_a_message_that_is_not_json_is_refused_in_the_error_shape() -> None:
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    ping = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    accept = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        plain = await http.post("http://like-opt/mcp", content=ping, headers={**accept, "content-type": "text/plain"})
        json_utf8 = {**accept, "content-type": "application/json; charset=utf-8"}
        fine = await http.post("http://like-opt/mcp", content=ping, headers=json_utf8)
    assert refusal_of(plain, 415)[0] == "UNSUPPORTED_MEDIA_TYPE"
    assert fine.status_code == 200, fine.text


def test_likeopt_mcp_warns_at_start_when_tokens_are_needed_and_none_was_given() -> None:
    jwt = Config.from_env(
        {"LIKEOPT_AUTH": "jwt", "LIKEOPT_JWT_ISSUER": "https://idp", "LIKEOPT_JWT_AUDIENCE": "a",
         "LIKEOPT_JWT_JWKS_URI": "https://idp/keys"}
    )  # fmt: skip
    assert "--token" in (mcp_stdio.missing_token(jwt, "") or "")
    assert mcp_stdio.missing_token(jwt, "a.b.c") is None and mcp_stdio.missing_token(Config.from_env({}), "") is None


class RecordedAnswers:
    """The generation stub, keeping each Answer call it starts so a test can see how the call ended."""

    def __init__(self, stub: generation_pb2_grpc.GenerationServiceStub) -> None:
        self.stub = stub
        self.calls: list[grpc.aio.UnaryStreamCall] = []

    def Answer(self, *args: Any, **kwargs: Any) -> grpc.aio.UnaryStreamCall:
        call = self.stub.Answer(*args, **kwargs)
        self.calls.append(call)
        return call


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[int]:
    """app behind a real uvicorn on a free port, so a client that closes its socket is a real disconnect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # a client may connect at once: uvicorn accepts it when it has started
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True
            await serving


async def test_a_client_that_leaves_an_http_tool_call_cancels_the_answer() -> None:
    """Over HTTP the tool call runs under the POST: a client that hangs up stops the model, as it does over stdio."""
    backend = ScriptedBackend(["Envoy listens "], stall=True)  # writes a little, then never finishes
    async with generation_server(backend) as h:
        answers = RecordedAnswers(h.stub)
        mesh = Mesh(retrieval=None, documents=None, generation=answers)  # type: ignore[arg-type]
        endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: mesh))
        ask = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ask", "arguments": {"question": "ports?"}},
        }
        body = json.dumps(ask).encode()
        head = (
            "POST /mcp HTTP/1.1\r\nhost: like-opt\r\ncontent-type: application/json\r\n"
            "accept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-06-18\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        async with endpoint.run(), served(endpoint) as port:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head.encode() + body)
            await asyncio.wait_for(backend.started.wait(), 10)  # the model is writing the answer
            writer.close()  # the client gives up
            await asyncio.wait_for(backend.closed.wait(), 10)  # a stalled model stops only if its call is cancelled
        assert [await call.code() for call in answers.calls] == [grpc.StatusCode.CANCELLED]


MCP_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
}


ASK_7 = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ask", "arguments": {"question": "?"}}}
CANCEL_7 = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}


@dataclass
class StalledAsks:
    """An /mcp endpoint on a real server whose model writes a little of each answer, then never finishes."""

    url: str
    http: httpx2.AsyncClient
    backend: ScriptedBackend
    answers: RecordedAnswers

    async def asking(self, headers: dict[str, str]) -> asyncio.Future[httpx2.Response]:
        """ASK_7 posted with headers, once the model is writing its answer."""
        asked = asyncio.ensure_future(self.http.post(self.url, json=ASK_7, headers={**MCP_HEADERS, **headers}))
        await asyncio.wait_for(self.backend.started.wait(), 10)
        return asked

    async def cancel_7(self, headers: dict[str, str]) -> int:
        """CANCEL_7 posted with headers; the status it got."""
        return (await self.http.post(self.url, json=CANCEL_7, headers={**MCP_HEADERS, **headers})).status_code


@asynccontextmanager
async def stalled_asks() -> AsyncIterator[StalledAsks]:
    backend = ScriptedBackend(["Envoy listens "], stall=True)
    async with generation_server(backend) as h:
        answers = RecordedAnswers(h.stub)
        mesh = Mesh(retrieval=None, documents=None, generation=answers)  # type: ignore[arg-type]
        endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: mesh))
        async with endpoint.run(), served(endpoint) as port, httpx2.AsyncClient(timeout=10) as http:
            yield StalledAsks(f"http://127.0.0.1:{port}/mcp", http, backend, answers)


async def test_a_cancellation_notice_cancels_the_callers_http_tool_call_and_no_one_elses() -> None:
    """Official clients cancel by POSTing notifications/cancelled, not by hanging up: at a stateless endpoint the
    SDK ignored it, and the model ran to the end. Another caller naming the same id cancels nothing."""
    async with stalled_asks() as mcp:
        asking = await mcp.asking({"authorization": "Bearer mine"})
        theirs = await mcp.cancel_7({"authorization": "Bearer theirs"})
        assert theirs == 202 and not mcp.answers.calls[0].done()  # another caller's id 7: not theirs
        mine = await mcp.cancel_7({"authorization": "Bearer mine"})
        await asyncio.wait_for(mcp.backend.closed.wait(), 10)  # the stalled model stops: its call was cancelled
        asked = await asking
    assert mine == 202 and [await call.code() for call in mcp.answers.calls] == [grpc.StatusCode.CANCELLED]
    assert asked.status_code == 200 and asked.json()["error"]["code"] == -32800 and asked.json()["id"] == 7


async def test_clients_sharing_a_key_and_an_address_cancel_only_their_own_calls() -> None:
    """Local clients share the address (and the missing key when reads need none) and all number their requests
    from 0 or 1: the session id each gets at initialize tells them apart, so one's cancellation of id 7 leaves
    the other's call 7 running."""
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize"}
    initialize["params"] = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    async with stalled_asks() as mcp:
        mine, theirs = [(await mcp.http.post(mcp.url, json=initialize, headers=MCP_HEADERS)).headers for _ in "ab"]
        as_me = {"mcp-session-id": mine.get("mcp-session-id", "")}
        as_them = {"mcp-session-id": theirs.get("mcp-session-id", "")}
        asking = await mcp.asking(as_me)
        assert await mcp.cancel_7(as_them) == 202
        assert not mcp.answers.calls[0].done(), "the other client's cancellation of its own id 7 stopped this call"
        assert await mcp.cancel_7(as_me) == 202
        await asyncio.wait_for(mcp.backend.closed.wait(), 10)
        asked = await asking
    assert as_me["mcp-session-id"] and as_me["mcp-session-id"] != as_them["mcp-session-id"]
    assert asked.json()["error"]["code"] == -32800
    assert [await call.code() for call in mcp.answers.calls] == [grpc.StatusCode.CANCELLED]


async def test_a_batch_is_refused_with_a_json_rpc_error_saying_to_send_one_message_per_post() -> None:
    """MCP 2025-06-18 removed JSON-RPC batches; the SDK refused one with a long pydantic validation dump."""
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    batch = b' \n[{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}]'
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        reply = await http.post("http://like-opt/mcp", content=batch, headers=MCP_HEADERS)
        after = await http.post(
            "http://like-opt/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=MCP_HEADERS
        )
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json", reply.text
    body = reply.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32600, body
    assert "one message per POST" in body["error"]["message"] and "validation" not in reply.text
    assert after.status_code == 200 and after.json()["id"] == 3, after.text


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"jsonrpc": "2.0", "id": {"n": 1}, "method": "ping"}', "id must be a string or an integer"),
        (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', "id must be a string or an integer"),
        (b'{"id": 1, "method": "ping"}', '"jsonrpc": "2.0"'),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', '"jsonrpc": "2.0"'),
        (b'{"jsonrpc": "2.0", "id": 1}', "a message has a method"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 7}', "method must be a string"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": "x"}', "params must be an object"),
        (b'"ping"', "not a JSON str"),
        (b"null", "not a JSON NoneType"),
    ],
)
async def test_a_message_that_is_no_json_rpc_request_is_refused_saying_why(body: bytes, said: str) -> None:
    """The SDK answered these with a pydantic dump under -32602 (invalid params), and took a request with an object
    for an id for a notification: 202, and never an answer for the client waiting on it."""
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        reply = await http.post("http://like-opt/mcp", content=body, headers=MCP_HEADERS)
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json", reply.text
    error = reply.json()["error"]
    assert error["code"] == -32600 and said in error["message"] and "validation" not in reply.text, reply.text


async def test_well_formed_messages_of_every_kind_still_reach_the_sdk() -> None:
    """A request (string or integer id), a notification and a client's response each pass the message check."""
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    messages = [
        {"jsonrpc": "2.0", "id": "a", "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 9, "result": {}},
    ]
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        replies = [await http.post("http://like-opt/mcp", json=m, headers=MCP_HEADERS) for m in messages]
    assert [r.status_code for r in replies] == [200, 200, 202, 202], [r.text for r in replies]
    assert replies[0].json()["id"] == "a" and replies[1].json()["result"]["tools"]


async def test_an_unknown_protocol_version_header_is_refused_naming_the_versions_spoken() -> None:
    """The SDK took it for a request of the 2026-07-28 envelope era and asked for params._meta instead."""
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    listing = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        future = await http.post(
            "http://like-opt/mcp", json=listing, headers={**MCP_HEADERS, "mcp-protocol-version": "2099-01-01"}
        )
        known = [
            await http.post("http://like-opt/mcp", json=listing, headers={**MCP_HEADERS, "mcp-protocol-version": v})
            for v in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
        ]
    assert future.status_code == 400 and future.json()["id"] == 7, future.text
    error = future.json()["error"]
    assert error["code"] == -32022 and "'2099-01-01'" in error["message"] and "2025-11-25" in error["message"]
    assert "_meta" not in future.text and error["data"]["requested"] == "2099-01-01", future.text
    assert [r.status_code for r in known] == [200] * 4 and all(r.json()["result"]["tools"] for r in known)


MODERN = "2026-07-28"
"""The protocol version whose requests carry the client's version in params._meta and ask with server/discover."""


def modern_message(method: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 request and its headers: the envelope (version, client) rides in params._meta."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {**MCP_HEADERS, "mcp-protocol-version": MODERN, "mcp-method": method}
    if "name" in params:
        headers["mcp-name"] = params["name"]
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}, headers


async def capabilities_and_unserved(http: httpx2.AsyncClient, version: str) -> tuple[dict, list[int]]:
    """The capabilities a client of this version is told of, and the JSON-RPC error codes of prompts/list,
    prompts/get and the subscription method of its era."""
    url = "http://like-opt/mcp"
    if version == MODERN:
        body, headers = modern_message("server/discover", {})
        capabilities = (await http.post(url, json=body, headers=headers)).json()["result"]["capabilities"]
        asked = [
            modern_message("prompts/list", {}),
            modern_message("prompts/get", {"name": "nope"}),
            modern_message("subscriptions/listen", {"notifications": {"resourcesListChanged": True}}),
        ]
    else:
        headers = {**MCP_HEADERS, "mcp-protocol-version": version}
        hello = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}
        capabilities = (await http.post(url, json=initialize, headers=headers)).json()["result"]["capabilities"]
        asked = [
            ({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers)
            for method, params in [
                ("prompts/list", {}),
                ("prompts/get", {"name": "nope"}),
                ("resources/subscribe", {"uri": "likeopt://documents/car"}),
            ]
        ]
    codes = [(await http.post(url, json=body, headers=headers)).json()["error"]["code"] for body, headers in asked]
    return capabilities, codes


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", MODERN])
async def test_what_is_advertised_is_what_is_served_on_every_protocol_version(version: str) -> None:
    """server/discover advertised resource subscriptions and list-change notifications, which a stateless server
    never sends, and prompts, of which there are none; an unknown prompt was JSON-RPC error 0, no valid code."""
    endpoint = McpEndpoint(Config.from_env({}), build_mcp_server(lambda: None))  # type: ignore[arg-type,return-value]
    async with endpoint.run(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app=endpoint)) as http:
        capabilities, codes = await capabilities_and_unserved(http, version)
    assert capabilities == {
        "resources": {"listChanged": False, "subscribe": False},
        "tools": {"listChanged": False},
    }, capabilities
    assert codes == [-32601] * 3, codes
