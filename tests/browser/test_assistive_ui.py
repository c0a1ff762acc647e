"""The web UI for people on a keyboard, a screen reader or a phone: one name per control, focus rings never cut off,
and a delete asked for either pending until the user decides or confirmed by what the user typed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_ui_state import open_saved, saved_conversation
from tests.support import MeshProcess

PENDING = "00-pending-delete"
"""A document the tests delete; its id sorts before the demo corpus's, so it is on the list's first page."""


@contextmanager
def stored(mesh: MeshProcess, document: dict[str, str]) -> Iterator[None]:
    """`document` added to the mesh's index for the block, and taken away after it (if the block did not)."""
    auth = {"Authorization": f"Bearer {mesh.api_key}"}
    added = httpx.post(f"{mesh.base_url}/api/v1/documents", json={"documents": [document]}, headers=auth, timeout=60)
    assert added.status_code == 200, added.text
    try:
        yield
    finally:
        httpx.delete(f"{mesh.base_url}/api/v1/documents/{document['id']}", headers=auth, timeout=30)


def spoken(page: Any, name: str) -> list[str]:
    """The roles of the nodes Chromium's accessibility tree gives `name`, but for those inside a node of that name
    (a button's own text): what a screen reader reads out under that name, one entry each time."""
    nodes = page.context.new_cdp_session(page).send("Accessibility.getFullAXTree")["nodes"]
    by_id = {node["nodeId"]: node for node in nodes}

    def named(node: dict | None) -> bool:
        return node is not None and not node.get("ignored") and node.get("name", {}).get("value") == name

    return [node["role"]["value"] for node in nodes if named(node) and not named(by_id.get(node.get("parentId")))]


def test_choose_files_is_one_control_read_out_once(mesh: MeshProcess, page: Any) -> None:
    """A visible label for a hidden file input made 'Choose files' twice: the input, then the label's text."""
    # Playwright asks Chromium to hand it file choosers as its first listener comes: well before the press, or the
    # chooser may open unseen.
    page.on("filechooser", lambda chooser: None)
    page.goto(mesh.base_url + "/#documents")
    page.locator("#doc-list li").first.wait_for()
    assert spoken(page, "Choose files") == ["button"]
    page.get_by_role("button", name="Choose files").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()


RING_CLIPPED_BY = """() => {
  const focused = document.activeElement;
  const style = getComputedStyle(focused);
  const reach = parseFloat(style.outlineWidth) + parseFloat(style.outlineOffset);
  const box = focused.getBoundingClientRect();
  const ring = { left: box.left - reach, top: box.top - reach, right: box.right + reach, bottom: box.bottom + reach };
  const clips = [];
  for (let node = focused.parentElement; node !== document.documentElement; node = node.parentElement) {
    const { overflowX, overflowY } = getComputedStyle(node);
    if (overflowX === 'visible' && overflowY === 'visible') continue;
    const r = node.getBoundingClientRect();
    const left = r.left + node.clientLeft;
    const top = r.top + node.clientTop;
    const [right, bottom] = [left + node.clientWidth, top + node.clientHeight];
    if (ring.left < left || ring.top < top || ring.right > right || ring.bottom > bottom) clips.push(node.className);
  }
  if (ring.left < 0 || ring.right > document.documentElement.clientWidth) clips.push('the window');
  return clips;
}"""
"""The elements that cut off part of the focused element's focus ring (its outline, as wide as its offset and width)."""


@pytest.fixture
def narrow(browser: Any) -> Iterator[Any]:
    """A page 320 CSS pixels wide: a 1280-pixel screen zoomed to 400 %, the width WCAG's reflow asks for."""
    context = browser.new_context(viewport={"width": 320, "height": 480}, device_scale_factor=2, bypass_csp=True)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("control", ["#new-chat", ".conversation-delete"])
def test_a_sidebar_buttons_focus_ring_is_whole_at_320_pixels(mesh: MeshProcess, narrow: Any, control: str) -> None:
    """The conversation list scrolls, so it cut off the rings of the buttons along its edges: a pending delete's on
    the right, New chat's at the top."""
    open_saved(narrow, mesh.base_url, [saved_conversation("ring", "A saved question", [])])
    narrow.click("#toggle-conversations")
    narrow.locator(control).focus()
    if control == ".conversation-delete":
        narrow.keyboard.press("Enter")  # pending: its words are longer now
        assert narrow.locator(control).inner_text() == "Delete?"
    else:
        narrow.keyboard.press("Shift+Tab")
        narrow.keyboard.press("Tab")
    assert narrow.evaluate("document.activeElement.matches(':focus-visible')")
    assert narrow.evaluate(RING_CLIPPED_BY) == []


