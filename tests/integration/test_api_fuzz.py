"""Schemathesis against the whole mesh, through Envoy, from the gateway's generated OpenAPI document.

Every operation is called with data the document says is valid (it must be accepted) and with data it says is
invalid (it must be refused with a 4xx), writes with the API key; no 5xx, and every response must be one the
document describes, in its shape. A private mesh takes the writes, so the shared one keeps its corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed: `pip install -e '.[dev]'` (make test does) adds it"
)

from hypothesis import HealthCheck, settings  # noqa: E402 (after the skip: hypothesis comes with schemathesis)
from schemathesis.checks import CHECKS, CheckContext  # noqa: E402
from schemathesis.core.parameters import ParameterLocation  # noqa: E402

from gateway.app import build_app  # noqa: E402
from gateway.openai_api import openai_app  # noqa: E402
from likeopt.runtime.config import Config  # noqa: E402
from tests.support import MeshProcess, ValkeyServer, mesh_environment  # noqa: E402

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "docs"
schema = schemathesis.openapi.from_dict(build_app(Config.from_env({})).openapi())
"""Loaded first: loading an OpenAPI document registers the OpenAPI checks named below."""
openai_schema = schemathesis.openapi.from_dict(openai_app(Config.from_env({}), lambda: None).openapi())
"""The OpenAI-compatible API's own document (/v1/openapi.json), which clients generated from it read."""
for document in (schema, openai_schema):
    document.config.generation.update(allow_extra_parameters=False)  # unknown query parameters: ignored
schema.config.checks.negative_data_rejection.expected_statuses.append("431")
"""Envoy refuses a request line over its limit (a list of ids too long) before the gateway can say 422."""
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
)
negative_data_rejection = CHECKS.get_one("negative_data_rejection")


def string_list_query_as_sent(response: schemathesis.Response, case: schemathesis.Case) -> dict[str, object] | None:
    """The case's query with each list-of-strings parameter as the text the URL carried, or None if not sent here.

    Every item of such a list is text on the wire, so an item generated as a number, a list or an object arrives
    as a valid string (``{}`` as an empty one); schemathesis reads the wire only for parameters declared as
    strings, not for arrays of them (4.32), and would blame the server for accepting what was never invalid.
    """
    url = urlparse(response.request.url)
    if case.query is None or not url.path.endswith(case.formatted_path):
        return None
    sent = parse_qs(url.query, keep_blank_values=True)
    properties = case.operation.get_parameter_set(ParameterLocation.QUERY).schema.get("properties", {})
    query: dict[str, object] = {}
    for name, value in case.query.items():
        if name in sent and is_string_list(properties.get(name, {})):
            query[name] = sent[name]
        elif name in sent:
            query[name] = value
    return query


def is_string_list(schema: dict) -> bool:
    """An array of strings, alone or as one branch of an ``anyOf`` (FastAPI's optional list)."""
    branches = schema.get("anyOf", [schema])
    return any(b.get("type") == "array" and b.get("items", {}).get("type") == "string" for b in branches)


def negation_lost_on_the_wire(response: schemathesis.Response, case: schemathesis.Case) -> bool:
    """Only the query was negated, and what the URL carried is valid after all."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    if any(meta.is_negative_at(loc) for loc in ParameterLocation if loc is not ParameterLocation.QUERY):
        return False
    query = string_list_query_as_sent(response, case)
    parameters = case.operation.get_parameter_set(ParameterLocation.QUERY)
    return query is not None and parameters is not None and parameters.get_strict_validator().is_valid(query)


@schemathesis.check
def negative_data_rejected_as_sent(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case):
    """schemathesis's negative_data_rejection, for the requests whose negation reached the server."""
    if negation_lost_on_the_wire(response, case):
        return None
    return negative_data_rejection(ctx, response, case)


SELECTED_CHECKS = [*(CHECKS.get_one(name) for name in CHECK_NAMES), negative_data_rejected_as_sent]


@pytest.fixture(scope="module")
def fuzzed_mesh(tmp_path_factory: pytest.TempPathFactory, valkey: ValkeyServer) -> Iterator[MeshProcess]:
    """A mesh of its own with the demo corpus, for writes the other tests must not see."""
    env = mesh_environment(tmp_path_factory.mktemp("fuzz-mesh"), LIKEOPT_REDIS_URL=valkey.url)
    with MeshProcess(env=env, args=["--ingest", str(DEMO_CORPUS)]).running() as mesh:
        yield mesh


FUZZED = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def called_and_checked(case: schemathesis.Case, mesh: MeshProcess, mounted_at: str = "") -> None:
    """The case sent to the mesh through Envoy with the API key, its reply put to SELECTED_CHECKS."""
    headers = {"Authorization": f"Bearer {mesh.api_key}"}
    case.call_and_validate(base_url=mesh.base_url + mounted_at, headers=headers, checks=SELECTED_CHECKS, timeout=60)


@schema.parametrize()
@FUZZED
def test_valid_data_is_accepted_invalid_refused_and_every_reply_on_schema(
    case: schemathesis.Case, fuzzed_mesh: MeshProcess
) -> None:
    called_and_checked(case, fuzzed_mesh)


@openai_schema.parametrize()
@FUZZED
def test_the_openai_api_accepts_what_its_document_allows_and_answers_on_schema(
    case: schemathesis.Case, fuzzed_mesh: MeshProcess
) -> None:
    called_and_checked(case, fuzzed_mesh, "/v1")
