"""Early stopping across epochs for multi-objective studies (Optuna cannot prune those).

After each epoch a running trial's pairs are compared with ReLU at that epoch, and so are the
completed trials' (their records keep every epoch of every pair). A running trial that some
completed trial beats beyond uncertainty on both objectives stops (`keras_smelu.tuning.
should_prune`); it is recorded as pruned at that epoch and stays off the frontier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keras_smelu.tuning._comparisons import candidate_name, pairs_at
from keras_smelu.tuning._decision import PruneVerdict, should_prune
from keras_smelu.tuning._record import TrialRecord


class TrialPrunedError(Exception):
    """A trial stopped early; `epoch` (1-based), `reason`, the `pairs` measured so far, and
    (set by the trial) its pruned `record`."""

    def __init__(self, epoch: int, reason: str, pairs: list[dict[str, Any]]):
        super().__init__(f"pruned at epoch {epoch}: {reason}")
        self.epoch = epoch
        self.reason = reason
        self.pairs = pairs
        self.record: TrialRecord | None = None


def epoch_pruner(
    completed: Sequence[TrialRecord],
    reference: TrialRecord | None,
    objective_names: tuple[str, str],
    direction: str,
    level: float,
) -> Callable[[int, list[dict[str, Any]]], None] | None:
    """An `on_epoch` callback for `train_replicas` that raises `TrialPrunedError` when the
    running trial is dominated beyond uncertainty at that epoch; `None` when nothing can prune
    (no reference with per-pair data)."""
    if reference is None or not reference.pairs:
        return None
    others = [t for t in completed if t.pairs and not t.is_reference]

    def on_epoch(epoch: int, pairs: list[dict[str, Any]]) -> None:
        running = pairs_at(pairs, objective_names, epoch)
        ref = pairs_at(reference.pairs, objective_names, epoch)
        if running is None or ref is None:
            return
        at_epoch = {}
        for trial in others:
            measured = pairs_at(trial.pairs, objective_names, epoch)
            if measured is not None:
                at_epoch[candidate_name(trial)] = measured
        at_epoch[candidate_name(reference)] = ref  # ReLU counts as a completed point
        verdict: PruneVerdict = should_prune(running, at_epoch, ref, level, direction=direction)
        if verdict.prune:
            raise TrialPrunedError(epoch, verdict.reason, pairs)

    return on_epoch