@pytest.fixture
def pending_document(mesh: MeshProcess) -> Iterator[str]:
    """A document to delete from the UI, taken away after the test if the test did not."""
    with stored(mesh, {"id": PENDING, "title": "Pending delete", "text": "A note the test deletes from the list."}):
        yield PENDING


MARK_LIST = "document.querySelectorAll('#doc-list li').forEach((item) => { item.dataset.before = 'yes'; })"
LIST_REDRAWN = "document.querySelector('#doc-list li') && !document.querySelector('#doc-list li[data-before]')"


def test_a_pending_document_delete_survives_the_list_being_drawn_again(
    mesh: MeshProcess, page: Any, pending_document: str
) -> None:
    """The list is drawn anew after every upload and refresh: the pending delete went back to 'Delete' and keyboard
    focus fell to the page's top, so the user's second press went nowhere."""
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    delete = page.locator(f"#doc-list li[data-doc-id='{pending_document}'] button.danger")
    delete.focus()
    page.keyboard.press("Enter")
    page.evaluate(MARK_LIST)
    page.evaluate("document.getElementById('index-refresh').click()")  # as an upload's end does, focus left alone
    page.wait_for_function(LIST_REDRAWN)
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == f"Confirm delete {pending_document}"
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('doc-list-status').textContent.startsWith('Deleted')")
    assert httpx.get(f"{mesh.base_url}/api/v1/documents/{pending_document}", timeout=30).status_code == 404


def test_a_pending_conversation_delete_survives_the_list_being_drawn_again(mesh: MeshProcess, page: Any) -> None:
    """Another tab saving a conversation draws the list anew: focus stayed on the button, but it said 'Delete' again."""
    open_saved(page, mesh.base_url, [saved_conversation(n, f"Question {n}", []) for n in ("one", "two")])
    delete = page.locator(".conversation[data-id='two'] .conversation-delete")
    delete.focus()
    page.keyboard.press("Enter")
    page.evaluate("window.dispatchEvent(new StorageEvent('storage', {key: null}))")  # another tab saved
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Confirm delete conversation: Question two"
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('chat-status').textContent === 'Conversation deleted.'")
    assert page.eval_on_selector_all(".conversation", "items => items.map((li) => li.dataset.id)") == ["one"]


def test_delete_by_id_says_that_the_typed_id_is_its_confirmation(
    mesh: MeshProcess, page: Any, pending_document: str
) -> None:
    """The lists' Delete buttons ask for a second press and this form does not: it says why, to eye and ear."""
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    at_once = re.compile("Typing the whole id confirms it.*at once")
    expect(page.get_by_role("textbox", name="Document id")).to_have_accessible_description(at_once)
    expect(page.get_by_role("button", name="Delete", exact=True)).to_have_accessible_description(at_once)
    expect(page.locator("#delete-hint")).to_be_visible()
    page.fill("#delete-id", pending_document)
    page.press("#delete-id", "Enter")  # one press
    page.wait_for_function("document.getElementById('delete-status').textContent.startsWith('Deleted')")
    assert httpx.get(f"{mesh.base_url}/api/v1/documents/{pending_document}", timeout=30).status_code == 404


def test_deleting_an_id_that_is_not_there_says_so_plainly(mesh: MeshProcess, page: Any) -> None:
    """The server's 404 for an unknown id is an answer, not a failure: the form says there is no such document,
    not "Delete failed" in the error style."""
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    page.fill("#delete-id", "never-uploaded.md")
    page.press("#delete-id", "Enter")
    page.wait_for_function("!document.getElementById('delete-status').textContent.startsWith('Deleting')")
    assert page.inner_text("#delete-status") == "No document with id “never-uploaded.md”."
    assert "error" not in (page.get_attribute("#delete-status", "class") or "")


