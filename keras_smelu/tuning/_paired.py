"""Paired comparison of a trial with the ReLU reference: PD ratio and accuracy cost.

Pair `k` of every trial is trained with the same seeds as pair `k` of the reference (common
random numbers), so per-pair values move together across trials and the per-pair ratios and
differences are far less noisy than the values themselves. Every function here compares pair by
pair, on the pairs present in both (by pair id), and returns an `Interval`.

Interval method: a Student t interval over pairs, on log ratios for PD (so the estimate is the
geometric mean of the per-pair ratios) and on differences for accuracy. Fewer than `MIN_PAIRS`
pairs give an estimate without an interval, with the reason in `Interval.notes`.

Pure NumPy; SciPy is imported when a t quantile is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIRECTIONS = ("minimize", "maximize")

# Below 3 pairs a t interval has 1 degree of freedom or none: too wide or undefined to act on.
MIN_PAIRS = 3

# A pair's PD below `pd_floor * scale` (scale: median positive PD of the compared pairs) is
# raised to that floor, so a PD of 0 counts as a large but finite reduction (at most 100x).
DEFAULT_PD_FLOOR = 0.01

PD_METHOD = "t interval on per-pair log PD ratios"
ACCURACY_METHOD = "t interval on per-pair accuracy differences"


@dataclass(frozen=True)
class Interval:
    """A paired estimate against the reference with its confidence interval.

    Args:
        estimate: The point estimate (PD: geometric mean ratio; accuracy: mean cost), or `None`
            when no pair could be compared.
        low: Lower confidence bound, or `None` when there is no interval.
        high: Upper confidence bound, or `None` when there is no interval.
        n: Number of pairs compared.
        level: Confidence level of the interval, e.g. `0.9`.
        method: How the interval was computed.
        pairs: The pair ids compared (present in both trial and reference), sorted.
        notes: Short explanations: why there is no interval, which pairs had a floored PD, which
            pairs were only on one side.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    level: float
    method: str
    pairs: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def has_interval(self) -> bool:
        """Whether both bounds exist (at least `MIN_PAIRS` pairs were compared)."""
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "level": self.level,
            "method": self.method,
            "pairs": list(self.pairs),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interval:
        """Rebuild an `Interval` from `to_dict`'s output."""
        return cls(
            estimate=data["estimate"],
            low=data["low"],
            high=data["high"],
            n=int(data["n"]),
            level=float(data["level"]),
            method=str(data["method"]),
            pairs=tuple(int(p) for p in data.get("pairs", ())),
            notes=tuple(str(s) for s in data.get("notes", ())),
        )

    def format(self, digits: int = 4) -> str:
        """Short text such as `0.62 [0.55, 0.70]`, or `0.62 (no interval, 2 pairs)`."""
        if self.estimate is None:
            return "undefined (no pairs)"
        text = f"{self.estimate:.{digits}g}"
        if not self.has_interval:
            return f"{text} (no interval, {self.n} pairs)"
        return f"{text} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def check_level(level: float) -> float:
    """Validate a confidence level in (0, 1) and return it as a float."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(
            "level must be a confidence level strictly between 0 and 1, for example 0.9; "
            f"received: {level!r}"
        )
    return float(level)


def check_direction(direction: str) -> str:
    """Validate an accuracy direction (`"minimize"` or `"maximize"`) and return it."""
    if direction not in DIRECTIONS:
        raise ValueError(
            "direction must be 'minimize' (for a loss) or 'maximize' (for AUC, accuracy); "
            f"received: {direction!r}"
        )
    return direction


def as_pair_map(values: object, name: str, *, nonnegative: bool = False) -> dict[int, float]:
    """Per-pair values as `{pair id: float}`.

    Args:
        values: A mapping `{pair id: value}`, or a 1-D sequence whose position is the pair id.
        name: The argument's name, for error messages.
        nonnegative: Reject negative values (PD is never negative).

    Returns:
        A new dict with int keys and finite float values.
    """
    if isinstance(values, Mapping):
        items = list(values.items())
    else:
        array = np.asarray(values, dtype=float)
        if array.ndim != 1:
            raise ValueError(
                f"{name} must be a mapping {{pair id: value}} or a 1-D sequence of per-pair "
                f"values; received an array of shape {array.shape}"
            )
        items = list(enumerate(array.tolist()))
    out: dict[int, float] = {}
    for key, value in items:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise ValueError(f"{name} must be keyed by integer pair ids; received key: {key!r}")
        number = float(value)
        if not math.isfinite(number) or (nonnegative and number < 0.0):
            kind = "non-negative finite numbers" if nonnegative else "finite numbers"
            raise ValueError(
                f"{name} must hold {kind} per pair; received: {value!r} for pair {int(key)}"
            )
        out[int(key)] = number
    return out


def _t_quantile(level: float, df: int) -> float:
    try:
        from scipy import stats
    except ImportError as exc:  # pragma: no cover - scipy comes with the tuning extra
        raise ImportError(
            'Confidence intervals need SciPy: pip install "keras-smelu[tuning]"'
        ) from exc
    return float(stats.t.ppf(0.5 + level / 2.0, df))


def _common_pairs(*maps: Mapping[int, float]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Pair ids present in every map, and a note on the ones left out."""
    common = set(maps[0]).intersection(*maps[1:])
    left_out = set().union(*maps) - common
    notes = ()
    if left_out:
        notes = (f"pairs {_ids(left_out)} are not in both the trial and the reference: ignored",)
    return tuple(sorted(common)), notes


