"""ReLU ensembles as reference points: their trials, and what the report says of them.

What a team does instead of smoothing is averaging k models. A k-ensemble of ReLU is trained
like the ReLU reference (the same pair seeds: member 0 of each replica is the reference's
replica), with each replica averaging k members (`ReplicaSettings.ensemble`), and is compared
with ReLU and with the recommended width pair by pair. It costs k times the training and
serving compute of one model. Its record is numbered `-k`; it is never a candidate, never on the
frontier and never recommended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from keras_smelu.tuning._paired import Comparison, Interval, compare
from keras_smelu.tuning._record import TrialRecord

if TYPE_CHECKING:
    from keras_smelu.tuning._results import TuningResult
    from keras_smelu.tuning._trial import TrialSettings


def ensemble_number(size: int) -> int:
    """The record number of the ReLU `size`-ensemble: `-size` (the reference is 0, search
    trials are numbered from 1)."""
    return -int(size)


def ensemble_settings(settings: TrialSettings, size: int) -> TrialSettings:
    """`settings` with each replica an ensemble of `size` models."""
    training = dataclasses.replace(settings.training, ensemble=int(size))
    return dataclasses.replace(settings, training=training)


def as_ensemble(record: TrialRecord, size: int) -> TrialRecord:
    """`record` as the ReLU `size`-ensemble's (numbered `-size`)."""
    return dataclasses.replace(record, number=ensemble_number(size), ensemble=int(size))


def run_ensemble(
    builder: Callable[..., Any],
    train_data: Any,
    eval_data: Any,
    settings: TrialSettings,
    size: int,
    *,
    model_name: str,
) -> TrialRecord:
    """Trains the ReLU `size`-ensemble's replica pairs (the reference's point and pair seeds,
    each replica `size` models) and returns its complete record.

    Raises:
        TrialFailedError: as `_trial.run_trial` (record the failure with `as_ensemble`).
    """
    from keras_smelu.tuning._trial import REFERENCE_POINT, run_trial

    record = run_trial(
        builder,
        REFERENCE_POINT,
        train_data,
        eval_data,
        ensemble_settings(settings, size),
        model_name=model_name,
        number=ensemble_number(size),
    )
    return as_ensemble(record, size)


@dataclasses.dataclass(frozen=True)
class EnsembleComparison:
    """One ReLU ensemble against ReLU and against the recommended width, pair by pair.

    Attributes:
        trial: The ensemble's record.
        versus_relu: Its PD ratio and accuracy cost against the ReLU reference.
        versus_recommended: The recommended trial against the ensemble (PD ratio < 1: the
            width has less PD than the ensemble), or `None` without a recommendation.
    """

    trial: TrialRecord
    versus_relu: Comparison | None
    versus_recommended: Comparison | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for results files (derived: recomputed when a file is read)."""
        return {
            "trial": self.trial.number,
            "label": self.trial.label,
            "ensemble": self.trial.ensemble,
            "cost": self.trial.cost,
            "versus_relu": None if self.versus_relu is None else self.versus_relu.to_dict(),
            "recommended_versus_ensemble": (
                None if self.versus_recommended is None else self.versus_recommended.to_dict()
            ),
        }


def ensemble_comparisons(result: TuningResult) -> list[EnsembleComparison]:
    """The complete ensemble records of `result`, smallest first, each compared with ReLU
    (`result.comparison`) and with the recommendation."""
    recommended = result.recommended
    mine = None if recommended is None else result.pairs_of(recommended)
    out = []
    for trial in result.ensembles:
        theirs = result.pairs_of(trial)
        versus = None
        if mine is not None and theirs is not None:
            versus = compare(mine, theirs, result.directions[0], result.level)
        out.append(EnsembleComparison(trial, result.comparison(trial), versus))
    return out


def _relation(ratio: Interval) -> str | None:
    """`"below"`, `"above"` or `"level"` for a PD ratio of the width to an ensemble, by its
    interval; `None` without one."""
    if not ratio.has_interval:
        return None
    if ratio.high < 1.0:
        return "below"
    if ratio.low > 1.0:
        return "above"
    return "level"


def _fraction(size: int) -> str:
    return {2: "half", 3: "a third", 4: "a quarter"}.get(size, f"1/{size}")


def ensemble_words(result: TuningResult, comparisons: Sequence[EnsembleComparison]) -> list[str]:
    """The report's sentences on the ensembles: each one's PD ratio to ReLU at its cost, then
    which ensemble size the recommended width matches in PD and at what cost, by the paired
    intervals (`level`)."""
    if not comparisons:
        return []
    level = f"{result.level:.0%}"
    parts = []
    for item in comparisons:
        size = item.trial.ensemble
        if item.versus_relu is None:
            parts.append(f"a {size}-ensemble of ReLU: no paired comparison ({size}x cost)")
        else:
            parts.append(
                f"a {size}-ensemble of ReLU reaches PD x{item.versus_relu.pd_ratio.format(3)} "
                f"of ReLU at {size}x cost"
            )
    lines = [f"Ensembles ({level} CI): " + "; ".join(parts) + "."]
    recommended = result.recommended
    if recommended is None:
        lines.append("No width is recommended, so none is set against the ensembles.")
        return lines
    own = result.comparison(recommended)
    head = f"{recommended.label} at 1x cost"
    if own is not None:
        head += f" (PD x{own.pd_ratio.format(3)} of ReLU)"
    relations = {}
    for item in comparisons:
        if item.versus_recommended is not None:
            relation = _relation(item.versus_recommended.pd_ratio)
            if relation is not None:
                relations[item.trial.ensemble] = relation
    if not relations:
        lines.append(
            f"{head}: too few common pairs to set it against the ensembles with an interval."
        )
        return lines
    below = [k for k, r in relations.items() if r == "below"]
    level_with = [k for k, r in relations.items() if r == "level"]
    above = [k for k, r in relations.items() if r == "above"]
    if level_with:
        k = max(level_with)
        text = f"matches a {k}-ensemble of ReLU in PD at {_fraction(k)} of its cost"
        if above:
            text += f" (a {min(above)}-ensemble has less PD)"
    elif below and above:
        low, high = max(below), min(above)
        text = (
            f"has PD between a {low}- and a {high}-ensemble of ReLU (less than the "
            f"{low}-ensemble's, more than the {high}-ensemble's) at {_fraction(low)} of the "
            f"{low}-ensemble's cost"
        )
    elif below:
        k = max(below)
        text = (
            f"has less PD than every ReLU ensemble measured, up to a {k}-ensemble, at "
            f"{_fraction(k)} of its cost"
        )
    else:
        k = min(above)
        text = f"has more PD than a {k}-ensemble of ReLU, which costs {k}x"
    untested = sorted(set(c.trial.ensemble for c in comparisons) - set(relations))
    if untested:
        text += f"; no interval against the {', '.join(str(k) for k in untested)}-ensemble"
    lines.append(f"{head} {text}.")
    return lines
