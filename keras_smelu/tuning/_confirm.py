"""Adaptive replication: after the search, more pairs for the points that decide the answer.

The decision (`TuningResult.decision`) may leave candidates unresolved (an interval straddles
the budget or the PD-ratio-1 line), and a recommendation chosen as the best of many candidates
flatters itself. The confirmation stage gives the points that decide the answer (ReLU, the
recommended point, and at most `MAX_CHALLENGERS` unresolved frontier points that could displace
it) more pairs, continuing their pair indices with the same seeds as in the search (pair k is
pair k in every trial), in rounds that bring each such point to half as many pairs again as the
fewest any of them has (3, 5, 8, 12, ...; at most `confirm_pairs`), until the decision is
resolved or every such point has `confirm_pairs` pairs. A round trains a point's new pairs in
one call (one program, the replicas stacked), so growing rounds resolve in few calls.

Each confirmed pair is stored as soon as it is trained (an Optuna study `<study>/confirm`, or
JSON files in a folder for keras-tuner), so a killed confirmation resumes without redoing a pair.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from keras_smelu.tuning._comparisons import candidate_name, pairs_at
from keras_smelu.tuning._files import write_text
from keras_smelu.tuning._record import TrialRecord, decode, dumps
from keras_smelu.tuning._results import TuningResult

# pair records are keyed by (trial number, 1-based pair index)
PairKey = tuple[int, int]


class PairStore(Protocol):
    """Where confirmed pairs are kept."""

    def load(self) -> dict[PairKey, dict[str, Any]]: ...

    def save(self, trial: int, pair: int, record: Mapping[str, Any]) -> None: ...


class FilePairStore:
    """Confirmed pairs as JSON files in a folder (`trial-<n>-pair-<k>.json`, atomic writes)."""

    _NAME = re.compile(r"^trial-(\d+)-pair-(\d+)\.json$")

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def load(self) -> dict[PairKey, dict[str, Any]]:
        out = {}
        if not self.folder.is_dir():
            return out
        for path in self.folder.iterdir():
            match = self._NAME.match(path.name)
            if match:
                record = decode(json.loads(path.read_text(encoding="utf-8")))
                out[(int(match[1]), int(match[2]))] = record
        return out

    def save(self, trial: int, pair: int, record: Mapping[str, Any]) -> None:
        write_text(self.folder / f"trial-{trial}-pair-{pair}.json", dumps(dict(record)) + "\n")


class OptunaPairStore:
    """Confirmed pairs as the trials of an Optuna study (one trial per pair), so that they
    live in the job's storage, local or shared."""

    def __init__(self, storage: Any, study_name: str) -> None:
        import optuna

        self.study = optuna.create_study(
            study_name=study_name, storage=storage, load_if_exists=True
        )

    def load(self) -> dict[PairKey, dict[str, Any]]:
        out = {}
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state.name == "COMPLETE" and "pair_record" in trial.user_attrs:
                key = (int(trial.user_attrs["trial"]), int(trial.user_attrs["pair"]))
                out.setdefault(key, trial.user_attrs["pair_record"])
        return out

    def save(self, trial: int, pair: int, record: Mapping[str, Any]) -> None:
        with warnings.catch_warnings():  # ask/tell on a heartbeat storage: nothing to beat
            warnings.simplefilter("ignore", UserWarning)
            self._save(trial, pair, record)

    def _save(self, trial: int, pair: int, record: Mapping[str, Any]) -> None:
        optuna_trial = self.study.ask()
        optuna_trial.set_user_attr("trial", trial)
        optuna_trial.set_user_attr("pair", pair)
        optuna_trial.set_user_attr("pair_record", json.loads(dumps(dict(record))))
        self.study.tell(optuna_trial, 0.0)


def with_pairs(result: TuningResult, extra: Mapping[PairKey, Mapping[str, Any]]) -> TuningResult:
    """`result` whose records hold their confirmed pairs too, with the point values (mean
    accuracy over replicas, mean PD over pairs at the reported epoch) recomputed."""
    if not extra:
        return result
    trials = []
    for trial in result.trials:
        have = {int(p["pair"]) for p in trial.pairs}
        more = [
            dict(r) for (n, k), r in sorted(extra.items()) if n == trial.number and k not in have
        ]
        if not more or not trial.is_complete:
            trials.append(trial)
            continue
        pairs = trial.pairs + tuple(more)
        measured = pairs_at(pairs, result.objective_names, trial.epoch)
        if measured is None:
            trials.append(trial)
            continue
        accuracy = [v for a_b in measured.accuracy.values() for v in a_b]
        trials.append(
            dataclasses.replace(
                trial,
                pairs=pairs,
                accuracy=float(np.mean(accuracy)),
                accuracy_std=float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else math.nan,
                pd=float(np.mean(list(measured.pd.values()))),
                pd_std=float(np.std(list(measured.pd.values()), ddof=1)),
            )
        )
    return dataclasses.replace(result, trials=tuple(trials))


# Unresolved frontier points confirmed beside the recommended one, closest to qualifying first.
MAX_CHALLENGERS = 2


