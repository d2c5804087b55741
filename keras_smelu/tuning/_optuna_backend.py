"""The Optuna backend: one multi-objective study per model, (accuracy, PD) per trial.

Optuna does the distributed part: a study lives in a storage (a SQLite file by default, a
journal file for several processes on one machine, any RDB URL for many machines) and every
worker that opens the same study name shares its trials. Our part is the objective (train the
replica pairs of one width), the ReLU reference, and turning trials into `TrialRecord`s.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock between local workers
    fcntl = None

from keras_smelu.tuning._imports import import_optional
from keras_smelu.tuning._results import TrialRecord, TuningResult
from keras_smelu.tuning._space import REFERENCE_FAMILY, SearchPoint, SearchSpace
from keras_smelu.tuning._trial import (
    REFERENCE_POINT,
    TrialFailedError,
    TrialSettings,
    failed_record,
    run_trial,
)

SAMPLERS = ("tpe", "nsga2", "random", "grid")
_RECORD = "keras_smelu_record"
_FAIL_REASON = "fail_reason"
_FAMILY = "family"
# A trial whose process died stops sending heartbeats; after the grace period Optuna marks it
# failed, so a resumed study neither waits for it nor counts it.
_HEARTBEAT_S = 10


def _optuna():
    return import_optional("optuna", "the Optuna tuning backend")


@contextlib.contextmanager
def _quiet_experimental():
    """Heartbeats and metric names are stable in practice but flagged experimental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _optuna().exceptions.ExperimentalWarning)
        yield


def make_storage(url: str):
    """An Optuna storage from a URL: `journal:<file>` or any RDB URL (`sqlite:///...`,
    `postgresql://...`). SQLite folders are created; RDB storages send heartbeats so that
    trials of a killed process are marked failed."""
    optuna = _optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    with _quiet_experimental():
        return optuna.storages.RDBStorage(url, heartbeat_interval=_HEARTBEAT_S)


