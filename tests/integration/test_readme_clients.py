"""The README's "Connecting other clients" snippets work as written, against the running mesh (only the
address and the key placeholder are replaced)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.integration.test_mesh import KNOWN_DOC
from tests.support import ROOT, MeshProcess

ADDRESS = "127.0.0.1:8080"


def section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Connecting other clients")
    return readme[start : readme.index("\n## ", start + 1)]


def blocks(language: str) -> list[str]:
    """The fenced code blocks of that language in the section, unindented."""
    found = re.findall(rf"^( *)```{language}\n(.*?)^\1```", section(), flags=re.S | re.M)
    return [re.sub(rf"^{indent}", "", code, flags=re.M) for indent, code in found]


def run_python(code: str, mesh: MeshProcess) -> str:
    program = code.replace(ADDRESS, mesh.address)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_python_snippets_answer_with_citations(mesh: MeshProcess) -> None:
    openai_snippet, responses_snippet, mcp_snippet = blocks("python")
    printed = run_python(openai_snippet, mesh)
    assert "8080" in printed and re.search(rf"^\[1\] .+ \({re.escape(KNOWN_DOC)}#\d+\)$", printed, flags=re.M)
    assert "9901" in run_python(responses_snippet, mesh)  # the follow-up, read with the first turn
    assert "8080" in run_python(mcp_snippet, mesh)


def test_the_config_snippets_parse() -> None:
    (librechat,) = blocks("yaml")
    endpoint = yaml.safe_load(librechat)["endpoints"]["custom"][0]
    assert endpoint["baseURL"] == f"http://{ADDRESS}/v1" and endpoint["models"]["default"] == ["like-opt"]
    stdio, http = (json.loads(code)["mcpServers"]["like-opt"] for code in blocks("json"))
    assert stdio["args"] == ["mcp"] and http["url"] == f"http://{ADDRESS}/mcp"


async def test_the_stdio_config_reaches_the_mesh_through_envoy(mesh: MeshProcess) -> None:
    """Claude Desktop's entry as written: `likeopt mcp` with every service at Envoy's port and the key."""
    entry = json.loads(blocks("json")[0])["mcpServers"]["like-opt"]
    command = str(Path(sys.executable).with_name("likeopt"))
    env = {k: v.replace(ADDRESS, mesh.address) for k, v in entry["env"].items()}
    env["LIKEOPT_API_KEY"] = mesh.api_key
    server = StdioServerParameters(command=command, args=entry["args"], env=env, cwd=ROOT)
    async with stdio_client(server) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        answer = await client.call_tool("ask", {"question": "Which port does Envoy listen on?"})
        documents = await client.call_tool("list_documents", {})
    assert "8080" in (answer.structured_content or {})["answer"]
    assert not documents.is_error and (documents.structured_content or {})["total"] >= 4
