"""The REST app in process, its upstreams unreachable: what it refuses, and in which shape, before any gRPC call."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Header
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from gateway.app import GatewayApp, build_app
from gateway.direct_route import DirectLane, DirectRoute
from gateway.observe import HTTP_REQUESTS, RequestMetrics
from gateway.routes.documents import form_filename
from likeopt.runtime.config import Config
from tests.unit.test_mcp_server import refusal_of, served

KEY = "unit-test-key"
NOWHERE = "127.0.0.1:1"
STATIC_AND_MISSING = (("/static", "200"), ("unmatched", "404"), ("/static/config.js", "200"), ("/mcp", "405"))


def unreachable() -> Config:
    """Settings whose upstreams refuse every connection at once."""
    addresses = {f"LIKEOPT_{name}_ADDR": NOWHERE for name in ("RETRIEVAL", "GENERATION", "CACHE")}
    return Config.from_env({"LIKEOPT_API_KEY": KEY, **addresses})


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(build_app(unreachable())) as test_client:
        yield test_client


def error_of(reply: object, status: int) -> dict[str, str]:
    assert reply.status_code == status, reply.text  # type: ignore[attr-defined]
    body = reply.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"query": "   "}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "x", "top_k": 101}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "x", "top_k": "5"}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "x", "top_k": true}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "x", "mode": "psychic"}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "x", "filters": {"a": 1}}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "a\\u0000b"}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "' + b"a" * 5000 + b'"}', 422, "INVALID_ARGUMENT"),
        (b'{"query": "' + b"a" * (1 << 20) + b'"}', 413, "PAYLOAD_TOO_LARGE"),
        (b'["x"]', 400, "BAD_JSON"),
        (b"query=x", 400, "BAD_JSON"),
        (b'{"query": "\xff"}', 400, "BAD_JSON"),
        (b'{"query": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, "BAD_JSON"),
    ],
)
def test_bad_search_bodies_are_refused_with_the_error_shape(
    client: TestClient, body: bytes, status: int, code: str
) -> None:
    assert error_of(client.post("/api/v1/search", content=body), status)["code"] == code


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "'query'"),
        ({"query": "x" * 5000}, "'query'"),
        ({"query": None}, "'query'"),
        ({"query": "x", "top_k": 0}, "'top_k'"),
        ({"query": "x", "filters": {"kind": 1}}, "'filters.kind'"),
        ({"query": "x", "min_index_version": -1}, "'min_index_version'"),
        ({"query": "x", "min_index_version": 1 << 63}, "'min_index_version'"),
        ({"query": "x", "min_index_version": "17"}, "'min_index_version'"),
    ],
)
def test_a_refused_search_names_the_field_even_when_it_is_called_query(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    assert error_of(client.post("/api/v1/search", json=body), 422)["message"].startswith(f"{field}: ")


def test_a_body_is_read_as_json_whatever_its_content_type_says(client: TestClient) -> None:
    """``curl -d`` sends a form type: the search is tried (and fails upstream here), not refused as a form."""
    reply = client.post("/api/v1/search", content=b'{"query": "x"}', headers={"content-type": "text/plain"})
    assert error_of(reply, 503)["code"] == "UNAVAILABLE"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_a_body_in_another_unicode_encoding_is_read_as_the_openai_routes_read_it(
    client: TestClient, encoding: str
) -> None:
    """A UTF-8 byte-order mark (PowerShell's and Notepad's files) or UTF-16 was "not valid UTF-8 JSON" (400) on
    the REST routes, while the OpenAI-compatible routes, read by the standard library, took the same body."""
    body = json.dumps({"query": "caf\u00e9"}).encode(encoding)
    for path in ("/api/v1/search", "/api/v1/chat"):
        reply = client.post(path, content=body, headers={"Accept": "application/json"})
        assert error_of(reply, 503)["code"] == "UNAVAILABLE", path  # parsed, then failed upstream here


@pytest.mark.parametrize("text", ["cut \ud83d", "\udc00 alone", "\ud83d\u0041"])
def test_half_a_surrogate_pair_is_refused_in_words_that_say_so(client: TestClient, text: str) -> None:
    """JavaScript's and Python's JSON escape a string cut inside an emoji so; the refusal said "unexpected end of hex
    escape", which named nothing the client could find."""
    body = json.dumps({"query": text}).encode()
    assert "surrogate pair" in error_of(client.post("/api/v1/search", content=body), 400)["message"]


