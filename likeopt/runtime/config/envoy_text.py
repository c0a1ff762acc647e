"""Values Envoy's file holds: one line in single quotes, and regular expressions both RE2 and Python read."""

from __future__ import annotations

import re
import re._constants as sre
import re._parser as sre_parse
from typing import Any


def one_line(value: str) -> str:
    """Values Envoy's file holds in single quotes."""
    if "'" in value or "\n" in value or "\r" in value:
        raise ValueError("must be one line without single quotes")
    return value


RE2_LACKS = {
    sre.ASSERT: "lookaround",
    sre.ASSERT_NOT: "lookaround",
    sre.GROUPREF: "backreferences",
    sre.GROUPREF_EXISTS: "conditional groups",
    sre.ATOMIC_GROUP: "atomic groups",
    sre.POSSESSIVE_REPEAT: "possessive quantifiers",
}
"""Constructs Python's ``re`` takes and RE2 (Envoy's dialect) refuses, by the opcode Python parses them to."""


def regex_both_read(pattern: str) -> str:
    """``pattern`` if Python's ``re`` compiles it and it uses none of what RE2 lacks: no RE2 is installed, so
    this is the nearest check of what Envoy will take (RE2 constructs Python lacks are refused too)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"must be a valid regular expression ({exc})") from None
    lacking = {RE2_LACKS[op] for op in _opcodes(sre_parse.parse(pattern)) if op in RE2_LACKS}
    if lacking:
        raise ValueError(f"must be a regex Envoy's RE2 takes, which has no {' or '.join(sorted(lacking))}")
    return pattern


def _opcodes(node: Any) -> list[Any]:
    """Every opcode of a parsed pattern, nested groups and branches included."""
    if isinstance(node, sre_parse.SubPattern):
        return [found for op, arg in node for found in (op, *_opcodes(arg))]
    if isinstance(node, (list, tuple)):
        return [found for item in node for found in _opcodes(item)]
    return []
