"""The web UI stays under DESIGN.md's 100 KB, counted as a browser receives it: compressed, as Envoy sends it.

The page has no build step, so its files are sent as written; Envoy compresses them (brotli, or gzip for a browser
without it). gzip is counted here, the larger of the two. The API reference page (docs.html and docs.js) is a page
of its own, not loaded by the UI.
"""

from __future__ import annotations

import gzip

from gateway.app import STATIC_DIR

UI_BUDGET_BYTES = 100_000
API_REFERENCE_PAGE = {"docs.html", "docs.js"}


def ui_files() -> list[str]:
    return sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file() and p.name not in API_REFERENCE_PAGE)


def test_the_page_and_everything_it_loads_are_files_of_the_static_folder() -> None:
    page = (STATIC_DIR / "index.html").read_text()
    loaded = {name for name in ui_files() if name.endswith((".js", ".css"))}
    texts = {name: (STATIC_DIR / name).read_text() for name in loaded}
    referenced = {name for name in loaded if name in page or any(name in texts[m] for m in loaded - {name})}
    assert referenced == loaded, f"files of the static folder the page never loads: {sorted(loaded - referenced)}"


def test_the_ui_sent_compressed_is_under_its_budget() -> None:
    sent = {name: len(gzip.compress((STATIC_DIR / name).read_bytes(), compresslevel=6)) for name in ui_files()}
    assert sum(sent.values()) < UI_BUDGET_BYTES, f"the UI sends {sum(sent.values())} bytes compressed: {sent}"
