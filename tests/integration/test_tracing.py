"""One question, one trace: a private mesh exports to an OTLP receiver inside the test.

The same question is asked twice through Envoy. Each answer must come back as one whole
trace (spans from all five services, Redis included, every parent present, the streaming
Answer ended on both sides) whose id is the one the user sees in X-Trace-Id and in the done
event; the first asking misses the caches and the second hits them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from likeopt.runtime.addresses import host_port, reachable_host
from likeopt.runtime.telemetry import (
    CACHE_HIT,
    CACHE_LAYER,
    CACHE_NAMESPACE,
    GRPC_HEALTH_PREFIX,
    NEAR_LAYER,
    UNTRACED_PATHS,
)
from tests.conftest import DEMO_CORPUS
from tests.integration.test_mesh import parse_sse
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support import MeshProcess, mesh_environment, self_signed

SERVICES = {"envoy", "gateway", "generation_svc", "retrieval_svc", "cache_svc"}
QUESTION = "How does Like-Opt cache answers in Redis?"
ANSWER_RPC = "/likeopt.v1.GenerationService/Answer"
JAEGER_URL = "http://127.0.0.1:16686"
QUERY_SECRET = "secret-in-a-query"
MISSING_DOCUMENT = "notes/no-such-document.md"


@dataclass
class Asked:
    """One chat as the user saw it: the X-Trace-Id header and the SSE events."""

    header_trace_id: str
    events: list[tuple[str, dict]]

    @property
    def done(self) -> dict:
        kind, data = self.events[-1]
        assert kind == "done", self.events
        return data


@dataclass
class Traced:
    """What the test run produced: both askings, every span, and the mesh's log folder."""

    first: Asked
    second: Asked
    last_trace_id: str
    """A search sent just before the mesh was told to stop."""
    query_trace_id: str
    """A search whose URL carried QUERY_SECRET in its query string."""
    document_trace_id: str
    """A request for MISSING_DOCUMENT, whose id is part of its path."""
    repeated_search_trace_id: str
    """The search of query_trace_id asked again, which the gateway answers from its near cache."""
    spans: list[ReceivedSpan]
    log_dir: Path
    ui_config: str

    def trace(self, asked: Asked) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == asked.header_trace_id]


def _ask(mesh: MeshProcess, question: str) -> Asked:
    with httpx.stream("POST", f"{mesh.base_url}/api/v1/chat", json={"query": question}, timeout=120) as reply:
        assert reply.status_code == 200
        body = "".join(reply.iter_text())
        return Asked(reply.headers["x-trace-id"], parse_sse(body))


def _whole(spans: list[ReceivedSpan], trace_id: str) -> bool:
    """Every service is in the trace, both ends of Answer have arrived, and no parent is missing."""
    trace = [s for s in spans if s.trace_id == trace_id]
    ids = {s.span_id for s in trace}
    return (
        SERVICES <= {s.service for s in trace}
        and {s.service for s in trace if s.name == ANSWER_RPC} == {"gateway", "generation_svc"}
        and all(s.parent_id in ids for s in trace if s.parent_id)
    )


