"""The gateway's ASGI app: the REST routers, the OpenAI-compatible API at /v1, MCP at /mcp, the web UI.

No business logic here: each router validates, translates to gRPC and streams back. The OpenAPI document at
/api/v1/openapi.json is generated from the routes and their models (gateway/models.py).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from gateway.auth import OPTIONAL_BEARER, reader
from gateway.bodies import BODY_MODELS, SCHEMA_REF, invalid
from gateway.direct_route import DirectLane, DirectRoute
from gateway.errors import CRASHED, ApiError, error_response, http_error_headers
from gateway.head_requests import HeadAsGet
from gateway.mcp_http import McpEndpoint, caller_mesh
from gateway.mcp_server import build_mcp_server
from gateway.models import ErrorResponse
from gateway.observe import LabelledRoute
from gateway.openai_api import openai_app
from gateway.request_spans import NO_NATIVE_TELEMETRY
from gateway.routes import admin, chat, conversations, documents, feedback, ops, search
from gateway.routes.ops import STATIC_DIR, UI_FILES
from gateway.slashes import serve_without_trailing_slash
from gateway.state import Lifecycle
from gateway.ui_config import UI_CONFIG_PATH, ui_config_endpoint
from gateway.upstreams import Upstreams
from likeopt.runtime.config import Config

OPENAPI_PATH = "/api/v1/openapi.json"
TITLE = "Like-Opt"
DESCRIPTION = "Question answering over your own documents: search, streamed cited answers, ingestion."
ROUTERS = (
    search.router,
    chat.router,
    documents.reads,
    documents.writes,
    conversations.router,
    feedback.rate,
    feedback.listing,
    admin.router,
    ops.router,
)

__all__ = ["STATIC_DIR", "build_app"]


class WholePathMount(Mount):
    """A Mount that takes every path under its prefix: Starlette's stops at a newline (``%0A``), so such a path under
    /v1 fell through to the REST API's 404, in its error shape instead of OpenAI's."""

    def __init__(self, path: str, app: ASGIApp, name: str) -> None:
        super().__init__(path, app=app, name=name)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


class GatewayApp(FastAPI):
    """FastAPI with the direct lane (gateway/direct_route.py) in front of its whole middleware stack.

    Inside the stack, as user middleware, a cached search still passed FastAPI's error, telemetry and body-limit
    layers: 3 % of the gateway's CPU each time for nothing a direct route uses (its errors are answered by the
    same handlers, its body limit is read_body's)."""

    direct_routes: tuple[DirectRoute, ...] = ()

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return DirectLane(HeadAsGet(stack), routes=list(self.direct_routes), errors=self.exception_handlers)


def build_app(config: Config, upstreams: Upstreams | None = None) -> GatewayApp:
    """The ASGI app; upstream channels open on start-up unless given (tests)."""
    lifecycle = Lifecycle(config, upstreams)
    mcp = McpEndpoint(config, build_mcp_server(lambda: caller_mesh(lifecycle.current().mesh)))
    app = GatewayApp(
        title=TITLE,
        version="1",
        description=DESCRIPTION,
        lifespan=lifecycle.lifespan(mcp.run),
        openapi_url=OPENAPI_PATH,
        telemetry=NO_NATIVE_TELEMETRY,
        docs_url=None,
        redoc_url=None,
        exception_handlers={
            ApiError: on_api_error,
            RequestValidationError: on_invalid,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
    )
    for router in ROUTERS:
        app.include_router(router)
    app.direct_routes = tuple(route for router in ROUTERS for route in router.routes if isinstance(route, DirectRoute))
    ui_config = LabelledRoute(UI_CONFIG_PATH, ui_config_endpoint(config), include_in_schema=False)
    app.router.routes.append(ui_config)  # before the static mount
    app.router.routes.append(WholePathMount("/v1", openai_app(config, lifecycle.upstreams), name="openai"))
    app.router.routes.append(LabelledRoute("/mcp", mcp, name="mcp", include_in_schema=False))
    app.mount("/static", UI_FILES, name="static")
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    serve_without_trailing_slash(app.router)
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of the routes, with the models of the bodies the routes parse themselves and of errors."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        described = [(model, "validation") for model in (*BODY_MODELS, ErrorResponse)]
        _, bodies = models_json_schema(described, ref_template=SCHEMA_REF)
        document.setdefault("components", {}).setdefault("schemas", {}).update(bodies.get("$defs", {}))
        declare_optional_credentials(document, app.routes)
        app.openapi_schema = document
    return app.openapi_schema


def declare_optional_credentials(document: dict[str, Any], routes: list[BaseRoute]) -> None:
    """Each read's security (OPTIONAL_BEARER): FastAPI declares a security scheme only as required, which reads
    open by default are not, so their access dependency (auth.reader) declares none."""
    for context in iter_route_contexts(routes):
        if isinstance(context.route, APIRoute) and context.route.include_in_schema:
            if any(dependency.dependency is reader for dependency in context.dependencies):
                for method in context.methods or ():
                    document["paths"][context.path_format][method.lower()]["security"] = OPTIONAL_BEARER


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def on_invalid(request: Request, exc: Exception) -> Response:
    """A path, query or header parameter that does not fit its declaration."""
    assert isinstance(exc, RequestValidationError)
    return await on_api_error(request, invalid(exc.errors(), sourced=True))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), headers=http_error_headers(request, exc))


async def on_crash(request: Request, exc: Exception) -> Response:
    return error_response(500, "INTERNAL", CRASHED)