SHOWN_AS = """(node) => {
  let under = node;
  while (getComputedStyle(under).backgroundColor.endsWith(', 0)') && under.parentElement) under = under.parentElement;
  const style = getComputedStyle(node);
  return [getComputedStyle(under).backgroundColor, style.color, style.fontWeight, style.textDecorationLine,
          style.borderBottomStyle];
}"""
"""What is left to see of an element's state in forced colours: the colours behind and of its text, its weight, its
lines (shadows are dropped)."""


def test_the_chosen_tab_and_a_pressed_thumb_stand_out_in_forced_colours(mesh: MeshProcess, page: Any) -> None:
    """High contrast (Windows' forced colours) drops backgrounds and shadows, which alone marked them."""
    page.emulate_media(forced_colors="active")
    open_saved(page, mesh.base_url, [saved_conversation("rated", "A rated question", [])])
    page.click(".conversation-open")
    page.click(".feedback-thumb.up")
    for chosen, other in [("#tab-chat", "#tab-documents"), (".feedback-thumb.up", ".feedback-thumb.down")]:
        assert page.eval_on_selector(chosen, SHOWN_AS) != page.eval_on_selector(other, SHOWN_AS), chosen


ARABIC_ID = "00-ملاحظات"
"""A document id in Arabic: the words after it (' · 1 chunk') are English."""
DRAWN_AFTER_THE_ID = """(id) => {
  const code = document.querySelector(`#doc-list li[data-doc-id="${id}"] .doc-id`);
  const after = code.nextSibling;
  const digit = document.createRange();
  digit.setStart(after, after.textContent.search(/[0-9]/));
  digit.setEnd(after, after.textContent.search(/[0-9]/) + 1);
  return digit.getBoundingClientRect().left >= code.getBoundingClientRect().right;
}"""
"""Whether the chunk count after a listed document's id is drawn after it (to its right, in an English line)."""


@pytest.fixture
def arabic_document(mesh: MeshProcess) -> Iterator[str]:
    with stored(mesh, {"id": ARABIC_ID, "title": "ملاحظات الطيور", "text": "البومة تصطاد في الليل."}):
        yield ARABIC_ID


def test_an_arabic_id_keeps_its_direction_among_english_words(
    mesh: MeshProcess, page: Any, arabic_document: str
) -> None:
    """The id's letters and the English count after it made one right-to-left run: '00-1 · <Arabic> chunk'."""
    page.goto(mesh.base_url + "/#documents")
    page.locator(f"#doc-list li[data-doc-id='{arabic_document}']").wait_for()
    assert page.evaluate(DRAWN_AFTER_THE_ID, arabic_document)


def test_a_question_rated_in_arabic_reads_right_to_left_in_the_feedback_list(mesh: MeshProcess, page: Any) -> None:
    """The dashboard's feedback list laid every question out left to right, its question mark at the wrong end."""
    question = "متى تصطاد البومة؟"
    with httpx.stream("POST", f"{mesh.base_url}/api/v1/chat", json={"query": question}, timeout=60) as reply:
        done = [line for line in reply.iter_lines() if line.startswith("data:") and '"trace_id"' in line]
    trace_id = json.loads(done[-1].removeprefix("data:"))["trace_id"]
    rated = httpx.post(f"{mesh.base_url}/api/v1/feedback", json={"trace_id": trace_id, "rating": "up"}, timeout=30)
    assert rated.status_code == 200, rated.text
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)  # the feedback list is users' words: shown with the key
    page.click("#tab-dashboard")
    asked = page.locator(".feedback-question", has_text=question).first
    assert asked.evaluate("(node) => getComputedStyle(node).direction") == "rtl"


LONG_ID = "00-" + "unbroken" * 25
"""A document id with no place to wrap (a path, a hash), 203 characters long."""
PAGE_WIDTH = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"


@pytest.fixture
def long_id_document(mesh: MeshProcess) -> Iterator[str]:
    with stored(mesh, {"id": LONG_ID, "title": "Long id", "text": "A note whose id has no place to wrap."}):
        yield LONG_ID