def test_writes_need_the_key_and_its_refusal_comes_first(client: TestClient) -> None:
    wrong = {"Authorization": "Bearer nope"}
    for refused in (
        client.post("/api/v1/documents", content=b"not json"),
        client.delete("/api/v1/documents/a/b", headers=wrong),
        client.get("/api/v1/feedback"),
    ):
        assert error_of(refused, 401)["code"] == "UNAUTHENTICATED"
        assert refused.headers["www-authenticate"] == "Bearer", "a 401 names the credential it wants"


def test_an_id_longer_than_any_stored_is_refused_before_it_goes_upstream(client: TestClient) -> None:
    """A 10,000-character id went into retrieval_svc's error and past gRPC's metadata limit: 429 "rate limited"."""
    key = {"Authorization": f"Bearer {KEY}"}
    for reply in (
        client.get("/api/v1/documents/" + "d" * 600),
        client.delete("/api/v1/documents/" + "d" * 600, headers=key),
    ):
        message = error_of(reply, 422)["message"]
        assert "at most 512 characters" in message and "d" * 100 not in message
    assert error_of(client.get("/api/v1/documents/" + "d" * 512), 503)["code"] == "UNAVAILABLE"  # tried upstream


def test_bad_documents_are_named_by_their_position(client: TestClient) -> None:
    key = {"Authorization": f"Bearer {KEY}"}
    bad_id = client.post("/api/v1/documents", json={"documents": [{"id": "a"}, {"id": 5}]}, headers=key)
    assert "documents[1].id" in error_of(bad_id, 422)["message"]
    widened = {"documents": [{"id": "a", "text": "t", "access": {"tenant": "x", "everyone": True}}]}
    widening = client.post("/api/v1/documents", json=widened, headers=key)
    assert "documents[0].access" in error_of(widening, 422)["message"]
    missing = client.post("/api/v1/documents", json={"docs": []}, headers=key)
    assert "documents" in error_of(missing, 422)["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/search", {"query": "x", "filter": {"kind": "a"}}, "'filter'"),
        ("/api/v1/chat", {"query": "x", "topk": 3}, "'topk'"),
        (
            "/api/v1/documents",
            {"documents": [{"id": "a", "text": "t", "acess": {"users": ["u"]}}]},
            "documents[0].acess",
        ),
        ("/api/v1/documents", {"documents": [], "upsert": True}, "'upsert'"),
        ("/api/v1/feedback", {"answer_id": "a1", "rating": "up", "note": "n"}, "'note'"),
    ],
)
def test_a_misspelt_field_is_refused_not_ignored(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    """Ignored, a misspelt ``access`` would store the document for its whole tenant and ``filter`` would search all."""
    reply = client.post(path, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert field in error_of(reply, 422)["message"]


def test_a_multipart_field_other_than_files_and_access_is_refused(client: TestClient) -> None:
    files = {"files": ("a.txt", b"secret plans", "text/plain")}
    reply = client.post(
        "/api/v1/documents", files=files, data={"acess": '{"users": ["u"]}'}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert "'acess'" in error_of(reply, 422)["message"]


def test_parameters_and_feedback_are_checked_before_any_call(client: TestClient) -> None:
    key = {"Authorization": f"Bearer {KEY}"}
    assert error_of(client.get("/api/v1/feedback?limit=abc", headers=key), 422)["code"] == "INVALID_ARGUMENT"
    assert error_of(client.get("/api/v1/feedback?rating=meh", headers=key), 422)["code"] == "INVALID_ARGUMENT"
    assert (
        "before_feedback_id"
        in error_of(client.get("/api/v1/feedback?before_feedback_id=-1", headers=key), 422)["message"]
    )
    past_int64 = f"/api/v1/feedback?before_feedback_id={1 << 63}"
    assert "before_feedback_id" in error_of(client.get(past_int64, headers=key), 422)["message"]
    assert "answer_id" in error_of(client.post("/api/v1/feedback", json={"rating": "up"}), 422)["message"]
    nul = {"answer_id": "a1", "rating": "up", "comment": "a\u0000"}
    assert error_of(client.post("/api/v1/feedback", json=nul), 422)["code"] == "INVALID_ARGUMENT"
    assert error_of(client.get("/api/v1/conversations/a$b"), 422)["code"] == "INVALID_ARGUMENT"
    chat = client.post("/api/v1/chat", json={"query": "x", "conversation_id": "not an id"})
    assert "conversation_id" in error_of(chat, 422)["message"]
    negative = client.post("/api/v1/chat", json={"query": "x", "max_tokens": -1})
    assert error_of(negative, 422)["message"].startswith("'max_tokens': ")
    too_many_stops = client.post("/api/v1/chat", json={"query": "x", "stop": list("abcde")})
    assert error_of(too_many_stops, 422)["message"].startswith("'stop': ")


def test_unknown_routes_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    assert error_of(client.get("/api/v1/nothing"), 404)["code"] == "NOT_FOUND"
    assert error_of(client.get("/api/v1/search"), 405)["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("path", ["/v1/models/a%0Ab", "/v1/a%0Ab", "/v1/models/x%0A"])
def test_every_path_under_v1_is_answered_by_the_openai_app(client: TestClient, path: str) -> None:
    """A newline in the path once fell through to the REST API's 404: OpenAI clients read only OpenAI's shape."""
    reply = client.get(path)
    assert reply.status_code == 404 and set(reply.json()["error"]) == {"message", "type", "param", "code"}, reply.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("POST", "/v1/chat/completions", {"model": "like-opt", "messages": []}),  # the OpenAI app's own 400
        ("POST", "/api/v1/search", {"query": "x", "top_k": 101}),  # the body reaches the route's check
        ("POST", "/api/v1/search", {"query": "x"}),  # and the upstream call
        ("GET", "/api/v1/nothing", None),
        ("PUT", "/api/v1/search", None),
    ],
)
def test_a_trailing_slash_is_answered_as_the_path_without_it_not_redirected(
    client: TestClient, method: str, path: str, body: dict | None
) -> None:
    """A 307's Location said http:// and the gateway's host even behind a proxy that terminates TLS, and some
    clients do not follow a 307 on a POST: the slash form now gets the slashless path's own answer."""
    slashless = client.request(method, path, json=body, follow_redirects=False)
    slashed = client.request(method, path + "/", json=body, follow_redirects=False)
    assert "location" not in slashed.headers and slashed.status_code == slashless.status_code, slashed.text
    assert slashed.json() == slashless.json() and slashed.headers.get("allow") == slashless.headers.get("allow")


def test_a_trailing_slash_is_counted_under_the_route_that_answered() -> None:
    app = RequestMetrics(build_app(unreachable()))
    before = HTTP_REQUESTS.labels("/v1/models", "GET", "200")._value.get()
    with TestClient(app) as test_client:
        assert test_client.get("/v1/models/", follow_redirects=False).status_code == 200
    assert HTTP_REQUESTS.labels("/v1/models", "GET", "200")._value.get() == before + 1
    paths = build_app(unreachable()).openapi()["paths"]
    assert not [path for path in paths if path.endswith("/")], "one path per route in the OpenAPI document"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/documents", "GET, HEAD, POST"),  # two routes share the path: Allow names both
        ("POST", "/api/v1/documents/a.md", "GET, HEAD, DELETE"),  # HEAD is served as GET
        ("PUT", "/api/v1/search", "POST"),
        ("GET", "/v1/chat/completions", "POST"),  # the OpenAI app's 405 too
    ],
)
def test_a_405_allows_every_method_the_path_serves(client: TestClient, method: str, path: str, allow: str) -> None:
    reply = client.request(method, path)
    assert reply.status_code == 405 and reply.headers["allow"] == allow


