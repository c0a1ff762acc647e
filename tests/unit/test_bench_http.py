"""The load generator's HTTP client against a small in-process server: keep-alive, pieces, broken replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from likeopt.ops.bench.http import HttpClient
from tests.support import free_port


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[int]]]:
    """The server's URL and the client port of every request it answered (one port per connection)."""
    ports: list[int] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = await request.read()
        if request.path == "/slow":
            await asyncio.sleep(1)
        if request.path == "/pieces":
            reply = web.StreamResponse()
            await reply.prepare(request)
            for piece in (b"one ", b"two ", b"three"):
                await reply.write(piece)
                await asyncio.sleep(0.01)
            return reply
        if request.path == "/close":
            return web.Response(body=body, headers={"Connection": "close"})
        return web.Response(body=b"%s %s %s" % (request.method.encode(), request.content_type.encode(), body))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", ports
    await runner.cleanup()


async def test_replies_are_read_whole_and_connections_kept(server: tuple[str, list[int]]) -> None:
    url, ports = server
    client = HttpClient(url, limit=1)
    for n in range(3):
        async with client.request(client.prepare("POST", "/echo", b'{"n": %d}' % n)) as reply:
            assert reply.status == 200
            assert await reply.read() == b'POST application/json {"n": %d}' % n
    client.close()
    assert len(ports) == 3 and len(set(ports)) == 1


async def test_a_streamed_reply_arrives_in_pieces(server: tuple[str, list[int]]) -> None:
    url, _ = server
    client = HttpClient(url, limit=1)
    async with client.request(client.prepare("POST", "/pieces", b"")) as reply:
        pieces = [piece async for piece in reply.iter_any()]
    client.close()
    assert b"".join(pieces) == b"one two three" and len(pieces) >= 2


async def test_a_connection_left_mid_reply_or_closed_by_the_server_is_not_reused(
    server: tuple[str, list[int]],
) -> None:
    url, ports = server
    client = HttpClient(url, limit=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2), client.request(client.prepare("GET", "/slow", b"")) as reply:
            await reply.read()
    async with client.request(client.prepare("POST", "/close", b"bye")) as reply:
        assert await reply.read() == b"bye"
    async with client.request(client.prepare("POST", "/echo", b"")) as reply:
        await reply.read()
    client.close()
    assert len(set(ports)) == 3  # a fresh connection after the timeout and after Connection: close


async def test_a_refused_connection_raises_oserror() -> None:
    client = HttpClient(f"http://127.0.0.1:{free_port()}", limit=1)
    with pytest.raises(OSError):
        async with client.request(client.prepare("POST", "/", b"")):
            pass


def test_only_plain_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="plain HTTP"):
        HttpClient("https://127.0.0.1:8443", limit=1)
