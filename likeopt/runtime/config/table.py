"""The README's table of every setting, made from the declarations (tests/unit/test_readme.py compares them)."""

from __future__ import annotations

from typing import Any

from likeopt.runtime.config.processes import LAUNCHER, PROCESSES
from likeopt.runtime.config.settings import Config, env_name, read_by


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