def confirmation_targets(result: TuningResult) -> list[TrialRecord]:
    """The points that decide the answer: ReLU, the recommended point and the unresolved
    frontier points that could change it; empty when there is nothing to decide.

    The recommended point is always confirmed: chosen as the best of many candidates, its
    interval is the one most likely to flatter it (a claim needs more pairs than a search).
    An unresolved frontier point could change the answer only by qualifying with a lower PD
    ratio than the recommended point (or, with none recommended, by qualifying at all); of
    those, the `MAX_CHALLENGERS` closest to qualifying (`Decision.unresolved`'s order) get
    pairs, so the stage's cost does not grow with the size of the frontier.
    """
    decision = result.decision
    reference = result.reference
    if decision is None or reference is None:
        return []
    frontier = {candidate_name(t) for t in result.frontier}
    ratios = {a.name: a.comparison.pd_ratio.estimate for a in decision.candidates}
    bar = ratios.get(decision.recommended) if decision.recommended else None
    challengers = [
        n
        for n in decision.unresolved
        if n in frontier and (bar is None or (ratios.get(n) or math.inf) < bar)
    ]
    names = set(challengers[:MAX_CHALLENGERS])
    if decision.recommended:
        names.add(decision.recommended)
    if not names:
        return []
    return [reference] + [t for t in result.candidates if candidate_name(t) in names]


def confirm(
    result: TuningResult,
    store: PairStore,
    train_pairs: Callable[[TrialRecord, int, int], list[Mapping[str, Any]]],
    *,
    confirm_pairs: int,
    progress: Callable[[str], None] | None = None,
) -> TuningResult:
    """Runs (or resumes) the confirmation stage of one model's result.

    Args:
        result: The search's result (records with per-pair data).
        store: Where confirmed pairs are kept; pairs already there are used, never redone.
        train_pairs: `train_pairs(record, first, count)` trains pairs `first` to
            `first + count - 1` (0-based) of the record's search point and returns their
            records (as `ReplicaReport.pair_results`).
        confirm_pairs: Pairs per point the stage may reach.
        progress: Called with a line per confirmed pair.

    Returns:
        The result with the confirmed pairs in its records.
    """
    while True:
        result = with_pairs(result, store.load())
        targets = confirmation_targets(result)
        # Every target up to the budget: a point that becomes decisive late (a new
        # recommendation once another was confirmed) gets its rounds too.
        have = min((len(t.pairs) for t in targets), default=confirm_pairs)
        if have >= confirm_pairs:
            return result
        size = round_size(have, confirm_pairs)
        # ReLU last: comparisons use the pairs a point shares with ReLU, so a round cut short
        # by a kill leaves the decision, and so the next run's round, unchanged.
        for trial in targets[1:] + targets[:1]:
            have = {int(p["pair"]) for p in trial.pairs}
            missing = [index for index in range(1, size + 1) if index not in have]
            for first, count in _runs(missing):
                records = train_pairs(trial, first - 1, count)
                for index, record in zip(range(first, first + count), records, strict=True):
                    store.save(trial.number, index, record)
                if progress is not None:
                    where = f"[{result.model}] confirm #{trial.number} {trial.label}"
                    shown = str(first) if count == 1 else f"{first}-{first + count - 1}"
                    progress(f"{where}: pairs {shown} of {size}")


def round_size(have: int, confirm_pairs: int) -> int:
    """Pairs per point after the next round: half as many again (at least one more), capped
    at `confirm_pairs`. Geometric rounds resolve a clear decision in few rounds and spend the
    whole budget only where it stays close."""
    return min(confirm_pairs, max(have + 1, math.ceil(have * 1.5)))


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """`[(first, count), ...]`: the sorted indices as runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


def pair_store(backend: Any, storage: str, study_id: str) -> PairStore:
    """The confirmation store of one model's study: an Optuna study `<study>/confirm` in the
    job's storage, or a `confirm/` folder in a keras-tuner project."""
    if backend.storage_is_folder:
        return FilePairStore(Path(storage) / study_id / "confirm")
    from keras_smelu.tuning._optuna_backend import make_storage

    return OptunaPairStore(make_storage(storage), f"{study_id}/confirm")


def pair_trainer(
    builder: Callable[..., Any], train_data: Any, eval_data: Any, settings: Any
) -> Callable[[TrialRecord, int, int], list[dict[str, Any]]]:
    """`train_pairs(record, first, count)` for `confirm`: pairs `first` to `first + count - 1`
    of the record's search point, with the trials' settings and those pairs' seeds."""
    from keras_smelu.tuning._space import SearchPoint
    from keras_smelu.tuning._trial import train_point

    def train_pairs(record: TrialRecord, first: int, count: int) -> list[dict[str, Any]]:
        point = SearchPoint(record.family, record.width, dict(record.params))
        training = dataclasses.replace(settings.training, first_pair=first, pairs=count)
        # As a trial trains it: the objective's churn or ranking kind is recorded too.
        report = train_point(
            builder,
            point,
            train_data,
            eval_data,
            dataclasses.replace(settings, training=training),
        )
        return list(report.pair_results)

    return train_pairs
