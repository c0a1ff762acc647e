"""A client that hangs up cancels the work it asked for: the gRPC call under it, and so the model.

An ASGI app hears that its client left only from ``receive()``: ``http.disconnect``, once the body has been read.
The OpenAI routes read their body before they work, then watch. The MCP SDK reads the body itself, so Hangup
stands between it and the server: the SDK reads the body, then only the watcher reads (two tasks must not both
wait on the server's receive).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Message, Receive, Send

T = TypeVar("T")


async def until_disconnect(receive: Receive) -> None:
    """Returns when the client closes the connection (the body has been read: nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_left(work: Coroutine[Any, Any, T], left: Coroutine[Any, Any, None]) -> asyncio.Task[T]:
    """work's task, done: ended by itself, or cancelled (and with it its gRPC call) when left returned first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(left)
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task


class Hangup:
    """A request's receive and send as an app that reads its own body sees them, and a watcher of its client
    (``left``): the app's work outlives the body, so only a watcher can hear the client go."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.client_receive = receive
        self.client_send = send
        self.body_read = asyncio.Event()
        self.gone = asyncio.Event()
        self.started = False
        """The response's status went out: nothing else can be answered."""
        self.answered = False
        """The response's last byte went out: a disconnect now is the request ending, not the client leaving."""

    async def receive(self) -> Message:
        """The app's receive: the body from the server, then the disconnect the watcher hears."""
        if self.body_read.is_set():
            await self.gone.wait()
            return {"type": "http.disconnect"}
        message = await self.client_receive()
        if message["type"] == "http.disconnect":  # mid-body: the app gives up reading, the watcher hears it
            self.gone.set()
        if self.gone.is_set() or not message.get("more_body", False):
            self.body_read.set()
        return message

    async def send(self, message: Message) -> None:
        """The app's send, noting when the response has ended (the server then reports a disconnect)."""
        await self.client_send(message)
        self.started = True
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.answered = True

    async def left(self) -> None:
        """Returns when the client disconnects after its body and before the whole response went out."""
        await self.body_read.wait()
        if not self.gone.is_set():
            await until_disconnect(self.client_receive)
            self.gone.set()
        if self.answered:
            await asyncio.Event().wait()  # the response is out: the app ends by itself
