"""Pareto frontier, hypervolume, knee and recommendation (keras_smelu.tuning._pareto)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_smelu.tuning import (
    hypervolume_2d,
    knee_point,
    pareto_front_indices,
    pareto_mask,
    recommend,
)
from tests.reference import brute_force_front

MIN2 = ("minimize", "minimize")


# Small integer grids make ties and exact duplicates common.
def values_and_directions(k: int, allow_nan: bool = False):
    element = st.integers(-3, 3).map(float)
    if allow_nan:
        element = st.one_of(element, element, element, st.just(float("nan")))
    return st.tuples(
        st.lists(st.lists(element, min_size=k, max_size=k), min_size=0, max_size=25),
        st.lists(st.sampled_from(["minimize", "maximize"]), min_size=k, max_size=k),
    )


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_front_is_the_non_dominated_set(k):
    @settings(max_examples=150, deadline=None)
    @given(values_and_directions(k))
    def check(case):
        rows, directions = case
        values = np.array(rows, dtype=float).reshape(len(rows), k)
        expected = brute_force_front(values, directions)
        np.testing.assert_array_equal(pareto_mask(values, directions), expected)
        np.testing.assert_array_equal(
            pareto_front_indices(values, directions), np.flatnonzero(expected)
        )

    check()


@pytest.mark.parametrize("k", [2, 3])
def test_nan_rows_are_never_on_the_front_and_dominate_nothing(k):
    @settings(max_examples=150, deadline=None)
    @given(values_and_directions(k, allow_nan=True))
    def check(case):
        rows, directions = case
        values = np.array(rows, dtype=float).reshape(len(rows), k)
        mask = pareto_mask(values, directions)
        np.testing.assert_array_equal(mask, brute_force_front(values, directions))
        assert not mask[np.isnan(values).any(axis=1)].any()

    check()


def test_large_random_front_matches_definition_k2_and_k3():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        values = rng.integers(0, 40, size=(400, k)).astype(float)
        directions = ["minimize", "maximize", "minimize"][:k]
        np.testing.assert_array_equal(
            pareto_mask(values, directions), brute_force_front(values, directions)
        )


def test_duplicates_of_a_front_point_are_all_kept_and_infinities_compare():
    values = [[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [np.inf, -np.inf], [np.inf, 0.0]]
    np.testing.assert_array_equal(pareto_mask(values, MIN2), [True, True, True, False, True, False])


def test_empty_and_bad_inputs():
    assert pareto_mask(np.zeros((0, 2)), MIN2).shape == (0,)
    assert pareto_front_indices([], MIN2).size == 0
    with pytest.raises(ValueError, match="directions"):
        pareto_mask([[1.0, 2.0]], ["minimize", "up"])
    with pytest.raises(ValueError, match=r"array.shape\[1\]=2 and len\(directions\)=3"):
        pareto_mask([[1.0, 2.0]], ["minimize"] * 3)
    with pytest.raises(ValueError, match="2-D"):
        pareto_mask([1.0, 2.0], MIN2)


# --------------------------------------------------------------------------- against Optuna


@pytest.mark.parametrize("k", [2, 3])
def test_agrees_with_optuna_best_trials(k):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values_and_directions(k))
    def check(case):
        rows, directions = case
        study = optuna.create_study(directions=directions)
        for row in rows:
            study.add_trial(optuna.trial.create_trial(values=row))
        expected = sorted(t.number for t in study.best_trials)
        values = np.array(rows, dtype=float).reshape(len(rows), k)
        assert pareto_front_indices(values, directions).tolist() == expected

    check()


# --------------------------------------------------------------------------- hypervolume


def test_hypervolume_hand_examples():
    points = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]
    # Strips: (2-1)*(4-3) + (3-2)*(4-2) + (4-3)*(4-1) = 1 + 2 + 3.
    assert hypervolume_2d(points, (4.0, 4.0), MIN2) == pytest.approx(6.0)
    # Dominated, duplicate, NaN and outside-the-reference points add nothing.
    more = points + [[2.5, 2.5], [2.0, 2.0], [np.nan, 0.0], [5.0, 0.0], [0.0, 4.0]]
    assert hypervolume_2d(more, (4.0, 4.0), MIN2) == pytest.approx(6.0)
    assert hypervolume_2d([[1.0, 1.0]], (3.0, 2.0), MIN2) == pytest.approx(2.0)
    assert hypervolume_2d([], (1.0, 1.0), MIN2) == 0.0
    assert hypervolume_2d([[2.0, 2.0]], (1.0, 1.0), MIN2) == 0.0


def test_hypervolume_with_a_maximised_objective():
    # AUC (maximised) against PD: reference AUC 0.70, PD 0.20.
    points = [[0.75, 0.10], [0.72, 0.05]]
    # Normalised: (-0.75, 0.10), (-0.72, 0.05), reference (-0.70, 0.20):
    # 0.03 * 0.10 + 0.02 * 0.15.
    area = hypervolume_2d(points, (0.70, 0.20), ("maximize", "minimize"))
    assert area == pytest.approx(0.03 * 0.10 + 0.02 * 0.15)


def test_hypervolume_matches_optuna():
    optuna = pytest.importorskip("optuna")
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(1)
    for _ in range(20):
        points = rng.random((30, 2))
        reference = np.array([1.1, 1.1])
        expected = compute_hypervolume(points, reference)
        assert hypervolume_2d(points, reference, MIN2) == pytest.approx(expected)
    del optuna


def test_hypervolume_rejects_bad_reference():
    with pytest.raises(ValueError, match="reference"):
        hypervolume_2d([[1.0, 1.0]], (np.nan, 1.0), MIN2)
    with pytest.raises(ValueError, match="two objectives"):
        hypervolume_2d([[1.0, 1.0, 1.0]], (2.0, 2.0, 2.0), ["minimize"] * 3)


# --------------------------------------------------------------------------- knee, recommend


def test_knee_is_the_point_farthest_from_the_chord():
    # Extremes (0, 1) and (1, 0); (0.2, 0.3) is farther from the chord than (0.6, 0.1).
    front = [[0.0, 1.0], [0.6, 0.1], [0.2, 0.3], [1.0, 0.0]]
    assert knee_point(front, MIN2) == 2


def test_knee_min_max_scales_each_objective():
    # The same front with the second objective multiplied by 100: the knee does not move.
    front = np.array([[0.0, 1.0], [0.6, 0.1], [0.2, 0.3], [1.0, 0.0]])
    assert knee_point(front * [1.0, 100.0], MIN2) == 2
    # Flipping an objective's direction and sign leaves the knee in place.
    assert knee_point(front * [-1.0, 1.0], ("maximize", "minimize")) == 2


def test_knee_ignores_dominated_and_nan_rows_and_breaks_ties():
    front = [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.9, 0.9], [np.nan, 0.0]]
    # (0.5, 0.5) lies on the chord: every distance is 0; the smallest scaled sum wins, and
    # all three tie at 1.0, so the lowest index wins.
    assert knee_point(front, MIN2) == 0
    assert knee_point([[3.0, 4.0]], MIN2) == 0
    assert knee_point([[3.0, 4.0], [1.0, 9.0]], MIN2) == 0
    with pytest.raises(ValueError, match="without NaN"):
        knee_point([[np.nan, 1.0]], MIN2)


def test_recommend_lowest_pd_among_no_worse_than_reference():
    # (loss, PD); the ReLU reference is (0.50, 0.20).
    points = [
        [0.49, 0.15],  # better loss, lower PD
        [0.50, 0.12],  # equal loss, lower PD: no worse, so eligible, lowest PD -> recommended
        [0.52, 0.05],  # worse loss
        [np.nan, 0.0],  # NaN: skipped
    ]
    assert recommend(points, (0.50, 0.20), MIN2) == 1
    # With a tolerance of 0.02 the worse-loss point becomes eligible.
    assert recommend(points, (0.50, 0.20), MIN2, tolerance=0.02) == 2


def test_recommend_ties_go_to_better_accuracy_and_maximised_metrics_work():
    points = [[0.70, 0.1], [0.72, 0.1], [0.60, 0.01]]
    # AUC maximised: reference AUC 0.69; both 0.70 and 0.72 qualify with the same PD: 0.72.
    assert recommend(points, (0.69, 0.3), ("maximize", "minimize")) == 1


def test_recommend_falls_back_to_the_knee():
    # Every candidate is worse than ReLU on the loss, none dominated by it: the knee.
    points = [[0.60, 1.0], [0.62, 0.3], [0.64, 0.2], [0.70, 0.0]]
    expected = knee_point(points, MIN2)
    assert recommend(points, (0.50, -0.01), MIN2) == expected == 1
    assert recommend(points, None, MIN2) == expected
    # Points ReLU dominates (worse on both objectives) are never recommended while another
    # point remains: here only the last one has a lower PD than ReLU's 0.2.
    assert recommend(points, (0.50, 0.20), MIN2) == 3
    # When ReLU dominates every point, the knee of all of them.
    assert recommend(points[:3], (0.50, 0.10), MIN2) == knee_point(points[:3], MIN2)
    assert recommend([[np.nan, np.nan]], (0.5, 0.2), MIN2) is None
    with pytest.raises(ValueError, match="tolerance"):
        recommend(points, (0.5, 0.2), MIN2, tolerance=-1.0)
