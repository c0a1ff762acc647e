"""How bad settings are reported: one line per problem, naming the variable, its value (never a secret's)
and the rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from likeopt.runtime.config.fields import PREFIX


class SettingsError(ValueError):
    """Settings that break a rule; its message has one line per problem, naming the variable and the rule."""


RULES = {
    "less_than_equal": "must be ≤ {le}",
    "greater_than_equal": "must be ≥ {ge}",
    "less_than": "must be < {lt}",
    "greater_than": "must be > {gt}",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be 1 or 0 (or true/false, yes/no, on/off)",
    "string_too_short": "must not be empty",
}


def describe(error: Any, values: Mapping[str, str]) -> str:
    """One pydantic error as ``LIKEOPT_NAME=value: rule``; a secret's value is not shown."""
    from likeopt.runtime.config.settings import Config, env_name  # deferred: Config's module imports this one

    kind, ctx, loc = error["type"], error.get("ctx") or {}, error["loc"]
    if kind == "literal_error":
        rule = f"must be {ctx['expected'].replace(chr(39), '')}"
    elif kind == "value_error":
        rule = str(ctx.get("error", error["msg"]))
    else:
        bounds = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
        rule = RULES.get(kind, error["msg"]).format(**bounds)
    if not loc:
        return rule
    name = str(loc[0]) if str(loc[0]).startswith(PREFIX) else env_name(str(loc[0]))
    if rule.startswith(name):
        return rule
    shown = values.get(name, error.get("input"))
    if not isinstance(shown, str) or not shown or shown != shown.strip():
        shown = repr(shown)
    field = name[len(PREFIX) :].lower()
    if field in Config.model_fields and Config.model_fields[field].annotation is SecretStr:
        shown = "(hidden)"
    return f"{name}={shown}: {rule}"
