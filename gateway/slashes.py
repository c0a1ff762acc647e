"""A path with a trailing slash (``/v1/models/``, ``/api/v1/search/``) is served as the path without it.

Starlette's answer is a 307 to the slashless URL, built from the request as the gateway sees it: behind Envoy
(or a TLS-terminating proxy before it) its Location says ``http://`` and the gateway's own host, and some clients
do not follow a 307 on a POST at all. Serving the route directly answers every client the same way, and the
OpenAPI document keeps one path per route.
"""

from __future__ import annotations

from starlette.routing import Match, Router, get_route_path
from starlette.types import Receive, Scope, Send


class SlashlessFallback:
    """A router's ``default``: when no route matched a path ending in a slash, the route of the path without the
    slash answers, if there is one; otherwise the router's own 404."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = get_route_path(scope)
        if scope["type"] == "http" and path.endswith("/") and path.rstrip("/"):
            trimmed = {"path": scope["path"].rstrip("/")}
            if "raw_path" in scope:
                trimmed["raw_path"] = scope["raw_path"].rstrip(b"/")
            if any(route.matches({**scope, **trimmed})[0] is not Match.NONE for route in self.router.routes):
                scope.update(trimmed)  # in place: the metrics read the route matched from the request's own scope
                await self.router.app(scope, receive, send)
                return
        await self.router.not_found(scope, receive, send)


def serve_without_trailing_slash(router: Router) -> None:
    """Answer a path with a trailing slash from its slashless route instead of redirecting to it."""
    router.redirect_slashes = False
    router.default = SlashlessFallback(router)
