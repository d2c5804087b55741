"""The decision rule and the pruning rule (keras_smelu.tuning._decision)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smelu.tuning._decision import (
    Budget,
    Decision,
    PruneVerdict,
    decide,
    parse_budget,
    should_prune,
)
from keras_smelu.tuning._paired import TrialPairs, compare

REF_PD = np.array([0.10, 0.14, 0.08, 0.12, 0.11, 0.09])
REF_ACC = np.array([0.50, 0.52, 0.49, 0.51, 0.50, 0.48])


def reference(acc=REF_ACC):
    return TrialPairs.from_arrays(REF_PD, acc, acc + 0.002)


def candidate(ratios, costs, direction="minimize", acc=REF_ACC):
    """A trial whose per-pair PD ratios to `reference()` and accuracy costs are given."""
    ratios, costs = np.asarray(ratios, dtype=float), np.asarray(costs, dtype=float)
    n = len(ratios)
    sign = 1.0 if direction == "minimize" else -1.0
    shifted = acc[:n] + sign * costs
    return TrialPairs.from_arrays(REF_PD[:n] * ratios, shifted, shifted + 0.002)


SIGNIFICANT = [0.55, 0.6, 0.5, 0.58, 0.62, 0.52]  # geometric mean ~0.56, tight
NOT_SIGNIFICANT = [0.7, 1.3, 0.9, 1.2, 0.8, 1.1]
EQUAL_COST = [0.0005, -0.0004, 0.0002, -0.0003, 0.0001, -0.0001]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Budget(0.0, False)),
        (0.002, Budget(0.002, False)),
        (0, Budget(0.0, False)),
        ("0.002", Budget(0.002, False)),
        ("0.5%", Budget(0.005, True)),
        (" 2 % ", Budget(0.02, True)),
        (Budget(0.1, True), Budget(0.1, True)),
    ],
)
def test_parse_budget_forms(value, expected):
    budget = parse_budget(value)
    assert budget.relative == expected.relative
    assert budget.value == pytest.approx(expected.value)


@pytest.mark.parametrize("value", ["abc", "%", "0.5%%", "", True, [0.1], "five"])
def test_parse_budget_rejects_other_forms(value):
    with pytest.raises(ValueError, match=r"budget must be a number or a percentage like '0.5%'"):
        parse_budget(value)


@pytest.mark.parametrize("value", [-0.001, "-1%", math.nan, "inf"])
def test_parse_budget_rejects_negative_and_non_finite(value):
    with pytest.raises(ValueError, match="non-negative.*received"):
        parse_budget(value)


def test_relative_budget_is_a_share_of_the_reference_value():
    assert Budget(0.01, True).absolute(-0.4) == pytest.approx(0.004)
    assert Budget(0.01, False).absolute(123.0) == 0.01


def test_significant_reduction_within_budget_is_recommended():
    decision = decide(
        {"smelu:1": candidate(SIGNIFICANT, EQUAL_COST)}, reference(), 0.002, direction="minimize"
    )
    assert decision.recommended == "smelu:1"
    assert decision.summary.startswith("recommend smelu:1")
    assessment = decision.candidates[0]
    assert assessment.qualifies and not assessment.unresolved
    assert assessment.comparison.pd_ratio.high < 1.0
    assert assessment.comparison.accuracy_cost.high <= 0.002
    assert decision.unresolved == ()


def test_the_lowest_pd_among_qualifying_candidates_wins():
    lower = [r * 0.8 for r in SIGNIFICANT]
    cheap_but_over = [r * 0.5 for r in SIGNIFICANT]
    decision = decide(
        {
            "a": candidate(SIGNIFICANT, EQUAL_COST),
            "b": candidate(lower, EQUAL_COST),
            "c": candidate(cheap_but_over, [0.01 + c for c in EQUAL_COST]),
        },
        reference(),
        0.002,
        direction="minimize",
    )
    assert decision.recommended == "b"
    assert [a.name for a in decision.candidates][:2] == ["b", "a"]
    assert decision.reasons[0].startswith("b: ")
    assert any(r.startswith("c: over budget") for r in decision.reasons)


def test_not_significant_keeps_relu_and_marks_the_candidate_unresolved():
    decision = decide(
        {"smelu:0.1": candidate(NOT_SIGNIFICANT, EQUAL_COST)},
        reference(),
        0.002,
        direction="minimize",
    )
    assert decision.recommended is None
    assert "no width reduces PD significantly within the budget" in decision.summary
    assert "the closest candidates are smelu:0.1" in decision.summary
    assert "keep ReLU" in decision.summary
    assert "not significant" in decision.reasons[0]
    assert decision.unresolved == ("smelu:0.1",)


def test_clearly_over_budget_fails_and_is_not_unresolved():
    decision = decide(
        {"smelu:8": candidate(SIGNIFICANT, [0.02 + c for c in EQUAL_COST])},
        reference(),
        0.002,
        direction="minimize",
    )
    assert decision.recommended is None
    assert "over budget" in decision.reasons[0]
    assert decision.unresolved == ()


def test_cost_interval_straddling_the_budget_is_unresolved():
    straddling = [0.002 + c * 4 for c in EQUAL_COST]
    decision = decide(
        {"smelu:2": candidate(SIGNIFICANT, straddling)}, reference(), 0.002, direction="minimize"
    )
    cost = decision.candidates[0].comparison.accuracy_cost
    assert cost.low < 0.002 < cost.high
    assert decision.recommended is None
    assert decision.unresolved == ("smelu:2",)
    assert "may exceed the budget" in decision.reasons[0]


def test_default_budget_is_no_worse_than_relu():
    worse = [0.001 + c for c in EQUAL_COST]
    better = [-0.003 + c for c in EQUAL_COST]
    decision = decide(
        {"worse": candidate(SIGNIFICANT, worse), "better": candidate(SIGNIFICANT, better)},
        reference(),
        direction="minimize",
    )
    assert decision.recommended == "better"
    assert decision.budget == Budget(0.0, False)


def test_relative_budget_scales_with_the_reference_value():
    # Reference log loss ~0.5: 1% allows ~0.005, 0.2% only ~0.001, against a cost of ~0.003.
    costs = [0.003 + c / 5 for c in EQUAL_COST]
    pairs = {"smelu:4": candidate(SIGNIFICANT, costs)}
    generous = decide(pairs, reference(), "1%", direction="minimize")
    strict = decide(pairs, reference(), "0.2%", direction="minimize")
    assert generous.recommended == "smelu:4"
    assert strict.recommended is None and "over budget" in strict.reasons[0]
    ref_value = generous.candidates[0].comparison.reference_accuracy
    assert generous.candidates[0].budget == pytest.approx(0.01 * ref_value)


def test_maximize_direction_orients_the_cost():
    auc = REF_ACC + 0.25  # AUC-like values around 0.75
    lower_auc = candidate(SIGNIFICANT, [0.01 + c for c in EQUAL_COST], "maximize", auc)
    higher_auc = candidate(SIGNIFICANT, [-0.01 + c for c in EQUAL_COST], "maximize", auc)
    ref = reference(acc=auc)
    # The cost is positive when AUC drops, so a 0.002 budget rejects the first.
    assert decide({"x": lower_auc}, ref, 0.002, direction="maximize").recommended is None
    assert decide({"x": higher_auc}, ref, 0.002, direction="maximize").recommended == "x"
    # Read as a loss, the same numbers flip: the AUC drop looks like an improvement.
    assert decide({"x": lower_auc}, ref, 0.002, direction="minimize").recommended == "x"
    cost = compare(higher_auc, ref, "maximize").accuracy_cost
    assert cost.estimate == pytest.approx(-0.01, abs=1e-3)


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_pairs_give_no_interval_and_no_recommendation(n):
    decision = decide(
        {"smelu:1": candidate(SIGNIFICANT[:n], EQUAL_COST[:n])},
        reference(),
        0.01,
        direction="minimize",
    )
    assert decision.recommended is None
    assert f"only {n} pair(s) in common with ReLU; no interval" in decision.reasons[0]
    assert not decision.candidates[0].comparison.pd_ratio.has_interval
    assert decision.unresolved == ("smelu:1",)


def test_no_candidates_keeps_relu():
    decision = decide({}, reference(), direction="minimize")
    assert decision.recommended is None and decision.candidates == ()
    assert "keep ReLU" in decision.summary


def test_closest_candidates_are_named_with_their_reasons():
    decision = decide(
        {
            "far": candidate([1.5] * 3 + [1.6] * 3, [0.05 + c for c in EQUAL_COST]),
            "near": candidate(NOT_SIGNIFICANT, EQUAL_COST),
        },
        reference(),
        direction="minimize",
    )
    assert decision.summary.index("near (") < decision.summary.index("far (")
    assert "no PD reduction" in decision.reasons[1] and "over budget" in decision.reasons[1]


def test_decision_round_trips_through_json():
    decision = decide(
        {
            "a": candidate(SIGNIFICANT, EQUAL_COST),
            "b": candidate(NOT_SIGNIFICANT, EQUAL_COST),
            "c": candidate(SIGNIFICANT[:2], EQUAL_COST[:2]),
        },
        reference(),
        "0.5%",
        0.8,
        direction="maximize",
    )
    restored = Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert restored == decision
    empty = decide({}, reference(), direction="minimize")
    assert Decision.from_dict(json.loads(json.dumps(empty.to_dict()))) == empty


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"direction": "up"}, "direction must be"),
        ({"direction": "minimize", "level": 0}, "level must be"),
        ({"direction": "minimize", "budget": "lots"}, "budget must be"),
    ],
)
def test_decide_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        decide({"a": candidate(SIGNIFICANT, EQUAL_COST)}, reference(), **kwargs)


def test_decide_rejects_non_string_names():
    with pytest.raises(ValueError, match="keyed by names"):
        decide({1.5: candidate(SIGNIFICANT, EQUAL_COST)}, reference(), direction="minimize")


# --- pruning -------------------------------------------------------------------------------


def test_a_trial_dominated_beyond_uncertainty_is_pruned():
    good = candidate(SIGNIFICANT, EQUAL_COST)
    bad = candidate([1.4, 1.5, 1.45, 1.6, 1.35, 1.5], [0.02 + c for c in EQUAL_COST])
    verdict = should_prune(bad, {"good": good}, reference(), direction="minimize")
    assert verdict.prune and verdict.dominated_by == "good"
    assert "dominated beyond uncertainty by good" in verdict.reason
    assert PruneVerdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict
    # The better one is never pruned by the worse one.
    assert not should_prune(good, {"bad": bad}, reference(), direction="minimize").prune


def test_better_in_one_objective_only_is_not_pruned():
    good = candidate(SIGNIFICANT, EQUAL_COST)
    lower_pd_higher_cost = candidate([r * 0.5 for r in SIGNIFICANT], [0.02] * 6)
    verdict = should_prune(lower_pd_higher_cost, {"good": good}, reference(), direction="minimize")
    assert not verdict.prune and verdict.dominated_by is None
    assert "not dominated" in verdict.reason


def test_overlapping_intervals_do_not_prune():
    completed = candidate(NOT_SIGNIFICANT, [0.001 * (-1) ** k for k in range(6)])
    running = candidate(
        [r * 1.1 for r in NOT_SIGNIFICANT], [0.0005 + 0.0015 * (-1) ** k for k in range(6)]
    )
    run = compare(running, reference(), "minimize")
    done = compare(completed, reference(), "minimize")
    # The completed trial is better on average in both, but not beyond the intervals.
    assert done.pd_ratio.estimate < run.pd_ratio.estimate
    assert done.accuracy_cost.estimate < run.accuracy_cost.estimate
    assert not should_prune(running, {"c": completed}, reference(), direction="minimize").prune


def test_too_few_pairs_never_prune():
    good = candidate(SIGNIFICANT, EQUAL_COST)
    bad = candidate([1.5] * 6, [0.05 + c for c in EQUAL_COST])
    bad_3 = TrialPairs({k: bad.pd[k] for k in range(3)}, {k: bad.accuracy[k] for k in range(3)})
    assert should_prune(bad_3, {"good": good}, reference(), direction="minimize").prune
    verdict = should_prune(bad_3, {"good": good}, reference(), direction="minimize", min_pairs=4)
    assert not verdict.prune and "pruning needs 4" in verdict.reason
    bad_2 = TrialPairs({0: bad.pd[0], 1: bad.pd[1]}, {0: bad.accuracy[0], 1: bad.accuracy[1]})
    assert not should_prune(bad_2, {"good": good}, reference(), direction="minimize").prune


def test_the_reference_counts_when_passed_as_a_completed_trial():
    worse_than_relu = candidate([1.4, 1.5, 1.45, 1.6, 1.35, 1.5], [0.02 + c for c in EQUAL_COST])
    ref = reference()
    assert not should_prune(worse_than_relu, {}, ref, direction="minimize").prune
    verdict = should_prune(worse_than_relu, {"relu": ref}, ref, direction="minimize")
    assert verdict.prune and verdict.dominated_by == "relu"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_pairs": 2}, "min_pairs must be an integer >= 3"),
        ({"min_pairs": 3.0}, "min_pairs must be"),
        ({"direction": "best"}, "direction must be"),
    ],
)
def test_should_prune_rejects_bad_arguments(kwargs, match):
    kwargs = {"direction": "minimize", **kwargs}
    with pytest.raises(ValueError, match=match):
        should_prune(reference(), {}, reference(), **kwargs)


def _study(rng, truths, shifts, n_pairs, noise):
    """Per-trial, per-epoch TrialPairs with known true (cost, log PD ratio) against ReLU.

    Every trial's truth moves by the same per-epoch shift, so dominance between true points is
    the same at every epoch. Per-pair noise shares a pair effect (common random numbers).
    """
    epochs = len(shifts)
    pair_effect = rng.normal(0.0, 0.3, (epochs, n_pairs))
    ref_pd = 0.1 * np.exp(pair_effect)
    ref_acc = 0.5 + 0.02 * pair_effect
    ref = [TrialPairs.from_arrays(ref_pd[e], ref_acc[e], ref_acc[e]) for e in range(epochs)]
    trials = []
    for cost, log_ratio in truths:
        per_epoch = []
        for e, (cost_shift, ratio_shift) in enumerate(shifts):
            pd = ref_pd[e] * np.exp(log_ratio + ratio_shift + rng.normal(0, noise, n_pairs))
            acc = ref_acc[e] + cost + cost_shift + rng.normal(0, noise / 10, (2, n_pairs))
            per_epoch.append(TrialPairs.from_arrays(pd, acc[0], acc[1]))
        trials.append(per_epoch)
    return ref, trials


def _truly_dominated(point, others):
    return any(o[0] <= point[0] and o[1] <= point[1] and o != point for o in others)


def _covers(comparison, cost, log_ratio):
    ratio, acc = comparison.pd_ratio, comparison.accuracy_cost
    return acc.low <= cost <= acc.high and ratio.low <= math.exp(log_ratio) <= ratio.high


# True points on a coarse grid, so that ties and exact dominance are common.
TRUTHS = st.lists(
    st.tuples(
        st.integers(-3, 3).map(lambda c: c * 0.004), st.integers(-3, 3).map(lambda r: r * 0.2)
    ),
    min_size=2,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    truths=TRUTHS,
    shifts=st.lists(
        st.tuples(st.floats(-0.01, 0.01), st.floats(-0.3, 0.3)), min_size=1, max_size=3
    ),
    n_pairs=st.integers(3, 8),
    noise=st.sampled_from([0.02, 0.1, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_pruning_never_stops_a_trial_on_the_true_frontier_without_an_interval_error(
    truths, shifts, n_pairs, noise, seed
):
    """Sound property: if trial r is pruned by c at epoch e, c's truth beats r's in both
    objectives unless one of the four intervals behind the verdict missed its truth. So a trial
    on the final frontier of true means is only ever pruned through an interval error."""
    rng = np.random.default_rng(seed)
    ref, trials = _study(rng, truths, shifts, n_pairs, noise)
    completed: dict[str, list[TrialPairs]] = {}
    for i, trial in enumerate(trials):
        for e, pairs in enumerate(trial):
            done = {name: epochs[e] for name, epochs in completed.items()}
            verdict = should_prune(pairs, done, ref[e], direction="minimize")
            if not verdict.prune:
                continue
            j = int(verdict.dominated_by)
            cost_shift, ratio_shift = shifts[e]
            truth_r = (truths[i][0] + cost_shift, truths[i][1] + ratio_shift)
            truth_c = (truths[j][0] + cost_shift, truths[j][1] + ratio_shift)
            dominator = compare(done[str(j)], ref[e], "minimize")
            intervals_hold = _covers(verdict.comparison, *truth_r) and _covers(dominator, *truth_c)
            if intervals_hold:
                assert truth_c[0] < truth_r[0] and truth_c[1] < truth_r[1]
                assert _truly_dominated(truths[i], truths)
            break
        else:
            completed[str(i)] = trial


def test_pruning_keeps_the_true_frontier_when_noise_is_small():
    """Seeded simulated studies: small noise against the gaps between true points."""
    truths = [(0.0, -0.6), (0.004, -1.0), (-0.004, -0.2), (0.012, 0.4), (0.008, -0.4)]
    frontier = [t for t in truths if not _truly_dominated(t, truths)]
    assert (0.012, 0.4) not in frontier and (0.008, -0.4) not in frontier
    pruned_dominated = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        ref, trials = _study(rng, truths, [(0.0, 0.0), (0.002, 0.1)], 6, 0.05)
        completed: dict[str, list[TrialPairs]] = {}
        for i, trial in enumerate(trials):
            pruned = False
            for e, pairs in enumerate(trial):
                done = {name: epochs[e] for name, epochs in completed.items()}
                pruned = should_prune(pairs, done, ref[e], direction="minimize").prune
                if pruned:
                    break
            if pruned:
                assert truths[i] not in frontier, (seed, truths[i])
                pruned_dominated += 1
            else:
                completed[str(i)] = trial
    # The rule is not vacuous: the two dominated trials are pruned in most studies.
    assert pruned_dominated >= 30
