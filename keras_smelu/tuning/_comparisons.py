"""From trial records to the paired statistics: each pair's PD and replica metrics at an epoch.

Records keep every pair's PD (every kind) and both replicas' metrics at every epoch; the
statistics (`_paired`, `_decision`) take one number per pair. This module picks them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keras_smelu.tuning._paired import TrialPairs
from keras_smelu.tuning._record import TrialRecord


def candidate_name(trial: TrialRecord) -> str:
    """How decisions name a trial, e.g. `"smelu w=0.44 (trial 7)"`."""
    return f"{trial.label} (trial {trial.number})"


def _pd_kind(objective_name: str, pd: Mapping[str, float]) -> str:
    kind = objective_name.removeprefix("pd_")
    if kind not in pd and kind == "relative" and "relative_to_mean" in pd:
        return "relative_to_mean"  # regression: relative PD is relative to the mean
    return kind


def pairs_at(
    pairs: Sequence[Mapping[str, Any]], objective_names: tuple[str, str], epoch: int
) -> TrialPairs | None:
    """Each pair's PD and two replica metrics at `epoch` (1-based), from per-pair records
    shaped as `ReplicaReport.pair_results`; `None` when they lack the epoch or objectives."""
    metric = objective_names[0].removeprefix("val_")
    index = epoch - 1
    pd, accuracy = {}, {}
    try:
        for pair in pairs:
            pd_at = pair["pd"][index]
            pd[int(pair["pair"])] = float(pd_at[_pd_kind(objective_names[1], pd_at)])
            a, b = (float(r["metrics"][index][metric]) for r in pair["replicas"])
            accuracy[int(pair["pair"])] = (a, b)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if not pd or index < 0:
        return None
    return TrialPairs(pd, accuracy)


def trial_pairs(trial: TrialRecord, objective_names: tuple[str, str]) -> TrialPairs | None:
    """`trial`'s pairs at its reported epoch, or `None` (no per-pair data kept)."""
    if not trial.pairs or trial.epoch is None:
        return None
    return pairs_at(trial.pairs, objective_names, trial.epoch)
