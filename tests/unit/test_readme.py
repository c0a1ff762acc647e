"""The README's configuration table is the settings table, and it shows both commands."""

from __future__ import annotations

from likeopt.ops.protos import ROOT
from likeopt.runtime.config import settings_table


def test_readme_lists_every_setting_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end].strip() == settings_table()


def test_readme_shows_make_up_and_make_test_near_the_top() -> None:
    head = (ROOT / "README.md").read_text()[:1200]
    assert "make up" in head and "make test" in head
