"""Errors as JSON ``{"error": {"code", "message"}}`` with the right HTTP status; never a stack trace."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar
from urllib.parse import unquote

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Mount

from gateway.head_requests import served_as
from gateway.models import ErrorResponse
from likeopt.runtime.grpc_client import CHANNEL_FAILURE, channel_failure_words, cut_off_by_stop

T = TypeVar("T")
log = logging.getLogger(__name__)

GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.CANCELLED: 499,
}
CRASHED = "internal error; the trace id in X-Trace-Id finds it in the logs"
"""What a request that met a bug in the gateway is told (its traceback goes to the gateway's log)."""
UPSTREAM_FAILED = 502
"""Any other upstream status (UNKNOWN, INTERNAL, UNIMPLEMENTED…)."""

HIDDEN_DETAILS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
STOPPED_WORDS = (
    "an upstream service stopped before it answered (a restart ended the calls it had in flight): what was asked may"
    " or may not have taken effect; try again shortly (a write may be sent again: documents are replaced by id)"
)

STATUS_MEANINGS = {
    400: "Malformed body: not UTF-8 JSON, not a JSON object, or a broken multipart upload",
    401: "Missing or wrong API key, or (LIKEOPT_AUTH=jwt) a missing or refused token",
    403: "A token without the writer role (LIKEOPT_JWT_WRITER_ROLE) tried to write, or an upstream refused the caller",
    404: "Not found",
    409: "An upstream reported a conflict (ALREADY_EXISTS)",
    413: "Body too large",
    415: "A compressed body (Content-Encoding other than identity): bodies are read uncompressed",
    422: "A field is invalid (or an upstream said INVALID_ARGUMENT, OUT_OF_RANGE or FAILED_PRECONDITION)",
    429: "Rate limited by Envoy, or an upstream is out of capacity (RESOURCE_EXHAUSTED)",
    499: "The client closed the request first",
    502: "An upstream service failed (its details are in the logs under the X-Trace-Id)",
    503: "An upstream service is unavailable",
    504: "An upstream deadline passed",
}
UPSTREAM_STATUSES = (*sorted(set(GRPC_TO_HTTP.values())), UPSTREAM_FAILED)
"""What a route that calls a service can answer: whatever the service's status maps to."""
BODY_STATUSES = (400, 413, 415, 422)
RATE_LIMITED = 429
"""What Envoy answers, in the error shape, to a client past its rate limit on any path under /api/."""
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
"""What a 401 says it wants (RFC 9110): a bearer credential, the API key or a token."""


class ApiError(Exception):
    """A request that ends with an error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    @classmethod
    def from_grpc(cls, exc: grpc.aio.AioRpcError) -> ApiError:
        status = GRPC_TO_HTTP.get(exc.code(), UPSTREAM_FAILED)
        return cls(status, exc.code().name, public_details(exc))


def status_of(code_name: str) -> int:
    """The HTTP status for a gRPC status named in an answer's error event (UPSTREAM_FAILED for a name unknown)."""
    code = grpc.StatusCode.__members__.get(code_name)
    return GRPC_TO_HTTP.get(code, UPSTREAM_FAILED) if code is not None else UPSTREAM_FAILED


def retry_after(seconds: float) -> dict[str, str] | None:
    """A Retry-After header for a temporary failure that says when to try again (none when it does not)."""
    return {"Retry-After": str(math.ceil(seconds))} if seconds > 0 else None


def public_details(exc: grpc.aio.AioRpcError) -> str:
    """What a client may read of an upstream failure: never an internal exception's text, nor the words of
    gRPC's own about a server it could not reach or that stopped mid-call (those go to the log)."""
    if exc.code() in HIDDEN_DETAILS:
        return "internal error in an upstream service; the X-Trace-Id finds it in the logs"
    details = exc.details() or ""
    if exc.code() is grpc.StatusCode.UNAVAILABLE and CHANNEL_FAILURE.match(details):
        service = unreachable_service(details) or "an upstream service"
        log.warning("upstream unreachable", extra={"fields": {"upstream": service, "details": details}})
        return channel_failure_words(details, service)
    if cut_off_by_stop(exc.code(), details):
        log.warning("upstream stopped during the call", extra={"fields": {"details": details}})
        return STOPPED_WORDS
    return details or exc.code().name


UPSTREAMS: dict[str, set[str]] = {}
"""The services listening at each upstream address (host:port), as the gateway's channels were opened."""


def name_upstreams(service: str, addresses: Iterable[str]) -> None:
    """Record where a service listens, so an unreachable one is named in the error a client reads."""
    for address in addresses:
        UPSTREAMS.setdefault(address, set()).add(service)


def unreachable_service(details: str) -> str | None:
    """The service whose address a channel's failure names: by host and port, else by a port only one service
    uses (a host name shows there as the IP it resolved to); None when unknown or not a single service."""
    for named in re.findall(r"(?:ipv4:|ipv6:|resolving )(\S+?):? ", details):
        address = unquote(named)
        port = address.rpartition(":")[2]
        same_port = {name for known, names in UPSTREAMS.items() if known.rpartition(":")[2] == port for name in names}
        for found in (UPSTREAMS.get(address, set()), same_port):
            if len(found) == 1:
                return next(iter(found))
    return None


async def upstream_call(call: Awaitable[T]) -> T:
    """Await a unary gRPC call; its failure becomes the matching HTTP error."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise ApiError.from_grpc(exc) from None


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON body every error has."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


ERROR_CONTENT = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}}}
"""Named rather than given as a model: FastAPI would describe it in the route's media type (a stream's too)."""


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def http_error_headers(request: Request, exc: HTTPException) -> dict[str, str] | None:
    """An HTTPException's headers; a 405's Allow names every method some route serves at the path, where
    Starlette names only those of the first route it tried (GET for /api/v1/documents, which POST serves too).
    HEAD is served wherever GET is (head_requests.HeadAsGet), so RFC 9110 has Allow name it there too."""
    if exc.status_code != 405:
        return exc.headers
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": served_as(method)})[0] is Match.FULL for route in routes)
    ]
    return {**(exc.headers or {}), "Allow": ", ".join(allowed)} if allowed else exc.headers


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, each with the error body (ErrorResponse)."""
    return {status: {"description": STATUS_MEANINGS[status], "content": ERROR_CONTENT} for status in sorted(statuses)}
