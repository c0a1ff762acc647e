"""The web UI for people on a keyboard, a screen reader or a phone: one name per control, focus rings never cut off,
and a delete asked for either pending until the user decides or confirmed by what the user typed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.test_ui_state import open_saved, saved_conversation
from tests.support import MeshProcess


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
    page.goto(mesh.base_url + "/#documents")
    page.locator("#drop-zone").wait_for()
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
    context = browser.new_context(viewport={"width": 320, "height": 480}, device_scale_factor=2)
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
