"""Streams with a real model in the middle of them: clients that leave, services told to stop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx

from tests.integration.test_launcher import process_of
from tests.integration.test_mesh import parse_sse
from tests.support import MeshProcess

QUESTION = "Explain in detail how Like-Opt caches answers, and why keys cannot go stale."


def metric(mesh: MeshProcess, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{mesh.port('generation_metrics')}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def stream_lines(mesh: MeshProcess, query: str) -> Iterator[str]:
    with httpx.stream("POST", f"{mesh.base_url}/api/v1/chat", json={"query": query, "top_k": 3}, timeout=120) as r:
        assert r.status_code == 200
        yield from r.iter_lines()


def ready(mesh: MeshProcess) -> bool:
    try:
        return httpx.get(f"{mesh.base_url}/api/v1/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition, what: str, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_client_that_leaves_cancels_the_answer_and_the_model_stops(local_mesh: MeshProcess) -> None:
    cancelled = 'likeopt_rpc_calls_total{code="CANCELLED",method="Answer"}'
    before = metric(local_mesh, cancelled)
    for line in stream_lines(local_mesh, f"{QUESTION} (leaving early)"):
        if line.startswith("event: retrieval"):
            break  # the client goes away while the model reads the passages: mid-answer, with time to spare
    wait_until(lambda: metric(local_mesh, cancelled) > before, "the gateway did not cancel the gRPC stream")
    wait_until(lambda: metric(local_mesh, "likeopt_generation_running") == 0, "the model kept generating")


def answer_across_a_sigterm(mesh: MeshProcess, module: str) -> list[tuple[str, dict]]:
    """Ask, SIGTERM the module's process after the first delta, and return the whole answer."""
    lines = []
    signalled = False
    for line in stream_lines(mesh, f"{QUESTION} ({module} stops)"):
        lines.append(line)
        if line.startswith("event: delta") and not signalled:
            os.kill(process_of(mesh, module), signal.SIGTERM)
            signalled = True
    return parse_sse("\n".join(lines) + "\n\n")


def test_sigterm_to_generation_svc_lets_the_answer_finish_then_it_exits_0(local_mesh: MeshProcess) -> None:
    events = answer_across_a_sigterm(local_mesh, "generation_svc")
    assert events[-1][0] == "done", events[-1]
    assert events[-1][1]["finish_reason"] in ("stop", "length")
    wait_until(lambda: any("generation_svc exited with code 0" in x for x in local_mesh.output), "no clean exit")
    wait_until(lambda: ready(local_mesh), "the restarted generation_svc never became ready")


def test_sigterm_to_the_gateway_lets_the_answer_finish_then_it_exits_0(local_mesh: MeshProcess) -> None:
    wait_until(lambda: ready(local_mesh), "not ready")
    events = answer_across_a_sigterm(local_mesh, "gateway")
    assert events[-1][0] == "done", events[-1]
    wait_until(lambda: any("gateway exited with code 0" in x for x in local_mesh.output), "no clean exit")
    wait_until(lambda: ready(local_mesh), "the restarted gateway never became ready")