def _ids(ids: object) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _t_interval(
    values: np.ndarray, level: float, method: str, pairs: tuple[int, ...], notes: tuple[str, ...]
) -> Interval:
    """Mean of `values` with a t interval, or without one below `MIN_PAIRS` values."""
    n = int(values.size)
    if n == 0:
        return Interval(None, None, None, 0, level, method, pairs, notes + ("no pair in common",))
    mean = float(np.mean(values))
    if n < MIN_PAIRS:
        reason = f"only {n} pair(s) in common; an interval needs at least {MIN_PAIRS}"
        return Interval(mean, None, None, n, level, method, pairs, notes + (reason,))
    half = _t_quantile(level, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level, method, pairs, notes)


def paired_pd_ratio(
    trial_pd: object,
    reference_pd: object,
    level: float = 0.9,
    *,
    pd_floor: float = DEFAULT_PD_FLOOR,
) -> Interval:
    """PD ratio of a trial to the reference: geometric mean of per-pair ratios, with interval.

    `d_k = log(max(pd_k, f)) - log(max(ref_k, f))`, `ratio = exp(mean(d))`,
    interval `exp(mean(d) -+ t_{(1+level)/2, n-1} * sd(d) / sqrt(n))`, where
    `f = pd_floor * median(positive PD of the compared pairs, trial and reference)`.
    A pair where both PDs are 0 thus has ratio 1; one where only the trial's is 0 has ratio
    `f / ref_k`. Floored pairs are named in `notes`. When no compared PD is positive (every
    replica identical to its partner on both sides), every ratio is 1.

    Args:
        trial_pd: Per-pair PD of the trial: `{pair id: PD}` or a sequence indexed by pair id.
        reference_pd: Per-pair PD of the reference (ReLU), same form.
        level: Confidence level, default 0.9.
        pd_floor: Floor relative to the PD scale, in (0, 1].

    Returns:
        An `Interval` of the ratio (1 means no change; below 1, less PD than the reference).

    Example:

    >>> r = paired_pd_ratio([0.05, 0.06, 0.04], [0.1, 0.11, 0.09])
    >>> round(r.estimate, 3), r.high < 1
    (0.495, True)
    """
    level = check_level(level)
    if isinstance(pd_floor, bool) or not isinstance(pd_floor, (int, float)):
        raise ValueError(f"pd_floor must be a number in (0, 1]; received: {pd_floor!r}")
    if not 0.0 < pd_floor <= 1.0:
        raise ValueError(f"pd_floor must be a number in (0, 1]; received: {pd_floor!r}")
    trial = as_pair_map(trial_pd, "trial_pd", nonnegative=True)
    reference = as_pair_map(reference_pd, "reference_pd", nonnegative=True)
    pairs, notes = _common_pairs(trial, reference)
    t = np.array([trial[k] for k in pairs], dtype=float)
    r = np.array([reference[k] for k in pairs], dtype=float)
    positive = np.concatenate([t[t > 0], r[r > 0]])
    if positive.size == 0:
        if pairs:
            notes += ("PD is 0 in every compared pair of both trial and reference: ratio 1",)
        log_ratio = np.zeros(len(pairs))
    else:
        floor = pd_floor * float(np.median(positive))
        low_pairs = [k for k, a, b in zip(pairs, t, r, strict=True) if a < floor or b < floor]
        if low_pairs:
            notes += (f"PD raised to the floor {floor:.3g} in pairs {_ids(low_pairs)}",)
        log_ratio = np.log(np.maximum(t, floor)) - np.log(np.maximum(r, floor))
    log_interval = _t_interval(log_ratio, level, PD_METHOD, pairs, notes)
    return _map_interval(log_interval, math.exp)


