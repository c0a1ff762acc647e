"""The load generator's HTTP/1.1 client: keep-alive connections, responses parsed by httptools.

Written here rather than taken from aiohttp because the bench says so: on two cores the load
generator's CPU is taken from the mesh it measures, and aiohttp spent about 0.9 CPU-ms on each
search request (py-spy: request objects, header handling, decompressing), a sixth of everything
outside retrieval_svc. This client sends one prepared request per call and hands the body over as
it arrives: 0.07 CPU-ms a request against aiohttp's 0.27 alone, and the whole load generator 0.97 →
0.41 to 0.50 per search in the bench (benchmarks/README.md, "Mesh cost"). It sends no Accept-Encoding,
as wrk and most programs do, so replies come uncompressed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httptools

_END = b""
"""Queued after the last piece of a body (a body piece is never empty)."""


class ReplyProtocol(asyncio.Protocol):
    """One keep-alive connection: the reply to the request in flight, piece by piece."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._status: asyncio.Future[int] | None = None
        self._pieces: asyncio.Queue[bytes | Exception] = asyncio.Queue()
        self.complete = True
        """Whether the last reply was read to its end (only then can the connection carry another)."""
        self.lost = False
        self._keep_alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write a request; the future gets the reply's status once its headers are in."""
        self.complete = False
        self._status = asyncio.get_running_loop().create_future()
        self._pieces = asyncio.Queue()
        assert self.transport is not None
        self.transport.write(request)
        return self._status

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()  # only meaningful before the message ends
        if self._status is not None and not self._status.done():
            self._status.set_result(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self._pieces.put_nowait(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self._pieces.put_nowait(_END)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.complete:
            self._fail(ConnectionError("the server closed the connection mid-reply"))

    def _fail(self, exc: Exception) -> None:
        self.lost = True
        if self._status is not None and not self._status.done():
            self._status.set_exception(exc)
        self._pieces.put_nowait(exc)
        if self.transport is not None:
            self.transport.close()

    async def pieces(self) -> AsyncIterator[bytes]:
        """The reply's body as it arrives, dechunked."""
        while (piece := await self._pieces.get()) is not _END:
            if isinstance(piece, Exception):
                raise piece
            yield piece

    def reusable(self) -> bool:
        return self.complete and not self.lost and self._keep_alive


class Reply:
    """A status and a body to read whole or piece by piece."""

    def __init__(self, status: int, connection: ReplyProtocol) -> None:
        self.status = status
        self._connection = connection

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._connection.pieces()])

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._connection.pieces()


class HttpClient:
    """Up to ``limit`` keep-alive connections to one origin; a connection whose reply was not read to the
    end (an error, a timeout) is closed rather than reused."""

    def __init__(self, base_url: str, limit: int, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load generator speaks plain HTTP to a host: {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        authority = f"[{self.host}]" if ":" in self.host else self.host
        self._head = f"Host: {authority}:{self.port}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in (headers or {}).items()
        )
        self._idle: list[ReplyProtocol] = []
        self._slots = asyncio.Semaphore(limit)

    def prepare(self, method: str, path: str, body: bytes, content_type: str = "application/json") -> bytes:
        """The bytes of one request (path absolute, body sent with its length)."""
        return (
            f"{method} {path} HTTP/1.1\r\n{self._head}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    @asynccontextmanager
    async def request(self, prepared: bytes) -> AsyncIterator[Reply]:
        """Send a prepared request on a free connection; the reply is valid inside the block."""
        async with self._slots:
            connection = self._idle_connection() or await self._connect()
            try:
                yield Reply(await connection.send(prepared), connection)
            finally:
                if connection.reusable():
                    self._idle.append(connection)
                elif connection.transport is not None:
                    connection.transport.close()

    def _idle_connection(self) -> ReplyProtocol | None:
        """A kept connection the server has not closed meanwhile, if there is one."""
        while self._idle:
            if not (connection := self._idle.pop()).lost:
                return connection
        return None

    async def _connect(self) -> ReplyProtocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(ReplyProtocol, self.host, self.port)
        return protocol

    def close(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()
