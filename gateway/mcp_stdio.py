"""``likeopt mcp``: the MCP server over stdin/stdout, for desktop clients (Claude Desktop, Cursor). With a token
(LIKEOPT_AUTH=jwt) it serves only once the addresses it calls are known to verify it, since a service's own port
ignores tokens and would read every tenant's documents."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from typing import Any

import grpc

from gateway.mcp_server import Mesh, build_mcp_server
from likeopt.runtime.config import Config
from likeopt.runtime.logs import setup_logging
from likeopt.v1 import generation_pb2, retrieval_pb2


class TokenIgnored(Exception):
    """``likeopt mcp --token`` pointed where the token is not verified, or where that could not be checked."""


PROBE_TIMEOUT_S = 10.0
"""How long the start-up check waits for Envoy (or a service) to answer, the mesh perhaps still starting."""


async def refusal_without_token(call: Awaitable[object]) -> grpc.StatusCode | None:
    """The status a call sent with no credentials ended with; None when it was answered."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return None


async def check_token_verified(mesh: Mesh, config: Config) -> None:
    """Raise TokenIgnored unless every address the tools call refuses a call without credentials, as Envoy's port
    does with LIKEOPT_AUTH=jwt. A service's own port answers it: the services never read a token, and a call with
    no principal is one from inside the mesh, which reads every tenant's documents."""
    options: dict[str, Any] = {"timeout": PROBE_TIMEOUT_S, "wait_for_ready": True}
    status, conversation = retrieval_pb2.GetIndexStatusRequest(), generation_pb2.GetConversationRequest()
    probed = [
        ("LIKEOPT_RETRIEVAL_ADDR", config.retrieval_addr, mesh.retrieval.GetIndexStatus(status, **options)),
        ("LIKEOPT_RETRIEVAL_ADDR", config.retrieval_addr, mesh.documents.GetIndexStatus(status, **options)),
        ("LIKEOPT_GENERATION_ADDR", config.generation_addr, mesh.generation.GetConversation(conversation, **options)),
    ]
    codes = await asyncio.gather(*(refusal_without_token(call) for _, _, call in probed))
    for (setting, address, _), code in zip(probed, codes, strict=True):
        if code == grpc.StatusCode.UNAUTHENTICATED:
            continue
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            reason = f"{setting}={address} could not be reached to check that it verifies tokens ({code.name})"
        else:
            reason = f"{setting}={address} answers calls without a token: a service's own port, which ignores tokens"
        raise TokenIgnored(f"{reason}; point LIKEOPT_RETRIEVAL_ADDR and LIKEOPT_GENERATION_ADDR at Envoy's port")


async def serve_stdio(config: Config, token: str = "") -> None:
    """``likeopt mcp``: serve MCP on stdin/stdout until the client closes them; with a token (LIKEOPT_AUTH=jwt),
    only once the addresses are known to verify it (check_token_verified)."""
    mesh = Mesh.connect(config, token)
    try:
        if token and config.jwt:
            await check_token_verified(mesh, config)
        await build_mcp_server(lambda: mesh).run_stdio_async()
    finally:
        await mesh.close()


def missing_token(config: Config, token: str) -> str | None:
    """What to warn of at start: with LIKEOPT_AUTH=jwt, calls through Envoy need the token of the person the client
    acts for, and without one every tool fails with Envoy's bare "Jwt is missing"."""
    if config.jwt and not token:
        return "LIKEOPT_AUTH=jwt and no --token: every call through Envoy will be refused (401); pass --token TOKEN"
    return None


def run_stdio(config: Config, token: str = "") -> None:
    """``likeopt mcp``: logs go to stderr as JSON lines, since stdout carries the protocol."""
    setup_logging("mcp", config.log_level)
    if warning := missing_token(config, token):
        logging.getLogger("mcp").warning(warning)
    try:
        asyncio.run(serve_stdio(config, token))
    except TokenIgnored as exc:
        sys.exit(f"likeopt mcp --token: {exc} (nothing was served)")
