"""The web UI while the gateway is down or restarting: plain words for what Envoy answers then, and an answer whose
connection broke partway says so and keeps what arrived."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.test_web_ui import ask
from tests.support import MeshProcess

ENVOY_WORDS = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
"""What Envoy answers, as it is, when nothing listens at the gateway's port."""
PLAIN_503 = "503 Service Unavailable: the service is restarting or unreachable; try again"

BROKEN_STREAM = """() => {
  const real = window.fetch;
  window.fetch = (url, init) => {
    if (!String(url).endsWith('/api/v1/chat')) return real(url, init);
    const events = 'event: retrieval\\ndata: {"hits": []}\\n\\n'
      + 'event: delta\\ndata: {"text": "Part of the answer"}\\n\\n';
    const body = new ReadableStream({
      start(controller) { controller.enqueue(new TextEncoder().encode(events)); },
      pull(controller) { controller.error(new TypeError('network error')); },
    });
    return Promise.resolve(new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }));
  };
}"""
"""The chat's stream breaks after its first events, as Chromium's does when the gateway dies mid-answer: reading the
body fails with a TypeError."""


def test_envoy_s_words_for_an_unreachable_gateway_read_as_the_status_and_what_it_means(
    mesh: MeshProcess, page: Any
) -> None:
    # A GET sends no Content-Type, so Envoy answers it in plain text; the chat's POST gets them in the JSON contract.
    page.route("**/api/v1/dashboard", lambda route: route.fulfill(status=503, body=ENVOY_WORDS))
    envoy_json = {"error": {"code": "UNAVAILABLE", "message": ENVOY_WORDS}}
    page.route("**/api/v1/chat", lambda route: route.fulfill(status=503, body=json.dumps(envoy_json)))
    page.goto(mesh.base_url + "/")
    ask(page, "Which port does Envoy listen on?")
    notice = page.locator(".message.assistant .notice.error")
    notice.wait_for()
    assert notice.inner_text() == PLAIN_503
    assert page.input_value("#query") == "Which port does Envoy listen on?"  # back in the box, to send again

    page.click("#tab-dashboard")
    page.wait_for_function("document.getElementById('dashboard-status').textContent.includes('503')")
    assert page.inner_text("#dashboard-status") == f"Dashboard unavailable: {PLAIN_503}"


def test_an_answer_whose_connection_breaks_says_so_and_keeps_what_arrived(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    page.evaluate(BROKEN_STREAM)
    ask(page, "Which port does Envoy listen on?")
    answer = page.locator(".message.assistant")
    answer.locator(".notice.error").wait_for()
    assert answer.locator(".notice.error").inner_text() == "The connection was lost during the answer."
    assert answer.locator(".answer-text").inner_text() == "Part of the answer"
