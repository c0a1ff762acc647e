"""The README's table of every setting, made from the declarations (tests/unit/test_readme.py compares them)."""

from __future__ import annotations

from typing import Any

from likeopt.runtime.config.processes import LAUNCHER, PROCESSES
from likeopt.runtime.config.settings import Config, env_name, read_by

TABLE_MARKERS = ("<!-- settings-table:start -->", "<!-- settings-table:end -->")
"""The README's comments around its copy of the table."""
PRINT_TABLE = '.venv/bin/python -c "from likeopt.runtime.config import settings_table; print(settings_table())"'
"""The command whose output goes between TABLE_MARKERS."""


def settings_table() -> str:
    """The Markdown table of every setting, as the README shows it."""
    rows = ["| variable | default | meaning | read by |", "|---|---|---|---|"]
    for field, info in Config.model_fields.items():
        readers = read_by(field)
        who = "every process" if set(readers) == set(PROCESSES) else ", ".join(readers) or LAUNCHER
        rows.append(f"| `{env_name(field)}` | {default_text(info.default)} | {info.description} | {who} |")
    return "\n".join(rows)


def default_text(value: Any) -> str:
    """A default as the README shows it: in backquotes, flags as 1/0, nothing as (empty)."""
    if value is None or value in ("", ()):
        return "(empty)"
    text = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return f"`{text}`".replace("|", "\\|")


def readme_table_problem(readme: str) -> str:
    """What is wrong with the README's copy of the table, and how to fix it; empty when it is current. Names the
    variables whose rows differ, as a comparison of the whole tables hides them in a 9,000-character diff."""
    start, end = TABLE_MARKERS
    if start not in readme or end not in readme:
        return f"README.md lacks the markers {start} and {end} around the settings table"
    copy = readme[readme.index(start) + len(start) : readme.index(end)].strip()
    table = settings_table()
    if copy == table:
        return ""
    rows, copied = _rows_by_variable(table), _rows_by_variable(copy)
    differing = [name for name in {**rows, **copied} if rows.get(name) != copied.get(name)]
    return (
        f"README.md's settings table is not the declarations' (rows differing: {', '.join(differing) or 'header'});"
        f" paste the output of\n  {PRINT_TABLE}\nbetween {start} and {end} in README.md"
    )


def _rows_by_variable(table: str) -> dict[str, str]:
    """Each row of a settings table by its first cell, the variable."""
    return {row.split("|")[1].strip(" `"): row for row in table.splitlines()[2:] if row.count("|") > 1}