def test_an_unreachable_upstream_is_a_503_for_a_read_and_an_error_event_for_a_chat(client: TestClient) -> None:
    assert error_of(client.get("/api/v1/index"), 503)["code"] == "UNAVAILABLE"
    chat = client.post("/api/v1/chat", json={"query": "anything"})
    assert chat.status_code == 200 and chat.headers["content-type"].startswith("text/event-stream")
    assert "event: error" in chat.text and "UNAVAILABLE" in chat.text
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 503 and ready.json()["ready"] is False


def test_an_unreachable_upstream_is_named_without_grpcs_words() -> None:
    ports = {"RETRIEVAL": "127.0.0.1:2", "GENERATION": "127.0.0.1:3", "CACHE": "127.0.0.1:4"}
    config = Config.from_env({"LIKEOPT_API_KEY": KEY, **{f"LIKEOPT_{n}_ADDR": a for n, a in ports.items()}})
    with TestClient(build_app(config)) as separate:
        message = error_of(separate.post("/api/v1/search", json={"query": "x"}), 503)["message"]
        chat = separate.post("/api/v1/chat", json={"query": "x"}, headers={"Accept": "application/json"})
    assert message == "retrieval_svc cannot be reached now; try again shortly"
    assert error_of(chat, 503)["message"] == "generation_svc cannot be reached now; try again shortly"


