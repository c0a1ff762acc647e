"""Schemathesis against the whole mesh, through Envoy, from the gateway's generated OpenAPI document.

Every operation is called with data the document says is valid (it must be accepted) and with data it says is
invalid (it must be refused with a 4xx), writes with the API key; no 5xx, and every response must be one the
document describes, in its shape. A private mesh takes the writes, so the shared one keeps its corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed: `pip install -e '.[dev]'` (make test does) adds it"
)

from hypothesis import HealthCheck, settings  # noqa: E402 (after the skip: hypothesis comes with schemathesis)
from schemathesis.checks import CHECKS  # noqa: E402

from gateway.app import build_app  # noqa: E402
from likeopt.runtime.config import Config  # noqa: E402
from tests.support import MeshProcess, ValkeyServer, mesh_environment  # noqa: E402

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "docs"
schema = schemathesis.openapi.from_dict(build_app(Config.from_env({})).openapi())
"""Loaded first: loading an OpenAPI document registers the OpenAPI checks named below."""
schema.config.generation.update(allow_extra_parameters=False)  # unknown query parameters are ignored, not refused
schema.config.checks.negative_data_rejection.expected_statuses.append("431")
"""Envoy refuses a request line over its limit (a list of ids too long) before the gateway can say 422."""
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)
SELECTED_CHECKS = [CHECKS.get_one(name) for name in CHECK_NAMES]


@pytest.fixture(scope="module")
def fuzzed_mesh(tmp_path_factory: pytest.TempPathFactory, valkey: ValkeyServer) -> Iterator[MeshProcess]:
    """A mesh of its own with the demo corpus, for writes the other tests must not see."""
    env = mesh_environment(tmp_path_factory.mktemp("fuzz-mesh"), LIKEOPT_REDIS_URL=valkey.url)
    with MeshProcess(env=env, args=["--ingest", str(DEMO_CORPUS)]).running() as mesh:
        yield mesh


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_valid_data_is_accepted_invalid_refused_and_every_reply_on_schema(
    case: schemathesis.Case, fuzzed_mesh: MeshProcess
) -> None:
    case.call_and_validate(
        base_url=fuzzed_mesh.base_url,
        headers={"Authorization": f"Bearer {fuzzed_mesh.api_key}"},
        checks=SELECTED_CHECKS,
        timeout=60,
    )
