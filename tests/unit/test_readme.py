"""The README's configuration table is the settings table, it shows both commands, and the numbers it gives
are the code's."""

from __future__ import annotations

from pathlib import Path

import yaml

from generation_svc.feedback import MAX_PENDING, RETRY_S
from likeopt.ops.envoy.build import write_envoy_config
from likeopt.ops.protos import ROOT
from likeopt.runtime.config import Config, settings_table
from likeopt.runtime.config.table import PRINT_TABLE, TABLE_MARKERS, readme_table_problem


def test_readme_lists_every_setting_exactly() -> None:
    problem = readme_table_problem((ROOT / "README.md").read_text())
    assert not problem, problem


def test_a_stale_table_is_reported_with_the_variables_and_the_command_that_fixes_it() -> None:
    """A newcomer who adds a setting learns which rows differ and what to paste where, not a diff of the tables."""
    start, end = TABLE_MARKERS
    rows = settings_table().splitlines()
    stale = "\n".join(row for row in rows if "`LIKEOPT_RRF_K`" not in row)
    problem = readme_table_problem(f"intro\n{start}\n{stale}\n{end}\n")
    assert "LIKEOPT_RRF_K" in problem and PRINT_TABLE in problem and start in problem
    assert "LIKEOPT_HOST" not in problem
    assert readme_table_problem(f"{start}\n{settings_table()}\n{end}") == ""


def test_readme_shows_make_up_and_make_test_near_the_top() -> None:
    head = (ROOT / "README.md").read_text()[:1200]
    assert "make up" in head and "make test" in head


def test_readme_says_where_envoys_access_log_is(tmp_path: Path) -> None:
    """It is no process's log, so it is not in the logs folder; the README must say where likeopt up puts it."""
    config = Config.from_env({})
    doc = yaml.safe_load(write_envoy_config(config, tmp_path).read_text())
    manager = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    written = Path(manager["access_log"][0]["typed_config"]["path"]).relative_to(tmp_path)
    assert f"`{config.run_dir / written}`" in (ROOT / "README.md").read_text()


def test_readme_says_how_long_answers_wait_for_the_feedback_file() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"up to {MAX_PENDING:,};" in readme and f"at most every {RETRY_S:g} s" in readme