def _map_interval(interval: Interval, fn) -> Interval:
    def apply(x: float | None) -> float | None:
        return None if x is None else float(fn(x))

    return Interval(
        apply(interval.estimate),
        apply(interval.low),
        apply(interval.high),
        interval.n,
        interval.level,
        interval.method,
        interval.pairs,
        interval.notes,
    )


def paired_accuracy_cost(
    trial_acc_a: object,
    trial_acc_b: object,
    ref_acc_a: object,
    ref_acc_b: object,
    direction: str,
    level: float = 0.9,
) -> Interval:
    """Accuracy cost of a trial against the reference: mean per-pair difference, with interval.

    `c_k = s * ((a_k + b_k) / 2 - (ra_k + rb_k) / 2)` with `s = +1` for a minimized metric and
    `-1` for a maximized one, so a positive cost is worse than the reference.
    `cost = mean(c)`, interval `mean(c) -+ t_{(1+level)/2, n-1} * sd(c) / sqrt(n)`.

    Args:
        trial_acc_a: Metric of the trial's replica a per pair (`{pair id: value}` or sequence).
        trial_acc_b: Metric of the trial's replica b per pair.
        ref_acc_a: Metric of the reference's replica a per pair.
        ref_acc_b: Metric of the reference's replica b per pair.
        direction: `"minimize"` (a loss) or `"maximize"` (e.g. AUC).
        level: Confidence level, default 0.9.

    Returns:
        An `Interval` of the cost in the metric's units (positive: worse than the reference).

    Example:

    >>> c = paired_accuracy_cost([0.51, 0.52, 0.50], [0.51, 0.50, 0.52],
    ...                          [0.50, 0.51, 0.49], [0.50, 0.49, 0.51], "minimize")
    >>> round(c.estimate, 4)
    0.01
    """
    level = check_level(level)
    sign = 1.0 if check_direction(direction) == "minimize" else -1.0
    maps = [
        as_pair_map(v, name)
        for v, name in (
            (trial_acc_a, "trial_acc_a"),
            (trial_acc_b, "trial_acc_b"),
            (ref_acc_a, "ref_acc_a"),
            (ref_acc_b, "ref_acc_b"),
        )
    ]
    pairs, notes = _common_pairs(*maps)
    ta, tb, ra, rb = (np.array([m[k] for k in pairs], dtype=float) for m in maps)
    cost = sign * ((ta + tb) / 2.0 - (ra + rb) / 2.0)
    return _t_interval(cost, level, ACCURACY_METHOD, pairs, notes)


