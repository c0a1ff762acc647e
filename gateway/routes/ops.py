"""What operators and the browser need that is not the API: liveness, readiness, metrics, the pages."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from gateway.errors import RATE_LIMITED, error_responses
from gateway.models import Alive, Readiness
from gateway.state import Running

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}
PAGE_HEADERS = {
    **NO_CACHE,
    # Scripts, styles and calls from this origin only (the UI has no inline script or style: config.js is a file
    # for this reason), no plugins, and no framing by another site (clickjacking the Documents tab's Delete).
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self';"
        " frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""Headers of the UI's pages (the web UI and the API reference)."""


class UiFiles(StaticFiles):
    """The UI's scripts and styles, each use revalidated (a 304 when unchanged), as its pages are.

    Without Cache-Control a browser keeps a file with a Last-Modified for a tenth of its age unasked, so after an
    upgrade the new page ran with the old release's modules, a mix whose imports need not match."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NO_CACHE)
        return response


UI_FILES = UiFiles(directory=STATIC_DIR)
"""/static, and the pages."""


def page(name: str, request: Request) -> Response:
    """A UI page with PAGE_HEADERS; a revalidation it answers 304 when the page is unchanged, as /static does
    (Starlette's FileResponse alone gave the ETag, then sent the whole page again for it)."""
    path = STATIC_DIR / name
    response = UI_FILES.file_response(path, os.stat(path), request.scope)
    response.headers.update(PAGE_HEADERS)
    return response


router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The gateway is alive", response_model=Alive)
@router.get("/api/v1/healthz", include_in_schema=False)
async def healthz() -> Alive:
    return Alive()


@router.get(
    "/api/v1/readyz",
    summary="Every upstream service has a replica SERVING",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "An upstream has no replica serving"},
        **error_responses(RATE_LIMITED),
    },
)
async def readyz(gateway: Running) -> JSONResponse:
    """200 when each upstream has a replica whose health check says SERVING, else 503; either way each replica's
    status, and a line naming each replica that is not serving."""
    health = await gateway.upstreams.health()
    ready = all(upstream.serving for upstream in health.values())
    readiness = Readiness(
        ready=ready,
        upstreams={name: upstream.status for name, upstream in health.items()},
        replicas={name: upstream.replicas for name, upstream in health.items()},
        detail=[line for name, upstream in health.items() if (line := upstream.detail(name))],
    )
    return JSONResponse(readiness.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus exposition of the gateway",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
@router.get("/api/v1/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/docs", include_in_schema=False)
async def api_docs(request: Request) -> Response:
    """The API reference page, rendered in the browser from /api/v1/openapi.json."""
    return page("docs.html", request)


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    return page("index.html", request)