def make_sampler(name: str, space: SearchSpace, *, trials: int, seed: int):
    """The sampler named `name` ("tpe", "nsga2", "random" or "grid"), seeded."""
    optuna = _optuna()
    if name == "tpe":
        # Fewer random start-up trials than Optuna's default 10: studies here are short.
        startup = min(10, max(3, trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
    if name == "nsga2":
        # Several generations even in a short study (a generation of `trials` is random search).
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, trials // 4))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        per_family = max(1, math.ceil(trials / len(space.families)))
        grid: dict[str, list[Any]] = {"width": [float(w) for w in space.widths(per_family)]}
        if len(space.families) > 1:
            grid[_FAMILY] = list(space.families)
        if "generalized_smelu" in space.families:
            grid["slope_left"] = [space.slope_left_low]
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise ValueError(f"Argument `sampler` must be one of {SAMPLERS}. Received: sampler={name!r}")


def suggest_point(trial, space: SearchSpace) -> SearchPoint:
    """Draws a search point: the family (when there are several), the width, extras."""
    family = space.families[0]
    if len(space.families) > 1:
        family = trial.suggest_categorical(_FAMILY, list(space.families))
    width = trial.suggest_float("width", space.width_low, space.width_high, log=space.log)
    params = {}
    if family == "generalized_smelu":
        params["slope_left"] = trial.suggest_float(
            "slope_left", space.slope_left_low, space.slope_left_high
        )
    return SearchPoint(family, width, params)


def _counts_toward_target(trial) -> bool:
    """Finished search trials: complete ones, and failures with a recorded reason (a width
    whose loss diverged is an answer). Interrupted or killed trials are not counted."""
    state = trial.state.name
    if trial.user_attrs.get(_FAMILY) == REFERENCE_FAMILY:
        return False
    return state == "COMPLETE" or (state == "FAIL" and _FAIL_REASON in trial.user_attrs)


def _done(study) -> int:
    return sum(_counts_toward_target(t) for t in study.get_trials(deepcopy=False))


def _record_of(trial, model_name: str) -> TrialRecord | None:
    """The `TrialRecord` of a finished Optuna trial (None for running/waiting ones)."""
    state = trial.state.name
    stored = trial.user_attrs.get(_RECORD)
    if state == "COMPLETE" and stored is not None:
        record = TrialRecord.from_dict(stored)
        return TrialRecord.from_dict(
            {**record.to_dict(), "number": trial.number, "trial_id": trial._trial_id}
        )
    if state != "FAIL":
        return None
    params = dict(trial.params)
    family = params.pop(_FAMILY, trial.user_attrs.get(_FAMILY, REFERENCE_FAMILY))
    width = params.pop("width", 0.0)
    reason = trial.user_attrs.get(_FAIL_REASON, "interrupted or killed before it finished")
    return failed_record(
        SearchPoint(family, width, params),
        model_name=model_name,
        number=trial.number,
        reason=reason,
        trial_id=trial._trial_id,
    )


def _reference_state(study) -> str:
    """ "done" (complete, or failed with a reason), "pending" (waiting or running) or "none"."""
    state = "none"
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(_FAMILY) != REFERENCE_FAMILY:
            continue
        name = t.state.name
        if name == "COMPLETE" or (name == "FAIL" and _FAIL_REASON in t.user_attrs):
            return "done"
        if name in ("WAITING", "RUNNING"):
            state = "pending"
    return state


@contextlib.contextmanager
def _storage_lock(storage: str):
    """An exclusive lock between the processes of one machine that share a file storage."""
    path = None
    if storage.startswith("journal:"):
        path = storage[len("journal:") :]
    elif storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :]
    if path is None or fcntl is None:
        yield
        return
    with open(f"{path}.keras-smelu.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _enqueue_reference(study, storage: str) -> None:
    """Queues the ReLU reference once per study. It runs as an ordinary, parameterless trial
    (so it takes part in Optuna's own Pareto front, `study.best_trials`, exactly as in ours);
    the queue hands it to exactly one worker, and the lock keeps two workers on one machine
    from queueing it twice."""
    with _storage_lock(storage):
        if _reference_state(study) == "none":
            study.enqueue_trial({}, user_attrs={_FAMILY: REFERENCE_FAMILY})


def optimize(
    model_name: str,
    builder: Callable[..., Any],
    train_data: Any,
    eval_data: Any,
    space: SearchSpace,
    settings: TrialSettings,
    *,
    trials: int,
    storage: str,
    study_name: str,
    sampler: str = "tpe",
    seed: int = 0,
    timeout: float | None = None,
    progress: Callable[[TrialRecord, int, int], None] | None = None,
) -> TuningResult:
    """Runs (or resumes) the study of one model until it holds `trials` finished search trials.

    Args:
        model_name: Name of the model (part of the study name).
        builder: `builder(activation) -> compiled keras.Model`.
        train_data: Training data for `train_replicas`.
        eval_data: Held-out data: both objectives are measured on it.
        space: The families and width range.
        settings: How each trial trains and what it reports.
        trials: Finished search trials wanted in the study (the ReLU reference not counted);
            trials already in the storage count, so a rerun resumes.
        storage: `sqlite:///path.db`, `journal:<file>`, or any RDB URL.
        study_name: Stable name of the study (shared by every worker).
        sampler: "tpe" (default), "nsga2", "random" or "grid".
        seed: Sampler seed.
        timeout: Stop starting trials after this many seconds.
        progress: Called after each trial with `(record, finished, trials)`.

    Returns:
        The `TuningResult` of every finished trial of the study, this process's or not.

    Raises:
        KeyboardInterrupt: re-raised after the completed trials are safely in the storage.
    """
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage),
        directions=list(settings.directions),
        sampler=make_sampler(sampler, space, trials=trials, seed=seed),
        load_if_exists=True,
    )
    with _quiet_experimental():
        study.set_metric_names(list(settings.objective_names))

    def objective(trial):
        if trial.user_attrs.get(_FAMILY) == REFERENCE_FAMILY:
            point = REFERENCE_POINT
        else:
            point = suggest_point(trial, space)
            trial.set_user_attr(_FAMILY, point.family)
        try:
            record = run_trial(
                builder,
                point,
                train_data,
                eval_data,
                settings,
                model_name=model_name,
                number=trial.number,
            )
        except TrialFailedError as error:
            trial.set_user_attr(_FAIL_REASON, str(error))
            raise
        trial.set_user_attr(_RECORD, record.to_dict())
        return record.accuracy, record.pd

    def finished(study) -> bool:
        if space.reference:
            _enqueue_reference(study, storage)  # again, in case a killed worker held it
            if _reference_state(study) != "done":
                return False
        return _done(study) >= trials

    def after_trial(study, frozen):
        if progress is not None:
            record = _record_of(frozen, model_name)
            if record is not None:
                progress(record, _done(study), trials)
        if finished(study):
            study.stop()

    if not finished(study):
        study.optimize(
            objective,
            timeout=timeout,
            catch=(TrialFailedError,),
            callbacks=[after_trial],
        )
    return study_result(study, model_name, settings)


def study_result(study, model_name: str, settings: TrialSettings) -> TuningResult:
    """The `TuningResult` of every finished trial in `study`."""
    records = [_record_of(t, model_name) for t in study.get_trials(deepcopy=False)]
    return TuningResult(
        model=model_name,
        trials=tuple(r for r in records if r is not None),
        directions=settings.directions,
        objective_names=settings.objective_names,
        study_name=study.study_name,
    )


def load_result(storage: str, study_name: str, model_name: str, settings: TrialSettings):
    """Reads a study back from its storage (e.g. to report on a study other workers ran)."""
    optuna = _optuna()
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    return study_result(study, model_name, settings)


def default_storage(output: str | os.PathLike[str]) -> str:
    """The default storage: a SQLite file `study.db` in the output folder."""
    return f"sqlite:///{Path(output).resolve() / 'study.db'}"
