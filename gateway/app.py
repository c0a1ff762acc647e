"""The gateway's routes: validate, translate to gRPC, stream back. No business logic here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.convert import conversation_json, event_json, hit_json
from gateway.dashboard import Dashboard
from gateway.errors import ApiError, error_response, public_details
from gateway.fast_json import hits_json, search_body, search_head
from gateway.feedback import FEEDBACK_TIMEOUT_S, MAX_FEEDBACK_BYTES, feedback_json, feedback_message, list_request
from gateway.keys import caller_of, caller_refusal, key_refusal
from gateway.mcp_http import McpEndpoint, caller_mesh, mesh_of
from gateway.near_search import NearSearchReplies
from gateway.observe import record_first_token
from gateway.openai_api import openai_app
from gateway.openapi import openapi_spec
from gateway.sse import sse_frame, with_heartbeats
from gateway.ui_config import UI_CONFIG_PATH, ui_config_endpoint
from gateway.upstreams import Upstreams
from likeopt.cache_keys import normalise_query
from likeopt.config import Config
from likeopt.ingest import to_message
from likeopt.loaders import Skipped, load_content
from likeopt.mcp_server import build_mcp_server
from likeopt.near_cache import VersionedLRU
from likeopt.principal import Principal, forwarded, scope_of
from likeopt.v1 import generation_pb2, retrieval_pb2

T = TypeVar("T")

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_JSON_BYTES = 1024 * 1024
MAX_QUERY_CHARS = 4096
SEARCH_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 600.0
HEARTBEAT_S = 15.0
MAX_UPLOAD_FILES = 100
MODES = {"hybrid": retrieval_pb2.HYBRID, "bm25": retrieval_pb2.BM25, "dense": retrieval_pb2.DENSE}


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object, or a 400/413/415 error that says what is wrong."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {max_bytes} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "BAD_JSON", f"body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_JSON", "body must be a JSON object")
    return data


def field(data: dict[str, Any], name: str, kind: type, default: Any = None, required: bool = False) -> Any:
    """A typed field of a JSON body, or a 422 naming it."""
    if name not in data or data[name] is None:
        if required:
            raise ApiError(422, "INVALID_ARGUMENT", f"'{name}' is required")
        return default
    value = data[name]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ApiError(422, "INVALID_ARGUMENT", f"'{name}' must be of type {kind.__name__}")
    return value


def query_field(data: dict[str, Any]) -> str:
    query = field(data, "query", str, required=True)
    if not query.strip():
        raise ApiError(422, "INVALID_ARGUMENT", "'query' must contain a non-space character")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(422, "INVALID_ARGUMENT", f"'query' exceeds {MAX_QUERY_CHARS} characters")
    return query


def mode_field(data: dict[str, Any]) -> int:
    mode = field(data, "mode", str, default="hybrid")
    if mode not in MODES:
        raise ApiError(422, "INVALID_ARGUMENT", f"'mode' must be one of {', '.join(MODES)}")
    return MODES[mode]


def service_metrics_urls(config: Config) -> dict[str, str]:
    """Where each gRPC service serves its Prometheus metrics (the host of its gRPC address)."""
    ports = {
        "retrieval_svc": (config.retrieval_addr, config.retrieval_metrics_port),
        "generation_svc": (config.generation_addr, config.generation_metrics_port),
        "cache_svc": (config.cache_addr, config.cache_metrics_port),
    }
    return {name: f"http://{addr.rpartition(':')[0]}:{port}/metrics" for name, (addr, port) in ports.items() if port}


def build_app(config: Config, upstreams: Upstreams | None = None) -> Starlette:
    """The ASGI app; upstream channels open on start-up unless given (tests)."""
    state: dict[str, Any] = {}
    mcp = McpEndpoint(config, build_mcp_server(lambda: caller_mesh(state["mesh"])))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["up"] = upstreams or Upstreams.connect(config)
        state["mesh"] = mesh_of(state["up"], config)
        state["dashboard"] = Dashboard(state["up"], service_metrics_urls(config))
        state["near"] = NearSearchReplies(
            state["up"].retrieval_writer, VersionedLRU("search", config.near_cache_entries, config.near_cache_bytes)
        )
        watching = asyncio.create_task(state["near"].watch())
        async with mcp.run():
            yield
        watching.cancel()
        await state["dashboard"].close()
        await state["up"].close()

    def up() -> Upstreams:
        return state["up"]

    def near() -> NearSearchReplies:
        return state["near"]

    def require_key(request: Request, write: bool = True) -> None:
        """Writes need ``Authorization: Bearer <LIKEOPT_API_KEY>``; reads too with LIKEOPT_READS_NEED_KEY."""
        refusal = key_refusal(config, request.headers.get("authorization", ""), write)
        if refusal is not None:
            raise ApiError(401, "UNAUTHENTICATED", refusal)

    def caller(request: Request, write: bool = False) -> Principal | None:
        """Who is asking (LIKEOPT_AUTH=jwt: the principal Envoy verified; None in API-key mode), once allowed:
        reads are open unless LIKEOPT_READS_NEED_KEY, or need a token with jwt; writes need the key or a token
        with the writer role (401 without either, 403 for a token without the role)."""
        refusal = caller_refusal(config, request.headers, write)
        if refusal is not None:
            status, reason = refusal
            raise ApiError(status, "UNAUTHENTICATED" if status == 401 else "PERMISSION_DENIED", reason)
        return caller_of(config, request.headers)

    def require_read_key(request: Request) -> None:
        caller(request)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        statuses = await up().health()
        ready = all(s == "SERVING" for s in statuses.values())
        return JSONResponse({"ready": ready, "upstreams": statuses}, status_code=200 if ready else 503)

    async def search(request: Request) -> Response:
        principal = caller(request)
        started = time.perf_counter()
        data = await read_json(request)
        top_k = field(data, "top_k", int, default=10)
        if not 1 <= top_k <= 100:
            raise ApiError(422, "INVALID_ARGUMENT", "'top_k' must be between 1 and 100")
        filters = field(data, "filters", dict, default={})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in filters.items()):
            raise ApiError(422, "INVALID_ARGUMENT", "'filters' must map strings to strings")
        search_request = retrieval_pb2.SearchRequest(
            query=query_field(data), top_k=top_k, mode=mode_field(data), filters=filters
        )
        query = normalise_query(search_request.query)
        key = (query, top_k, search_request.mode, tuple(sorted(filters.items())), scope_of(principal))
        head = near().lookup(key)
        if head is None:
            call = up().retrieval.Search(search_request, timeout=SEARCH_TIMEOUT_S, metadata=forwarded(principal))
            reply = await upstream_call(call)
            hits = hits_json([hit_json(h) for h in reply.hits])
            near().remember(key, reply.index_version, hits)
            head = search_head(hits, reply.index_version, reply.cached)
        return Response(search_body(head, (time.perf_counter() - started) * 1000), media_type="application/json")

    async def chat(request: Request) -> Response:
        principal = caller(request)
        data = await read_json(request)
        top_k = field(data, "top_k", int, default=5)
        if not 1 <= top_k <= 20:
            raise ApiError(422, "INVALID_ARGUMENT", "'top_k' must be between 1 and 20")
        answer_request = generation_pb2.AnswerRequest(
            query=query_field(data),
            conversation_id=field(data, "conversation_id", str, default=""),
            top_k=top_k,
            mode=mode_field(data),
        )
        call = up().generation.Answer(answer_request, timeout=config.answer_timeout_s, metadata=forwarded(principal))
        return StreamingResponse(
            with_heartbeats(answer_frames(call, time.perf_counter(), resumed_after(request)), HEARTBEAT_S),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def index_status(request: Request) -> Response:
        principal = caller(request)
        status = await upstream_call(
            up().retrieval_writer.GetIndexStatus(
                retrieval_pb2.GetIndexStatusRequest(), timeout=5, metadata=forwarded(principal)
            )
        )
        return JSONResponse(
            {
                "documents": status.documents,
                "chunks": status.chunks,
                "index_version": status.index_version,
                "embedding_model": status.embedding_model,
                "embedding_dim": status.embedding_dim,
                "vector_index": status.vector_index,
                "ready": status.ready,
            }
        )

    async def upsert_documents(request: Request) -> Response:
        writer = caller(request, write=True)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            messages, skipped = await uploaded_documents(request, config.max_request_bytes)
        else:
            data = await read_json(request, max_bytes=config.max_request_bytes)
            documents = field(data, "documents", list, required=True)
            messages, skipped = [document_message(d, i) for i, d in enumerate(documents)], []
        upsert = up().retrieval_writer.UpsertDocuments(
            iter(messages), timeout=WRITE_TIMEOUT_S, metadata=forwarded(writer)
        )
        summary = await upstream_call(upsert)
        near().saw_write(summary.index_version)
        skipped += [{"id": s.id, "reason": s.reason} for s in summary.skipped]
        return JSONResponse(
            {
                "upserted": summary.upserted,
                "chunks": summary.chunks,
                "index_version": summary.index_version,
                "skipped": skipped,
            }
        )

    async def delete_document(request: Request) -> Response:
        writer = caller(request, write=True)
        doc_id = request.path_params["doc_id"]
        reply = await upstream_call(
            up().retrieval_writer.DeleteDocuments(
                retrieval_pb2.DeleteDocumentsRequest(ids=[doc_id]), timeout=WRITE_TIMEOUT_S, metadata=forwarded(writer)
            )
        )
        near().saw_write(reply.index_version)
        if reply.deleted == 0:
            raise ApiError(404, "NOT_FOUND", f"no document with id {doc_id!r}")
        return JSONResponse({"deleted": reply.deleted, "index_version": reply.index_version})

    async def dashboard(request: Request) -> Response:
        principal = caller(request)
        snapshot = await state["dashboard"].snapshot(forwarded(principal))
        return JSONResponse(snapshot, headers={"Cache-Control": "no-store"})

    async def conversation(request: Request) -> Response:
        principal = caller(request)
        lookup = generation_pb2.GetConversationRequest(conversation_id=request.path_params["conversation_id"])
        call = up().generation.GetConversation(lookup, timeout=SEARCH_TIMEOUT_S, metadata=forwarded(principal))
        return JSONResponse(conversation_json(await upstream_call(call)))

    async def whoami(request: Request) -> Response:
        """Who the UI is signed in as: the token's subject, tenant and groups, and whether it may write."""
        principal = caller(request)
        who = principal.public() if principal is not None else None
        writer = principal is not None and principal.may_write(config.jwt_writer_role)
        return JSONResponse({"auth": config.auth, "principal": who, "writer": writer})

    async def feedback(request: Request) -> Response:
        require_read_key(request)
        message = feedback_message(await read_json(request, MAX_FEEDBACK_BYTES))
        reply = await upstream_call(up().generation.Feedback(message, timeout=FEEDBACK_TIMEOUT_S))
        return JSONResponse({"feedback_id": reply.feedback_id, "answer_id": reply.answer_id})

    async def feedback_list(request: Request) -> Response:
        require_key(request)  # users' questions and comments: administration
        listing = list_request(request.query_params.get("rating", ""), request.query_params.get("limit", "100"))
        key = (("authorization", f"Bearer {config.api_key.get_secret_value()}"),)
        reply = await upstream_call(up().generation.ListFeedback(listing, timeout=FEEDBACK_TIMEOUT_S, metadata=key))
        return JSONResponse(feedback_json(reply), headers={"Cache-Control": "no-store"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_spec())

    async def api_docs(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})

    async def home(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    async def on_crash(request: Request, exc: Exception) -> Response:
        return error_response(500, "INTERNAL", "internal error; the trace id in X-Trace-Id finds it in the logs")

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/api/v1/healthz", healthz),
        Route("/api/v1/readyz", readyz),
        Route("/api/v1/search", search, methods=["POST"]),
        Route("/api/v1/chat", chat, methods=["POST"]),
        Route("/api/v1/index", index_status),
        Route("/api/v1/documents", upsert_documents, methods=["POST"]),
        Route("/api/v1/documents/{doc_id:path}", delete_document, methods=["DELETE"]),
        Route("/api/v1/conversations/{conversation_id}", conversation),
        Route("/api/v1/dashboard", dashboard),
        Route("/api/v1/whoami", whoami),
        Route("/api/v1/feedback", feedback, methods=["POST"]),
        Route("/api/v1/feedback", feedback_list, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi),
        Route("/api/v1/docs", api_docs),
        Route("/metrics", metrics),
        Route("/api/v1/metrics", metrics),
        Route(UI_CONFIG_PATH, ui_config_endpoint(config)),  # before the static mount, which would 404 it
        Mount("/v1", app=openai_app(config, up), name="openai"),
        Route("/mcp", mcp, name="mcp"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
    )


async def uploaded_documents(
    request: Request, max_bytes: int
) -> tuple[list[retrieval_pb2.Document], list[dict[str, str]]]:
    """Documents from the ``files`` fields of a multipart upload, and the files that gave none."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {max_bytes} bytes")
    messages: list[retrieval_pb2.Document] = []
    skipped: list[dict[str, str]] = []
    try:
        async with request.form(max_files=MAX_UPLOAD_FILES, max_part_size=max_bytes) as form:
            uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            if not uploads:
                raise ApiError(422, "INVALID_ARGUMENT", "no files in the 'files' field")
            access = form_access(form.get("access"))
            for upload in uploads:
                name = upload.filename or "upload"
                data = await upload.read(max_bytes + 1)
                loaded = await asyncio.to_thread(lambda n=name, d=data: list(load_content(n, d, doc_id=n)))
                for item in loaded:
                    if isinstance(item, Skipped):
                        skipped.append({"id": item.source, "reason": item.reason})
                    else:
                        messages.append(to_message(item, access))
    except MultiPartException as exc:
        raise ApiError(400, "BAD_MULTIPART", exc.message) from None
    return messages, skipped


def form_access(field: Any) -> retrieval_pb2.Access | None:
    """The ``access`` field of a multipart upload (JSON, as in a JSON upload), for every file of it."""
    if field is None:
        return None
    if not isinstance(field, str):
        raise ApiError(422, "INVALID_ARGUMENT", "the 'access' field must be JSON text")
    try:
        access = json.loads(field)
    except json.JSONDecodeError:
        raise ApiError(422, "INVALID_ARGUMENT", "the 'access' field is not valid JSON") from None
    return access_message(access, "access")


async def upstream_call(call: Awaitable[T]) -> T:
    """Await a unary gRPC call; its failure becomes the matching HTTP error."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise ApiError.from_grpc(exc) from None


def document_message(doc: Any, position: int) -> retrieval_pb2.Document:
    """A document of a JSON upload as a protobuf message, or a 422 naming it."""
    if not isinstance(doc, dict):
        raise ApiError(422, "INVALID_ARGUMENT", f"documents[{position}] must be an object")
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ApiError(422, "INVALID_ARGUMENT", f"documents[{position}].metadata must map strings to strings")
    values = {name: doc.get(name, "") for name in ("id", "title", "text")}
    for name, value in values.items():
        if not isinstance(value, str):
            raise ApiError(422, "INVALID_ARGUMENT", f"documents[{position}].{name} must be a string")
    message = retrieval_pb2.Document(**values, metadata=metadata)
    if doc.get("access") is not None:
        message.access.CopyFrom(access_message(doc["access"], f"documents[{position}].access"))
    return message


def access_message(access: Any, where: str) -> retrieval_pb2.Access:
    """A JSON access list (``{"tenant", "users": [], "groups": []}``) as a protobuf message, or a 422 naming it;
    retrieval_svc checks the names themselves and what the writer's tenant allows."""
    if not isinstance(access, dict) or set(access) - {"tenant", "users", "groups"}:
        raise ApiError(422, "INVALID_ARGUMENT", f"{where} must be an object with tenant, users and groups")
    tenant, users, groups = access.get("tenant") or "", access.get("users") or [], access.get("groups") or []
    if not isinstance(tenant, str) or not all(isinstance(v, list) for v in (users, groups)):
        raise ApiError(422, "INVALID_ARGUMENT", f"{where}: tenant must be a string, users and groups lists")
    if not all(isinstance(name, str) for name in [*users, *groups]):
        raise ApiError(422, "INVALID_ARGUMENT", f"{where}: users and groups must be strings")
    return retrieval_pb2.Access(tenant=tenant, users=users, groups=groups)


def resumed_after(request: Request) -> int:
    """The Last-Event-ID a reconnecting client sends (0 when none): the events it already has.

    Asked again, the same question is answered again, identically when the first answer was finished
    (from the answer cache: same deltas and citations, same event ids), so the events up to that id are
    left out and the client's answer continues where it broke off, citations included.
    """
    value = request.headers.get("last-event-id", "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else 0


async def answer_frames(call: Any, started: float, skip: int = 0) -> AsyncGenerator[bytes, None]:
    """SSE frames of an Answer stream, those up to id skip left out; a failed call ends with an error event."""
    event_id = 0
    ended = any_delta = False
    try:
        async for event in call:
            kind, data = event_json(event)
            if kind == "delta" and not any_delta:
                any_delta = True
                record_first_token(time.perf_counter() - started)
            event_id += 1
            ended = kind in ("done", "error")
            if event_id > skip or ended:
                yield sse_frame(event_id, kind, data)
    except grpc.aio.AioRpcError as exc:
        if not ended:
            yield sse_frame(event_id + 1, "error", {"code": exc.code().name, "message": public_details(exc)})
    finally:
        call.cancel()
