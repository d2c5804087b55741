"""Pareto frontier, 2-D hypervolume, knee point and the recommended trade-off.

Pure NumPy functions on an `(n, k)` array of objective values. Every function first normalises
the objectives to "lower is better" (a maximised objective is negated), as
`optuna/study/_multi_objective.py` does, and then works on plain arrays.

Objectives are ordered `(accuracy objective, PD)` everywhere in keras-smelu; PD is minimised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIRECTIONS = ("minimize", "maximize")

# Rows per block in the k > 2 pairwise comparison, to bound memory at `_BLOCK * n * k` booleans.
_BLOCK = 256


def _as_values(values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 0)
    if array.ndim != 2:
        raise ValueError(
            f"values must be a 2-D array of shape (n_points, n_objectives); got {array.shape=}"
        )
    return array


def normalize(values: object, directions: Sequence[str]) -> np.ndarray:
    """Return a float copy of `values` (n, k) with every objective turned into lower-is-better.

    Args:
        values: Objective values, one row per point.
        directions: One of `"minimize"` / `"maximize"` per column.

    Returns:
        An `(n, k)` float array; maximised columns are negated.
    """
    array = _as_values(values)
    directions = tuple(directions)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"directions must be 'minimize' or 'maximize'; got {bad!r}")
    if array.shape[0] and array.shape[1] != len(directions):
        raise ValueError(
            "values and directions disagree on the number of objectives: "
            f"{array.shape[1]=} and {len(directions)=}"
        )
    if array.shape[0] == 0:
        return np.zeros((0, len(directions)))
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return array * signs


def _mask_2d(loss: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a NaN-free (n, 2) lower-is-better array: sort, then cumulative min.

    After sorting by (first, second), a row can only be dominated by an earlier row. It is
    non-dominated when it has the smallest second value within its group of equal first values
    (equal rows are duplicates, which do not dominate each other), and that value is strictly
    below the best second value of every earlier group.
    """
    n = loss.shape[0]
    order = np.lexsort((loss[:, 1], loss[:, 0]))
    first, second = loss[order, 0], loss[order, 1]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = first[1:] != first[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    best_second = np.minimum.accumulate(second)
    # Best second value over all groups before this row's group (undefined for the first group).
    before = np.concatenate(([np.inf], best_second[:-1]))[group_start]
    on_front_sorted = (second == second[group_start]) & ((group_start == 0) | (second < before))
    mask = np.empty(n, dtype=bool)
    mask[order] = on_front_sorted
    return mask


def _mask_nd(loss: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a NaN-free (n, k) lower-is-better array by pairwise comparison."""
    n = loss.shape[0]
    dominated = np.zeros(n, dtype=bool)
    for start in range(0, n, _BLOCK):
        block = loss[start : start + _BLOCK]  # candidates i
        # no_worse[i, j]: point j is <= point i in every objective; better: < in at least one.
        no_worse = np.all(loss[None, :, :] <= block[:, None, :], axis=2)
        better = np.any(loss[None, :, :] < block[:, None, :], axis=2)
        dominated[start : start + len(block)] = np.any(no_worse & better, axis=1)
    return ~dominated


def pareto_mask(values: object, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values`.

    A point is dominated when another point is no worse in every objective and strictly better
    in at least one. Exact duplicates of a non-dominated point are all kept (they do not dominate
    each other), which matches Optuna's `study.best_trials`. Rows holding a NaN are never on the
    front and dominate nothing. Infinite values compare as usual.

    Args:
        values: `(n, k)` objective values.
        directions: `"minimize"` or `"maximize"` for each of the `k` objectives.

    Returns:
        A boolean array of length `n`.
    """
    loss = normalize(values, directions)
    n = loss.shape[0]
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    valid = ~np.isnan(loss).any(axis=1)
    if not valid.any():
        return mask
    finite_loss = loss[valid]
    if finite_loss.shape[1] == 2:
        mask[valid] = _mask_2d(finite_loss)
    else:
        mask[valid] = _mask_nd(finite_loss)
    return mask


def pareto_front_indices(values: object, directions: Sequence[str]) -> np.ndarray:
    """Indices of the non-dominated rows of `values`, in increasing order (see `pareto_mask`)."""
    return np.flatnonzero(pareto_mask(values, directions))


def hypervolume_2d(points: object, reference: Sequence[float], directions: Sequence[str]) -> float:
    """Area dominated by `points` and bounded by `reference`, for two objectives.

    After normalising to lower-is-better, the area is that of the union of the boxes
    `[p, reference]` over every point `p`. Points that do not strictly improve on the reference
    in both objectives, and rows with a NaN, add nothing.

    Args:
        points: `(n, 2)` objective values.
        reference: The reference point, in the same (unnormalised) units as `points`.
        directions: `"minimize"` or `"maximize"` per objective.

    Returns:
        The dominated area (0.0 when no point improves on the reference).
    """
    directions = tuple(directions)
    if len(directions) != 2:
        raise ValueError(f"hypervolume_2d needs two objectives; got {len(directions)=}")
    ref = normalize(np.asarray(reference, dtype=float).reshape(1, -1), directions)[0]
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"reference must be two finite numbers; got {reference!r}")
    loss = normalize(points, directions)
    loss = loss[~np.isnan(loss).any(axis=1)]
    loss = loss[(loss[:, 0] < ref[0]) & (loss[:, 1] < ref[1])]
    if loss.shape[0] == 0:
        return 0.0
    front = loss[_mask_2d(loss)]
    front = front[np.lexsort((front[:, 1], front[:, 0]))]
    # Along the front the first objective rises while the second falls: sum vertical strips.
    right_edges = np.append(front[1:, 0], ref[0])
    return float(np.sum((right_edges - front[:, 0]) * (ref[1] - front[:, 1])))


def knee_point(front_values: object, directions: Sequence[str]) -> int:
    """Index of the knee of a two-objective front: the point farthest from its extremes' chord.

    Method: keep the non-dominated, NaN-free rows of `front_values` (all of them when it is
    already a front); normalise to lower-is-better; min-max scale each objective over those rows
    to [0, 1] (a constant objective scales to 0); draw the line through the two extremes (the best
    point in the first objective and the best point in the second); return the point with the
    largest perpendicular distance to that line. This is the point where improving one objective
    starts to cost the most in the other. Ties (for example a front of one or two points, or a
    straight front) go to the point with the smallest sum of scaled objectives, then to the lowest
    index.

    Args:
        front_values: `(n, 2)` objective values; dominated and NaN rows are ignored.
        directions: `"minimize"` or `"maximize"` per objective.

    Returns:
        An index into `front_values`.

    Raises:
        ValueError: if there are not two objectives or no row is free of NaN.
    """
    directions = tuple(directions)
    if len(directions) != 2:
        raise ValueError(f"knee_point needs two objectives; got {len(directions)=}")
    loss = normalize(front_values, directions)
    candidates = pareto_front_indices(front_values, directions)
    if candidates.size == 0:
        raise ValueError("knee_point needs at least one point without NaN")
    front = loss[candidates]
    if not np.all(np.isfinite(front)):
        raise ValueError("knee_point needs finite objective values on the front")
    low, high = front.min(axis=0), front.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (front - low) / span
    a = scaled[np.lexsort((scaled[:, 1], scaled[:, 0]))[0]]  # best in the first objective
    b = scaled[np.lexsort((scaled[:, 0], scaled[:, 1]))[0]]  # best in the second objective
    chord = b - a
    length = float(np.hypot(chord[0], chord[1]))
    if length == 0.0:
        distance = np.zeros(len(scaled))
    else:
        rel = scaled - a
        distance = np.abs(chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) / length
    # lexsort: last key is primary -> largest distance, then smallest sum, then lowest index.
    best = np.lexsort((candidates, scaled.sum(axis=1), -np.round(distance, 12)))[0]
    return int(candidates[best])


def recommend(
    points: object,
    reference_point: Sequence[float] | None,
    directions: Sequence[str],
    *,
    tolerance: float = 0.0,
) -> int | None:
    """Index of the recommended trade-off among `points` (accuracy objective, PD).

    The rule: among the points whose accuracy objective is no worse than the reference's (ReLU)
    by more than `tolerance`, take the one with the lowest PD (ties: the better accuracy, then the
    lowest index). When no point qualifies, take the knee (`knee_point`) of the points the
    reference does not dominate (of all points when it dominates every one, or without a
    reference).

    Args:
        points: `(n, 2)` values `(accuracy objective, PD)` of the candidates (normally the smooth
            trials, not the reference itself). Rows with a NaN are skipped.
        reference_point: The reference's `(accuracy objective, PD)`, or `None`.
        directions: Directions of the two objectives.
        tolerance: Allowed loss on the accuracy objective relative to the reference, in its
            units (0 by default: no worse at all).

    Returns:
        An index into `points`, or `None` when no row is free of NaN.
    """
    directions = tuple(directions)
    if len(directions) != 2:
        raise ValueError(f"recommend needs two objectives; got {len(directions)=}")
    if not tolerance >= 0.0:
        raise ValueError(f"tolerance must be a non-negative number; got {tolerance=}")
    loss = normalize(points, directions)
    valid = ~np.isnan(loss).any(axis=1)
    if not valid.any():
        return None
    if reference_point is not None:
        ref = normalize(np.asarray(reference_point, dtype=float).reshape(1, -1), directions)[0]
        if not np.isnan(ref[0]):
            ok = np.flatnonzero(valid & (loss[:, 0] <= ref[0] + tolerance))
            if ok.size:
                best = np.lexsort((ok, loss[ok, 0], loss[ok, 1]))[0]
                return int(ok[best])
            # Points the reference dominates are worse on both objectives: never the knee
            # while any other point remains.
            dominated = np.all(loss >= ref, axis=1) & np.any(loss > ref, axis=1)
            keep = np.flatnonzero(valid & ~dominated)
            if keep.size:
                return int(keep[knee_point(np.asarray(points, dtype=float)[keep], directions)])
    return knee_point(points, directions)
