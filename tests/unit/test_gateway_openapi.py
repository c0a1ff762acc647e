"""The OpenAPI document is generated from the routes and models, and says what the gateway really does."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from gateway.app import build_app
from gateway.errors import GRPC_TO_HTTP, UPSTREAM_FAILED
from likeopt.runtime.config import Config
from likeopt.runtime.contract import ANSWER_TOP_K, MAX_QUERY_CHARS, MIN_INDEX_VERSION, MODES, SEARCH_TOP_K
from tests.unit.test_gateway_app import unreachable

UPSTREAM_CALLERS = {
    ("/api/v1/search", "post"),
    ("/api/v1/index", "get"),
    ("/api/v1/documents", "post"),
    ("/api/v1/documents/{doc_id}", "delete"),
    ("/api/v1/conversations/{conversation_id}", "get"),
    ("/api/v1/feedback", "post"),
    ("/api/v1/feedback", "get"),
}


def document() -> dict[str, Any]:
    return build_app(Config.from_env({})).openapi()


def served_operations() -> set[tuple[str, str]]:
    operations = set()
    for context in iter_route_contexts(build_app(Config.from_env({})).routes):
        if isinstance(context.route, APIRoute) and context.route.include_in_schema:
            operations |= {(context.path_format, method.lower()) for method in context.methods or ()}
    return operations


def test_the_document_describes_exactly_the_served_routes() -> None:
    documented = {(path, method) for path, methods in document()["paths"].items() for method in methods}
    assert documented == served_operations()
    assert ("/api/v1/search", "post") in documented and ("/api/v1/documents/{doc_id}", "delete") in documented


def test_every_reference_resolves() -> None:
    spec = document()
    schemas = spec["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for item in node for r in refs(item)]
        return []

    assert {r.rsplit("/", 1)[-1] for r in refs(spec)} <= set(schemas)


def test_a_document_without_an_id_is_allowed_since_it_is_skipped_not_refused() -> None:
    schemas = document()["components"]["schemas"]
    assert "id" not in schemas["Document"].get("required", [])
    assert schemas["UpsertRequest"]["required"] == ["documents"]


def test_every_status_a_route_can_answer_is_documented() -> None:
    paths = document()["paths"]
    upstream = {str(status) for status in (*GRPC_TO_HTTP.values(), UPSTREAM_FAILED)}
    for path, method in UPSTREAM_CALLERS:
        responses = set(paths[path][method]["responses"])
        assert upstream <= responses, (path, method, upstream - responses)
    for path, method in (("/api/v1/documents", "post"), ("/api/v1/documents/{doc_id}", "delete")):
        assert {"401", "403"} <= set(paths[path][method]["responses"])
        assert paths[path][method]["security"] == [{"apiKey": []}]
    for path in ("/api/v1/search", "/api/v1/chat", "/api/v1/documents", "/api/v1/feedback"):
        assert {"400", "413", "415", "422"} <= set(paths[path]["post"]["responses"]), path
    error = paths["/api/v1/search"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorResponse"}


def test_limits_and_modes_are_the_contracts() -> None:
    schemas = document()["components"]["schemas"]
    search, chat = schemas["SearchRequest"]["properties"], schemas["ChatRequest"]["properties"]
    assert (search["top_k"]["minimum"], search["top_k"]["maximum"]) == (SEARCH_TOP_K.low, SEARCH_TOP_K.high)
    assert (chat["top_k"]["minimum"], chat["top_k"]["maximum"]) == (ANSWER_TOP_K.low, ANSWER_TOP_K.high)
    assert search["query"]["maxLength"] == chat["query"]["maxLength"] == MAX_QUERY_CHARS
    assert search["mode"]["enum"] == list(MODES)
    for read in (search, chat):  # optional, as an int64 in the protos
        bounds = (read["min_index_version"]["minimum"], read["min_index_version"]["maximum"])
        assert bounds == (MIN_INDEX_VERSION.low, MIN_INDEX_VERSION.high)


def test_the_chat_answers_a_stream_or_one_json_reply() -> None:
    chat = document()["paths"]["/api/v1/chat"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"text/event-stream", "application/json"}
    assert chat["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatAnswer")
    assert any(p["name"] == "last-event-id" and p["in"] == "header" for p in chat["parameters"])


def test_the_document_is_valid_openapi() -> None:
    """As generators and fuzzers check it first: a default its own pattern refuses, say, fails the whole document."""
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator comes with [dev]")
    validator.validate(document())


def schema_validator(name: str) -> Draft202012Validator:
    """A validator of one of the document's component schemas, its references resolved within the document."""
    spec = document()
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


