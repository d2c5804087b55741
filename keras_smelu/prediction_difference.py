"""Prediction difference (PD): how much two replicas of one model disagree.

Two replicas trained with the same data and configuration give different predictions; PD
measures that on the same (held-out) examples. Every function here is a small pure function
that accepts NumPy arrays or backend tensors, computes in NumPy float64 and returns a Python
`float`. Binary predictions may be given with shape `(n,)` or `(n, 1)`: a trailing dimension of
size 1 is dropped from both arguments before their shapes are compared.

Reference:
    Shamir, Lin, Coviello, "Smooth Activations and Reproducibility in Deep Networks",
    [arXiv:2010.09931](https://arxiv.org/abs/2010.09931).
"""

from __future__ import annotations

import dataclasses
import itertools
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "PD_KINDS",
    "PairwisePD",
    "absolute_pd",
    "compute_pd",
    "get_pd_fn",
    "pairwise_pd",
    "relative_pd",
    "relative_pd_to_mean",
    "shift_corrected_pd",
    "top1_disagreement",
    "total_variation_pd",
]

# Probabilities are clipped to [eps, 1 - eps] before taking logits. 1e-7 matches the
# saturation of a float32 sigmoid (logit about +-16), so a saturated prediction does not
# dominate the estimated global offset.
_LOGIT_EPS = 1e-7
# Tolerance on "each row of a multiclass prediction sums to 1".
_ROW_SUM_ATOL = 1e-3
_FLOAT64_MAX = float(np.finfo(np.float64).max)


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if not isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
        try:
            import keras

            x = keras.ops.convert_to_numpy(x)
        except Exception:  # not a tensor Keras knows; let NumPy try
            pass
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"`{name}` must be an array of numeric predictions; received: {type(x).__name__}"
        ) from e
    return np.atleast_1d(array)


def squeeze_trailing_one(array: np.ndarray) -> np.ndarray:
    if array.ndim >= 2 and array.shape[-1] == 1:
        return array[..., 0]
    return array


