"""The decision rule (which width to recommend, with confidence) and the pruning rule.

Both work on the paired comparisons of `_paired`: per candidate, a PD ratio to ReLU and an
accuracy cost (positive: worse than ReLU), each with a confidence interval.

- `decide`: the recommended candidate is the one with the lowest PD ratio among those whose
  cost's upper bound is within the budget and whose PD ratio's upper bound is below 1; without
  one, keep ReLU and say why, naming the closest candidates.
- `should_prune`: stop a running trial once a completed trial is better in both objectives
  beyond both intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keras_smelu.tuning._paired import (
    DEFAULT_PD_FLOOR,
    MIN_PAIRS,
    Comparison,
    Interval,
    TrialPairs,
    check_direction,
    check_level,
    compare,
)

_BUDGET_FORMS = "budget must be a number or a percentage like '0.5%'"

# How many failing candidates the summary names.
_CLOSEST = 3


@dataclass(frozen=True)
class Budget:
    """The accuracy one can give up for less PD, in the metric's units or relative to ReLU.

    Args:
        value: An absolute cost (e.g. `0.002` of log loss), or a fraction of the reference's
            metric value when `relative` (`0.005` for `"0.5%"`).
        relative: Whether `value` is a fraction of the reference's value.
    """

    value: float = 0.0
    relative: bool = False

    def absolute(self, reference_accuracy: float | None) -> float | None:
        """The budget in the metric's units: `value`, or `value * |reference_accuracy|`."""
        if not self.relative:
            return self.value
        if reference_accuracy is None:
            return None
        return self.value * abs(reference_accuracy)

    def describe(self) -> str:
        """Text such as `0.002` or `0.5% of ReLU's value`."""
        if self.relative:
            return f"{self.value * 100:g}% of ReLU's value"
        return "no worse than ReLU" if self.value == 0 else f"{self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return {"value": self.value, "relative": self.relative}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """Rebuild a `Budget` from `to_dict`'s output."""
        return cls(float(data["value"]), bool(data["relative"]))


def parse_budget(value: object = None) -> Budget:
    """Parse `max_accuracy_cost`: a number (absolute), a percentage string, or `None`.

    `None` means no worse than ReLU (`Budget(0.0)`); `0.002` or `"0.002"` is an absolute cost in
    the metric's units; `"0.5%"` is 0.5% of ReLU's value of the metric (`|mean reference
    metric| * 0.005`).

    Args:
        value: The budget as the user wrote it (a `Budget` is returned unchanged).

    Returns:
        A `Budget`.

    Example:

    >>> parse_budget("0.5%")
    Budget(value=0.005, relative=True)
    """
    if value is None:
        return Budget()
    if isinstance(value, Budget):
        return value
    relative = False
    if isinstance(value, str):
        text = value.strip()
        relative = text.endswith("%")
        try:
            number = float(text[:-1] if relative else text)
        except ValueError:
            raise ValueError(f"{_BUDGET_FORMS}; received: {value!r}") from None
        if relative:
            number /= 100.0
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"{_BUDGET_FORMS}; received: {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(
            "budget must be a finite, non-negative accuracy cost (0 means no worse than ReLU); "
            f"received: {value!r}"
        )
    return Budget(number, relative)


