"""The MCP server against the running mesh, with the official mcp SDK's client: over stdio (``likeopt mcp``
as a subprocess) and over streamable HTTP through Envoy (``/mcp``)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.integration.test_mesh import KNOWN_DOC, KNOWN_QUESTION
from tests.support import ROOT, MeshProcess

TRANSPORTS = ["stdio", "http"]


def transport(mesh: MeshProcess, kind: str, key: str | None = None) -> AbstractAsyncContextManager[Any]:
    """The SDK's client transport: ``likeopt mcp`` with the mesh's settings (with a token: through Envoy, which
    verifies it), or Envoy's /mcp."""
    if kind == "stdio":
        args, env = ["-m", "likeopt.ops.cli", "mcp"], mesh.env
        if key:
            args += ["--token", key]
            env = {**env, "LIKEOPT_RETRIEVAL_ADDR": mesh.address, "LIKEOPT_GENERATION_ADDR": mesh.address}
        return stdio_client(StdioServerParameters(command=sys.executable, args=args, env=env, cwd=ROOT))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=120))
    return streamable_http_client(f"{mesh.base_url}/mcp", http_client=http)


@asynccontextmanager
async def session(mesh: MeshProcess, kind: str, key: str | None = None) -> AsyncIterator[ClientSession]:
    async with transport(mesh, kind, key) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_tools_answer_from_the_mesh(mesh: MeshProcess, kind: str) -> None:
    async with session(mesh, kind) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"query": KNOWN_QUESTION, "top_k": 3})
        answered = await client.call_tool("ask", {"question": KNOWN_QUESTION})
        listed = await client.call_tool("list_documents", {"limit": 2})
    assert tools == {"search", "ask", "list_documents"}
    passages = (found.structured_content or {})["passages"]
    assert passages[0]["doc_id"] == KNOWN_DOC and passages[0]["score"] > 0 and passages[0]["chunk_id"]
    answer = answered.structured_content or {}
    assert "8080" in answer["answer"] and answer["citations"][0]["doc_id"] == KNOWN_DOC
    page = listed.structured_content or {}
    assert len(page["documents"]) == 2 and page["total"] >= 4 and page["next_after_id"]


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_document_reads_as_a_resource(mesh: MeshProcess, kind: str) -> None:
    async with session(mesh, kind) as client:
        templates = (await client.list_resource_templates()).resource_templates
        listed = [str(resource.uri) for resource in (await client.list_resources()).resources]
        document = await client.read_resource(f"likeopt://documents/{KNOWN_DOC}")
        with pytest.raises(MCPError):
            await client.read_resource("likeopt://documents/no-such-document.md")
    assert [t.uri_template for t in templates] == ["likeopt://documents/{+doc_id}"]
    assert f"likeopt://documents/{KNOWN_DOC}" in listed
    text = document.contents[0].text  # type: ignore[union-attr]
    assert text.startswith("# ") and f"[{KNOWN_DOC}#0]" in text and "8080" in text


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_errors_are_tool_errors_and_the_session_goes_on(mesh: MeshProcess, kind: str) -> None:
    async with session(mesh, kind) as client:
        empty = await client.call_tool("search", {"query": "  "})
        no_question = await client.call_tool("ask", {"question": ""})
        bad_conversation = await client.call_tool("ask", {"question": "ports?", "conversation_id": "no/such id"})
        out_of_range = await client.call_tool("list_documents", {"limit": 0})
        after = await client.call_tool("search", {"query": "cache"})
    for failed in (empty, no_question, bad_conversation, out_of_range):
        assert failed.is_error, failed
    assert "invalid arguments\nquery: query must contain a non-space character" in empty.content[0].text  # type: ignore[union-attr]
    assert not after.is_error and (after.structured_content or {})["passages"]
