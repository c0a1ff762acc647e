"""The web UI's settings, served as a tiny script (``/static/config.js``) loaded before the app.

A file rather than an inline script, so a Content-Security-Policy of ``script-src 'self'``
still holds; the page stays static and build-free. Only settings the UI reads are exposed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from likeopt.runtime.config import Config
from likeopt.runtime.contract import LIST_LIMIT, MAX_COMMENT_CHARS, MAX_QUERY_CHARS, MAX_UPLOAD_FILES
from likeopt.runtime.loaders import NAMED_FILES, NAMED_VARIANTS, SUPPORTED

UI_CONFIG_PATH = "/static/config.js"


def ui_config_script(config: Config) -> str:
    """Assignments to ``window`` globals for each UI setting that is set."""
    settings = {
        "LIKEOPT_JAEGER_URL": config.jaeger_url,
        "LIKEOPT_AUTH": "jwt" if config.jwt else "",
        "LIKEOPT_FILE_TYPES": sorted(SUPPORTED),  # what an upload can hold, so the page sends no other file
        "LIKEOPT_FILE_NAMES": sorted(NAMED_FILES),  # and the files read by their whole name (.gitignore, Dockerfile)
        "LIKEOPT_FILE_NAME_VARIANTS": sorted(NAMED_VARIANTS),  # or by the name before a variant's (Dockerfile.dev)
        "LIKEOPT_MAX_QUERY_CHARS": MAX_QUERY_CHARS,  # so a too-long question stays in the composer, told why
        "LIKEOPT_MAX_COMMENT_CHARS": MAX_COMMENT_CHARS,  # the feedback box takes no more than the server stores
        "LIKEOPT_MAX_UPLOAD_FILES": MAX_UPLOAD_FILES,  # so a drop of more files is sent in batches the server takes
        "LIKEOPT_MAX_REQUEST_BYTES": config.max_request_bytes,  # and of at most this many bytes (else 413)
        "LIKEOPT_MAX_LIST_LIMIT": LIST_LIMIT.high,  # a refreshed list keeps the pages opened, up to this many
    }
    return "".join(f"window.{name} = {json.dumps(value)};\n" for name, value in settings.items() if value)


def ui_config_endpoint(config: Config) -> Callable[[Request], Awaitable[Response]]:
    """The route handler; the script is built once, settings do not change while running."""
    body = ui_config_script(config)

    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    return endpoint
