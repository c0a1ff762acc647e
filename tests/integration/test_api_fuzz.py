"""Schemathesis against the gateway's OpenAPI document, through Envoy: no 5xx, no response off-schema.

Writes are fuzzed without the API key (every one must be refused cleanly), so the
shared test corpus stays as the other tests expect it.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from gateway.openapi import openapi_spec
from tests.support import MeshProcess

schema = schemathesis.openapi.from_dict(openapi_spec())
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
SELECTED_CHECKS = [CHECKS.get_one(name) for name in CHECK_NAMES]


@pytest.fixture(scope="module")
def base_url(mesh: MeshProcess) -> str:
    return mesh.base_url


@schema.exclude(path="/api/v1/chat").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_response_on_schema(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=SELECTED_CHECKS, timeout=30)


@schema.include(path="/api/v1/chat").parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_chat_never_fails_with_a_server_error(case: schemathesis.Case, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=60)
    assert response.status_code < 500, response.text
