"""An MCP client's ``notifications/cancelled`` stops the request it names.

Official clients cancel a tool call (an abandoned ``ask``) by POSTing that notification, not by hanging up. At a
stateless endpoint it reaches a fresh session that knows no request, and the SDK ignores it: the Answer call, and
the model, ran on. So the gateway keeps the messages it is handling by caller and JSON-RPC id, and cancels the one
a notification names. The caller is the credential, the client's address and its session id together: a client can
cancel only its own requests, whatever ids another chose. Every client numbers its requests from 0 or 1, and local
clients share the address (and, when reads need none, the missing key), so the gateway hands each client that
initializes a random session id (labelled_session), which clients send on every later message; it is a label, never
state, so any gateway replica still takes any message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, REQUEST_CANCELLED
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from likeopt.runtime.principal import PRINCIPAL_HEADER

CANCELLED = "notifications/cancelled"
CALLER_HEADERS = ("authorization", PRINCIPAL_HEADER, "x-forwarded-for", MCP_SESSION_ID_HEADER)
"""What tells callers apart: the credential, the principal Envoy verified, the client's address as Envoy saw it, the
session id the gateway gave the client."""


def caller_key(scope: Scope) -> str:
    """A digest of who sent the message (CALLER_HEADERS, and the peer when Envoy is not in front)."""
    headers = Headers(scope=scope)
    parts = [headers.get(name, "") for name in CALLER_HEADERS] + [str((scope.get("client") or ("",))[0])]
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=16).hexdigest()


def messages_in(body: bytes) -> list[dict[str, Any]]:
    """The JSON-RPC message of a POST body, as a list; none when it is not a JSON object (the SDK answers that;
    batches are refused before, see mcp_http)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return []
    return [parsed] if isinstance(parsed, dict) else []


def request_ids(messages: list[dict[str, Any]]) -> list[str]:
    """The ids of the requests among messages, as keys (1 and "1" are different ids)."""
    return [json.dumps(m["id"]) for m in messages if "method" in m and isinstance(m.get("id"), (int, str))]


def opens_session(messages: list[dict[str, Any]]) -> bool:
    """Whether messages hold an ``initialize`` request, whose answer gives the client its session id."""
    return any(m.get("method") == "initialize" and "id" in m for m in messages)


def labelled_session(send: Send) -> Send:
    """send, with a fresh random session id on a successful answer's headers (spec: visible ASCII, unguessable)."""
    session_id = secrets.token_hex(16).encode()

    async def send_labelled(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 200:
            headers = [*message.get("headers", []), (MCP_SESSION_ID_HEADER.encode(), session_id)]
            message = {**message, "headers": headers}
        await send(message)

    return send_labelled


def cancelled_ids(messages: list[dict[str, Any]]) -> list[str]:
    """The ids the cancellation notifications among messages name, as request_ids writes them."""
    named = (m.get("params") for m in messages if m.get("method") == CANCELLED and "id" not in m)
    return [
        json.dumps(p["requestId"]) for p in named if isinstance(p, dict) and isinstance(p.get("requestId"), (int, str))
    ]


def cancelled_reply(request_id: str) -> bytes:
    """What the SDK's stateful transport answers a cancelled request with: an error for its id (a POST carries one
    request; batches are refused before, see mcp_http)."""
    error = {"code": REQUEST_CANCELLED, "message": "Request cancelled"}
    return json.dumps({"jsonrpc": "2.0", "id": json.loads(request_id), "error": error}).encode()


class InFlight:
    """The messages being handled, by caller and request id; ``cancel`` stops one."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], tuple[asyncio.Future[Any], asyncio.Event]] = {}

    @contextmanager
    def running(self, caller: str, ids: list[str], work: asyncio.Future[Any]) -> Iterator[asyncio.Event]:
        """Keep work under each id while it runs; the event yielded is set when a notification cancelled it."""
        noticed = asyncio.Event()
        keys = [(caller, request_id) for request_id in ids]
        for key in keys:
            self._running[key] = (work, noticed)
        try:
            yield noticed
        finally:
            for key in keys:
                if self._running.get(key, (None,))[0] is work:
                    del self._running[key]

    def cancel(self, caller: str, request_id: str) -> bool:
        """Cancel the caller's request of that id, if it is running here; whether one was."""
        found = self._running.get((caller, request_id))
        if found is None or found[0].done():
            return False
        work, noticed = found
        noticed.set()
        work.cancel()
        return True


async def read_whole(receive: Receive, max_bytes: int) -> tuple[bytes, bool]:
    """The request body and whether it was read whole: reading stops past max_bytes (the SDK refuses such a body)
    and at a disconnect."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body), False
        body += message.get("body", b"")
        if len(body) > max_bytes:
            return bytes(body), False
        if not message.get("more_body", False):
            return bytes(body), True


def replaying(body: bytes, whole: bool, receive: Receive) -> Receive:
    """A receive that gives body back as it was read (the rest still to come unless whole), then the server's."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not whole}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
