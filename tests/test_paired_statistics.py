"""Paired comparisons with the ReLU reference (keras_smelu.tuning._paired)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from keras_smelu.tuning._paired import (
    MIN_PAIRS,
    Comparison,
    Interval,
    TrialPairs,
    compare,
    paired_accuracy_cost,
    paired_pd_ratio,
)

SIMULATIONS = 200


def simulate_pd(rng, n, true_ratio, pair_sd=0.6, noise_sd=0.2):
    """Correlated per-pair PDs: a shared lognormal pair effect (common random numbers) times
    independent lognormal noise; the trial's median PD is `true_ratio` times the reference's."""
    pair_effect = rng.normal(0.0, pair_sd, n)
    reference = 0.1 * np.exp(pair_effect + rng.normal(0.0, noise_sd, n))
    trial = 0.1 * true_ratio * np.exp(pair_effect + rng.normal(0.0, noise_sd, n))
    return trial, reference


def simulate_accuracy(rng, n, true_cost, direction, pair_sd=0.02, noise_sd=0.003):
    """Replica metrics sharing a per-pair effect; the trial is `true_cost` worse on average."""
    sign = 1.0 if direction == "minimize" else -1.0
    base = 0.5 + rng.normal(0.0, pair_sd, n)
    ref_a, ref_b = (base + rng.normal(0.0, noise_sd, n) for _ in range(2))
    trial_a, trial_b = (base + sign * true_cost + rng.normal(0.0, noise_sd, n) for _ in range(2))
    return trial_a, trial_b, ref_a, ref_b


def covers(interval, truth):
    return interval.low <= truth <= interval.high


@pytest.mark.parametrize("n", [5, 10])
def test_pd_ratio_interval_covers_the_true_ratio_at_its_level(n):
    rng = np.random.default_rng(20240611 + n)
    true_ratio = 0.7
    hits = 0
    for _ in range(SIMULATIONS):
        trial, reference = simulate_pd(rng, n, true_ratio)
        hits += covers(paired_pd_ratio(trial, reference, level=0.9), true_ratio)
    rate = hits / SIMULATIONS
    # At least the asked-for coverage (less sampling slack), and not trivially wide.
    assert 0.85 <= rate <= 0.97, rate


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_accuracy_cost_interval_covers_the_true_cost_at_its_level(direction):
    rng = np.random.default_rng(7 if direction == "minimize" else 8)
    true_cost = 0.004
    hits = 0
    for _ in range(SIMULATIONS):
        values = simulate_accuracy(rng, 6, true_cost, direction)
        hits += covers(paired_accuracy_cost(*values, direction=direction, level=0.9), true_cost)
    rate = hits / SIMULATIONS
    assert 0.85 <= rate <= 0.97, rate


def test_pairing_makes_intervals_narrower_than_the_spread_of_the_values():
    rng = np.random.default_rng(3)
    trial, reference = simulate_pd(rng, 10, 0.7, pair_sd=0.8, noise_sd=0.05)
    paired = paired_pd_ratio(trial, reference)
    # Common random numbers: the shared pair effect cancels, so the interval excludes 1 even
    # though the two sets of PD values overlap.
    assert paired.high < 1.0
    assert trial.max() > reference.min()


def test_pd_ratio_matches_a_t_interval_on_log_ratios():
    rng = np.random.default_rng(11)
    trial, reference = simulate_pd(rng, 7, 0.8)
    logs = np.log(trial / reference)
    expected = stats.ttest_1samp(logs, 0.0).confidence_interval(0.8)
    interval = paired_pd_ratio(trial, reference, level=0.8)
    assert interval.estimate == pytest.approx(stats.gmean(trial / reference))
    assert interval.low == pytest.approx(math.exp(expected.low))
    assert interval.high == pytest.approx(math.exp(expected.high))
    assert interval.n == 7 and interval.level == 0.8 and "log" in interval.method


def test_accuracy_cost_matches_a_t_interval_on_differences_and_orients_by_direction():
    rng = np.random.default_rng(12)
    ta, tb, ra, rb = simulate_accuracy(rng, 6, 0.01, "minimize")
    diffs = (ta + tb) / 2 - (ra + rb) / 2
    expected = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.9)
    loss = paired_accuracy_cost(ta, tb, ra, rb, "minimize")
    assert loss.estimate == pytest.approx(diffs.mean())
    assert (loss.low, loss.high) == pytest.approx((expected.low, expected.high))
    # The same numbers read as AUC (higher is better): the cost changes sign.
    auc = paired_accuracy_cost(ta, tb, ra, rb, "maximize")
    assert auc.estimate == pytest.approx(-diffs.mean())
    assert (auc.low, auc.high) == pytest.approx((-expected.high, -expected.low))


def test_only_pairs_present_in_both_are_compared():
    trial = {0: 0.05, 1: 0.06, 2: 0.04, 7: 0.5}
    reference = {0: 0.1, 1: 0.11, 2: 0.09, 3: 0.2}
    interval = paired_pd_ratio(trial, reference)
    subset = paired_pd_ratio([0.05, 0.06, 0.04], [0.1, 0.11, 0.09])
    assert interval.pairs == (0, 1, 2) and interval.n == 3
    assert (interval.estimate, interval.low, interval.high) == pytest.approx(
        (subset.estimate, subset.low, subset.high)
    )
    assert any("3, 7" in note for note in interval.notes)


def test_pairs_are_matched_by_id_not_by_position():
    by_id = paired_pd_ratio({2: 0.05, 0: 0.06, 1: 0.04}, {0: 0.12, 1: 0.08, 2: 0.1})
    aligned = paired_pd_ratio([0.06, 0.04, 0.05], [0.12, 0.08, 0.1])
    assert by_id.estimate == pytest.approx(aligned.estimate)
    assert by_id.high == pytest.approx(aligned.high)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_pairs_give_no_interval(n):
    interval = paired_pd_ratio([0.05] * n, [0.1] * n)
    assert not interval.has_interval and interval.low is None and interval.high is None
    assert interval.n == n
    if n:
        assert interval.estimate == pytest.approx(0.5)
        assert any(f"at least {MIN_PAIRS}" in note for note in interval.notes)
        assert "no interval" in interval.format()
    else:
        assert interval.estimate is None
    cost = paired_accuracy_cost([0.5] * n, [0.5] * n, [0.4] * n, [0.4] * n, "minimize")
    assert not cost.has_interval


def test_zero_pd_is_floored_relative_to_the_scale_and_reported():
    # Pair 0: trial replicas identical (PD 0); pair 1: both sides identical (0 / 0).
    trial = [0.0, 0.0, 0.08, 0.06]
    reference = [0.1, 0.0, 0.1, 0.1]
    interval = paired_pd_ratio(trial, reference, pd_floor=0.01)
    floor = 0.01 * np.median([0.08, 0.06, 0.1, 0.1, 0.1])
    logs = [math.log(floor / 0.1), 0.0, math.log(0.8), math.log(0.6)]
    assert interval.estimate == pytest.approx(math.exp(np.mean(logs)))
    assert all(math.isfinite(v) for v in (interval.estimate, interval.low, interval.high))
    assert any("floor" in note and "0, 1" in note for note in interval.notes)


def test_pd_of_zero_everywhere_is_a_ratio_of_one_with_a_note():
    interval = paired_pd_ratio([0.0] * 4, [0.0] * 4)
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)
    assert any("0 in every" in note for note in interval.notes)


def test_identical_trial_and_reference_give_ratio_one_and_cost_zero():
    pairs = TrialPairs.from_arrays([0.1, 0.2, 0.15], [0.5, 0.4, 0.45], [0.52, 0.41, 0.44])
    comparison = compare(pairs, pairs, "minimize")
    assert comparison.pd_ratio.low == comparison.pd_ratio.high == pytest.approx(1.0)
    assert comparison.accuracy_cost.low == comparison.accuracy_cost.high == pytest.approx(0.0)
    assert comparison.reference_accuracy == pytest.approx(np.mean([0.51, 0.405, 0.445]))


def test_compare_uses_the_common_pairs_of_trial_and_reference():
    reference = TrialPairs.from_arrays([0.1, 0.1, 0.1, 0.1], [0.5] * 4, [0.5] * 4)
    trial = TrialPairs.from_arrays(
        [0.05, 0.06, 0.04], [0.51, 0.52, 0.5], [0.51, 0.5, 0.52], pair_ids=[3, 1, 9]
    )
    comparison = compare(trial, reference, "minimize")
    assert comparison.pd_ratio.pairs == comparison.accuracy_cost.pairs == (1, 3)
    assert comparison.accuracy_cost.estimate == pytest.approx(np.mean([0.01, 0.01]))


def test_interval_and_comparison_round_trip_through_json():
    rng = np.random.default_rng(5)
    trial, reference = simulate_pd(rng, 4, 0.5)
    trial[0] = 0.0
    interval = paired_pd_ratio(trial, reference)
    assert Interval.from_dict(json.loads(json.dumps(interval.to_dict()))) == interval
    pairs = TrialPairs.from_arrays(trial, [0.5] * 4, [0.6] * 4)
    ref = TrialPairs.from_arrays(reference, [0.5] * 4, [0.5] * 4)
    comparison = compare(pairs, ref, "maximize")
    assert Comparison.from_dict(json.loads(json.dumps(comparison.to_dict()))) == comparison


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: paired_pd_ratio([0.1, -0.1, 0.1], [0.1] * 3), "trial_pd must hold non-negative"),
        (lambda: paired_pd_ratio([0.1] * 3, [0.1, math.nan, 0.1]), "reference_pd must hold"),
        (lambda: paired_pd_ratio([0.1] * 3, [0.1] * 3, level=1.0), "level must be"),
        (lambda: paired_pd_ratio([0.1] * 3, [0.1] * 3, level=True), "level must be"),
        (lambda: paired_pd_ratio([0.1] * 3, [0.1] * 3, pd_floor=0.0), "pd_floor must be"),
        (lambda: paired_pd_ratio({"a": 0.1}, [0.1]), "integer pair ids; received key: 'a'"),
        (lambda: paired_pd_ratio([[0.1]], [0.1]), "shape"),
        (lambda: paired_accuracy_cost([1], [1], [1], [1], "lower"), "direction must be"),
        (lambda: paired_accuracy_cost([1], [math.inf], [1], [1], "minimize"), "trial_acc_b"),
        (lambda: TrialPairs({0: 0.1}, {1: (0.5, 0.5)}), "same pair ids"),
        (lambda: TrialPairs({0: 0.1}, {0: 0.5}), "two replicas"),
        (lambda: TrialPairs.from_arrays([0.1, 0.1], [0.5], [0.5]), "one value per pair"),
        (lambda: TrialPairs.from_arrays([0.1], [0.5], [0.5], pair_ids=[0, 0]), "len"),
        (lambda: TrialPairs.from_arrays([0.1] * 2, [0.5] * 2, [0.5] * 2, [4, 4]), "distinct"),
        (lambda: compare({0: 0.1}, TrialPairs({0: 0.1}, {0: (1, 1)}), "minimize"), "TrialPairs"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
