"""MCP over streamable HTTP at /mcp: the gateway's checks in front of the SDK's session manager.

Stateless and JSON-answering: every MCP message is one POST answered by one JSON body, so any gateway
replica can take any message (no session lives in one process: the session id an ``initialize`` answer carries only
labels the client, see mcp_cancel) and nothing is held open through Envoy.
The SDK's Host check is off (behind Envoy the Host is whatever the deployment's name is); the Origin is
checked against LIKEOPT_CORS_ORIGINS instead, which is what stops a web page from driving a local
Like-Opt (DNS rebinding), and the caller is checked as for every read
(the API key, or with LIKEOPT_AUTH=jwt the principal Envoy verified, which every tool call carries on).
A client that hangs up before its answer, or cancels the request by notification, cancels the message's handling,
and so an ``ask``'s Answer call.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.bodies import MAX_JSON_BYTES, declared_over, encoding_problem, is_json
from gateway.disconnect import Hangup, unless_left
from gateway.errors import BEARER_CHALLENGE
from gateway.keys import caller_of, caller_refusal
from gateway.mcp_cancel import (
    InFlight,
    caller_key,
    cancelled_ids,
    cancelled_reply,
    labelled_session,
    messages_in,
    opens_session,
    read_whole,
    replaying,
    request_ids,
)
from gateway.mcp_messages import body_problem, invalid_request, version_refusal
from gateway.mcp_server import Mesh
from gateway.upstreams import Upstreams
from likeopt.runtime.config import Config
from likeopt.runtime.mcp_refusal import mcp_refusal_body
from likeopt.runtime.principal import forwarded

CALLER: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("mcp_caller", default=())
"""The gRPC metadata naming the principal of the MCP request being handled (LIKEOPT_AUTH=jwt); the SDK runs a
request's tool calls in tasks started from it, which copy this context."""


def refusal_reply(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A refusal before the SDK reads the message, as a JSON-RPC error so an MCP client reports its reason."""
    return JSONResponse(mcp_refusal_body(code, message), status_code=status, headers=headers)


def origin_allowed(pattern: str, origin: str) -> bool:
    """Whether a browser Origin matches LIKEOPT_CORS_ORIGINS (a full match, as Envoy's CORS policy uses it; the
    setting is checked at start to compile in both dialects)."""
    return re.fullmatch(pattern, origin) is not None


def mesh_of(upstreams: Upstreams, config: Config) -> Mesh:
    """The MCP tools' stubs on the gateway's own channels (searches balanced, document reads to the writer)."""
    return Mesh(
        retrieval=upstreams.retrieval,
        documents=upstreams.retrieval_writer,
        generation=upstreams.generation,
        answer_timeout_s=config.answer_timeout_s,
        written=lambda: upstreams.least_version,
    )


def caller_mesh(mesh: Mesh) -> Mesh:
    """The gateway's stubs with the current MCP request's principal on every call: each tool searches, answers
    and lists as the person asking, through the same retrieval filters as REST."""
    caller = CALLER.get()
    return replace(mesh, metadata=caller) if caller else mesh


class McpEndpoint:
    """The ASGI app routed at /mcp; ``run()`` must be entered for the app's lifetime (the gateway's lifespan)."""

    def __init__(self, config: Config, server: MCPServer[Any]) -> None:
        self.config = config
        server.streamable_http_app(  # builds the session manager; its own Starlette app is not used
            stateless_http=True,
            json_response=True,
            max_request_body_size=MAX_JSON_BYTES,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager = server.session_manager
        self.in_flight = InFlight()

    def run(self) -> AbstractAsyncContextManager[None]:
        return self.manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        refusal = caller_refusal(self.config, headers, write=False)
        if refusal is not None:
            response = refusal_reply(401, "UNAUTHENTICATED", refusal[1], headers=BEARER_CHALLENGE)
        elif (origin := headers.get("origin")) and not origin_allowed(self.config.cors_origins, origin):
            response = refusal_reply(403, "FORBIDDEN", f"origin {origin!r} is not allowed (LIKEOPT_CORS_ORIGINS)")
        elif scope["method"] != "POST":  # the SDK's GET stream would idle forever, its 405s name GET and DELETE
            message = (
                "this MCP server is stateless: POST each message (there is no stream to GET nor session to DELETE)"
            )
            response = refusal_reply(405, "METHOD_NOT_ALLOWED", message, headers={"Allow": "POST"})
        elif not is_json(headers.get("content-type", "")):  # the SDK's refusal is plain text
            media_type = headers.get("content-type", "none")
            response = refusal_reply(
                415, "UNSUPPORTED_MEDIA_TYPE", f"MCP messages are application/json, not {media_type}"
            )
        elif problem := encoding_problem(headers):
            response = refusal_reply(415, "UNSUPPORTED_MEDIA_TYPE", problem)
        elif declared_over(headers, MAX_JSON_BYTES):  # the SDK's own refusal is plain text
            response = refusal_reply(413, "PAYLOAD_TOO_LARGE", f"an MCP message is at most {MAX_JSON_BYTES} bytes")
        else:
            token = CALLER.set(forwarded(caller_of(self.config, headers)))
            try:
                await self.handle(scope, receive, send)
            finally:
                CALLER.reset(token)
            return
        await response(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The SDK's handling of one message, cancelled if the client hangs up first or cancels it by notification
        (mcp_cancel): a tool call runs under the POST, so without this an abandoned ``ask`` would keep its Answer
        call, and the model, running."""
        body, whole = await read_whole(receive, MAX_JSON_BYTES)
        if whole and (problem := body_problem(body)):
            await invalid_request(problem)(scope, receive, send)
            return
        messages = messages_in(body) if whole else []  # one cut short is the SDK's to refuse
        requested = Headers(scope=scope).get(MCP_PROTOCOL_VERSION_HEADER)
        if refused := version_refusal(requested, messages[0].get("id") if messages else None):
            await refused(scope, receive, send)
            return
        caller = caller_key(scope)
        for request_id in cancelled_ids(messages):
            self.in_flight.cancel(caller, request_id)
        answer = labelled_session(send) if opens_session(messages) else send
        hangup = Hangup(replaying(body, whole, receive), answer)
        work = asyncio.ensure_future(self.manager.handle_request(scope, hangup.receive, hangup.send))
        ids = request_ids(messages)
        with self.in_flight.running(caller, ids, work) as noticed:
            handled = await unless_left(work, hangup.left())
        if not handled.cancelled():
            handled.result()  # the SDK's own failure, if any, reaches the server as before
        elif noticed.is_set() and not hangup.started:  # a hang-up leaves no one to answer; a notice does
            await Response(cancelled_reply(ids[0]), media_type="application/json")(scope, receive, hangup.send)
