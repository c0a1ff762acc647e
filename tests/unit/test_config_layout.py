"""The settings package's layout: every field sits in one group of its topic, Config only combines the groups, in
the order the README's table shows, and each of its modules imports first without tripping over the others."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from likeopt.runtime.config import Config
from tests.packaging import ROOT, package_modules


def groups() -> list[type[BaseModel]]:
    """Config's groups of settings, in the order pydantic takes their fields (the last base first)."""
    return [base for base in reversed(Config.__bases__) if base is not BaseSettings]


def own_fields(cls: type) -> list[str]:
    """The fields a class declares itself, not those it inherits."""
    return list(vars(cls).get("__annotations__", {}))


def test_config_declares_no_field_of_its_own() -> None:
    assert own_fields(Config) == [], "declare a setting in the group of its topic, in likeopt/runtime/config/"


def test_each_field_sits_in_one_group_and_the_groups_keep_the_tables_order() -> None:
    declared = [field for group in groups() for field in own_fields(group)]
    assert declared == list(Config.model_fields)


def test_every_group_lives_in_the_settings_package() -> None:
    assert groups(), "Config combines groups of settings"
    assert all(group.__module__.startswith("likeopt.runtime.config.") for group in groups())


@pytest.mark.parametrize("module", list(package_modules("likeopt.runtime.config")))
def test_each_module_imports_first(module: str) -> None:
    """Config's module imports the groups and helpers, some of which use its lookups when called: whichever a
    program imports first, the import completes."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