def test_a_status_quoting_a_long_id_wraps_at_320_pixels(mesh: MeshProcess, narrow: Any, long_id_document: str) -> None:
    """'Press again to delete “<id>”.' and 'No document with id “<id>”.' made the page 1,700 pixels wide."""
    narrow.goto(mesh.base_url + "/#documents")
    narrow.fill("#api-key", mesh.api_key)
    narrow.locator(f"#doc-list li[data-doc-id='{long_id_document}'] button.danger").focus()
    narrow.keyboard.press("Enter")
    assert narrow.inner_text("#doc-list-status").startswith("Press again")
    width = narrow.evaluate(PAGE_WIDTH)
    assert width[0] <= width[1], f"the page is {width[0]} pixels wide in a window of {width[1]}"
    narrow.fill("#delete-id", long_id_document + "-not-there")
    narrow.press("#delete-id", "Enter")
    narrow.wait_for_function("document.getElementById('delete-status').textContent.includes('No document with id')")
    width = narrow.evaluate(PAGE_WIDTH)
    assert width[0] <= width[1], f"the page is {width[0]} pixels wide in a window of {width[1]}"


ZOOMED = {"width": 640, "height": 360}
"""A window of 1280 by 720 pixels zoomed to 200 %."""
IN_SIGHT = """(node) => {
  const box = node.getBoundingClientRect();
  const seen = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return box.top >= 0 && box.bottom <= innerHeight && seen !== null && node.contains(seen);
}"""
"""Whether the element is wholly inside the window and not under anything."""
CITE_LONG = """() => import('/static/message.js').then(({ createAnswerView }) => {
  const view = createAnswerView({ role: 'assistant', text: '', citations: [] });
  document.getElementById('messages').append(view.root);
  view.apply('delta', { text: 'See [1].' });
  view.apply('citation', { n: 1, doc_id: 'docs/long.md', chunk_id: 0, title: 'A long passage',
                           text: 'A passage of many words. '.repeat(120), supported: true });
  view.finish();
})"""


def test_a_dialog_s_close_button_stays_in_sight_at_200_percent_zoom(mesh: MeshProcess, browser: Any) -> None:
    """A long document or passage pushed the Close button below the window's bottom edge: the document's, which has
    keyboard focus as it opens, where a keyboard user could not see what Enter would do."""
    context = browser.new_context(viewport=ZOOMED, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(mesh.base_url + "/#documents")
        page.locator("#doc-list li[data-doc-id='docs/caching.md'] .open-document").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('#document-chunks .passage').length > 1")
        assert page.evaluate("document.activeElement.textContent") == "Close"
        assert page.eval_on_selector("#document-dialog form button", IN_SIGHT)
        page.keyboard.press("Escape")

        page.goto(mesh.base_url + "/#chat")
        page.evaluate(CITE_LONG)
        page.locator(".message.assistant .citation-marker").focus()
        page.keyboard.press("Enter")
        page.locator("#citation-dialog").wait_for(state="visible")
        assert page.eval_on_selector("#citation-close", IN_SIGHT)
        assert page.evaluate(f"({IN_SIGHT})(document.activeElement)")  # the passage, which scrolls, or Close
    finally:
        context.close()


def test_back_to_another_view_leaves_keyboard_focus_on_its_tab(mesh: MeshProcess, page: Any) -> None:
    """Back hid the view holding keyboard focus, which fell to the page's top: Tab started again from there."""
    page.goto(mesh.base_url + "/#chat")
    page.click("#tab-documents")
    page.locator("#doc-list li button.danger").first.focus()
    page.go_back()
    page.locator("#view-documents").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "tab-chat"


def test_two_documents_of_one_title_are_told_apart_by_their_ids(mesh: MeshProcess, page: Any) -> None:
    """Their Open buttons were read out alike ("Meeting notes, button"): each is now described by its id."""
    twins = [{"id": f"00-twin-{n}", "title": "Meeting notes", "text": f"Minutes of meeting {n}."} for n in (1, 2)]
    with stored(mesh, twins[0]), stored(mesh, twins[1]):
        page.goto(mesh.base_url + "/#documents")
        page.locator("#doc-list li[data-doc-id='00-twin-2']").wait_for()
        nodes = page.context.new_cdp_session(page).send("Accessibility.getFullAXTree")["nodes"]
        described = sorted(
            node.get("description", {}).get("value")
            for node in nodes
            if node.get("role", {}).get("value") == "button" and node.get("name", {}).get("value") == "Meeting notes"
        )
        assert described == ["00-twin-1", "00-twin-2"]  # what a screen reader says after the name
