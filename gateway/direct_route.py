"""A route class for the hot path: its dependencies are called directly instead of through FastAPI's solver.

FastAPI's general dependency solver costs about 100 µs of CPU per request on the cached search path, as much as
the rest of the gateway's work for it, and the guard is +10 %. The search route's dependencies (the caller, the
body, the running gateway) each take only the request, so DirectRoute calls them in declaration order, each
once per request as FastAPI's cache would, and passes them to the endpoint. The route is declared as any other
(parameters, router dependencies, models), so the OpenAPI document is generated from it the same way; a route
whose dependencies need more than the request is refused when it is declared, not served wrongly.
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


def direct_calls(dependant: Dependant) -> list[tuple[str | None, RequestDependency]]:
    """(parameter name or None for a router's dependency, coroutine function of the request), in order."""
    declared = [dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params]
    if any(declared) or dependant.body_params:
        raise TypeError(f"{dependant.call!r}: a direct route takes its inputs through dependencies only")
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
            return await endpoint(**arguments)

        return handler
