"""The API key as a bearer token, read alike by the gateway, generation_svc and Envoy."""

from __future__ import annotations

import re

import pytest
import yaml

from gateway.keys import key_refusal
from likeopt.ops.envoy.build import write_envoy_config
from likeopt.runtime.api_key import KEY_REFUSED, bearer_token, holds_key, key_pattern
from likeopt.runtime.config import Config


@pytest.mark.parametrize("header", ["Bearer k-1", "bearer k-1", "BEARER  k-1 "])
def test_the_key_is_read_whatever_the_scheme_s_case_and_spacing(header: str) -> None:
    assert bearer_token(header) == "k-1" and holds_key(header, "k-1")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer k-2", "Basic k-1", "k-1", "Bearer k-1x"])
def test_anything_but_the_key_as_a_bearer_token_is_refused(header: str) -> None:
    assert not holds_key(header, "k-1")


def test_no_key_configured_matches_nothing() -> None:
    assert not holds_key("Bearer ", "") and not holds_key("Bearer x", "")


@pytest.mark.parametrize("header", ["bearer\tk-1", "Bearer \t k-1\t", "bEaReR   k-1"])
def test_tabs_count_as_blanks_around_the_key(header: str) -> None:
    assert bearer_token(header) == "k-1" and holds_key(header, "k-1")


KEYS = ["k-1", "a.b*c(1)", "[a-z]+|x", "^$\\d{2}?", "naïve-€-key"]
"""Keys with regex metacharacters (and a non-ASCII one): each must match only itself."""


def _headers(key: str) -> list[str]:
    """Headers that hold key and headers that do not, among them what key would match as an unescaped regex."""
    near = ["aXbbc1", "a.b*c(1)x", "x", "ab", "^$\\d{2}?x", "naïve-€-keY"]
    spellings = [
        f"{scheme}{blanks}{key}{tail}"
        for scheme in ("Bearer", "bearer", "BEARER")
        for blanks in (" ", "\t ", "   ")
        for tail in ("", " ", "\t")
    ]
    return [
        *spellings,
        *(f"Bearer {other}" for other in near),
        f"Bearer{key}",
        f"Basic {key}",
        key,
        f"Bearer {key}{key}",
    ]


@pytest.mark.parametrize("key", KEYS)
def test_envoy_s_pattern_takes_exactly_the_headers_the_gateway_takes(key: str) -> None:
    """Envoy matches key_pattern whole (RE2; the real one in tests/unit/test_envoy_config.py); Python's fullmatch
    reads it alike. A key's metacharacters are its own characters, never a pattern."""
    for header in _headers(key):
        assert bool(re.fullmatch(key_pattern(key), header)) == holds_key(header, key), header
    assert holds_key(f"bearer {key}", key) and not re.fullmatch(key_pattern(key), "Bearer aXbbc1")


def test_the_gateway_and_envoy_word_a_missing_or_wrong_key_in_the_one_reason(tmp_path) -> None:
    """One refusal, one reason: the gateway's for REST and Envoy's for gRPC are the same declared words."""
    config = Config.from_env({"LIKEOPT_API_KEY": "k-1", "LIKEOPT_READS_NEED_KEY": "1"})
    assert key_refusal(config, "Bearer k-2", write=True) == KEY_REFUSED
    doc = yaml.safe_load(write_envoy_config(config, tmp_path).read_text())
    manager = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    worded = [
        header for mapper in manager["local_reply_config"]["mappers"] for header in mapper.get("headers_to_add", [])
    ]
    assert {"header": {"key": "grpc-message", "value": KEY_REFUSED}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} in (
        worded
    )
