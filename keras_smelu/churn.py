"""Churn beside PD: how many decisions, and which rankings, change between two replicas.

For a labelled binary task, the decisions of a baseline and a candidate replica at a threshold:
churn (the share of examples whose decision differs), good churn (changes that fix an error of
the baseline), bad churn (changes that introduce one) and their win/loss ratio. For ranked
outputs (items ranked per user), the agreement of the two replicas' rankings per group: top-k
overlap and rank-biased overlap (RBO), averaged over groups.

The input conventions are those of `keras_smelu.prediction_difference`: NumPy arrays or backend
tensors of shape `(n,)` or `(n, 1)`, float64 arithmetic, Python floats out, and a `ValueError`
naming the argument for a bad input. Everything is vectorised (one sort per replica for
rankings), so millions of rows cost seconds.

References:
    - Milani Fard et al., "Launch and Iterate: Reducing Prediction Churn", NeurIPS 2016.
    - Webber, Moffat, Zobel, "A Similarity Measure for Indefinite Rankings", ACM TOIS 28(4),
      2010, [doi:10.1145/1852102.1852106](https://doi.org/10.1145/1852102.1852106).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from keras_smelu.prediction_difference import to_numpy, validate_pair

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "ChurnStats",
    "bad_churn",
    "churn",
    "churn_stats",
    "good_churn",
    "rank_biased_overlap",
    "topk_overlap",
    "win_loss_ratio",
]


@dataclasses.dataclass(frozen=True)
class ChurnStats:
    """Churn between a baseline and a candidate at one threshold.

    Attributes:
        churn: Share of examples whose decision differs (`good_churn + bad_churn`).
        good_churn: Share of examples the baseline gets wrong and the candidate right.
        bad_churn: Share of examples the baseline gets right and the candidate wrong.
        win_loss: `good_churn / bad_churn` (`inf` with only wins, 1.0 with no churn).
        threshold: The decision threshold.
    """

    churn: float
    good_churn: float
    bad_churn: float
    win_loss: float
    threshold: float


def _decisions(p1: ArrayLike, p2: ArrayLike, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = validate_pair(p1, p2)
    if a.ndim != 1:
        raise ValueError(
            "Churn expects binary predictions of shape (n,) or (n, 1); received: shape "
            f"{a.shape}. For multiclass use `prediction_difference.top1_disagreement`."
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise ValueError(f"Argument `threshold` must be a number; received: {threshold!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"Argument `threshold` must be finite; received: {threshold!r}")
    return a > threshold, b > threshold


def _labels(labels: ArrayLike, n: int) -> np.ndarray:
    y = to_numpy(labels, "labels")
    if y.ndim >= 2 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.shape != (n,):
        raise ValueError(
            f"`labels` must have one binary label per example, shape ({n},); received: shape "
            f"{y.shape}"
        )
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        raise ValueError(
            f"`labels` must be 0 or 1; received: {int(bad.sum())} other values, e.g. {y[bad][0]!r}"
        )
    return y == 1


def _breakdown(
    baseline: ArrayLike, candidate: ArrayLike, labels: ArrayLike, threshold: float
) -> tuple[float, float, float]:
    d1, d2 = _decisions(baseline, candidate, threshold)
    y = _labels(labels, d1.size)
    changed = d1 != d2
    # In a binary task a changed decision is right for exactly one of the two replicas.
    good = changed & (d2 == y)
    return float(np.mean(changed)), float(np.mean(good)), float(np.mean(changed & ~good))


def churn(p1: ArrayLike, p2: ArrayLike, *, threshold: float = 0.5) -> float:
    """Churn: the share of examples whose thresholded decision differs between two replicas.

    `mean((p1 > threshold) != (p2 > threshold))`. No labels needed.

    Args:
        p1: Binary predictions of the first replica, shape `(n,)` or `(n, 1)`. NumPy array
            or backend tensor.
        p2: Binary predictions of the second replica, same shape.
        threshold: Decision threshold (0.5 for probabilities, 0 for logits).

    Returns:
        The churn as a Python float in `[0, 1]`.

    Example:

    >>> churn([0.2, 0.6, 0.7, 0.4], [0.3, 0.4, 0.8, 0.6])
    0.5

    Reference:
        [Milani Fard et al., 2016](https://arxiv.org/abs/1608.07416)
    """
    d1, d2 = _decisions(p1, p2, threshold)
    return float(np.mean(d1 != d2))


def good_churn(
    baseline: ArrayLike, candidate: ArrayLike, labels: ArrayLike, *, threshold: float = 0.5
) -> float:
    """Good churn: the share of examples the baseline gets wrong and the candidate right.

    `mean((d_b != d_c) & (d_c == y))` with `d = p > threshold`; divided by all `n` examples.

    Args:
        baseline: Binary predictions of the baseline replica, shape `(n,)` or `(n, 1)`.
        candidate: Binary predictions of the candidate replica, same shape.
        labels: Binary labels (0 or 1), shape `(n,)` or `(n, 1)`.
        threshold: Decision threshold.

    Returns:
        The good churn as a Python float in `[0, 1]`.

    Example:

    >>> good_churn([0.2, 0.6, 0.7, 0.4], [0.3, 0.4, 0.8, 0.6], [1, 0, 1, 0])
    0.25
    """
    return _breakdown(baseline, candidate, labels, threshold)[1]


def bad_churn(
    baseline: ArrayLike, candidate: ArrayLike, labels: ArrayLike, *, threshold: float = 0.5
) -> float:
    """Bad churn: the share of examples the baseline gets right and the candidate wrong.

    `mean((d_b != d_c) & (d_b == y))` with `d = p > threshold`; divided by all `n` examples.
    In a binary task `churn = good_churn + bad_churn`.

    Args:
        baseline: Binary predictions of the baseline replica, shape `(n,)` or `(n, 1)`.
        candidate: Binary predictions of the candidate replica, same shape.
        labels: Binary labels (0 or 1), shape `(n,)` or `(n, 1)`.
        threshold: Decision threshold.

    Returns:
        The bad churn as a Python float in `[0, 1]`.

    Example:

    >>> bad_churn([0.2, 0.6, 0.7, 0.4], [0.3, 0.4, 0.8, 0.6], [1, 0, 1, 0])
    0.25
    """
    return _breakdown(baseline, candidate, labels, threshold)[2]


def _ratio(good: float, bad: float) -> float:
    if bad > 0.0:
        return good / bad
    # No losses: every change is a win (inf), or nothing changed (1.0: wins equal losses).
    return float("inf") if good > 0.0 else 1.0


def win_loss_ratio(
    baseline: ArrayLike, candidate: ArrayLike, labels: ArrayLike, *, threshold: float = 0.5
) -> float:
    """Win/loss ratio: good churn over bad churn; above 1, the candidate's changes help.

    `good_churn / bad_churn`, `inf` when there are wins and no losses, 1.0 when nothing changed.

    Args:
        baseline: Binary predictions of the baseline replica, shape `(n,)` or `(n, 1)`.
        candidate: Binary predictions of the candidate replica, same shape.
        labels: Binary labels (0 or 1), shape `(n,)` or `(n, 1)`.
        threshold: Decision threshold.

    Returns:
        The ratio as a Python float in `[0, inf]`.

    Example:

    >>> win_loss_ratio([0.2, 0.6, 0.7], [0.8, 0.4, 0.8], [1, 0, 1])  # two wins, no loss
    inf
    """
    _, good, bad = _breakdown(baseline, candidate, labels, threshold)
    return _ratio(good, bad)


def churn_stats(
    baseline: ArrayLike, candidate: ArrayLike, labels: ArrayLike, *, threshold: float = 0.5
) -> ChurnStats:
    """Churn, good and bad churn and the win/loss ratio in one pass.

    Args:
        baseline: Binary predictions of the baseline replica, shape `(n,)` or `(n, 1)`.
        candidate: Binary predictions of the candidate replica, same shape.
        labels: Binary labels (0 or 1), shape `(n,)` or `(n, 1)`.
        threshold: Decision threshold.

    Returns:
        A `ChurnStats`.

    Example:

    >>> churn_stats([0.2, 0.6, 0.7, 0.4], [0.3, 0.4, 0.8, 0.6], [1, 0, 1, 0]).win_loss
    1.0
    """
    total, good, bad = _breakdown(baseline, candidate, labels, threshold)
    return ChurnStats(total, good, bad, _ratio(good, bad), float(threshold))


# ---- Rankings per group ----------------------------------------------------------------------


def _rankings(
    s1: ArrayLike, s2: ArrayLike, groups: ArrayLike | None, min_group_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ranks (0 = top) of every row in each replica's ranking of its group.

    Returns `(rank1, rank2, group_index, sizes, keep)`: `group_index` maps rows to dense group
    ids, `sizes` is the size of each group, `keep` marks the groups that are averaged.
    """
    a, b = validate_pair(s1, s2)
    if a.ndim != 1:
        raise ValueError(
            f"Ranking scores must have shape (n,) or (n, 1); received: shape {a.shape}"
        )
    if groups is None:
        g = np.zeros(a.size, dtype=np.int64)
    else:
        raw = np.asarray(groups)
        if raw.ndim >= 2 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.shape != a.shape:
            raise ValueError(
                f"`groups` must give one group id per row, shape {a.shape}; received: shape "
                f"{raw.shape}"
            )
        g = np.unique(raw, return_inverse=True)[1].reshape(-1)
    if (
        isinstance(min_group_size, bool)
        or not isinstance(min_group_size, int)
        or (min_group_size < 1)
    ):
        raise ValueError(
            f"Argument `min_group_size` must be an integer >= 1; received: {min_group_size!r}"
        )
    sizes = np.bincount(g)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ranks = []
    for scores in (a, b):
        # Sorted by group, then score descending; lexsort is stable, so ties keep row order.
        order = np.lexsort((-scores, g))
        rank = np.empty(a.size, dtype=np.int64)
        rank[order] = np.arange(a.size) - starts[g[order]]
        ranks.append(rank)
    keep = sizes >= min_group_size
    if not keep.any():
        raise ValueError(
            f"No group has at least min_group_size={min_group_size} rows; received: "
            f"{sizes.size} groups of at most {int(sizes.max())} rows"
        )
    return ranks[0], ranks[1], g, sizes, keep


def _check_depth(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Argument `{name}` must be an integer >= 1; received: {name}={value!r}")


def topk_overlap(
    scores1: ArrayLike,
    scores2: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    k: int = 10,
    min_group_size: int = 2,
) -> float:
    """Top-k overlap of two replicas' rankings, per group, averaged over groups.

    Within each group (e.g. the items of one user), each replica ranks the rows by score
    (descending; ties by row order). The overlap is `|top_k(1) & top_k(2)| / k_g` with
    `k_g = min(k, group size)`; the result is its mean over groups, each group weighing the same.

    Args:
        scores1: Scores of the first replica, shape `(n,)` or `(n, 1)`. NumPy array or tensor.
        scores2: Scores of the second replica on the same rows, same shape.
        groups: Group id of each row (any sortable values, e.g. user ids), shape `(n,)`; None
            ranks all rows as one group.
        k: Depth of the top lists.
        min_group_size: Groups with fewer rows are left out (a one-row ranking always agrees).

    Returns:
        The mean overlap as a Python float in `[0, 1]`.

    Example:

    >>> topk_overlap([0.9, 0.8, 0.1, 0.3], [0.9, 0.1, 0.8, 0.3], k=2)  # {0, 1} vs {0, 2}
    0.5
    """
    _check_depth(k, "k")
    r1, r2, g, sizes, keep = _rankings(scores1, scores2, groups, min_group_size)
    depth = np.minimum(k, sizes)
    shared = np.bincount(g, weights=np.maximum(r1, r2) < depth[g], minlength=sizes.size)
    return float(np.mean((shared / depth)[keep]))


def rank_biased_overlap(
    scores1: ArrayLike,
    scores2: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    p: float = 0.9,
    depth: int | None = None,
    min_group_size: int = 2,
) -> float:
    """Extrapolated rank-biased overlap (RBO) of two replicas' rankings, averaged over groups.

    Within each group, each replica ranks the rows by score (descending; ties by row order).
    With `A_d = |top_d(1) & top_d(2)| / d` the agreement at depth `d` and `k` the evaluation
    depth (`min(depth, group size)`), the extrapolated RBO of Webber et al. (2010, eq. 32) is

    `RBO_ext = A_k * p**k + (1 - p) / p * sum_{d=1..k} A_d * p**d`,

    which assumes the agreement seen at depth `k` continues below it. It is 1 for identical
    rankings and 0 for disjoint top-`k` lists; `p` sets how top-heavy it is (the top `d`
    ranks carry `1 - p**d` of the weight, before extrapolation). Where `k` is a whole group,
    both rankings hold the same rows, `A_k = 1`, and RBO compares the full orders.

    Args:
        scores1: Scores of the first replica, shape `(n,)` or `(n, 1)`. NumPy array or tensor.
        scores2: Scores of the second replica on the same rows, same shape.
        groups: Group id of each row (e.g. user ids), shape `(n,)`; None: one group.
        p: Persistence in (0, 1).
        depth: Evaluation depth (top-`depth` prefixes); None: whole groups.
        min_group_size: Groups with fewer rows are left out.

    Returns:
        The mean RBO over groups as a Python float in `[0, 1]`.

    Example:

    >>> round(rank_biased_overlap([3.0, 2.0, 1.0], [2.0, 3.0, 1.0], p=0.5), 6)  # abc, bac
    0.5

    Reference:
        [Webber et al., 2010](https://doi.org/10.1145/1852102.1852106)
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 < p < 1.0:
        raise ValueError(f"Argument `p` must be a number in (0, 1); received: p={p!r}")
    if depth is not None:
        _check_depth(depth, "depth")
    r1, r2, g, sizes, keep = _rankings(scores1, scores2, groups, min_group_size)
    k = sizes if depth is None else np.minimum(depth, sizes)
    # A row first belongs to both top-d lists at d = max(r1, r2) + 1 (ranks are 0-based), so
    # sum_d A_d p^d = sum over rows of H(k) - H(m), with H(j) = sum_{d<=j} p^d / d.
    m = np.maximum(r1, r2)
    d = np.arange(1, int(k.max()) + 1, dtype=np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(p**d / d)])
    inside = m < k[g]
    tail = np.where(inside, harmonic[k[g]] - harmonic[np.minimum(m, k[g])], 0.0)
    summed = np.bincount(g, weights=tail, minlength=sizes.size)
    overlap_k = np.bincount(g, weights=inside, minlength=sizes.size)
    kf = k.astype(np.float64)
    rbo = overlap_k / kf * p**kf + (1.0 - p) / p * summed
    return float(np.mean(rbo[keep]))
