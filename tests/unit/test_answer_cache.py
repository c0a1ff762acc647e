"""The answer cache's key: what makes two answers differ."""

from __future__ import annotations

import pytest

from generation_svc import grounding
from generation_svc.answer_cache import AnswerScope, answer_key


def test_an_answer_checked_by_other_grounding_rules_is_not_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached answer carries its citations' verdicts: after the rules change (a deployment, or replicas of two
    versions sharing Redis), replaying it would show the old verdicts for up to LIKEOPT_CACHE_TTL_S."""
    scope = AnswerScope(7, "local/model", 5, 0)
    before = answer_key("Which port does Envoy listen on?", scope, [])
    monkeypatch.setattr(grounding, "RULES", f"{grounding.RULES}+next")
    assert answer_key("Which port does Envoy listen on?", scope, []) != before