FEEDBACK_BODIES = (
    ({"answer_id": "a1", "rating": "up"}, True),
    ({"trace_id": "t1", "rating": "down", "comment": "wrong port"}, True),
    ({"answer_id": "", "trace_id": "t1", "rating": "up"}, True),
    ({"answer_id": "a1", "trace_id": "", "rating": "up"}, True),
    ({"rating": "up"}, False),
    ({"answer_id": "", "trace_id": "", "rating": "up"}, False),
    ({"answer_id": "a b", "rating": "up"}, False),
    ({"answer_id": "a1", "rating": "meh"}, False),
)


@pytest.mark.parametrize(("body", "valid"), FEEDBACK_BODIES)
def test_the_feedback_schema_accepts_exactly_the_bodies_the_gateway_takes(body: dict[str, str], valid: bool) -> None:
    assert schema_validator("FeedbackRequest").is_valid(body) is valid
    with TestClient(build_app(unreachable())) as client:
        reply = client.post("/api/v1/feedback", json=body)
    assert reply.status_code == (503 if valid else 422), reply.text  # 503: taken, and sent to generation_svc


def test_request_bodies_are_plain_objects_that_generated_clients_make_models_of() -> None:
    """A top-level anyOf or oneOf is read by client generators as a union of untyped bodies, with no model."""
    schemas = document()["components"]["schemas"]
    for name in ("SearchRequest", "ChatRequest", "UpsertRequest", "UploadForm", "FeedbackRequest"):
        assert schemas[name]["type"] == "object" and not {"anyOf", "oneOf"} & set(schemas[name]), name


def test_a_body_that_is_not_json_may_be_read_as_text() -> None:
    """Generated clients read a body of any other media type as text; an object schema alone made them parse the
    chat's event stream as one object, and fail on every answer. Read event by event, each is still checked."""
    spec = document()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    if media != "application/json":
                        text = Draft202012Validator({**content["schema"], "components": spec["components"]})
                        assert text.is_valid("id: 1\nevent: delta\n"), (path, method, status, media)
    stream = spec["paths"]["/api/v1/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    event = Draft202012Validator({**stream["schema"], "components": spec["components"]})
    assert event.is_valid({"id": "1", "event": "delta", "data": '{"text": "Hi"}'})
    assert not event.is_valid({"id": "1", "event": "bogus", "data": "{}"})


def test_every_operation_that_may_answer_401_declares_the_credential_it_takes() -> None:
    """Generated clients attach credentials only to operations that declare them: a read that declared none was sent
    without the key LIKEOPT_READS_NEED_KEY asks for (or the token of LIKEOPT_AUTH=jwt), and refused with 401."""
    paths = document()["paths"]
    for path, methods in paths.items():
        for method, operation in methods.items():
            if "401" in operation["responses"]:
                assert {"apiKey": []} in operation.get("security", []), (path, method)
    assert {} in paths["/api/v1/whoami"]["get"]["security"]  # open unless the deployment says otherwise
    with TestClient(build_app(unreachable())) as client:
        assert client.get("/api/v1/whoami").status_code == 200
    closed = Config.from_env({"LIKEOPT_API_KEY": "k-1", "LIKEOPT_READS_NEED_KEY": "1"})
    with TestClient(build_app(closed)) as client:
        assert client.get("/api/v1/whoami").status_code == 401
        assert client.get("/api/v1/whoami", headers={"Authorization": "Bearer k-1"}).status_code == 200


def test_every_operation_under_api_declares_envoys_rate_limit() -> None:
    """Envoy's rate limit covers every path under /api/, and answers 429 in the error shape."""
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            if path.startswith("/api/"):
                assert operation["responses"]["429"]["content"]["application/json"]["schema"] == error, (path, method)
