"""Errors as JSON ``{"error": {"code", "message"}}`` with the right HTTP status; never a stack trace."""

from __future__ import annotations

import grpc
from starlette.responses import JSONResponse

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


HIDDEN_DETAILS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}


class ApiError(Exception):
    """A request that ends with an error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_grpc(cls, exc: grpc.aio.AioRpcError) -> ApiError:
        status = GRPC_TO_HTTP.get(exc.code(), 502)
        return cls(status, exc.code().name, public_details(exc))


def public_details(exc: grpc.aio.AioRpcError) -> str:
    """What a client may read of an upstream failure: never an internal exception's text."""
    if exc.code() in HIDDEN_DETAILS:
        return "internal error in an upstream service; the X-Trace-Id finds it in the logs"
    return exc.details() or exc.code().name


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON body every error has."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
