"""The lookup policy: ask while lookups answer, a sample while they do not, and all again once they answer."""

from __future__ import annotations

import pytest

from likeopt.caching.lookup_policy import LookupPolicy


def asked_of(policy: LookupPolicy, misses: int, answered: bool = False) -> int:
    """How many of misses were looked up, each lookup's outcome recorded as answered."""
    asked = 0
    for _ in range(misses):
        if policy.should_ask():
            asked += 1
            policy.record(answered)
    return asked


def test_a_fresh_process_asks_until_lookups_stop_answering() -> None:
    policy = LookupPolicy("search", threshold=0.1, weight=1 / 64, sample_every=8)
    assert asked_of(policy, 100) == 100  # 0.1 is reached after about 146 unanswered lookups
    assert asked_of(policy, 800) < 200


def test_while_lookups_do_not_answer_one_miss_in_sample_every_is_asked() -> None:
    policy = LookupPolicy("search", threshold=0.1, weight=1 / 64, sample_every=8)
    asked_of(policy, 1_000)
    assert asked_of(policy, 800) == 100


def test_lookups_resume_once_cache_svc_answers_again() -> None:
    policy = LookupPolicy("search", threshold=0.1, weight=1 / 64, sample_every=8)
    asked_of(policy, 1_000)
    asked_of(policy, 200, answered=True)  # another replica warms the shared cache: the samples answer
    assert policy.hit_share >= 0.1
    assert asked_of(policy, 50, answered=True) == 50


def test_lookups_that_answer_often_enough_are_never_skipped() -> None:
    policy = LookupPolicy("search", threshold=0.1, weight=1 / 64, sample_every=8)
    asked = 0
    for n in range(2_000):
        if policy.should_ask():
            asked += 1
            policy.record(n % 5 == 0)  # a fifth answer: above the threshold
    assert asked == 2_000


@pytest.mark.parametrize("threshold, weight, sample_every", [(-0.1, 0.1, 8), (0.1, 0.0, 8), (0.1, 0.1, 0)])
def test_bad_parameters_are_refused(threshold: float, weight: float, sample_every: int) -> None:
    with pytest.raises(ValueError):
        LookupPolicy("search", threshold, weight, sample_every)
