"""A route class for the hot path: its dependencies are called directly instead of through FastAPI's solver.

FastAPI's general dependency solver costs about 100 µs of CPU per request on the cached search path, as much as
the rest of the gateway's work for it, and the guard is +10 %. The search route's dependencies (the caller, the
body, the running gateway) each take only the request, so DirectRoute calls them in declaration order, each
once per request as FastAPI's cache would, and passes them to the endpoint. The route is declared as any other
(parameters, router dependencies, models), so the OpenAPI document is generated from it the same way; a route
whose dependencies need more than the request is refused when it is declared, not served wrongly. Besides
its dependencies, the endpoint may take optional string headers (chat's ``Last-Event-ID``), read as they come.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

RequestDependency = Callable[[Request], Awaitable[Any]]


def optional_headers(dependant: Dependant) -> list[tuple[str, str, str]]:
    """(parameter name, header name, default) of each header the endpoint takes; each must be an optional str."""
    headers = []
    for field in dependant.header_params:
        info = field.field_info
        if info.annotation is not str or info.is_required() or not isinstance(field.default, str):
            raise TypeError(f"{dependant.call!r}: a direct route's header {field.alias} must be an optional str")
        headers.append((field.name, field.alias, field.default))
    return headers


def direct_calls(dependant: Dependant) -> list[tuple[str | None, RequestDependency]]:
    """(parameter name or None for a router's dependency, coroutine function of the request), in order."""
    declared = [dependant.path_params, dependant.query_params, dependant.cookie_params]
    if any(declared) or dependant.body_params:
        raise TypeError(f"{dependant.call!r}: a direct route takes its inputs through dependencies and headers only")
    calls: list[tuple[str | None, RequestDependency]] = []
    for sub in dependant.dependencies:
        takes_more = any([sub.path_params, sub.query_params, sub.header_params, sub.cookie_params, sub.body_params])
        if sub.dependencies or takes_more or sub.request_param_name is None:
            raise TypeError(f"{sub.call!r}: a direct route's dependency must take the request and nothing else")
        if not inspect.iscoroutinefunction(sub.call):
            raise TypeError(f"{sub.call!r}: a direct route's dependency must be async (FastAPI would use a thread)")
        calls.append((sub.name, sub.call))
    return calls


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint returns a Response and whose dependencies each take only the request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        calls = direct_calls(self.dependant)
        headers = optional_headers(self.dependant)
        endpoint = self.dependant.call
        assert endpoint is not None
        request_name = self.dependant.request_param_name

        async def handler(request: Request) -> Response:
            solved: dict[RequestDependency, Any] = {}
            arguments: dict[str, Any] = {request_name: request} if request_name else {}
            for name, call in calls:
                value = solved[call] if call in solved else await call(request)
                solved[call] = value
                if name is not None:
                    arguments[name] = value
            for name, header, default in headers:
                arguments[name] = request.headers.get(header, default)
            return await endpoint(**arguments)

        return handler


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class DirectLane:
    """ASGI: the direct routes' requests go straight to their handlers; everything else to the app.

    Measured through Envoy (``likeopt bench --scenario search-cached``), FastAPI's router and middleware stack
    (exit stacks, included-router matching, body limits, its telemetry hook) took the gateway's CPU per cached
    search from 0.33 to 0.44 ms even with DirectRoute. The lane matches a direct route's path and method and
    calls the route's own handler, so the route keeps its declaration, dependencies and documentation, and its
    errors are answered by the app's own handlers (``errors``, looked up by exception type as FastAPI does).
    """

    def __init__(self, app: Callable[..., Awaitable[None]], routes: list[DirectRoute], errors: dict[Any, Any]):
        self.app = app
        self.routes = {
            (route.path, method): (route, route.get_route_handler()) for route in routes for method in route.methods
        }
        self.errors: list[tuple[type[Exception], ErrorHandler]] = [
            (kind, handler) for kind, handler in errors.items() if isinstance(kind, type)
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        direct = self.routes.get((scope.get("path"), scope.get("method"))) if scope["type"] == "http" else None
        if direct is None:
            await self.app(scope, receive, send)
            return
        scope["route"], handler = direct
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await self.error_response(request, exc)
        await response(scope, receive, send)

    async def error_response(self, request: Request, exc: Exception) -> Response:
        """The app's answer to exc: the handler of its nearest registered class (Exception catches the rest)."""
        for kind in type(exc).__mro__:
            for registered, handler in self.errors:
                if registered is kind:
                    return await handler(request, exc)
        raise exc
