"""HEAD answered as the same GET without its body (RFC 9110, section 9.3.2).

Uptime checkers and load balancers probe ``/healthz`` and the UI with HEAD; FastAPI's GET routes refuse it with
405, so the request is served as GET and only the body is left out (its headers, Content-Length included, are
those GET would send).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ASKED_METHOD = "likeopt.asked_method"
"""The scope key that keeps the method a client sent when it is served as another (metrics count HEAD as HEAD)."""


class HeadAsGet:
    """ASGI middleware: a HEAD request runs as GET; the response's start is sent, its body is not."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def without_body(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                scope["method"] = "HEAD"  # the server reads it too: for HEAD it expects no body after the headers
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        # In place, as the router does, so the outer middleware's metrics see the route that answered.
        scope.update(method="GET", **{ASKED_METHOD: "HEAD"})
        await self.app(scope, receive, without_body)


def served_as(method: str) -> str:
    """The method a request is routed as: HEAD runs as GET (HeadAsGet), the others as themselves."""
    return "GET" if method == "HEAD" else method
