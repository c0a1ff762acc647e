"""Answers people can trust, in a real browser: a rendered, cited, support-marked answer; "not in your
documents" for an off-topic question; a thumbs-down that `likeopt eval --answers --from-feedback` finds;
Markdown in answers rendered without letting any script, handler or javascript: link through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.test_web_ui import ask, upload
from tests.integration.test_answers_mesh import exported_cases
from tests.support import MeshProcess

DONE = "#send:not([hidden])"


def answered(page: Any, question: str) -> Any:
    """Ask, wait until the answer is complete, and return its message element (by position: `.last` would
    follow later answers)."""
    index = page.locator(".message.assistant").count()
    ask(page, question)
    answer = page.locator(".message.assistant").nth(index)
    answer.locator(".meta:not([hidden])").wait_for(timeout=60_000)
    page.wait_for_selector(DONE, timeout=60_000)
    return answer


def test_a_cited_answer_an_honest_refusal_and_a_thumbs_down_that_becomes_a_case(
    mesh: MeshProcess, page: Any, shots: Path
) -> None:
    page.goto(mesh.base_url + "/")
    answer = answered(page, "Which port does Envoy listen on?")
    assert answer.locator(".answer-text p").count() >= 1  # rendered, not raw text
    assert answer.locator(".citation-marker").count() >= 1 and answer.locator(".sources").is_visible()
    assert answer.locator(".badge.support").inner_text().startswith("supported")
    page.screenshot(path=str(shots / "answer-supported.png"))

    refusal = answered(page, "Who painted the Mona Lisa?")
    assert refusal.locator(".badge.no-answer").inner_text() == "not in your documents"
    assert "not in your documents" in refusal.locator(".answer-text").inner_text()
    assert refusal.locator(".citation-marker").count() == 0 and not refusal.locator(".sources").is_visible()

    answer.locator(".feedback-thumb.down").click()
    answer.locator(".feedback-comment").fill("the admin port is missing")
    answer.locator(".feedback-send").click()
    page.wait_for_selector(".message.assistant >> text=Thanks: marked as a bad answer.", timeout=15_000)
    cases = exported_cases(mesh, "down")
    assert any(
        c["question"] == "Which port does Envoy listen on?" and c["comment"] == "the admin port is missing"
        for c in cases
    )
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    page.goto(mesh.base_url + "/#dashboard")
    listed = page.locator("#feedback-list li", has_text="the admin port is missing")
    listed.first.wait_for(timeout=15_000)  # the dashboard lists it, for whoever holds the key
    assert "Which port does Envoy listen on?" in listed.first.inner_text()


def test_a_greeting_gets_a_greeting_with_no_sources_and_no_support_badge(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    reply = answered(page, "Hi!")
    assert "your documents" in reply.locator(".answer-text").inner_text()
    assert reply.locator(".badge").count() == 0 and reply.locator(".citation-marker").count() == 0


def test_markdown_in_an_answer_is_rendered_and_nothing_in_it_runs(mesh: MeshProcess, page: Any, tmp_path: Path) -> None:
    hostile = tmp_path / "quokkas.txt"
    hostile.write_text(
        "Zanzibarian quokkas eat **glowing** berries and `moss`, see [the guide](javascript:window.pwned=1)"
        ' or [the <b>map</b>](https://example.org/map "x") <img src=x onerror="window.pwned=2">'
        " <script>window.pwned=3</script> <a href=javascript:window.pwned=4>here</a>.\n"
    )
    upload(page, mesh, hostile)
    page.goto(mesh.base_url + "/#chat")
    answer = answered(page, "What do Zanzibarian quokkas eat?")
    text = answer.locator(".answer-text")
    assert text.locator("strong").first.inner_text() == "glowing"
    assert text.locator("code").first.inner_text() == "moss"
    assert text.locator("script, img, b, [onerror]").count() == 0
    assert text.locator('a[href^="javascript"]').count() == 0
    link = text.locator('a[href="https://example.org/map"]')
    if link.count():  # the safe link, when the answer kept it, opens safely
        assert link.first.get_attribute("rel") == "noopener noreferrer"
    assert "<script>" in text.inner_text() or "<img" in text.inner_text()  # shown as the characters it is
    answer.locator(".citation-marker").first.click()
    assert "**" not in page.locator("#citation-text").inner_text()  # passages shown as clean text
    page.keyboard.press("Escape")
    assert page.evaluate("window.pwned === undefined")


RENDER = """(text) => import('/static/markdown.js').then((md) => {
  const box = document.createElement('div');
  box.append(md.renderMarkdown(text, (n) => document.createTextNode(`[${n}]`)));
  return {plain: md.plainText(text), text: box.textContent, links: [...box.querySelectorAll('a')].map((a) => a.href)};
})"""


def test_a_link_target_with_parentheses_is_one_link_and_javascript_stays_words(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    shown = page.evaluate(RENDER, "See [click](javascript:alert(4)) or [Foo](https://example.org/wiki/Foo_(bar)).")
    assert shown["plain"] == shown["text"] == "See click or Foo."
    assert shown["links"] == ["https://example.org/wiki/Foo_(bar)"]
    # '/\host' is not a path of this site: browsers read it as //host
    shown = page.evaluate(RENDER, "Read [the guide](/\\evil.example/phish) or [the docs](/api/v1/docs).")
    assert shown["text"] == "Read the guide or the docs." and shown["links"] == [mesh.base_url + "/api/v1/docs"]
