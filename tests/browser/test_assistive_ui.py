"""The web UI for people on a keyboard, a screen reader or a phone: one name per control, focus rings never cut off,
and a delete asked for either pending until the user decides or confirmed by what the user typed."""

from __future__ import annotations

from typing import Any

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
