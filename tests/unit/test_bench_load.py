"""The load generator against a small in-process HTTP server: counts, bounds, error kinds, SSE timing."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.sse import sse_frame
from likeopt.ops.bench.http import HttpClient
from likeopt.ops.bench.load import LoadGenerator, LoadSettings, Progress, Sample
from likeopt.ops.bench.scenarios import CHAT_PATH, Scenario
from tests.support import free_port

SERVICE_S = 0.02


async def search(request: web.Request) -> web.Response:
    query = (await request.json())["query"]
    if query == "fail":
        return web.json_response({"error": "down"}, status=503)
    if query == "slow":
        await asyncio.sleep(1)
    await asyncio.sleep(SERVICE_S if query == "queue" else 0)
    return web.Response(body=b'{"hits":[],"cached":%s}' % (b"true" if query == "hot" else b"false"))


async def chat(request: web.Request) -> web.StreamResponse:
    query = (await request.json())["query"]
    reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await reply.prepare(request)
    await reply.write(sse_frame(1, "retrieval", {"hits": []}))
    await asyncio.sleep(0.01)
    await reply.write(sse_frame(2, "delta", {"text": "Hello"}))
    if query == "broken":
        await reply.write(sse_frame(3, "error", {"code": "INTERNAL", "message": "no"}))
    elif query != "cut":
        await reply.write(sse_frame(3, "done", {"cached": query == "hot"}))
    return reply


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/v1/search", search)
    app.router.add_post(CHAT_PATH, chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def scenario(queries: list[str], path: str = "/api/v1/search", warmup: tuple[str, ...] = ()) -> Scenario:
    return Scenario("test", path, itertools.cycle(queries), "search", "test queries", warmup)


async def run(url: str, target: Scenario, settings: LoadSettings) -> LoadGenerator:
    generator = LoadGenerator(url, target, settings)
    client = HttpClient(url, settings.concurrency)
    try:
        await generator.run(client)
    finally:
        client.close()
    return generator


async def test_closed_loop_stops_at_the_request_budget_and_reads_the_cached_mark(server: str) -> None:
    generator = await run(server, scenario(["hot", "cold"]), LoadSettings(30, concurrency=3, max_requests=50))
    assert len(generator.samples) == 50
    assert Counter(s.cached for s in generator.samples) == {True: 25, False: 25}
    assert all(s.error is None for s in generator.samples)


async def test_closed_loop_stops_at_the_deadline(server: str) -> None:
    generator = await run(server, scenario(["cold"]), LoadSettings(0.3, concurrency=2))
    assert generator.samples and generator.elapsed_s < 5


async def test_errors_are_counted_by_kind(server: str) -> None:
    settings = LoadSettings(30, concurrency=3, max_requests=3, timeout_s=0.2)
    generator = await run(server, scenario(["fail", "slow", "cold"]), settings)
    assert Counter(s.error for s in generator.samples) == {"http_503": 1, "timeout": 1, None: 1}
    refused = await run(f"http://127.0.0.1:{free_port()}", scenario(["cold"]), LoadSettings(30, 1, max_requests=2))
    assert [s.error for s in refused.samples] == ["connection", "connection"]


async def test_open_loop_latency_counts_the_queue_behind_a_slow_server(server: str) -> None:
    # One connection, 20 ms per request, 100 requests/s offered: request k cannot finish before
    # (k + 1) x 20 ms, yet was due at k x 10 ms, so its latency from the schedule is at least k x 10 ms.
    settings = LoadSettings(0.3, concurrency=1, rate=100)
    generator = await run(server, scenario(["queue"]), settings)
    assert len(generator.samples) == 30
    assert [round(s.start_s, 3) for s in sorted(generator.samples, key=lambda s: s.start_s)][:3] == [0, 0.01, 0.02]
    assert max(s.latency_s for s in generator.samples) >= 29 * (SERVICE_S - 0.01)


async def test_chat_streams_give_time_to_first_token_and_stream_errors(server: str) -> None:
    target = scenario(["hot", "broken", "cut"], path=CHAT_PATH)
    generator = await run(server, target, LoadSettings(30, concurrency=1, max_requests=3))
    by_error = {s.error: s for s in generator.samples}
    assert set(by_error) == {None, "stream_error", "stream_incomplete"}
    done = by_error[None]
    assert done.cached is True and done.ttft_s is not None and 0 < done.ttft_s <= done.latency_s
    assert by_error["stream_incomplete"].ttft_s is not None


async def test_warm_up_sends_each_warmup_query_once_and_keeps_no_sample(server: str) -> None:
    generator = LoadGenerator(server, scenario(["cold"], warmup=("hot", "fail")), LoadSettings(1, 1))
    client = HttpClient(server, 1)
    warm = await generator.warm_up(client)
    client.close()
    assert [s.error for s in warm] == [None, "http_503"]
    assert generator.samples == []


def test_progress_lines_count_requests_and_errors_across_intervals() -> None:
    samples = [Sample(0, 0.01), Sample(0, 0.02, error="timeout")]
    stream = io.StringIO()
    progress = Progress("mixed", 10, samples, stream)
    progress.show(5.0)
    samples += [Sample(0, 0.03, error="http_503")]
    progress.show(10.0)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert "2 requests" in lines[0] and "errors 1" in lines[0]
    assert "3 requests" in lines[1] and "0.2 req/s" in lines[1] and "errors 2" in lines[1]
