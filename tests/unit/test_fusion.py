"""Fusion: reciprocal rank fusion and min-max convex combination."""

import pytest

from retrieval_svc.fusion import convex, rrf


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert [key for key, _ in fused] == [1, 3, 2]
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)


def test_rrf_uses_k() -> None:
    assert rrf([[5, 6]], k=0) == [(5, 1.0), (6, 0.5)]


def test_rrf_ties_break_by_key_whatever_the_input_order() -> None:
    assert [k for k, _ in rrf([[2, 1], [1, 2]])] == [1, 2]
    assert [k for k, _ in rrf([[1, 2], [2, 1]])] == [1, 2]


def test_rrf_counts_a_repeated_key_once_at_its_best_rank() -> None:
    assert dict(rrf([[4, 4, 5]], k=0)) == {4: 1.0, 5: pytest.approx(1 / 3)}


def test_rrf_of_nothing() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []


def test_convex_normalises_each_side_and_counts_missing_as_zero() -> None:
    fused = convex([(1, 10.0), (2, 5.0), (3, 0.0)], [(2, 0.9), (4, 0.5)], alpha=0.5)
    assert fused == [(2, pytest.approx(0.75)), (1, 0.5), (3, 0.0), (4, 0.0)]


def test_convex_all_equal_scores_normalise_to_one() -> None:
    assert convex([(8, 3.0), (7, 3.0)], [], alpha=0.25) == [(7, 0.75), (8, 0.75)]
    assert convex([], [(9, -0.2)], alpha=0.25) == [(9, 0.25)]


def test_convex_alpha_selects_the_side() -> None:
    bm25 = [(1, 9.0), (2, 1.0)]
    dense = [(2, 0.8), (1, 0.1)]
    assert [k for k, _ in convex(bm25, dense, alpha=0.0)] == [1, 2]
    assert [k for k, _ in convex(bm25, dense, alpha=1.0)] == [2, 1]


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_convex_rejects_alpha_outside_unit_interval(alpha: float) -> None:
    with pytest.raises(ValueError):
        convex([(1, 1.0)], [(1, 1.0)], alpha=alpha)
