"""The web UI on a phone and in the dark: nothing wider than the screen, text readable in both colour schemes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.test_ui_state import open_saved, saved_conversation
from tests.support import MeshProcess

PHONE = {"width": 375, "height": 740}
UNBROKEN = "Unbroken" * 30
"""A title or passage with no place to wrap: a file name, a URL, a hash."""
WIDER_THAN_SHOWN = """(selector) => [...document.querySelectorAll(selector)]
  .filter((node) => node.scrollWidth > node.clientWidth)
  .map((node) => `${node.id || node.className}: ${node.scrollWidth} > ${node.clientWidth}`)"""
"""The elements among selector's that scroll sideways, as 'name: content width > shown width'."""
CITE_UNBROKEN = """(words) => import('/static/message.js').then(({ createAnswerView }) => {
  const view = createAnswerView({ role: 'assistant', text: '', citations: [] });
  document.getElementById('messages').append(view.root);
  view.apply('delta', { text: 'See [1].' });
  view.apply('citation', { n: 1, doc_id: 'docs/long.md', chunk_id: 0, title: words, text: words, supported: true });
  view.finish();
})"""


@pytest.fixture
def unbroken_document(mesh: MeshProcess) -> Iterator[str]:
    """A document whose title and text have no place to wrap, taken away again after the test."""
    auth = {"Authorization": f"Bearer {mesh.api_key}"}
    document = {"id": "unbroken-words", "title": UNBROKEN, "text": f"{UNBROKEN} {UNBROKEN}"}
    added = httpx.post(f"{mesh.base_url}/api/v1/documents", json={"documents": [document]}, headers=auth, timeout=60)
    assert added.status_code == 200, added.text
    try:
        yield document["id"]
    finally:
        httpx.delete(f"{mesh.base_url}/api/v1/documents/{document['id']}", headers=auth, timeout=30)


def test_long_unbroken_words_wrap_inside_the_document_and_citation_dialogs(
    mesh: MeshProcess, page: Any, unbroken_document: str
) -> None:
    page.set_viewport_size(PHONE)
    page.goto(mesh.base_url + "/#documents")
    page.locator(f"#doc-list li[data-doc-id='{unbroken_document}'] .open-document").click()
    page.wait_for_function("document.querySelectorAll('#document-chunks .passage').length > 0")
    assert page.evaluate(WIDER_THAN_SHOWN, "#document-dialog, #document-dialog h2, #document-dialog .passage") == []
    page.keyboard.press("Escape")

    page.goto(mesh.base_url + "/#chat")
    page.evaluate(CITE_UNBROKEN, UNBROKEN)
    page.locator(".message.assistant .citation-marker").click()
    page.locator("#citation-dialog").wait_for(state="visible")
    assert page.evaluate(WIDER_THAN_SHOWN, "#citation-dialog, #citation-title, #citation-text") == []


@pytest.fixture
def narrow(browser: Any) -> Iterator[Any]:
    """A page 320 CSS pixels wide: a 1280-pixel screen zoomed to 400 %, the width WCAG's reflow asks for."""
    context = browser.new_context(viewport={"width": 320, "height": 256}, device_scale_factor=4)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("view", ["chat", "documents", "dashboard"])
def test_nothing_scrolls_sideways_at_320_pixels(mesh: MeshProcess, narrow: Any, view: str) -> None:
    narrow.goto(f"{mesh.base_url}/#{view}")
    narrow.locator(f"#view-{view}").wait_for()
    width = narrow.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} pixels wide in a window of {width[1]}"
    assert narrow.evaluate(WIDER_THAN_SHOWN, ".tabs [role=tab]") == []