def _search(mesh: MeshProcess, query_string: str = "") -> str:
    """The trace id of a search sent with query_string on its URL."""
    reply = httpx.post(f"{mesh.base_url}/api/v1/search{query_string}", json={"query": "which port"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.headers["x-trace-id"]


def _services(spans: list[ReceivedSpan], trace_id: str) -> set[str]:
    return {s.service for s in spans if s.trace_id == trace_id}


def _probe(mesh: MeshProcess) -> None:
    """Health, readiness and metrics as Kubernetes, Prometheus and gRPC checks ask: through Envoy and to the gateway."""
    gateway = f"http://{host_port(reachable_host(mesh.env['LIKEOPT_HOST']), mesh.port('gateway'))}"
    for base in (mesh.base_url, gateway):
        for path in sorted(UNTRACED_PATHS):
            assert httpx.get(f"{base}{path}", timeout=30).status_code == 200, f"{base}{path}"
    with grpc.insecure_channel(mesh.address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    receiver = OtlpReceiver()
    receiver.start()
    work_dir = tmp_path_factory.mktemp("traced-mesh")
    mesh = MeshProcess(
        env=mesh_environment(
            work_dir,  # a Redis of its own (from the launcher): no other test's entry can answer the first ask
            OTEL_BSP_SCHEDULE_DELAY="200",  # the services' batch export, in ms (default 5 s)
            LIKEOPT_JAEGER_URL=JAEGER_URL,
        ),
        args=["--ingest", str(DEMO_CORPUS), "--otlp-endpoint", receiver.endpoint],
    )
    mesh.start()
    try:
        mesh.wait_ready()
        ui_config = httpx.get(f"{mesh.base_url}/static/config.js", timeout=10).text
        first = _ask(mesh, QUESTION)
        second = _ask(mesh, QUESTION)
        receiver.wait_for(lambda spans: all(_whole(spans, a.header_trace_id) for a in (first, second)))
        _probe(mesh)
        query_trace_id = _search(mesh, f"?api_key={QUERY_SECRET}")
        repeated_search_trace_id = _search(mesh)
        document = httpx.get(f"{mesh.base_url}/api/v1/documents/{MISSING_DOCUMENT}", timeout=30)
        assert document.status_code == 404, document.text
        document_trace_id = document.headers["x-trace-id"]
        receiver.wait_for(lambda spans: {"envoy", "gateway"} <= _services(spans, query_trace_id))
        for trace_id in (document_trace_id, repeated_search_trace_id):
            receiver.wait_for(lambda spans, trace_id=trace_id: "gateway" in _services(spans, trace_id))
        last = httpx.post(f"{mesh.base_url}/api/v1/search", json={"query": "which port", "top_k": 1}, timeout=30)
    finally:
        code = mesh.stop()  # the services flush their last spans on the way out
    assert code == 0, "likeopt up did not exit cleanly:\n" + "".join(mesh.output[-40:])
    try:
        yield Traced(
            first,
            second,
            last.headers["x-trace-id"],
            query_trace_id,
            document_trace_id,
            repeated_search_trace_id,
            receiver.spans,
            work_dir / "run" / "logs",
            ui_config,
        )
    finally:
        receiver.stop()


def test_the_user_sees_the_trace_id_and_the_ui_links_it_to_jaeger(traced: Traced) -> None:
    for asked in (traced.first, traced.second):
        assert len(asked.header_trace_id) == 32
        assert asked.done["trace_id"] == asked.header_trace_id
    assert f'window.LIKEOPT_JAEGER_URL = "{JAEGER_URL}";' in traced.ui_config


@pytest.mark.parametrize("which", ["first", "second"])
def test_each_answer_is_one_whole_trace_across_all_five_services(traced: Traced, which: str) -> None:
    trace = traced.trace(getattr(traced, which))
    per_service = Counter(s.service for s in trace)
    print(f"\n{which} asking: {len(trace)} spans, {dict(sorted(per_service.items()))}")
    assert set(per_service) == SERVICES
    ids = {s.span_id for s in trace}
    orphans = [(s.service, s.name) for s in trace if s.parent_id and s.parent_id not in ids]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"
    roots = [s for s in trace if not s.parent_id]
    assert [(r.service, r.name) for r in roots] == [("envoy", "ingress")], "Envoy's span is the one root"
    assert len(ids) == len(trace), "a span was exported twice"


@pytest.mark.parametrize("which", ["first", "second"])
def test_the_streaming_answer_ended_on_both_sides(traced: Traced, which: str) -> None:
    answer = [s for s in traced.trace(getattr(traced, which)) if s.name == ANSWER_RPC]
    assert {s.service for s in answer} == {"gateway", "generation_svc"}
    for span in answer:
        assert span.span.end_time_unix_nano >= span.span.start_time_unix_nano > 0
    client = next(s for s in answer if s.service == "gateway")
    server = next(s for s in answer if s.service == "generation_svc")
    assert server.parent_id == client.span_id


def test_the_last_request_before_a_stop_keeps_envoys_span(traced: Traced) -> None:
    """Envoy sends spans once a second and not on SIGTERM: the last requests' traces lost their root."""
    services = {s.service for s in traced.spans if s.trace_id == traced.last_trace_id}
    assert {"envoy", "gateway"} <= services


def test_no_span_holds_a_query_string(traced: Traced) -> None:
    """Envoy's access log drops queries (a token handed over in one would be kept); so do the spans of every hop."""
    assert {"envoy", "gateway"} <= _services(traced.spans, traced.query_trace_id)
    leaks = [
        (s.service, s.name, key)
        for s in traced.spans
        for key, value in s.attributes.items()
        if QUERY_SECRET in str(value)
    ]
    assert not leaks


def test_the_gateways_span_names_the_route_not_the_id_in_the_path(traced: Traced) -> None:
    """Named after the raw path, each document id was an operation of its own in Jaeger."""
    (span,) = [s for s in traced.spans if s.trace_id == traced.document_trace_id and s.name.startswith("GET ")]
    assert (span.service, span.name) == ("gateway", "GET /api/v1/documents/{doc_id:path}")
    assert span.attributes["http.route"] == "/api/v1/documents/{doc_id:path}"
    assert MISSING_DOCUMENT not in span.name


def test_retrieval_stages_have_their_own_spans(traced: Traced) -> None:
    trace = traced.trace(traced.first)
    stages = {s.name: s for s in trace if s.service == "retrieval_svc"}
    assert {"query embedding", "bm25 search", "vector search", "fusion"} <= set(stages), sorted(stages)
    fusion = stages["fusion"].attributes
    assert fusion["likeopt.retrieval.mode"] == "hybrid" and fusion["likeopt.retrieval.top_k"] > 0
    assert fusion["likeopt.retrieval.index_version"] >= 1
    by_id = {s.span_id: s for s in trace}

    def ancestors(span: ReceivedSpan) -> list[str]:
        names = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            names.append(f"{span.service} {span.name}")
        return names

    # Computed in worker threads, still under the RPC that asked for them.
    search = "retrieval_svc /likeopt.v1.RetrievalService/Search"
    assert search in ancestors(stages["bm25 search"]) and search in ancestors(stages["query embedding"])


def test_generation_stages_have_their_own_spans(traced: Traced) -> None:
    """The first asking runs the backend: its whole stream and its first token are spans of their own."""
    stages = {s.name: s for s in traced.trace(traced.first) if s.service == "generation_svc"}
    assert {"backend stream", "backend first token"} <= set(stages), sorted(stages)
    stream, first_token = stages["backend stream"], stages["backend first token"]
    assert first_token.parent_id == stream.span_id
    assert stream.attributes["likeopt.stream.pieces"] >= 1
    assert stream.attributes["gen_ai.response.finish_reasons"]
    assert first_token.span.end_time_unix_nano <= stream.span.end_time_unix_nano


def _lookups(trace: list[ReceivedSpan], service: str) -> list[tuple[str, str, bool]]:
    return [
        (str(s.attributes[CACHE_LAYER]), str(s.attributes[CACHE_NAMESPACE]), bool(s.attributes[CACHE_HIT]))
        for s in trace
        if s.service == service and CACHE_HIT in s.attributes
    ]


def test_the_first_asking_misses_the_caches_down_to_redis(traced: Traced) -> None:
    trace = traced.trace(traced.first)
    assert ("l1", "search", False) in _lookups(trace, "cache_svc")
    assert ("l2", "search", False) in _lookups(trace, "cache_svc")
    assert ("service", "search", False) in _lookups(trace, "retrieval_svc")
    redis = [s for s in trace if s.service == "cache_svc" and s.attributes.get("db.system") == "redis"]
    assert redis, "no Redis span under cache_svc"


def test_the_repeated_question_hits_the_cache(traced: Traced) -> None:
    trace = traced.trace(traced.second)
    cache_svc = _lookups(trace, "cache_svc")
    assert any(layer == "l1" and hit for layer, _, hit in cache_svc), cache_svc
    clients = _lookups(trace, "retrieval_svc") + _lookups(trace, "generation_svc")
    assert any(layer == "service" and hit for layer, _, hit in clients), clients


def test_hits_in_a_processs_own_near_cache_are_on_its_span(traced: Traced) -> None:
    """A near cache's hit makes no span of its own: the trace of a repeated search said nothing of why it had no
    hops below the gateway, nor the repeated question's of why retrieval_svc's Search had none below it."""
    repeated = [s for s in traced.spans if s.trace_id == traced.repeated_search_trace_id]
    assert {s.service for s in repeated} == {"envoy", "gateway"}, "the repeat went past the gateway"
    assert _lookups(repeated, "gateway") == [(NEAR_LAYER, "search", True)]
    assert (NEAR_LAYER, "search", True) in _lookups(traced.trace(traced.second), "retrieval_svc")


def _logged(log_dir: Path, trace_id: str) -> dict[str, dict]:
    """A JSON log line naming trace_id, per service that wrote one."""
    logged = {}
    for path in log_dir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and trace_id in line:
                record = json.loads(line)
                logged[record["service"]] = record
    return logged


def test_log_lines_of_the_answer_carry_its_trace_id(traced: Traced) -> None:
    trace_id = traced.first.header_trace_id
    logged = _logged(traced.log_dir, trace_id)
    assert "generation_svc" in logged, f"no log line of {trace_id} in {traced.log_dir}"
    assert all(record["trace_id"] == trace_id and len(record["span_id"]) == 16 for record in logged.values())


def _probed(span: ReceivedSpan) -> bool:
    """Whether span is of a health, readiness or metrics request, over HTTP or gRPC."""
    path = urlsplit(str(span.attributes.get("http.url", ""))).path or span.name.rpartition(" ")[2]
    return path in UNTRACED_PATHS or path.startswith(GRPC_HEALTH_PREFIX) or GRPC_HEALTH_PREFIX in span.name


def test_health_readiness_and_metrics_requests_are_not_traced(traced: Traced) -> None:
    """Envoy, the launcher, Kubernetes and Prometheus probe every few seconds; those would drown the real traces."""
    probes = [(s.service, s.name, s.attributes.get("http.url")) for s in traced.spans if _probed(s)]
    assert not probes


def test_an_https_collector_gets_whole_traces_from_envoy_and_every_service_over_tls(tmp_path: Path) -> None:
    """Envoy and the services' exporters speak TLS to an https:// endpoint alike, trusting the CA bundle."""
    cert, key = self_signed(tmp_path)
    receiver = OtlpReceiver(tls=(cert, key))
    receiver.start()
    env = mesh_environment(tmp_path, OTEL_BSP_SCHEDULE_DELAY="200", SSL_CERT_FILE=str(cert))
    mesh = MeshProcess(env=env, args=["--otlp-endpoint", receiver.endpoint])
    try:
        with mesh.running():
            trace_id = _search(mesh)
            hops = {"envoy", "gateway", "retrieval_svc", "cache_svc"}
            spans = receiver.wait_for(lambda spans: hops <= _services(spans, trace_id))
    finally:
        receiver.stop()
    assert hops <= _services(spans, trace_id), f"spans of {sorted(_services(spans, trace_id))} only"
    trace = [s for s in spans if s.trace_id == trace_id]
    ids = {s.span_id for s in trace}
    assert [(s.service, s.name) for s in trace if s.parent_id not in ids] == [("envoy", "ingress")]


def test_without_a_collector_the_ids_still_reach_the_user_and_the_logs(mesh: MeshProcess) -> None:
    """No LIKEOPT_OTLP_ENDPOINT: Envoy samples nothing and says so in traceparent (flag 00);
    the services' parent-based samplers then record nothing, yet every id survives."""
    asked = _ask(mesh, "Which port does the gateway listen on?")
    assert len(asked.header_trace_id) == 32
    assert asked.done["trace_id"] == asked.header_trace_id
    logged = _logged(Path(mesh.env["LIKEOPT_RUN_DIR"]) / "logs", asked.header_trace_id)
    assert "generation_svc" in logged, "no log line names the unsampled answer's trace id"
