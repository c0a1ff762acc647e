"""A service's command line: it takes its settings from the environment only, so ``--help`` lists the variables it
reads and any argument is refused (exit 2) instead of being ignored by a server that then starts anyway."""

from __future__ import annotations

import argparse

from likeopt.runtime.config.settings import Config, env_name, read_by
from likeopt.runtime.config.table import default_text


def settings_help(process: str) -> str:
    """Each variable ``process`` reads, its default and meaning, one per line."""
    lines = [f"{process} reads these settings (environment variables):"]
    for field, info in Config.model_fields.items():
        if process in read_by(field):
            lines.append(f"  {env_name(field)} (default {default_text(info.default).strip('`')}): {info.description}")
    return "\n".join(lines)


def take_no_arguments(process: str, argv: list[str]) -> None:
    """Answer ``--help`` (exit 0) and refuse any other argument (exit 2); return when there are none."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {process}",
        description=f"Run {process}. It takes no arguments: every setting comes from a LIKEOPT_* variable.",
        epilog=settings_help(process),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