@pytest.mark.parametrize("viewport", [(1280, 900), (1024, 700)])
def test_a_new_chat_fits_its_window_without_a_scroll_bar(mesh: MeshProcess, browser: Any, viewport: tuple) -> None:
    """The chat column was sized to the window less a header one pixel shorter than the header (its border): one
    pixel over, and a scroll bar beside an empty chat."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = context.new_page()
        page.goto(f"{mesh.base_url}/#chat")
        page.locator("#view-chat").wait_for()
        height = page.evaluate("[document.documentElement.scrollHeight, document.documentElement.clientHeight]")
    finally:
        context.close()
    assert height[0] <= height[1], f"the page is {height[0]} pixels high in a window of {height[1]}"


CONTRAST = """(selector) => {
  const channels = (colour) => colour.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = (v) => (v / 255 <= 0.04045 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  return [...document.querySelectorAll(selector)].map((node) => {
    let under = node;
    while (channels(getComputedStyle(under).backgroundColor)[3] === 0) under = under.parentElement;
    const [light, dark] = [getComputedStyle(node).color, getComputedStyle(under).backgroundColor]
      .map((colour) => luminance(channels(colour))).sort((a, b) => b - a);
    return [node.className, Math.round((light + 0.05) / (dark + 0.05) * 100) / 100];
  });
}"""
"""WCAG's contrast ratio of each element's text against the first background behind it that is not transparent."""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_feedback_controls_are_readable_in_both_colour_schemes(mesh: MeshProcess, page: Any, scheme: str) -> None:
    page.emulate_media(color_scheme=scheme)
    page.goto(mesh.base_url + "/")
    page.fill("#query", "Which port does Envoy listen on?")
    page.press("#query", "Enter")
    page.click(".feedback-thumb.up", timeout=30_000)
    ratios = page.evaluate(CONTRAST, ".feedback-thumb, .feedback-comment, .feedback-send")
    assert len(ratios) == 4 and all(ratio >= 4.5 for _, ratio in ratios), ratios


def long_conversation(local_id: str, title: str, turns: int) -> dict:
    """A saved conversation of `turns` questions, each answered at length: far taller than any window."""
    conversation = saved_conversation(local_id, title, [])
    conversation["messages"] = [
        message
        for n in range(turns)
        for message in (
            {"role": "user", "text": f"{title}, question {n}", "turn": f"t{n}"},
            {"role": "assistant", "text": f"Answer {n}. " + "More words. " * 60, "turn": f"t{n}", "citations": []},
        )
    ]
    return conversation


AT_THE_END = "innerHeight + scrollY >= document.documentElement.scrollHeight - 2"
LATEST_TURN_SHOWN = (
    "(() => { const last = [...document.querySelectorAll('#messages .message')].at(-1).getBoundingClientRect();"
    " return last.bottom > 0 && last.top < innerHeight; })()"
)


@pytest.mark.parametrize("width", [320, 1280])
def test_a_long_conversation_opened_from_the_keyboard_opens_at_its_latest_turn(
    mesh: MeshProcess, browser: Any, width: int
) -> None:
    """At 320 pixels (a phone, or 200 % zoom and more) the list is folded away once a conversation opens, and the
    focus it hands on must not scroll the page back up to the top of the conversation."""
    context = browser.new_context(viewport={"width": width, "height": 640})
    page = context.new_page()
    try:
        open_saved(page, mesh.base_url, [long_conversation("long", "The long one", 20)])
        if width < 720:
            page.focus("#toggle-conversations")
            page.keyboard.press("Enter")
        page.locator(".conversation-open").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('#messages .message').length === 40")
        assert page.evaluate(AT_THE_END) and page.evaluate(LATEST_TURN_SHOWN)
        focused = page.evaluate("document.activeElement.getBoundingClientRect().toJSON()")
        assert focused["bottom"] > 0 and focused["top"] < 640  # keyboard focus is on screen too
    finally:
        context.close()


UNCOVERED = """() => {
  const focused = document.activeElement;
  const box = focused.getBoundingClientRect();
  const seen = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return seen !== null && (focused.contains(seen) || seen.contains(focused));
}"""
"""Whether the middle of the focused element is on screen and not under anything (the pinned composer or header)."""


@pytest.mark.parametrize("width", [320, 640, 1280])
def test_what_gets_keyboard_focus_in_the_chat_is_never_under_the_pinned_composer(
    mesh: MeshProcess, browser: Any, width: int
) -> None:
    """Tab walks down a conversation's markers, sources and feedback buttons: the browser scrolls each into view, and
    must keep it clear of the question box pinned at the window's bottom (640 pixels: 200 % zoom)."""
    context = browser.new_context(viewport={"width": width, "height": 480})
    page = context.new_page()
    try:
        turns = [
            saved_conversation(f"turn{n}", f"Question {n}", ["docs/caching.md", "docs/operations.md"]) for n in range(4)
        ]
        conversation = {
            **turns[0],
            "messages": [m | {"turn": f"t{n}"} for n, t in enumerate(turns) for m in t["messages"]],
        }
        open_saved(page, mesh.base_url, [conversation])
        if width < 720:
            page.click("#toggle-conversations")
        page.click(".conversation-open")
        page.evaluate("window.scrollTo(0, 0)")
        page.focus("#new-chat")
        covered = []
        while True:
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "query":
                break
            if not page.evaluate(UNCOVERED):
                covered.append(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
        assert covered == []
    finally:
        context.close()