def validate_pair(p1: ArrayLike, p2: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Converts two predictions to float64 arrays of one shape, or raises `ValueError`."""
    a, b = to_numpy(p1, "p1"), to_numpy(p2, "p2")
    a_sq, b_sq = squeeze_trailing_one(a), squeeze_trailing_one(b)
    if a_sq.shape != b_sq.shape:
        raise ValueError(
            "The two predictions must have the same shape (a trailing dimension of size 1 is "
            f"ignored); got shapes {a.shape} and {b.shape}."
        )
    if a_sq.size == 0:
        raise ValueError(f"The predictions are empty; got shapes {a.shape} and {b.shape}.")
    for name, array in (("p1", a_sq), ("p2", b_sq)):
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(
                f"`{name}` contains {int((~finite).sum())} non-finite values (NaN or inf) out "
                f"of {array.size}; PD is only defined for finite predictions."
            )
    return a_sq, b_sq


def _check_non_negative(a: np.ndarray, b: np.ndarray, what: str) -> None:
    for name, array in (("p1", a), ("p2", b)):
        if (array < 0).any():
            raise ValueError(
                f"{what} is defined for non-negative predictions (probabilities), but `{name}` "
                f"has a minimum of {array.min()!r}. Use `absolute_pd` or `relative_pd_to_mean` "
                "for signed predictions."
            )


def in_unit_interval(array: np.ndarray) -> bool:
    """Every entry is a probability, in [0, 1]."""
    return bool((array >= 0).all() and (array <= 1).all())


def _row_sum_error(array: np.ndarray) -> float:
    """How far the worst row (last axis) is from summing to 1."""
    return float(np.max(np.abs(array.sum(axis=-1) - 1.0)))


def is_distribution(array: np.ndarray) -> bool:
    """Every row (last axis) is a probability distribution, as multiclass PD needs."""
    return in_unit_interval(array) and _row_sum_error(array) <= _ROW_SUM_ATOL


_LOGITS_HINT = "Apply a sigmoid/softmax to logits first."


def _check_probabilities(a: np.ndarray, b: np.ndarray, what: str, hint: str = _LOGITS_HINT) -> None:
    for name, array in (("p1", a), ("p2", b)):
        if not in_unit_interval(array):
            raise ValueError(
                f"{what} expects probabilities in [0, 1], but `{name}` has values outside, "
                f"which look like logits or scores. {hint} "
                f"Received: {name} ranging over [{array.min()!r}, {array.max()!r}]"
            )


def _check_distributions(a: np.ndarray, b: np.ndarray, what: str, hint: str = _LOGITS_HINT) -> None:
    _check_probabilities(a, b, what, hint)
    for name, array in (("p1", a), ("p2", b)):
        worst = _row_sum_error(array)
        if worst > _ROW_SUM_ATOL:
            row = int(np.argmax(np.abs(array.sum(axis=-1) - 1.0).reshape(-1)))
            total = float(array.reshape(-1, array.shape[-1])[row].sum())
            raise ValueError(
                f"{what} expects each row (last axis) of `{name}` to be a probability "
                f"distribution summing to 1 (within {_ROW_SUM_ATOL}), but a row is off by "
                f"{worst:.3g}. {hint} Received: {name} row {row} summing to {total!r}"
            )


def _scale_of(*arrays: np.ndarray) -> float:
    """A power of two to divide predictions by so that their sums and differences cannot
    overflow float64; 1.0 (no change at all) unless the values are that large.

    Dividing by a power of two is exact, so the scaled computation rounds exactly as the plain
    one would have, had it not overflowed.
    """
    largest = max(float(np.max(np.abs(a))) for a in arrays)
    size = max(a.size for a in arrays)
    if largest <= _FLOAT64_MAX / (4.0 * size):  # sums of size |a - b| terms stay finite
        return 1.0
    # Scaled values below 2 in magnitude (2**1024 itself is beyond float64).
    return float(np.ldexp(1.0, int(np.frexp(largest)[1]) - 1))


def _unscale(value: float, scale: float, what: str) -> float:
    """`value * scale`, or a clear error where the result itself is beyond float64's range."""
    with np.errstate(over="ignore"):
        result = float(np.float64(value) * scale)
    if not np.isfinite(result):
        exponent = int(np.log2(scale))
        raise ValueError(
            f"{what} must fit a float64 (at most {_FLOAT64_MAX:.3g}) to be returned, but it is "
            f"beyond that range: rescale the predictions (other units) first. "
            f"Received: {what.lower()} = {value!r} * 2**{exponent}"
        )
    return result


def _relative_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-entry `|a - b| / ((a + b) / 2)`, 0 where the denominator is 0."""
    # Divide by the sum, then double: halving first would round subnormal sums to 0. Where
    # the sum overflows (both near float64's largest), halve first instead: exact up there.
    with np.errstate(over="ignore"):
        numerator = np.abs(a - b)
        denominator = a + b
    huge = np.isinf(denominator) | np.isinf(numerator)
    if huge.any():
        numerator = np.where(huge, np.abs(a * 0.5 - b * 0.5), numerator)
        denominator = np.where(huge, a * 0.5 + b * 0.5, denominator)
    ratio = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)
    return 2.0 * ratio


def _relative_to_mean(a: np.ndarray, b: np.ndarray) -> float:
    # A ratio of two means: the same at any scale, so computed where nothing can overflow.
    scale = _scale_of(a, b)
    a, b = a / scale, b / scale
    numerator = float(np.mean(np.abs(a - b)))
    denominator = abs(float(np.mean((a + b) / 2.0)))
    if numerator == 0.0:
        return 0.0
    if denominator == 0.0:
        raise ValueError(
            "Relative PD to the mean prediction is undefined: the mean prediction is 0 while the "
            f"mean absolute difference is {numerator!r}. Use `absolute_pd` instead."
        )
    return numerator / denominator


def relative_pd(p1: ArrayLike, p2: ArrayLike) -> float:
    """Relative prediction difference, the papers' default PD.

    `mean(|p1 - p2| / ((p1 + p2) / 2))` over all entries, with `0 / 0` taken as 0 (for
    non-negative predictions the denominator is 0 only when both are 0). For multiclass
    probabilities of shape `(n, k)` the mean runs over all `n * k` entries.

    Args:
        p1: Predictions of the first replica, non-negative (probabilities), shape `(n,)`,
            `(n, 1)` or `(n, k)`. NumPy array or backend tensor.
        p2: Predictions of the second replica, same shape.

    Returns:
        The relative PD as a Python float in `[0, 2]`.

    Example:

    >>> round(relative_pd([0.2, 0.5, 0.0], [0.3, 0.5, 0.0]), 6)  # (0.1 / 0.25 + 0 + 0) / 3
    0.133333

    Reference:
        [arXiv:2010.09931](https://arxiv.org/abs/2010.09931)
    """
    a, b = validate_pair(p1, p2)
    _check_non_negative(a, b, "Relative PD")
    return float(np.mean(_relative_values(a, b)))


def absolute_pd(p1: ArrayLike, p2: ArrayLike) -> float:
    """Absolute prediction difference.

    `mean(|p1 - p2|)` over all entries. Steadier than `relative_pd` where most predictions are
    tiny (e.g. sampled negatives), since those rows do not dominate it.

    Args:
        p1: Predictions of the first replica, any real values, shape `(n,)`, `(n, 1)` or
            `(n, k)`. NumPy array or backend tensor.
        p2: Predictions of the second replica, same shape.

    Returns:
        The absolute PD as a Python float, in the units of the predictions.

    Example:

    >>> round(absolute_pd([0.2, 0.5], [0.3, 0.5]), 6)
    0.05

    Reference:
        [arXiv:2010.09931](https://arxiv.org/abs/2010.09931)
    """
    a, b = validate_pair(p1, p2)
    return _mean_absolute_difference(a, b)


def _mean_absolute_difference(a: np.ndarray, b: np.ndarray) -> float:
    """`mean(|a - b|)`, scaled first where the differences or their sum would overflow."""
    scale = _scale_of(a, b)
    value = float(np.mean(np.abs(a / scale - b / scale)))
    return _unscale(value, scale, "The mean absolute difference")


def relative_pd_to_mean(p1: ArrayLike, p2: ArrayLike) -> float:
    """Prediction difference relative to the mean prediction, for regression (e.g. ratings).

    `mean(|p1 - p2|) / |mean((p1 + p2) / 2)|`, with `0 / 0` taken as 0.

    Args:
        p1: Predictions of the first replica, any real values, shape `(n,)` or `(n, 1)`.
            NumPy array or backend tensor.
        p2: Predictions of the second replica, same shape.

    Returns:
        The PD as a Python float.

    Raises:
        ValueError: if the mean prediction is 0 while the predictions differ.

    Example:

    >>> round(relative_pd_to_mean([3.0, 4.0], [3.5, 4.0]), 6)  # 0.25 / 3.625
    0.068966

    Reference:
        [arXiv:2202.06499](https://arxiv.org/abs/2202.06499)
    """
    a, b = validate_pair(p1, p2)
    return _relative_to_mean(a, b)


def total_variation_pd(p1: ArrayLike, p2: ArrayLike) -> float:
    """Mean total variation distance between multiclass predictions.

    `mean_n(0.5 * sum_k |p1[n, k] - p2[n, k]|)`, where each row (last axis) is a probability
    distribution. One-dimensional inputs are read as binary probabilities of the positive
    class, i.e. the rows `[1 - p, p]`, for which the total variation is `|p1 - p2|`.

    Args:
        p1: Class probabilities of the first replica, shape `(n, k)`, or `(n,)`/`(n, 1)` for
            binary. NumPy array or backend tensor.
        p2: Class probabilities of the second replica, same shape.

    Returns:
        The mean total variation as a Python float in `[0, 1]`.

    Example:

    >>> round(total_variation_pd([[0.7, 0.2, 0.1]], [[0.5, 0.3, 0.2]]), 6)
    0.2

    Reference:
        [arXiv:2010.09931](https://arxiv.org/abs/2010.09931)
    """
    a, b = validate_pair(p1, p2)
    if a.ndim == 1:
        _check_probabilities(a, b, "Total variation PD")
        return float(np.mean(np.abs(a - b)))
    _check_distributions(a, b, "Total variation PD")
    return float(np.mean(0.5 * np.sum(np.abs(a - b), axis=-1)))


def top1_disagreement(
    p1: ArrayLike, p2: ArrayLike, *, threshold: float = 0.5, from_logits: bool = False
) -> float:
    """Top-1 disagreement ("churn"): the fraction of examples whose predicted class differs.

    `mean(argmax(p1, -1) != argmax(p2, -1))` for multiclass predictions of shape `(n, k)`.
    One-dimensional inputs are binary, and the predicted class is `p > threshold`.

    Predictions are probabilities unless `from_logits=True`: binary values must lie in
    `[0, 1]` and multiclass rows must be distributions (in `[0, 1]`, summing to 1 within
    1e-3), so that logits passed by mistake raise a `ValueError` instead of being compared
    against a probability threshold.

    Args:
        p1: Predictions of the first replica, shape `(n, k)`, or `(n,)`/`(n, 1)` for binary.
            NumPy array or backend tensor.
        p2: Predictions of the second replica, same shape.
        threshold: Decision threshold for binary predictions, a probability in `[0, 1]`
            (with `from_logits=True` the logits are compared with `logit(threshold)`, 0 for
            the default 0.5). Ignored for multiclass.
        from_logits: Whether the predictions are logits (binary) or unnormalized scores
            (multiclass) rather than probabilities.

    Returns:
        The disagreement rate as a Python float in `[0, 1]`.

    Example:

    >>> top1_disagreement([[0.6, 0.4], [0.2, 0.8]], [[0.4, 0.6], [0.1, 0.9]])
    0.5
    >>> top1_disagreement([-1.0, 2.0], [1.0, 3.0], from_logits=True)
    0.5

    Reference:
        [arXiv:2010.09931](https://arxiv.org/abs/2010.09931)
    """
    if not isinstance(from_logits, bool):
        raise ValueError(
            f"Argument `from_logits` must be a bool. Received: from_logits={from_logits!r}"
        )
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.floating, np.integer))
        or not 0.0 <= float(threshold) <= 1.0
    ):
        raise ValueError(
            "Argument `threshold` must be a probability in [0, 1] (with from_logits=True the "
            f"logits are compared with its logit). Received: threshold={threshold!r}"
        )
    a, b = validate_pair(p1, p2)
    hint = "Apply a sigmoid/softmax first, or pass from_logits=True."
    if a.ndim == 1:
        if from_logits:
            with np.errstate(divide="ignore"):
                cut = float(np.log(threshold) - np.log1p(-threshold))
        else:
            _check_probabilities(a, b, "Top-1 disagreement", hint)
            cut = float(threshold)
        return float(np.mean((a > cut) != (b > cut)))
    if not from_logits:
        _check_distributions(a, b, "Top-1 disagreement", hint)
    return float(np.mean(np.argmax(a, axis=-1) != np.argmax(b, axis=-1)))


def _logit(p: np.ndarray, eps: float) -> np.ndarray:
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


_SHIFT_KINDS = ("relative", "absolute", "relative_to_mean")
_SHIFT_SPACES = ("logit", "identity")


def shift_corrected_pd(
    p1: ArrayLike,
    p2: ArrayLike,
    *,
    kind: Literal["relative", "absolute", "relative_to_mean"] = "relative",
    space: Literal["logit", "identity"] = "logit",
    eps: float = _LOGIT_EPS,
) -> float:
    """PD after removing one global offset between the two replicas.

    Much of the PD between replicas can be a single calibration offset (one replica predicts
    slightly higher everywhere). This separates that offset from per-example disagreement: with
    `f` the logit (`space="logit"`, for probabilities) or the identity (`space="identity"`),
    `d = mean(f(p1) - f(p2))` is the offset (the least-squares estimate in that space), and
    `q1 = f^-1(f(p1) - d / 2)`, `q2 = f^-1(f(p2) + d / 2)` are the corrected predictions (half
    of the offset removed from each, which keeps the measure symmetric). The PD of `kind` is
    then computed on `q1, q2`. In logit space probabilities are clipped to `[eps, 1 - eps]`
    first.

    Args:
        p1: Predictions of the first replica, shape `(n,)` or `(n, 1)`: probabilities for
            `space="logit"`, any real values for `space="identity"`. NumPy array or tensor.
        p2: Predictions of the second replica, same shape.
        kind: The PD measured after the correction: `"relative"`, `"absolute"` or
            `"relative_to_mean"`.
        space: `"logit"` (probabilities) or `"identity"` (regression outputs).
        eps: Clipping of probabilities before the logit.

    Returns:
        The shift-corrected PD as a Python float. It is usually, not always, below the
        uncorrected PD (the offset is a least-squares estimate, not the PD minimiser).

    Example:

    >>> shift_corrected_pd([0.2, 0.4], [0.3, 0.5], kind="absolute", space="identity")
    0.0

    Reference:
        [arXiv:2202.06499](https://arxiv.org/abs/2202.06499)
    """
    if kind not in _SHIFT_KINDS:
        raise ValueError(f"`kind` must be one of {list(_SHIFT_KINDS)}; received: kind={kind!r}")
    if space not in _SHIFT_SPACES:
        raise ValueError(f"`space` must be one of {list(_SHIFT_SPACES)}; received: space={space!r}")
    a, b = validate_pair(p1, p2)
    if space == "logit":
        if not 0.0 < eps < 0.5:
            raise ValueError(f"`eps` must be in (0, 0.5); received: eps={eps!r}")
        _check_probabilities(a, b, "Shift-corrected PD in logit space")
        z1, z2 = _logit(a, eps), _logit(b, eps)
        d = float(np.mean(z1 - z2))
        q1, q2 = _sigmoid(z1 - d / 2.0), _sigmoid(z2 + d / 2.0)
    else:
        if kind == "relative":
            _check_non_negative(a, b, "Relative PD")
        # In units of `scale`, where the offset and the shifted values cannot overflow; every
        # kind but the absolute one is scale-free.
        scale = _scale_of(a, b)
        a, b = a / scale, b / scale
        d = float(np.mean(a - b))
        q1, q2 = a - d / 2.0, b + d / 2.0
        if kind == "absolute":
            return _unscale(float(np.mean(np.abs(q1 - q2))), scale, "The absolute PD")
    if kind == "absolute":
        return float(np.mean(np.abs(q1 - q2)))
    if kind == "relative_to_mean":
        return _relative_to_mean(q1, q2)
    return float(np.mean(_relative_values(q1, q2)))


def _relative_shift_corrected(p1: ArrayLike, p2: ArrayLike) -> float:
    return shift_corrected_pd(p1, p2, kind="relative", space="logit")


def _absolute_shift_corrected(p1: ArrayLike, p2: ArrayLike) -> float:
    return shift_corrected_pd(p1, p2, kind="absolute", space="logit")


def _absolute_shift_corrected_identity(p1: ArrayLike, p2: ArrayLike) -> float:
    return shift_corrected_pd(p1, p2, kind="absolute", space="identity")


def _relative_to_mean_shift_corrected(p1: ArrayLike, p2: ArrayLike) -> float:
    return shift_corrected_pd(p1, p2, kind="relative_to_mean", space="identity")


PD_KINDS: Mapping[str, Callable[..., float]] = types.MappingProxyType(
    {
        "relative": relative_pd,
        "absolute": absolute_pd,
        "relative_to_mean": relative_pd_to_mean,
        "total_variation": total_variation_pd,
        "top1": top1_disagreement,
        "relative_shift_corrected": _relative_shift_corrected,
        "absolute_shift_corrected": _absolute_shift_corrected,
        "absolute_shift_corrected_identity": _absolute_shift_corrected_identity,
        "relative_to_mean_shift_corrected": _relative_to_mean_shift_corrected,
    }
)
"""PD measures by name (read-only). `*_shift_corrected` work in logit space (probabilities);
`absolute_shift_corrected_identity` and `relative_to_mean_shift_corrected` in identity space
(regression)."""


def get_pd_fn(kind: str) -> Callable[..., float]:
    """Returns the PD function registered under `kind` in `PD_KINDS`.

    Args:
        kind: A name from `PD_KINDS`, e.g. `"relative"` or `"absolute_shift_corrected"`.

    Returns:
        A function `fn(p1, p2) -> float`.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return PD_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown PD kind. Expected one of {sorted(PD_KINDS)}; received: {kind!r}"
        ) from None


def compute_pd(kind: str, p1: ArrayLike, p2: ArrayLike, **kwargs: float | bool) -> float:
    """Computes the PD of `kind` (a name from `PD_KINDS`) between `p1` and `p2`.

    Args:
        kind: A name from `PD_KINDS`.
        p1: Predictions of the first replica.
        p2: Predictions of the second replica.
        **kwargs: Extra keyword arguments of that function (e.g. `threshold` for `"top1"`).

    Returns:
        The PD as a Python float.

    Example:

    >>> compute_pd("absolute", [1.0, 2.0], [1.5, 2.0])
    0.25
    """
    return get_pd_fn(kind)(p1, p2, **kwargs)


@dataclasses.dataclass(frozen=True)
class PairwisePD:
    """PD over all pairs of N replicas.

    Attributes:
        kind: The PD measure (a name from `PD_KINDS`).
        mean: Mean PD over the `N (N - 1) / 2` pairs.
        std: Sample standard deviation over the pairs (`ddof=1`); 0.0 for a single pair.
        values: PD of each pair `(i, j)`, `i < j`, in lexicographic order.
        pairs: The replica index pairs, aligned with `values`.
    """

    kind: str
    mean: float
    std: float
    values: tuple[float, ...]
    pairs: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-friendly dict."""
        return {
            "kind": self.kind,
            "mean": self.mean,
            "std": self.std,
            "values": list(self.values),
            "pairs": [list(p) for p in self.pairs],
        }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    scale = _scale_of(array)  # PDs in the predictions' units may be huge (absolute PD)
    array = array / scale
    std = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    return _unscale(float(np.mean(array)), scale, "The mean PD"), _unscale(
        std, scale, "The PD spread"
    )


def pairwise_pd(
    predictions: Sequence[ArrayLike] | np.ndarray, kind: str = "relative", **kwargs: float | bool
) -> PairwisePD:
    """Mean and spread of the PD over all pairs of N >= 2 replicas.

    Relative PD is heavy-tailed across pairs, so report the spread beside the mean.

    Args:
        predictions: A sequence of N >= 2 replica predictions of one shape (or an array whose
            first axis indexes replicas).
        kind: A name from `PD_KINDS`.
        **kwargs: Extra keyword arguments of the PD function.

    Returns:
        A `PairwisePD` with `mean`, `std` (`ddof=1`), `values` and `pairs`.

    Example:

    >>> result = pairwise_pd([[1.0], [2.0], [4.0]], kind="absolute")
    >>> result.mean, result.values
    (2.0, (1.0, 3.0, 2.0))
    """
    fn = get_pd_fn(kind)
    replicas = list(predictions)
    if len(replicas) < 2:
        raise ValueError(
            f"pairwise_pd needs at least two replica predictions; got {len(replicas)}."
        )
    index_pairs = tuple(itertools.combinations(range(len(replicas)), 2))
    values = tuple(float(fn(replicas[i], replicas[j], **kwargs)) for i, j in index_pairs)
    mean, std = mean_std(values)
    return PairwisePD(kind=kind, mean=mean, std=std, values=values, pairs=index_pairs)
