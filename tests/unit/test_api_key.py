"""The API key as a bearer token, read alike by the gateway and generation_svc."""

from __future__ import annotations

import pytest

from likeopt.runtime.api_key import bearer_token, holds_key


@pytest.mark.parametrize("header", ["Bearer k-1", "bearer k-1", "BEARER  k-1 "])
def test_the_key_is_read_whatever_the_scheme_s_case_and_spacing(header: str) -> None:
    assert bearer_token(header) == "k-1" and holds_key(header, "k-1")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer k-2", "Basic k-1", "k-1", "Bearer k-1x"])
def test_anything_but_the_key_as_a_bearer_token_is_refused(header: str) -> None:
    assert not holds_key(header, "k-1")


def test_no_key_configured_matches_nothing() -> None:
    assert not holds_key("Bearer ", "") and not holds_key("Bearer x", "")
