"""The web UI while the gateway is down or restarting: plain words for what Envoy answers then, and an answer whose
connection broke partway says so and keeps what arrived."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

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


DROP_AFTER_FIRST_DELTA = """() => {
  const real = window.fetch;
  window.chatRequests = [];
  window.laterBodies = [];
  window.fetch = async (url, init) => {
    if (!String(url).endsWith('/api/v1/chat')) return real(url, init);
    window.chatRequests.push({ lastEventId: init.headers['Last-Event-ID'] ?? '', body: JSON.parse(init.body) });
    const res = await real(url, init);
    if (window.chatRequests.length > 1) {
      res.clone().text().then((text) => window.laterBodies.push(text));
      return res;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    let delivered = false;
    const body = new ReadableStream({
      async pull(controller) {
        if (delivered) {
          reader.cancel();
          controller.error(new TypeError('network error'));
          return;
        }
        for (;;) {
          const delta = seen.indexOf('event: delta');
          const end = delta < 0 ? -1 : seen.indexOf('\\n\\n', delta);
          if (end >= 0) {
            window.firstPart = seen.slice(0, end + 2);
            controller.enqueue(new TextEncoder().encode(window.firstPart));
            delivered = true;
            return;
          }
          const { value, done } = await reader.read();
          if (done) throw new Error('the answer ended before its first delta');
          seen += decoder.decode(value, { stream: true });
        }
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
}"""
"""The network drops right after the chat's first delta: the real stream is passed on up to the end of that event,
then reading it fails as Chromium's does when the connection is lost. Later requests are left alone (their bodies are
kept in window.laterBodies)."""


def test_an_answer_whose_connection_drops_is_continued_where_it_broke_off(mesh: MeshProcess, page: Any) -> None:
    """The gateway continues a stream after the Last-Event-ID it is sent: the UI takes the answer up again after the
    last event it has, in the same conversation, so the answer is whole, once, and the server holds the question
    once. Before, it stopped at the first words and said the connection was lost."""
    question = "How does Like-Opt cache answers in Redis?"
    page.goto(mesh.base_url + "/")
    page.evaluate(DROP_AFTER_FIRST_DELTA)
    ask(page, question)
    answer = page.locator(".message.assistant")
    page.wait_for_function("!document.querySelector('.message.assistant').hasAttribute('aria-busy')", timeout=30_000)
    assert answer.locator(".notice.error").count() == 0 and answer.locator(".sources").is_visible()

    first, again = page.evaluate("window.chatRequests")
    first_part = page.evaluate("window.firstPart")
    last_id = [line for line in first_part.splitlines() if line.startswith("id: ")][-1].removeprefix("id: ")
    conversation_id = page.evaluate("JSON.parse(localStorage.getItem('likeopt.conversations'))[0].conversationId")
    assert first["lastEventId"] == "" and again["lastEventId"] == last_id
    assert again["body"] == {"query": question, "conversation_id": conversation_id}

    whole = httpx.post(
        f"{mesh.base_url}/api/v1/chat", json={"query": question}, headers={"Accept": "application/json"}, timeout=60
    ).json()["answer"]
    shown = answer.locator(".answer-text").inner_text()
    assert shown.split() == whole.split()  # the same answer, each part once
    turns = httpx.get(f"{mesh.base_url}/api/v1/conversations/{conversation_id}", timeout=10).json()["turns"]
    assert [t["question"] for t in turns] == [question]


def test_an_answer_written_anew_after_a_drop_replaces_the_part_shown(local_mesh: MeshProcess, page: Any) -> None:
    """A model's answer cut short is written anew, not alike, and sent whole marked restarted: what arrived of the
    first one goes, so the answer kept is the new one alone, not the two spliced."""
    page.goto(local_mesh.base_url + "/")
    page.evaluate(DROP_AFTER_FIRST_DELTA)
    ask(page, "Which ports do Envoy and its admin interface listen on, and why are they separate?")
    page.wait_for_function("!document.querySelector('.message.assistant').hasAttribute('aria-busy')", timeout=120_000)
    assert page.locator(".message.assistant .notice.error").count() == 0
    [body] = page.evaluate("window.laterBodies")
    events = [block.splitlines() for block in body.split("\n\n") if "\ndata: " in block]
    payloads = {line.removeprefix("event: "): [] for lines in events for line in lines if line.startswith("event: ")}
    for lines in events:
        kind = next(line.removeprefix("event: ") for line in lines if line.startswith("event: "))
        payloads[kind].append(
            json.loads(next(line.removeprefix("data: ") for line in lines if line.startswith("data: ")))
        )
    assert payloads["retrieval"][0]["restarted"] is True  # the premise: written anew, sent whole
    saved = page.evaluate("JSON.parse(localStorage.getItem('likeopt.conversations'))[0].messages[1].text")
    assert saved == "".join(delta["text"] for delta in payloads["delta"])


def drop_then(page: Any, later: Callable[[Any], None]) -> None:
    """The chat's first stream drops after its first delta (DROP_AFTER_FIRST_DELTA); `later` handles every request
    after it, each attempt to continue the answer."""
    first = True

    def handle(route: Any) -> None:
        nonlocal first
        if first:
            first = False
            route.continue_()
        else:
            later(route)

    page.route("**/api/v1/chat", handle)
    page.evaluate(DROP_AFTER_FIRST_DELTA)


def refuse_as_envoy(route: Any) -> None:
    """Answer as Envoy does a JSON request while nothing listens at the gateway's port."""
    route.fulfill(status=503, body=json.dumps({"error": {"code": "UNAVAILABLE", "message": ENVOY_WORDS}}))


def test_an_answer_that_cannot_be_continued_says_so_and_gives_the_question_back(mesh: MeshProcess, page: Any) -> None:
    """The gateway is gone for good after the drop: Envoy answers each try to continue with its 503. After the last
    try the answer says it could not be continued and why, keeps what arrived, and the question is back in the box."""
    question = "Which port does Envoy listen on?"
    page.goto(mesh.base_url + "/")
    drop_then(page, refuse_as_envoy)
    ask(page, question)
    answer = page.locator(".message.assistant")
    answer.locator(".notice.error").wait_for(timeout=30_000)
    assert len(page.evaluate("window.chatRequests")) == 4  # the first, then three tries
    notice = answer.locator(".notice.error").inner_text()
    assert notice.startswith("The connection was lost during the answer and could not be restored") and (
        PLAIN_503 in notice
    )
    first_delta = page.evaluate("window.firstPart").split("event: delta")[1].split("data: ")[1].split("\n")[0]
    assert answer.locator(".answer-text").inner_text() == json.loads(first_delta)["text"].strip()  # what arrived
    assert page.input_value("#query") == question
    page.wait_for_function("document.getElementById('chat-status').textContent.includes('back in the box')")
    assert page.locator("#send").is_visible() and not page.locator("#stop").is_visible()


@pytest.mark.parametrize("gateway", ["silent", "gone"])
def test_stop_pressed_while_reconnecting_stops_the_tries(mesh: MeshProcess, page: Any, gateway: str) -> None:
    """Stop pressed while the answer is being continued stops: the answer is marked stopped, not failed, and no
    further try is made. Silent: the gateway does not answer the try under way. Gone: Envoy refuses each try at once,
    so Stop comes in a wait between tries."""
    held: list[Any] = []
    page.goto(mesh.base_url + "/")
    drop_then(page, held.append if gateway == "silent" else refuse_as_envoy)
    ask(page, "Which port does Envoy listen on?")
    page.wait_for_function("window.chatRequests.length === 2", timeout=30_000)
    page.click("#stop")
    page.wait_for_function("document.getElementById('chat-status').textContent === 'Stopped.'")
    answer = page.locator(".message.assistant")
    assert answer.locator(".notice.error").count() == 0 and page.locator("#send").is_visible()
    page.wait_for_timeout(7_000)  # longer than every wait between tries together
    assert len(page.evaluate("window.chatRequests")) == 2
    for route in held:
        route.abort()
