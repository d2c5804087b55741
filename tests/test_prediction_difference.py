"""Tests for keras_smelu.prediction_difference: hand-computed values, properties, errors."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_smelu import prediction_difference as pdm
from keras_smelu.prediction_difference import (
    PD_KINDS,
    PairwisePD,
    absolute_pd,
    compute_pd,
    get_pd_fn,
    pairwise_pd,
    relative_pd,
    relative_pd_to_mean,
    shift_corrected_pd,
    top1_disagreement,
    total_variation_pd,
)

# ------------------------------------------------------------------------------------------
# Hand-computed values


def test_relative_pd_hand_computed():
    # |0.2-0.3| / 0.25 = 0.4; |0.5-0.5| / 0.5 = 0; |0.1-0.3| / 0.2 = 1.0 -> mean 1.4 / 3
    assert relative_pd([0.2, 0.5, 0.1], [0.3, 0.5, 0.3]) == pytest.approx(1.4 / 3, rel=1e-12)


def test_relative_pd_zero_over_zero_is_zero():
    value = relative_pd([0.0, 0.0, 0.4], [0.0, 0.0, 0.4])
    assert value == 0.0 and not math.isnan(value)
    # One 0/0 row contributes 0, the other row (1 vs 0) contributes 2.
    assert relative_pd([0.0, 1.0], [0.0, 0.0]) == pytest.approx(1.0)


def test_absolute_pd_hand_computed():
    assert absolute_pd([0.2, 0.5, -1.0], [0.3, 0.5, 1.0]) == pytest.approx((0.1 + 0 + 2) / 3)


def test_relative_pd_to_mean_hand_computed():
    # mean |d| = 0.25, mean prediction = (3 + 4 + 3.5 + 4) / 4 = 3.625
    assert relative_pd_to_mean([3.0, 4.0], [3.5, 4.0]) == pytest.approx(0.25 / 3.625)
    assert relative_pd_to_mean([0.0, 0.0], [0.0, 0.0]) == 0.0
    # Signed predictions: the denominator is the absolute mean.
    assert relative_pd_to_mean([-2.0], [-4.0]) == pytest.approx(2.0 / 3.0)


def test_total_variation_hand_computed():
    p1 = [[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]]
    p2 = [[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]]
    assert total_variation_pd(p1, p2) == pytest.approx((0.2 + 1.0) / 2)


def test_total_variation_binary_equals_absolute():
    p1, p2 = [0.1, 0.9, 0.5], [0.3, 0.6, 0.5]
    assert total_variation_pd(p1, p2) == pytest.approx(absolute_pd(p1, p2))


def test_top1_disagreement_hand_computed():
    p1 = [[0.6, 0.4], [0.2, 0.8], [0.1, 0.9]]
    p2 = [[0.4, 0.6], [0.1, 0.9], [0.3, 0.7]]
    assert top1_disagreement(p1, p2) == pytest.approx(1 / 3)
    # Binary: class is p > threshold.
    assert top1_disagreement([0.4, 0.6, 0.7], [0.6, 0.6, 0.2]) == pytest.approx(2 / 3)
    assert top1_disagreement([-1.0, 2.0], [1.0, 3.0], from_logits=True) == pytest.approx(0.5)


def test_shift_corrected_removes_a_pure_logit_offset():
    z = np.linspace(-3, 3, 11)
    p1 = 1 / (1 + np.exp(-(z + 0.4)))
    p2 = 1 / (1 + np.exp(-(z - 0.4)))
    assert relative_pd(p1, p2) > 0.1
    assert shift_corrected_pd(p1, p2, kind="relative") == pytest.approx(0.0, abs=1e-12)
    assert shift_corrected_pd(p1, p2, kind="absolute") == pytest.approx(0.0, abs=1e-12)


def test_shift_corrected_identity_space_hand_computed():
    # d = p1 - p2 = [1, 3] -> offset 2 -> residual [-1, 1].
    assert shift_corrected_pd([1.0, 3.0], [0.0, 0.0], kind="absolute", space="identity") == 1.0
    # relative: the corrected pair is [0.5, 1.5] vs [1, 1.5]: denominators unchanged.
    got = shift_corrected_pd([1.0, 3.0], [0.0, 0.0], kind="relative", space="identity")
    assert got == pytest.approx((1 / 0.5 + 1 / 1.5) / 2)
    got = shift_corrected_pd([1.0, 3.0], [0.0, 0.0], kind="relative_to_mean", space="identity")
    assert got == pytest.approx(1.0 / 1.0)


def test_shift_corrected_keeps_per_example_disagreement():
    p1, p2 = np.array([0.2, 0.8]), np.array([0.8, 0.2])  # mean logit difference is 0
    assert shift_corrected_pd(p1, p2, kind="absolute") == pytest.approx(absolute_pd(p1, p2))


# ------------------------------------------------------------------------------------------
# Shapes and inputs


def test_trailing_one_dimension_is_squeezed():
    a = np.array([0.1, 0.4, 0.9])
    b = np.array([0.2, 0.4, 0.5])
    expected = relative_pd(a, b)
    assert relative_pd(a[:, None], b) == expected
    assert relative_pd(a, b[:, None]) == expected
    assert relative_pd(a[:, None], b[:, None]) == expected


@pytest.mark.parametrize("kind", sorted(PD_KINDS))
def test_every_kind_accepts_backend_tensors(kind):
    if kind in ("total_variation",):
        a, b = [[0.2, 0.8], [0.6, 0.4]], [[0.3, 0.7], [0.5, 0.5]]
    else:
        a, b = [0.2, 0.6, 0.9], [0.3, 0.5, 0.7]
    expected = compute_pd(kind, np.array(a), np.array(b))
    ta = keras.ops.convert_to_tensor(np.array(a, dtype="float32"))
    tb = keras.ops.convert_to_tensor(np.array(b, dtype="float32"))
    got = compute_pd(kind, ta, tb)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"got shapes \(3,\) and \(4,\)"):
        relative_pd(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 2\)"):
        total_variation_pd(np.full((2, 3), 1 / 3), np.full((2, 2), 0.5))


def test_empty_and_non_finite_inputs_raise():
    with pytest.raises(ValueError, match="empty"):
        absolute_pd(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="non-finite"):
        absolute_pd([0.1, np.nan], [0.1, 0.2])
    with pytest.raises(ValueError, match="`p2` contains 1 non-finite"):
        relative_pd([0.1, 0.2], [0.1, np.inf])


def test_relative_pd_rejects_negative_predictions():
    with pytest.raises(ValueError, match="non-negative.*`p2`"):
        relative_pd([0.1, 0.2], [0.1, -0.2])


def test_relative_to_mean_zero_mean_raises():
    with pytest.raises(ValueError, match="mean prediction is 0"):
        relative_pd_to_mean([1.0, -1.0], [-1.0, 1.0])


def test_total_variation_validates_rows():
    with pytest.raises(ValueError, match="probability distribution"):
        total_variation_pd([[0.5, 0.6]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        total_variation_pd([1.5], [0.5])


def test_top1_refuses_logits_unless_told():
    logits = [-1.2, 0.3, 2.5]
    with pytest.raises(ValueError, match=r"`p1` has values outside.*logits.*from_logits=True"):
        top1_disagreement(logits, [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"`p2` has values outside"):
        top1_disagreement([[0.2, 0.8]], [[-1.0, 2.0]])
    with pytest.raises(ValueError, match=r"each row \(last axis\) of `p2`.*summing to 1.*row 1"):
        top1_disagreement([[0.2, 0.8], [0.5, 0.5]], [[0.2, 0.8], [0.3, 0.3]])
    # Told they are logits/scores: the classes are those of their probabilities.
    z1 = np.array([-1.2, 0.3, 2.5, -0.1])
    z2 = np.array([0.4, -0.2, 1.5, 0.2])
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for threshold in (0.5, 0.3, 0.8):
        assert top1_disagreement(z1, z2, from_logits=True, threshold=threshold) == (
            top1_disagreement(sigmoid(z1), sigmoid(z2), threshold=threshold)
        )
    scores = np.array([[3.0, -1.0, 0.5], [0.1, 0.2, 7.0]])
    softmax = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    other = scores[:, ::-1]
    other_softmax = softmax[:, ::-1]
    assert top1_disagreement(scores, other, from_logits=True) == top1_disagreement(
        softmax, other_softmax
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"threshold": 1.5}, "`threshold` must be a probability"),
        ({"threshold": "half"}, "`threshold` must be a probability"),
        ({"from_logits": "yes"}, "`from_logits` must be a bool"),
    ],
)
def test_top1_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        top1_disagreement([0.2], [0.7], **kwargs)


# Huge finite predictions (regression outputs in extreme units): sums overflow float64 long
# before the PD does. Scale-free measures must equal their value on rescaled inputs; the
# absolute one must scale with the inputs.
HUGE = 2.0**1020  # about 1.1e307; eight of them sum beyond float64's range


def _huge_pair():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1.5, size=16)
    b = rng.uniform(0.5, 1.5, size=16)
    return a, b


def test_means_of_huge_predictions_do_not_overflow():
    a, b = _huge_pair()
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum((a + b) * HUGE))  # the naive sum overflows
    assert relative_pd_to_mean(a * HUGE, b * HUGE) == pytest.approx(
        relative_pd_to_mean(a, b), rel=1e-12
    )
    assert relative_pd(a * HUGE * 8, b * HUGE * 8) == pytest.approx(relative_pd(a, b), rel=1e-12)
    assert absolute_pd((a + 8) * HUGE, (b - 8) * HUGE) == pytest.approx(
        absolute_pd(a + 8, b - 8) * HUGE, rel=1e-12
    )
    for kind in ("absolute", "relative_to_mean", "relative"):
        small = shift_corrected_pd(a, b, kind=kind, space="identity")
        big = shift_corrected_pd(a * HUGE, b * HUGE, kind=kind, space="identity")
        factor = HUGE if kind == "absolute" else 1.0
        assert big == pytest.approx(small * factor, rel=1e-9)
    result = pairwise_pd([a * HUGE * 8, b * HUGE * 8, -a * HUGE * 8], kind="absolute")
    reference = pairwise_pd([a, b, -a], kind="absolute")
    assert result.mean == pytest.approx(reference.mean * HUGE * 8, rel=1e-12)
    assert result.std == pytest.approx(reference.std * HUGE * 8, rel=1e-12)


def test_a_pd_beyond_float64_is_refused():
    with pytest.raises(ValueError, match="must fit a float64"):
        absolute_pd([1.5e308, 1.0e308], [-1.5e308, -1.0e308])


def test_shift_corrected_argument_errors():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        shift_corrected_pd([0.5], [0.5], kind="top1")
    with pytest.raises(ValueError, match="`space` must be one of"):
        shift_corrected_pd([0.5], [0.5], space="log")
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        shift_corrected_pd([2.0], [0.5])


# ------------------------------------------------------------------------------------------
# Registry and pairwise


def test_registry_by_name():
    assert get_pd_fn("relative") is relative_pd
    assert get_pd_fn("absolute") is absolute_pd
    assert compute_pd("absolute", [1.0, 2.0], [1.5, 2.0]) == 0.25
    expected = {
        "relative",
        "absolute",
        "total_variation",
        "top1",
        "relative_to_mean",
        "relative_shift_corrected",
        "absolute_shift_corrected",
    }
    assert expected <= set(PD_KINDS)
    with pytest.raises(TypeError):
        PD_KINDS["mine"] = absolute_pd  # read-only


def test_unknown_kind_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown PD kind.*'absolute'.*received: 'nope'"):
        get_pd_fn("nope")
    with pytest.raises(ValueError, match="Unknown PD kind"):
        pairwise_pd([[0.1], [0.2]], kind="nope")


def test_pairwise_pd_hand_computed():
    result = pairwise_pd([[1.0], [2.0], [4.0]], kind="absolute")
    assert isinstance(result, PairwisePD)
    assert result.values == (1.0, 3.0, 2.0)
    assert result.pairs == ((0, 1), (0, 2), (1, 2))
    assert result.mean == pytest.approx(2.0)
    assert result.std == pytest.approx(1.0)  # ddof=1
    assert result.to_dict()["values"] == [1.0, 3.0, 2.0]


def test_pairwise_pd_single_pair_and_stacked_array():
    result = pairwise_pd(np.array([[0.2, 0.4], [0.3, 0.4]]))
    assert result.kind == "relative"
    assert result.values == (pytest.approx(0.2),)
    assert result.std == 0.0


def test_pairwise_pd_needs_two_replicas():
    with pytest.raises(ValueError, match="at least two replica predictions; got 1"):
        pairwise_pd([[0.1, 0.2]])


# ------------------------------------------------------------------------------------------
# Properties

unit_floats = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def probability_pairs(draw, elements=unit_floats):
    a = draw(hnp.arrays(np.float64, st.integers(1, 30), elements=elements))
    b = draw(hnp.arrays(np.float64, a.shape, elements=elements))
    return a, b


# Entries that stay normal floats when scaled by 1e-3..1e3, so scaling itself is exact enough
# for the invariance to hold (a scaled subnormal can round to 0 and change the true PD).
scalable = st.one_of(st.just(0.0), st.floats(1e-290, 1.0))


SYMMETRIC_KINDS = [k for k in sorted(PD_KINDS) if k != "total_variation"]


@settings(max_examples=60, deadline=None)
@given(probability_pairs())
def test_symmetric_non_negative_and_zero_on_identity(pair):
    a, b = pair
    for kind in SYMMETRIC_KINDS:
        fn = PD_KINDS[kind]
        try:
            forward = fn(a, b)
        except ValueError:  # relative_to_mean with an all-zero mean prediction and a diff
            continue
        assert forward >= 0.0
        assert fn(b, a) == pytest.approx(forward, rel=1e-9, abs=1e-12)
        assert fn(a, a) == 0.0


@settings(max_examples=60, deadline=None)
@given(probability_pairs(scalable), st.floats(1e-3, 1e3))
def test_relative_scale_invariant_absolute_linear(pair, scale):
    a, b = pair
    assert relative_pd(a * scale, b * scale) == pytest.approx(relative_pd(a, b), abs=1e-9)
    assert absolute_pd(a * scale, b * scale) == pytest.approx(
        scale * absolute_pd(a, b), rel=1e-9, abs=1e-12
    )


def test_relative_pd_exact_for_subnormal_predictions():
    # The mean of two subnormals rounds to 0 if halved first; the PD must still be 2 here.
    tiny = np.nextafter(0.0, 1.0)
    assert relative_pd([tiny], [0.0]) == 2.0
    assert relative_pd([tiny, 0.5], [tiny, 0.5]) == 0.0


@settings(max_examples=40, deadline=None)
@given(probability_pairs())
def test_bounds(pair):
    a, b = pair
    assert 0.0 <= relative_pd(a, b) <= 2.0
    assert 0.0 <= total_variation_pd(a, b) <= 1.0
    assert 0.0 <= top1_disagreement(a, b) <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64, st.tuples(st.integers(1, 10), st.integers(2, 5)), elements=st.floats(0.01, 1.0)
    ),
    hnp.arrays(
        np.float64, st.tuples(st.integers(1, 10), st.integers(2, 5)), elements=st.floats(0.01, 1.0)
    ),
)
def test_total_variation_symmetric_on_distributions(raw1, raw2):
    rows = min(raw1.shape[0], raw2.shape[0])
    classes = min(raw1.shape[1], raw2.shape[1])
    a = raw1[:rows, :classes] / raw1[:rows, :classes].sum(-1, keepdims=True)
    b = raw2[:rows, :classes] / raw2[:rows, :classes].sum(-1, keepdims=True)
    assert total_variation_pd(a, b) == pytest.approx(total_variation_pd(b, a))
    assert total_variation_pd(a, a) == 0.0
    assert 0.0 <= total_variation_pd(a, b) <= 1.0 + 1e-12


def test_module_exports_are_documented():
    for name in pdm.__all__:
        assert getattr(pdm, name) is not None
        obj = getattr(pdm, name)
        if callable(obj):
            assert obj.__doc__, name