def test_a_multipart_upload_is_read_as_one_whatever_the_case_of_its_media_type(client: TestClient) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": f"Multipart/Form-Data; boundary={boundary}"}
    upload = client.post("/api/v1/documents", content=body, headers=headers)
    assert error_of(upload, 503)["code"] == "UNAVAILABLE"  # parsed as multipart; retrieval_svc is unreachable here
    headers["Content-Type"] = "multipart/form-data"
    assert error_of(client.post("/api/v1/documents", content=body, headers=headers), 400)["code"] == "BAD_MULTIPART"


def test_a_chat_that_asked_for_json_gets_the_upstream_failure_as_its_status(client: TestClient) -> None:
    chat = client.post("/api/v1/chat", json={"query": "anything"}, headers={"Accept": "application/json"})
    assert error_of(chat, 503)["code"] == "UNAVAILABLE"


def test_requests_are_counted_by_route_template_mounts_included() -> None:
    app = RequestMetrics(build_app(unreachable()))

    def count(route: str, status: str) -> float:
        return HTTP_REQUESTS.labels(route, "GET", status)._value.get()

    before = {route: count(route, status) for route, status in STATIC_AND_MISSING}
    with TestClient(app) as test_client:
        assert test_client.get("/static/app.css").status_code == 200
        assert test_client.get("/no/such/page").status_code == 404
        assert test_client.get("/static/config.js").status_code == 200
        assert test_client.get("/mcp").status_code == 405  # MCP's endpoint, not a missing page
    assert all(count(route, status) == before[route] + 1 for route, status in STATIC_AND_MISSING)


def test_head_and_unknown_methods_are_counted_under_the_route_that_answered() -> None:
    """HEAD was counted as an "unmatched" route; any method token a client invents was a new series."""
    app = RequestMetrics(build_app(unreachable()))
    before = {m: HTTP_REQUESTS.labels("/v1/models", m, s)._value.get() for m, s in (("HEAD", "200"), ("other", "405"))}
    with TestClient(app) as test_client:
        assert test_client.head("/v1/models").status_code == 200
        for invented in ("FOO", "BAR1", "XYZZY"):
            assert test_client.request(invented, "/v1/models").status_code == 405
    assert HTTP_REQUESTS.labels("/v1/models", "HEAD", "200")._value.get() == before["HEAD"] + 1
    assert HTTP_REQUESTS.labels("/v1/models", "other", "405")._value.get() == before["other"] + 3
    methods = {sample.labels["method"] for metric in HTTP_REQUESTS.collect() for sample in metric.samples}
    assert not methods & {"FOO", "BAR1", "XYZZY"}


async def from_query(q: str) -> str:
    return q


def in_a_thread(request: Request) -> str:
    return request.url.path


async def needs_a_query(value: Annotated[str, Depends(from_query)]) -> Response:
    return Response(value)


async def needs_a_thread(value: Annotated[str, Depends(in_a_thread)]) -> Response:
    return Response(value)


async def takes_a_parameter(q: str = "") -> Response:
    return Response(q)


async def needs_a_header(token: Annotated[str, Header()]) -> Response:
    return Response(token)


async def takes_a_number_header(count: Annotated[int, Header()] = 0) -> Response:
    return Response(str(count))


async def takes_an_optional_header(last_event_id: Annotated[str, Header()] = "none") -> Response:
    return Response(last_event_id)


def test_a_direct_route_refuses_what_it_could_not_serve_as_declared() -> None:
    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(TypeError, match="the request and nothing else"):
        router.add_api_route("/a", needs_a_query)
    with pytest.raises(TypeError, match="async"):
        router.add_api_route("/b", needs_a_thread)
    with pytest.raises(TypeError, match="through dependencies and headers only"):
        router.add_api_route("/c", takes_a_parameter)
    for needs_more in (needs_a_header, takes_a_number_header):
        with pytest.raises(TypeError, match="must be an optional str"):
            router.add_api_route("/d", needs_more)


def with_direct_route(path: str, endpoint: Callable[..., Any]) -> GatewayApp:
    """The gateway's app with this route too, which its direct lane serves as it serves search and chat."""
    app = build_app(unreachable())
    router = APIRouter(route_class=DirectRoute)
    router.add_api_route(path, endpoint, methods=["POST"])
    app.include_router(router)
    app.direct_routes = (*app.direct_routes, *(route for route in router.routes if isinstance(route, DirectRoute)))
    return app


def test_a_direct_route_reads_its_optional_headers_as_sent() -> None:
    with TestClient(with_direct_route("/api/v1/header", takes_an_optional_header)) as test_client:
        assert test_client.post("/api/v1/header", headers={"Last-Event-ID": "7"}).text == "7"
        assert test_client.post("/api/v1/header").text == "none"


async def broken(request: Request) -> str:
    raise RuntimeError("a bug")