@dataclass(frozen=True)
class Assessment:
    """One candidate judged against the budget.

    Args:
        name: The candidate's name (e.g. `"smelu:0.5"`).
        comparison: Its paired comparison with ReLU.
        budget: The absolute budget applied (`None` when a relative budget had no base).
        qualifies: Cost upper bound within the budget and PD ratio upper bound below 1.
        unresolved: Neither qualifies nor clearly fails: an interval straddles the budget or
            the ratio-1 line, or there are too few pairs for an interval. More pairs can decide.
        reason: Short words on why it qualifies or fails.
    """

    name: str
    comparison: Comparison
    budget: float | None
    qualifies: bool
    unresolved: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return {
            "name": self.name,
            "comparison": self.comparison.to_dict(),
            "budget": self.budget,
            "qualifies": self.qualifies,
            "unresolved": self.unresolved,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        """Rebuild an `Assessment` from `to_dict`'s output."""
        return cls(
            str(data["name"]),
            Comparison.from_dict(data["comparison"]),
            data["budget"],
            bool(data["qualifies"]),
            bool(data["unresolved"]),
            str(data["reason"]),
        )


@dataclass(frozen=True)
class Decision:
    """The recommendation, in words and as data.

    Args:
        recommended: Name of the recommended candidate, or `None` (keep ReLU).
        summary: One sentence saying what to do and why.
        reasons: One short string per candidate (`"name: why"`), the recommended one first,
            then the closest to qualifying.
        unresolved: Names of the candidates more pairs could decide (see `Assessment`).
        candidates: Every candidate's `Assessment`, in the order of `reasons`.
        budget: The budget as given.
        direction: The accuracy metric's direction.
        level: Confidence level of the intervals.
    """

    recommended: str | None
    summary: str
    reasons: tuple[str, ...]
    unresolved: tuple[str, ...]
    candidates: tuple[Assessment, ...]
    budget: Budget
    direction: str
    level: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return {
            "recommended": self.recommended,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "unresolved": list(self.unresolved),
            "candidates": [c.to_dict() for c in self.candidates],
            "budget": self.budget.to_dict(),
            "direction": self.direction,
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a `Decision` from `to_dict`'s output."""
        return cls(
            data["recommended"],
            str(data["summary"]),
            tuple(str(r) for r in data["reasons"]),
            tuple(str(u) for u in data["unresolved"]),
            tuple(Assessment.from_dict(c) for c in data["candidates"]),
            Budget.from_dict(data["budget"]),
            check_direction(data["direction"]),
            float(data["level"]),
        )


def _pd_words(ratio: Interval) -> tuple[bool, bool, str]:
    """(significant, clearly no reduction, words) for a PD ratio interval."""
    text = f"PD ratio {ratio.format(3)}"
    if ratio.high < 1.0:
        return True, False, f"{text} below 1"
    if ratio.low >= 1.0:
        return False, True, f"no PD reduction: {text}"
    return False, False, f"PD reduction not significant: {text} includes 1"


def _cost_words(cost: Interval, budget: float) -> tuple[bool, bool, str]:
    """(within budget, clearly over, words) for an accuracy cost interval."""
    text = f"accuracy cost {cost.format(3)}"
    if cost.high <= budget:
        return True, False, f"{text} within the budget {budget:.3g}"
    if cost.low > budget:
        return False, True, f"over budget: {text} above {budget:.3g}"
    return False, False, f"may exceed the budget: {text} straddles {budget:.3g}"


def assess(name: str, comparison: Comparison, budget: Budget) -> Assessment:
    """Judge one candidate's comparison with ReLU against `budget` (see `decide`)."""
    ratio, cost = comparison.pd_ratio, comparison.accuracy_cost
    limit = budget.absolute(comparison.reference_accuracy)
    if limit is None or not (ratio.has_interval and cost.has_interval):
        n = min(ratio.n, cost.n)
        why = "no pair in common with ReLU" if n == 0 else f"only {n} pair(s) in common with ReLU"
        reason = f"{why}; no interval (needs at least {MIN_PAIRS})"
        return Assessment(name, comparison, limit, False, True, reason)
    significant, no_reduction, pd_text = _pd_words(ratio)
    within, over, cost_text = _cost_words(cost, limit)
    qualifies = significant and within
    if qualifies:
        reason = f"{pd_text}; {cost_text}"
    else:
        reason = "; ".join(t for ok, t in ((significant, pd_text), (within, cost_text)) if not ok)
    unresolved = not qualifies and not (no_reduction or over)
    return Assessment(name, comparison, limit, qualifies, unresolved, reason)


def _closeness(a: Assessment) -> tuple:
    """Sort key for failing candidates: unresolved first, fewest failed criteria, lowest PD."""
    ratio, cost = a.comparison.pd_ratio, a.comparison.accuracy_cost
    failed = 2
    if ratio.has_interval and cost.has_interval and a.budget is not None:
        failed = int(not ratio.high < 1.0) + int(not cost.high <= a.budget)
    estimate = ratio.estimate if ratio.estimate is not None else math.inf
    return (not a.unresolved, failed, estimate, a.name)


def decide(
    candidates: Mapping[str, TrialPairs],
    reference: TrialPairs,
    budget: object = None,
    level: float = 0.9,
    *,
    direction: str,
    pd_floor: float = DEFAULT_PD_FLOOR,
) -> Decision:
    """Recommend the candidate with the lowest PD that reduces PD significantly within budget.

    A candidate qualifies when `high(cost) <= budget` and `high(PD ratio) < 1`, both bounds of
    `level` intervals over the pairs it shares with the reference. Among qualifying candidates
    the lowest PD ratio estimate wins (ties: lower cost, then name). Without one, the decision
    keeps ReLU and names the closest candidates and why each fails.

    Args:
        candidates: `{name: TrialPairs}` of the points to choose from (not the reference).
        reference: The ReLU reference's `TrialPairs`, measured at the same epoch rule.
        budget: `max_accuracy_cost`: `None` (no worse than ReLU), an absolute number, a
            percentage string like `"0.5%"`, or a `Budget`.
        level: Confidence level of the intervals, default 0.9.
        direction: `"minimize"` (loss) or `"maximize"` (AUC) for the accuracy metric.
        pd_floor: See `paired_pd_ratio`.

    Returns:
        A `Decision`.

    Example:

    >>> ref = TrialPairs.from_arrays([0.10, 0.12, 0.09, 0.11], [0.50] * 4, [0.50] * 4)
    >>> smooth = TrialPairs.from_arrays([0.05, 0.07, 0.05, 0.06], [0.50] * 4, [0.50] * 4)
    >>> decide({"smelu:1": smooth}, ref, "0.5%", direction="minimize").recommended
    'smelu:1'
    """
    level = check_level(level)
    check_direction(direction)
    budget = parse_budget(budget)
    if not isinstance(candidates, Mapping):
        raise ValueError(
            f"candidates must be a mapping {{name: TrialPairs}}; received: {type(candidates)}"
        )
    assessments = []
    for name, pairs in candidates.items():
        if not isinstance(name, str):
            raise ValueError(f"candidates must be keyed by names (str); received key: {name!r}")
        comparison = compare(pairs, reference, direction, level, pd_floor=pd_floor)
        assessments.append(assess(name, comparison, budget))
    qualified = sorted(
        (a for a in assessments if a.qualifies),
        key=lambda a: (a.comparison.pd_ratio.estimate, a.comparison.accuracy_cost.estimate, a.name),
    )
    failing = sorted((a for a in assessments if not a.qualifies), key=_closeness)
    ordered = tuple(qualified + failing)
    unresolved = tuple(a.name for a in ordered if a.unresolved)
    reasons = tuple(f"{a.name}: {a.reason}" for a in ordered)
    if qualified:
        best = qualified[0]
        n = best.comparison.pd_ratio.n
        summary = (
            f"recommend {best.name}: it reduces PD significantly within the budget "
            f"({budget.describe()}): {best.reason} ({level:.0%} intervals over {n} pairs)"
        )
        recommended = best.name
    elif not assessments:
        summary = "no candidates to compare; keep ReLU"
        recommended = None
    else:
        closest = ", ".join(f"{a.name} ({a.reason})" for a in failing[:_CLOSEST])
        summary = (
            f"no width reduces PD significantly within the budget ({budget.describe()}); "
            f"the closest candidates are {closest}; keep ReLU"
        )
        recommended = None
    return Decision(recommended, summary, reasons, unresolved, ordered, budget, direction, level)


@dataclass(frozen=True)
class PruneVerdict:
    """Whether to stop a running trial at this epoch, and why.

    Args:
        prune: Stop the trial.
        reason: Short words on why (or why not).
        dominated_by: Name of the completed trial that dominates it beyond uncertainty.
        comparison: The running trial's comparison with ReLU at this epoch.
    """

    prune: bool
    reason: str
    dominated_by: str | None = None
    comparison: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return {
            "prune": self.prune,
            "reason": self.reason,
            "dominated_by": self.dominated_by,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruneVerdict:
        """Rebuild a `PruneVerdict` from `to_dict`'s output."""
        comparison = data.get("comparison")
        return cls(
            bool(data["prune"]),
            str(data["reason"]),
            data.get("dominated_by"),
            None if comparison is None else Comparison.from_dict(comparison),
        )


def dominates_beyond_uncertainty(better: Comparison, worse: Comparison) -> bool:
    """Whether `better`'s worse bounds beat `worse`'s better bounds in both objectives.

    `high(cost_b) < low(cost_w)` and `high(ratio_b) < low(ratio_w)`; `False` when either
    lacks an interval.
    """
    intervals = (better.pd_ratio, better.accuracy_cost, worse.pd_ratio, worse.accuracy_cost)
    if not all(i.has_interval for i in intervals):
        return False
    return (
        better.accuracy_cost.high < worse.accuracy_cost.low
        and better.pd_ratio.high < worse.pd_ratio.low
    )


def should_prune(
    running_pairs_at_epoch: TrialPairs,
    completed_trials_at_epoch: Mapping[str, TrialPairs],
    reference_at_epoch: TrialPairs,
    level: float = 0.9,
    *,
    direction: str,
    min_pairs: int = MIN_PAIRS,
    pd_floor: float = DEFAULT_PD_FLOOR,
) -> PruneVerdict:
    """Stop a running trial that completed trials dominate beyond uncertainty at this epoch.

    Every trial is compared with ReLU at the same epoch (PD ratio and accuracy cost with
    `level` intervals). The running trial `r` is pruned when some completed trial `c` has
    `high(cost_c) < low(cost_r)` and `high(ratio_c) < low(ratio_r)`, and `r` shares at least
    `min_pairs` pairs with the reference. Pass the reference itself among the completed trials
    for ReLU to count as one (its comparison with itself is the point (cost 0, ratio 1)).

    Args:
        running_pairs_at_epoch: The running trial's pairs measured so far at this epoch.
        completed_trials_at_epoch: `{name: TrialPairs}` of completed trials at the same epoch.
        reference_at_epoch: The ReLU reference's pairs at the same epoch.
        level: Confidence level of the intervals, default 0.9.
        direction: `"minimize"` or `"maximize"` for the accuracy metric.
        min_pairs: Pairs the running trial needs before it can be pruned (at least 3).
        pd_floor: See `paired_pd_ratio`.

    Returns:
        A `PruneVerdict`; the first dominating trial in name order is named.
    """
    level = check_level(level)
    check_direction(direction)
    if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or min_pairs < MIN_PAIRS:
        raise ValueError(
            f"min_pairs must be an integer >= {MIN_PAIRS} (an interval needs {MIN_PAIRS} pairs); "
            f"received: {min_pairs!r}"
        )
    if not isinstance(completed_trials_at_epoch, Mapping):
        raise ValueError(
            "completed_trials_at_epoch must be a mapping {name: TrialPairs}; "
            f"received: {type(completed_trials_at_epoch).__name__}"
        )
    running = compare(
        running_pairs_at_epoch, reference_at_epoch, direction, level, pd_floor=pd_floor
    )
    n = min(running.pd_ratio.n, running.accuracy_cost.n)
    if n < min_pairs:
        return PruneVerdict(
            False, f"only {n} pair(s) compared with ReLU; pruning needs {min_pairs}", None, running
        )
    for name in sorted(completed_trials_at_epoch, key=str):
        other = compare(
            completed_trials_at_epoch[name],
            reference_at_epoch,
            direction,
            level,
            pd_floor=pd_floor,
        )
        if dominates_beyond_uncertainty(other, running):
            reason = (
                f"dominated beyond uncertainty by {name}: its PD ratio "
                f"{other.pd_ratio.format(3)} and accuracy cost {other.accuracy_cost.format(3)} "
                f"beat this trial's {running.pd_ratio.format(3)} and "
                f"{running.accuracy_cost.format(3)} ({level:.0%} intervals)"
            )
            return PruneVerdict(True, reason, str(name), running)
    count = len(completed_trials_at_epoch)
    return PruneVerdict(
        False,
        f"not dominated beyond uncertainty by any of {count} completed trial(s)",
        None,
        running,
    )
