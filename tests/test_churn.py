"""Tests for keras_smelu.churn: churn breakdowns and ranking agreement against hand values."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from keras_smelu import churn as ch

BASE = [0.9, 0.2, 0.6, 0.4, 0.7, 0.1]
CAND = [0.8, 0.7, 0.3, 0.45, 0.2, 0.6]
LABELS = [1, 1, 1, 0, 0, 0]
# Decisions at 0.5: base T F T F T F, candidate T T F F F T.
# Row 1: base wrong -> right (good). Row 2: right -> wrong (bad). Row 4: wrong -> right (good).
# Row 5: right -> wrong (bad). Rows 0 and 3 agree.


def test_churn_breakdown_by_hand():
    assert ch.churn(BASE, CAND) == pytest.approx(4 / 6)
    assert ch.good_churn(BASE, CAND, LABELS) == pytest.approx(2 / 6)
    assert ch.bad_churn(BASE, CAND, LABELS) == pytest.approx(2 / 6)
    assert ch.win_loss_ratio(BASE, CAND, LABELS) == pytest.approx(1.0)
    # At 0.42 row 3 flips too (0.4 vs 0.45; label 0): one more loss.
    stats = ch.churn_stats(BASE, CAND, LABELS, threshold=0.42)
    assert (stats.churn, stats.good_churn, stats.bad_churn) == pytest.approx((5 / 6, 2 / 6, 3 / 6))
    assert stats.win_loss == pytest.approx(2 / 3)
    assert stats.threshold == 0.42


def test_win_loss_edge_cases():
    assert ch.win_loss_ratio([0.2, 0.7], [0.8, 0.7], [1, 1]) == float("inf")
    assert ch.win_loss_ratio([0.2, 0.7], [0.2, 0.7], [1, 0]) == 1.0
    assert ch.win_loss_ratio([0.8, 0.7], [0.2, 0.7], [1, 1]) == 0.0


def test_churn_is_good_plus_bad_and_matches_top1_on_random_data():
    rng = np.random.default_rng(0)
    p1, p2 = rng.random(1000), rng.random(1000)
    y = rng.integers(0, 2, 1000)
    stats = ch.churn_stats(p1, p2, y, threshold=0.3)
    assert stats.churn == pytest.approx(stats.good_churn + stats.bad_churn, abs=1e-12)
    assert stats.churn == pytest.approx(np.mean((p1 > 0.3) != (p2 > 0.3)))
    # Swapping the roles swaps wins and losses.
    swapped = ch.churn_stats(p2, p1, y, threshold=0.3)
    assert (swapped.good_churn, swapped.bad_churn) == (stats.bad_churn, stats.good_churn)


def test_accepts_column_vectors_and_tensors():
    column = np.asarray(CAND)[:, None]
    tensor = keras.ops.convert_to_tensor(np.asarray(BASE, dtype="float32"))
    labels = np.asarray(LABELS)[:, None]
    assert ch.good_churn(tensor, column, labels) == pytest.approx(2 / 6)
    assert isinstance(ch.churn(tensor, column), float)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([0.1, 0.2], [0.1]), {}, "same shape"),
        (([0.1, np.nan], [0.1, 0.2]), {}, "non-finite"),
        (([0.1, 0.2], [0.1, 0.2]), {"threshold": "high"}, "threshold"),
        (([[0.1, 0.9]], [[0.2, 0.8]]), {}, r"shape \(n,\)"),
    ],
)
def test_churn_validation(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ch.churn(*args, **kwargs)


def test_label_validation():
    with pytest.raises(ValueError, match="`labels` must be 0 or 1"):
        ch.good_churn([0.1, 0.9], [0.9, 0.1], [1, 2])
    with pytest.raises(ValueError, match=r"`labels` must have one binary label per example"):
        ch.bad_churn([0.1, 0.9], [0.9, 0.1], [1, 0, 1])


# ---- Rankings ---------------------------------------------------------------------------------


def _rbo_reference(ranking1, ranking2, p, depth):
    """Extrapolated RBO (Webber et al. 2010, eq. 32) of two lists, straight from the formula."""
    k = min(depth, len(ranking1))
    agreements = [len(set(ranking1[:d]) & set(ranking2[:d])) / d for d in range(1, k + 1)]
    weighted = sum(a * p**d for d, a in enumerate(agreements, start=1))
    return agreements[-1] * p**k + (1 - p) / p * weighted


def _ranking(scores, rows):
    """Rows of one group ordered by score, descending, ties by row order."""
    return sorted(rows, key=lambda r: (-scores[r], r))


def test_rbo_hand_value():
    # abc vs bac with p = 0.5: A = (0, 1, 1), so 0.125 + (0.25 + 0.125) = 0.5.
    assert ch.rank_biased_overlap([3.0, 2.0, 1.0], [2.0, 3.0, 1.0], p=0.5) == pytest.approx(0.5)
    # Truncated at depth 2: A = (0, 1), so 1 * 0.25 + (0 + 0.25) = 0.5.
    assert ch.rank_biased_overlap(
        [3.0, 2.0, 1.0], [2.0, 3.0, 1.0], p=0.5, depth=2
    ) == pytest.approx(0.5)
    # abcd vs acbd with p = 0.5: A = (1, 1/2, 1, 1): 1/16 + (1/2 + 1/8 + 1/8 + 1/16) = 0.875.
    assert ch.rank_biased_overlap(
        [4.0, 3.0, 2.0, 1.0], [4.0, 2.0, 3.0, 1.0], p=0.5
    ) == pytest.approx(0.875)


def test_rbo_identical_and_disjoint():
    scores = np.random.default_rng(1).random(50)
    groups = np.repeat(np.arange(5), 10)
    assert ch.rank_biased_overlap(scores, scores, groups, p=0.8) == pytest.approx(1.0)
    # Reversed order: the top-3 lists of every group share nothing.
    assert ch.rank_biased_overlap(scores, -scores, groups, depth=3) == 0.0
    assert ch.topk_overlap(scores, -scores, groups, k=3) == 0.0
    assert ch.topk_overlap(scores, scores, groups, k=3) == 1.0


def test_rbo_and_topk_against_a_per_group_reference():
    rng = np.random.default_rng(2)
    n = 400
    groups = rng.choice(["u1", "u2", "u3", "u4", "u5", "u6", "u7"], size=n)
    s1 = rng.random(n)
    s2 = s1 + rng.normal(scale=0.3, size=n)
    s1[:20] = 0.5  # ties: broken by row order in both the reference and the measure
    expected_rbo, expected_top = [], []
    for g in np.unique(groups):
        rows = list(np.flatnonzero(groups == g))
        r1, r2 = _ranking(s1, rows), _ranking(s2, rows)
        expected_rbo.append(_rbo_reference(r1, r2, p=0.9, depth=15))
        k = min(5, len(rows))
        expected_top.append(len(set(r1[:k]) & set(r2[:k])) / k)
    got = ch.rank_biased_overlap(s1, s2, groups, p=0.9, depth=15)
    assert got == pytest.approx(np.mean(expected_rbo), rel=1e-12)
    assert ch.topk_overlap(s1, s2, groups, k=5) == pytest.approx(np.mean(expected_top))
    full = [
        _rbo_reference(_ranking(s1, rows), _ranking(s2, rows), p=0.95, depth=len(rows))
        for rows in (list(np.flatnonzero(groups == g)) for g in np.unique(groups))
    ]
    assert ch.rank_biased_overlap(s1, s2, groups, p=0.95) == pytest.approx(np.mean(full))


def test_rbo_of_all_permutations_stays_in_the_unit_interval():
    base = np.arange(5, 0, -1, dtype=float)
    values = []
    for perm in itertools.permutations(range(5)):
        other = np.empty(5)
        other[list(perm)] = base
        values.append(ch.rank_biased_overlap(base, other, p=0.7))
    assert min(values) > 0.0 and max(values) == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in values)


def test_small_groups_are_left_out():
    scores1 = [0.9, 0.1, 0.5, 0.3]
    scores2 = [0.1, 0.9, 0.5, 0.3]
    groups = [1, 1, 2, 3]  # group 1 disagrees; groups 2 and 3 have one row each
    assert ch.topk_overlap(scores1, scores2, groups, k=1) == 0.0
    assert ch.topk_overlap(scores1, scores2, groups, k=1, min_group_size=1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="min_group_size=3"):
        ch.topk_overlap(scores1, scores2, groups, min_group_size=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1.0}, "p=1.0"),
        ({"p": 0}, "p=0"),
        ({"depth": 0}, "depth=0"),
        ({"groups": [1, 2]}, "`groups` must give one group id per row"),
    ],
)
def test_rbo_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ch.rank_biased_overlap([0.1, 0.2, 0.3], [0.3, 0.2, 0.1], **kwargs)


def test_topk_validation():
    with pytest.raises(ValueError, match="k=0"):
        ch.topk_overlap([0.1, 0.2], [0.2, 0.1], k=0)