async def uses_broken(value: Annotated[str, Depends(broken)]) -> Response:
    return Response(value)


def test_a_direct_route_that_fails_answers_through_the_apps_handlers() -> None:
    app = with_direct_route("/api/v1/broken", uses_broken)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert error_of(test_client.post("/api/v1/broken"), 500)["code"] == "INTERNAL"
        assert error_of(test_client.post("/api/v1/search", content=b"[1]"), 400)["code"] == "BAD_JSON"


def test_search_and_chat_take_the_direct_lane_ahead_of_fastapis_whole_stack() -> None:
    stack = build_app(unreachable()).build_middleware_stack()
    assert isinstance(stack, DirectLane)
    direct = {("/api/v1/search", "POST"), ("/api/v1/chat", "POST")}
    assert set(stack.routes) == direct, (
        f"the direct lane holds {sorted(stack.routes)}, not only search and chat: a new route goes on a router"
        " without route_class=DirectRoute (CONTRIBUTING.md, 'A new REST endpoint')"
    )


def test_a_file_name_escaped_by_the_form_is_read_as_the_user_named_it() -> None:
    """Browsers and httpx send a quote as %22 and line breaks as %0A/%0D in a multipart file name."""
    assert form_filename("say %22hi%22.txt") == 'say "hi".txt'
    assert form_filename("line%0Abreak%0D.md") == "line\nbreak\r.md"  # then refused: an id may not hold one
    assert form_filename("100%25 sure.txt") == "100%25 sure.txt"  # nothing else is an escape there


@pytest.mark.parametrize("path", ["/healthz", "/", "/v1/models", "/static/app.js"])
def test_head_is_the_get_without_its_body(client: TestClient, path: str) -> None:
    """Uptime checkers probe with HEAD; FastAPI's GET routes alone answered it 405."""
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code and head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
    assert head.headers.get("content-length") == got.headers.get("content-length")


async def test_head_through_a_real_server_ends_cleanly_and_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn reads the request's method when the body is sent: served as GET, every HEAD logged "Response content
    shorter than Content-Length" with a traceback, and the connection was dropped."""
    async with served(build_app(unreachable())) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        replies = [await http.head(path) for path in ("/healthz", "/", "/healthz", "/v1/models")]
    assert [reply.status_code for reply in replies] == [200] * 4
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("path", ["/static/app.js", "/static/app.css", "/static/chat.js", "/", "/api/v1/docs"])
def test_the_ui_files_are_revalidated_on_each_use_as_the_page_is(client: TestClient, path: str) -> None:
    """Without Cache-Control, a browser kept a module a tenth of its age unasked: after an upgrade the new page
    ran with the old release's modules. The pages, asked again with their ETag, were sent whole each time."""
    first = client.get(path)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/", "/api/v1/docs"])
def test_the_pages_run_only_this_sites_code_and_no_other_site_frames_them(client: TestClient, path: str) -> None:
    """Another origin framed the Documents tab, Delete buttons and all (clickjacking); nothing limited scripts."""
    headers = client.get(path).headers
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'" and "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "same-origin"


def test_head_of_a_post_only_route_is_still_refused(client: TestClient) -> None:
    assert client.head("/api/v1/search").status_code == 405


def test_a_compressed_body_is_refused_as_such_in_each_clients_shape(client: TestClient) -> None:
    """Read as it was, a gzip body failed as "not valid JSON"; nothing here decompresses request bodies."""
    body = gzip.compress(json.dumps({"query": "x", "top_k": 1}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": f"Bearer {KEY}"}
    for path in ("/api/v1/search", "/api/v1/chat", "/api/v1/documents", "/api/v1/feedback"):
        assert "'gzip' is not supported" in error_of(client.post(path, content=body, headers=headers), 415)["message"]
    encoded = {"Content-Encoding": "br", "Authorization": f"Bearer {KEY}"}
    upload = client.post("/api/v1/documents", files={"files": ("a.txt", b"x")}, headers=encoded)
    assert error_of(upload, 415)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    chat = client.post("/v1/chat/completions", content=body, headers=headers)
    assert chat.status_code == 415 and chat.json()["error"]["code"] == "unsupported_content_encoding"
    mcp = client.post("/mcp", content=body, headers={**headers, "Accept": "application/json, text/event-stream"})
    assert refusal_of(mcp, 415)[0] == "UNSUPPORTED_MEDIA_TYPE"
    plain = {"Content-Type": "application/json", "Content-Encoding": "identity"}
    assert client.post("/api/v1/search", content=b"[1]", headers=plain).status_code == 400  # read, then refused
