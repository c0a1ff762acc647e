"""The REST API's routers, one per concern; gateway/app.py puts them together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from gateway.errors import RATE_LIMITED, error_responses


def api_router(
    tag: str, access: Callable[..., Any], *statuses: int, route_class: type[APIRoute] = APIRoute
) -> APIRouter:
    """A router of /api/v1 routes that all need access (gateway/auth.py) and can all answer these error statuses,
    and Envoy's rate limit."""
    return APIRouter(
        prefix="/api/v1",
        tags=[tag],
        dependencies=[Depends(access)],
        responses=error_responses(RATE_LIMITED, *statuses),
        route_class=route_class,
    )