@dataclass(frozen=True)
class TrialPairs:
    """Per-pair measurements of one trial (or the reference) at one epoch.

    Args:
        pd: `{pair id: PD of the pair}` (one PD kind).
        accuracy: `{pair id: (metric of replica a, metric of replica b)}`, same pair ids.

    Example:

    >>> p = TrialPairs.from_arrays([0.1, 0.12, 0.09], [0.5, 0.51, 0.49], [0.5, 0.5, 0.5])
    >>> p.pair_ids
    (0, 1, 2)
    """

    pd: Mapping[int, float]
    accuracy: Mapping[int, tuple[float, float]]

    def __post_init__(self) -> None:
        pd = as_pair_map(self.pd, "pd", nonnegative=True)
        if not isinstance(self.accuracy, Mapping):
            raise ValueError(
                "accuracy must be a mapping {pair id: (replica a, replica b)}; "
                f"received: {type(self.accuracy).__name__}"
            )
        a, b = {}, {}
        for key, value in self.accuracy.items():
            if np.ndim(value) != 1 or len(value) != 2:
                raise ValueError(
                    "accuracy must map each pair id to the two replicas' metric values; "
                    f"received: {value!r} for pair {key!r}"
                )
            a[key], b[key] = value
        a, b = as_pair_map(a, "accuracy"), as_pair_map(b, "accuracy")
        if set(pd) != set(a):
            raise ValueError(
                "pd and accuracy must cover the same pair ids; "
                f"received: pd pairs {sorted(pd)} and accuracy pairs {sorted(a)}"
            )
        object.__setattr__(self, "pd", pd)
        object.__setattr__(self, "accuracy", {k: (a[k], b[k]) for k in a})

    @classmethod
    def from_arrays(
        cls,
        pd: Sequence[float],
        accuracy_a: Sequence[float],
        accuracy_b: Sequence[float],
        pair_ids: Sequence[int] | None = None,
    ) -> TrialPairs:
        """Build from aligned per-pair arrays (pair ids default to positions 0..n-1)."""
        pd, accuracy_a, accuracy_b = (
            np.asarray(x, dtype=float) for x in (pd, accuracy_a, accuracy_b)
        )
        ids = range(len(pd)) if pair_ids is None else [int(i) for i in pair_ids]
        if not len(pd) == len(accuracy_a) == len(accuracy_b) == len(ids):
            raise ValueError(
                "pd, accuracy_a, accuracy_b and pair_ids must have one value per pair; received "
                f"{len(pd)=}, {len(accuracy_a)=}, {len(accuracy_b)=}, {len(ids)=}"
            )
        if len(set(ids)) != len(ids):
            raise ValueError(f"pair_ids must be distinct; received: {list(ids)}")
        return cls(
            dict(zip(ids, pd.tolist(), strict=True)),
            {
                k: (a, b)
                for k, a, b in zip(ids, accuracy_a.tolist(), accuracy_b.tolist(), strict=True)
            },
        )

    @property
    def pair_ids(self) -> tuple[int, ...]:
        """The pair ids, sorted."""
        return tuple(sorted(self.pd))


@dataclass(frozen=True)
class Comparison:
    """A trial against the reference at one epoch: PD ratio and accuracy cost.

    Args:
        pd_ratio: `paired_pd_ratio` of the trial to the reference.
        accuracy_cost: `paired_accuracy_cost` (positive: worse than the reference).
        reference_accuracy: Mean of the reference's replica metrics over the compared pairs
            (the base of a relative budget), or `None` without common pairs.
    """

    pd_ratio: Interval
    accuracy_cost: Interval
    reference_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return {
            "pd_ratio": self.pd_ratio.to_dict(),
            "accuracy_cost": self.accuracy_cost.to_dict(),
            "reference_accuracy": self.reference_accuracy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Rebuild a `Comparison` from `to_dict`'s output."""
        return cls(
            Interval.from_dict(data["pd_ratio"]),
            Interval.from_dict(data["accuracy_cost"]),
            data["reference_accuracy"],
        )


def compare(
    trial: TrialPairs,
    reference: TrialPairs,
    direction: str,
    level: float = 0.9,
    *,
    pd_floor: float = DEFAULT_PD_FLOOR,
) -> Comparison:
    """Compare a trial with the reference pair by pair (see `paired_pd_ratio`,
    `paired_accuracy_cost`).

    Args:
        trial: The trial's per-pair measurements.
        reference: The reference's (ReLU's) per-pair measurements at the same epoch.
        direction: `"minimize"` or `"maximize"` for the accuracy metric.
        level: Confidence level, default 0.9.
        pd_floor: See `paired_pd_ratio`.

    Returns:
        A `Comparison`.
    """
    for value, name in ((trial, "trial"), (reference, "reference")):
        if not isinstance(value, TrialPairs):
            raise ValueError(f"{name} must be a TrialPairs; received: {type(value).__name__}")
    ratio = paired_pd_ratio(trial.pd, reference.pd, level, pd_floor=pd_floor)
    acc = trial.accuracy
    ref = reference.accuracy
    cost = paired_accuracy_cost(
        {k: v[0] for k, v in acc.items()},
        {k: v[1] for k, v in acc.items()},
        {k: v[0] for k, v in ref.items()},
        {k: v[1] for k, v in ref.items()},
        direction,
        level,
    )
    common = cost.pairs
    ref_mean = float(np.mean([sum(ref[k]) / 2.0 for k in common])) if common else None
    return Comparison(ratio, cost, ref_mean)
