"""The keras-tuner backend: a `keras_tuner.Tuner` whose trials train replica pairs.

keras-tuner proposes and records; our part is the trial (train the replica pairs of one width,
`_trial.run_trial`), the ReLU reference and the Pareto frontier. keras-tuner has no Pareto
front: with a list of objectives it ranks trials by their sum (`MultiObjective`), which only
matters to its own "best trial" display and its Bayesian oracle, so the frontier is computed by
`TuningResult` from the stored records.

The width is an ordinary hyperparameter (`"width"`, with `"family"` when several families are
searched and g-SmeLU's `"slope_left"` under a conditional scope on the family), so a builder
that takes `(activation, hp)` can add its own hyperparameters to the same search.

Everything lives in the project folder `<directory>/<project_name>/`:

- `oracle.json`, `tuner0.json`, `trial_<id>/trial.json`: keras-tuner's own state (resumable);
- `trial_<id>/record.json`: our `TrialRecord` of each finished trial, failed ones included;
- `reference.json`: the ReLU reference's record (evaluated once);
- `reference-x<k>.json`: the record of the ReLU k-ensemble of each `space.ensembles` size
  (evaluated once, after the search);
- `auto_width_range.json`: with `width_range = "auto"`, the range measured from the reference
  (`_auto_range.AutoRange`). keras-tuner declares its hyperparameters, the width's bounds
  included, when the tuner is made: the reference is evaluated and the range measured before
  that, and a resumed run reads the range back, so the oracle's stored bounds stay the same;
- `keras_smelu.json`: the model, sampler, space, training settings and experiment fingerprint
  (data, model config, versions) of the project, checked when a run resumes, so that trials
  of different experiments are never mixed.

Importing this module imports keras-tuner (an optional dependency); `keras_smelu.tuning`
imports it only when the keras-tuner backend is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from keras_smelu.tuning._auto_range import AutoRange, measure_range, reference_range
from keras_smelu.tuning._backends import BACKENDS, check_grid_trials
from keras_smelu.tuning._ensembles import as_ensemble, run_ensemble
from keras_smelu.tuning._files import write_text
from keras_smelu.tuning._fingerprint import experiment_fingerprint, suffixed_names
from keras_smelu.tuning._imports import import_optional
from keras_smelu.tuning._record import TrialRecord, decode, dumps
from keras_smelu.tuning._results import TuningResult
from keras_smelu.tuning._space import SearchPoint, SearchSpace
from keras_smelu.tuning._trial import (
    REFERENCE_POINT,
    TrialFailedError,
    TrialSettings,
    comparable_setup,
    failed_record,
    run_trial,
    setup_changes,
    takes_hp,
)

keras_tuner = import_optional("keras_tuner", "The keras-tuner tuning backend")

SAMPLERS = BACKENDS["keras_tuner"].samplers
RECORD_FILE = "record.json"
REFERENCE_FILE = "reference.json"


def ensemble_file(size: int) -> str:
    """The file of the ReLU `size`-ensemble's record in a project: `reference-x<size>.json`."""
    return f"reference-x{size}.json"


CONFIG_FILE = "keras_smelu.json"
AUTO_RANGE_FILE = "auto_width_range.json"
_FAMILY = "family"
_WIDTH = "width"
_SLOPE_LEFT = "slope_left"
_GENERALIZED = "generalized_smelu"
_DIRECTIONS = {"minimize": "min", "maximize": "max"}


class _TrialCrashed(keras_tuner.errors.FatalError):
    """An unexpected error inside a trial (not a diverged loss): stops the search, like the
    Optuna backend, and `SmoothnessTuner.search` re-raises the original error. The trial stays
    "running" in keras-tuner's state, so a resumed search runs it again."""


def trial_number(trial_id: str | int) -> int:
    """The `TrialRecord.number` of keras-tuner's trial `trial_id`: number 0 is the ReLU
    reference's, search trials are numbered from 1 (`int(trial_id) + 1`), stable across
    resumed runs."""
    return int(trial_id) + 1


def make_oracle(
    sampler: str,
    space: SearchSpace,
    settings: TrialSettings,
    *,
    trials: int,
    seed: int = 0,
):
    """The keras-tuner oracle named `sampler` (`"random"` or `"grid"`) for `trials` trials.

    Its objective is the pair `(accuracy objective, PD)` as two `keras_tuner.Objective`s (a
    `MultiObjective`). Failed trials never stop the search (a width whose loss diverges is an
    answer), so the limit on consecutive failures is set out of reach.
    """
    if sampler not in SAMPLERS:
        raise ValueError(
            f"Argument `sampler` must be one of {SAMPLERS} for the keras-tuner backend. "
            f"Received: sampler={sampler!r}"
        )
    if sampler == "grid":
        check_grid_trials(trials)
    objective = [
        keras_tuner.Objective(name, _DIRECTIONS[direction])
        for name, direction in zip(settings.objective_names, settings.directions, strict=True)
    ]
    common = {
        "objective": objective,
        "max_trials": trials,
        # keras-tuner treats seed=0 as "no seed" and draws a random one.
        "seed": seed + 1,
        "max_retries_per_trial": 0,
        "max_consecutive_failed_trials": trials + 1,
    }
    if sampler == "grid":
        return keras_tuner.oracles.GridSearchOracle(**common)
    return keras_tuner.oracles.RandomSearchOracle(**common)


class SmoothnessHyperModel(keras_tuner.HyperModel):
    """Declares the search point as hyperparameters; builds the user's model with it.

    Args:
        builder: `builder(activation) -> compiled keras.Model`, or `builder(activation, hp)`
            to add the builder's own hyperparameters to the search.
        space: The families and width range.
        widths: Grid widths (the `"grid"` sampler); `None` samples the range (`"random"`).
    """

    def __init__(
        self,
        builder: Callable[..., Any],
        space: SearchSpace,
        widths: list[float] | None = None,
    ):
        super().__init__(name="smoothness")
        self.builder = builder
        self.space = space
        self.widths = widths
        self.uses_hp = takes_hp(builder)

    def declare(self, hp) -> SearchPoint:
        """Declares (or reads) `width`, `family` and `slope_left` in `hp`; returns the point.

        The width is declared first: the grid oracle varies the last-declared hyperparameter
        fastest, so a truncated grid still covers every family.
        """
        space = self.space
        if self.widths is not None:
            width = hp.Choice(_WIDTH, self.widths, ordered=True)
        else:
            width = hp.Float(
                _WIDTH,
                space.low,  # the measured range of an auto space
                space.high,
                sampling="log" if space.log else "linear",
            )
        family = space.families[0]
        if len(space.families) > 1:
            family = hp.Choice(_FAMILY, list(space.families))
        params = {}
        if _GENERALIZED in space.families:
            scope = (
                hp.conditional_scope(_FAMILY, [_GENERALIZED])
                if len(space.families) > 1
                else contextlib.nullcontext()
            )
            with scope:
                if self.widths is not None or space.slope_left_low == space.slope_left_high:
                    slope = hp.Fixed(_SLOPE_LEFT, float(space.slope_left_low))
                else:
                    slope = hp.Float(_SLOPE_LEFT, space.slope_left_low, space.slope_left_high)
            if family == _GENERALIZED:
                params[_SLOPE_LEFT] = float(slope)
        return SearchPoint(family, float(width), params)

    def model_builder(self, hp) -> Callable[[Any], Any]:
        """The `activation -> compiled keras.Model` builder of the trial with values `hp`."""
        if not self.uses_hp:
            return self.builder
        builder = self.builder

        def build(activation):
            return builder(activation, hp)

        return build

    def declare_hyperparameters(self, hp) -> None:
        self.declare(hp)

    def build(self, hp):
        """Declares the point, and the builder's own hyperparameters by building its model
        once (only for `builder(activation, hp)`; returns `None` otherwise)."""
        point = self.declare(hp)
        if not self.uses_hp:
            return None
        return self.builder(point.make_activation(), hp)


class SmoothnessTuner(keras_tuner.Tuner):
    """A keras-tuner `Tuner` whose trials train replica pairs and report (accuracy, PD).

    Each trial draws a search point (`width`, `family`, `slope_left`, plus the builder's own
    hyperparameters), trains `settings.pairs` replica pairs with that activation and returns
    both objectives; the complete `TrialRecord` is kept in the trial's folder. A trial whose
    loss diverges fails (`keras_tuner.errors.FailedTrialError`, its reason recorded) and the
    search goes on; any other error stops the search and is re-raised by `search`.

    Args:
        builder: `builder(activation) -> compiled keras.Model`, called for every replica (it
            must build a new model each call); or `builder(activation, hp)`, which may declare
            its own hyperparameters on the trial's `hp`.
        space: The families and width range (validated).
        settings: How each trial trains and what it reports.
        model_name: Name of the model (in every record).
        trials: Search trials of the project in all (the ReLU reference not counted); trials
            already in the project count, so a resumed search runs only the rest.
        sampler: `"random"` (default) or `"grid"` (`grid_widths`; the builder's own
            hyperparameters must then be discrete).
        seed: The oracle's seed.
        directory: Folder holding the project (default `"."`).
        project_name: Name of the project folder (default `model_name`).
        overwrite: Start afresh (delete the project) instead of resuming it.
        timeout: Start no new trial after this many seconds of `search`.
        progress: Called after the reference and each trial with
            `(record, finished search trials, trials)`.
        fingerprint: The experiment's fingerprint (`_fingerprint.experiment_fingerprint`:
            data, model, versions), checked with the settings when the project resumes;
            `None` checks the settings only.

    Example:

    >>> tuner = SmoothnessTuner(builder, SearchSpace(), TrialSettings(), model_name="mlp",
    ...                         trials=10, directory="runs/demo")  # doctest: +SKIP
    >>> tuner.search(train_data, eval_data)  # doctest: +SKIP
    >>> tuner.result().frontier  # doctest: +SKIP
    """

    def __init__(
        self,
        builder: Callable[..., Any],
        space: SearchSpace,
        settings: TrialSettings,
        *,
        model_name: str,
        trials: int,
        sampler: str = "random",
        seed: int = 0,
        directory: str | Path | None = None,
        project_name: str | None = None,
        overwrite: bool = False,
        timeout: float | None = None,
        progress: Callable[[TrialRecord, int, int], None] | None = None,
        fingerprint: Mapping[str, Any] | None = None,
    ):
        space.validate()
        if space.needs_range:
            raise ValueError(
                "A SmoothnessTuner declares the width's bounds when it is made: measure an "
                "auto range first (tune_keras_tuner does) and pass "
                "space.with_measured_range(low, high); received: an auto range not yet measured"
            )
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"Argument `trials` must be an integer >= 1. Received: {trials!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"Argument `timeout` must be positive. Received: {timeout!r}")
        self.space = space
        self.settings = settings
        self.model_name = model_name
        self.trials = trials
        self.sampler = sampler
        self.timeout = timeout
        self.progress = progress
        self._deadline: float | None = None
        directory = str(directory) if directory is not None else "."
        project_name = project_name or model_name
        # keras-tuner's oracle state belongs to its sampler: a resume must keep it too.
        config = comparable_setup(space, settings, fingerprint, model=model_name, sampler=sampler)
        config_path = Path(directory) / project_name / CONFIG_FILE
        if not overwrite:
            _check_project_config(config_path, config)
        oracle = make_oracle(sampler, space, settings, trials=trials, seed=seed)
        hypermodel = SmoothnessHyperModel(
            builder, space, space.grid_widths(trials) if sampler == "grid" else None
        )
        super().__init__(
            oracle=oracle,
            hypermodel=hypermodel,
            directory=directory,
            project_name=project_name,
            overwrite=overwrite,
        )
        write_text(config_path, dumps(config, indent=2) + "\n")

    # -- trials

    def run_trial(self, trial, train_data, eval_data, **kwargs) -> dict[str, float]:
        """Trains the replica pairs of the trial's point; returns both objectives (and their
        `MultiObjective` sum, which keras-tuner requires in the returned dict)."""
        hp = trial.hyperparameters
        point = self.hypermodel.declare(hp)
        number = trial_number(trial.trial_id)
        trial_id = int(trial.trial_id)
        try:
            record = run_trial(
                self.hypermodel.model_builder(hp),
                point,
                train_data,
                eval_data,
                self.settings,
                model_name=self.model_name,
                number=number,
            )
        except (TrialFailedError, keras_tuner.errors.FailedTrialError) as error:
            reason = str(error)
            self._save_record(
                trial.trial_id,
                failed_record(
                    point,
                    model_name=self.model_name,
                    number=number,
                    reason=reason,
                    trial_id=trial_id,
                ),
            )
            raise keras_tuner.errors.FailedTrialError(reason) from error
        except keras_tuner.errors.FatalError:
            raise
        except Exception as error:
            raise _TrialCrashed(
                f"trial {trial.trial_id} raised {type(error).__name__}: {error}"
            ) from error
        self._save_record(trial.trial_id, dataclasses.replace(record, trial_id=trial_id))
        names = self.settings.objective_names
        metrics = {names[0]: float(record.accuracy), names[1]: float(record.pd)}
        metrics[self.oracle.objective.name] = float(self.oracle.objective.get_value(metrics))
        return metrics

    def evaluate_reference(self, train_data: Any, eval_data: Any) -> TrialRecord:
        """Evaluates the ReLU reference once per project (kept in `reference.json`; a later
        call, or a resumed run, reads it back). A failed reference is recorded, not retried.
        A `builder(activation, hp)` builds it with its hyperparameters' defaults."""
        path = Path(self.project_dir) / REFERENCE_FILE
        if path.exists():
            return _read_record(path)
        record = run_reference(
            path,
            self.hypermodel.model_builder(keras_tuner.HyperParameters()),
            train_data,
            eval_data,
            self.settings,
            self.model_name,
        )
        if self.oracle.verbose and not record.is_complete:
            print(f"ReLU reference failed: {record.fail_reason}")
        if self.progress is not None:
            self.progress(record, self._finished(), self.trials)
        return record

    def search(self, train_data: Any, eval_data: Any, *, verbose: int = 1) -> None:
        """Evaluates the reference (when `space.reference`), then runs the search trials that
        the project still lacks.

        Args:
            train_data: Training data for `keras_smelu.replicas.train_replicas`.
            eval_data: Held-out data: both objectives are measured on it.
            verbose: keras-tuner's progress display (0: silent; 1: a table per trial and the
                reason of each failed one). Keras' own progress inside a trial is
                `settings.verbose`.

        Raises:
            Exception: the error of a trial that crashed (other than a diverged loss); the
                trials finished before it are kept, and a resumed search runs it again.
        """
        self.oracle.verbose = verbose
        if self.space.reference:
            self.evaluate_reference(train_data, eval_data)
        self._deadline = None if self.timeout is None else time.monotonic() + self.timeout
        max_trials = self.oracle.max_trials
        crashed: _TrialCrashed | None = None
        try:
            with _no_failure_tracebacks():
                super().search(train_data, eval_data, verbose=verbose)
        except _TrialCrashed as error:
            crashed = error
        finally:
            self.oracle.max_trials = max_trials
            self._deadline = None
        if crashed is not None:
            raise crashed.__cause__ or crashed
        if self.space.reference:
            self.evaluate_ensembles(train_data, eval_data)

    def evaluate_ensembles(self, train_data: Any, eval_data: Any) -> list[TrialRecord]:
        """Evaluates each ReLU ensemble of `space.ensembles` once per project (kept in
        `reference-x<k>.json`, read back later; a failed one is recorded, not retried), with
        the reference's pair seeds. Returns their records, smallest first."""
        records = []
        builder = self.hypermodel.model_builder(keras_tuner.HyperParameters())
        for size in self.space.ensembles:
            path = Path(self.project_dir) / ensemble_file(size)
            if path.exists():
                records.append(_read_record(path))
                continue
            try:
                record = run_ensemble(
                    builder, train_data, eval_data, self.settings, size, model_name=self.model_name
                )
            except TrialFailedError as error:
                record = as_ensemble(
                    failed_record(
                        REFERENCE_POINT, model_name=self.model_name, number=0, reason=str(error)
                    ),
                    size,
                )
            write_text(path, dumps(record.to_dict(), indent=2) + "\n")
            if self.progress is not None:
                self.progress(record, self._finished(), self.trials)
            records.append(record)
        return records

    def pre_create_trial(self) -> None:
        # The oracle stops creating trials once it holds `max_trials`: lower it at the timeout.
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.oracle.max_trials = max(1, len(self.oracle.trials))

    def on_trial_end(self, trial) -> None:
        super().on_trial_end(trial)
        record = _record_of(
            self.oracle.get_trial(trial.trial_id),
            Path(self.project_dir),
            self.model_name,
            self.settings,
            self.space,
        )
        if record is None:
            return
        if self.oracle.verbose and not record.is_complete:
            print(f"Trial {trial.trial_id} failed: {record.fail_reason}")
        if self.progress is not None:
            self.progress(record, self._finished(), self.trials)

    def load_model(self, trial):
        raise NotImplementedError(
            "SmoothnessTuner keeps no trained models (each trial trains replica pairs); build "
            "the model again with the recommended width from `result().recommended`."
        )

    # -- results

    def result(self) -> TuningResult:
        """The `TuningResult` of every finished trial of the project (reference included)."""
        return load_result(
            self.directory, self.project_name, self.model_name, self.settings, self.space
        )

    def _finished(self) -> int:
        done = (
            keras_tuner.engine.trial.TrialStatus.COMPLETED,
            keras_tuner.engine.trial.TrialStatus.FAILED,
        )
        return sum(t.status in done for t in self.oracle.trials.values())

    def _save_record(self, trial_id: str, record: TrialRecord) -> None:
        path = Path(self.get_trial_dir(trial_id)) / RECORD_FILE
        write_text(path, dumps(record.to_dict(), indent=2) + "\n")


def run_reference(
    path: Path,
    builder: Callable[..., Any],
    train_data: Any,
    eval_data: Any,
    settings: TrialSettings,
    model_name: str,
    on_models: Callable[[list[Any]], None] | None = None,
) -> TrialRecord:
    """Evaluates the ReLU reference and writes its record to `path` (a failed reference is
    recorded, not retried); `on_models` gets its trained replicas when it completes."""
    number = 0
    try:
        record = run_trial(
            builder,
            REFERENCE_POINT,
            train_data,
            eval_data,
            settings,
            model_name=model_name,
            number=number,
            on_models=on_models,
        )
    except TrialFailedError as error:
        record = failed_record(
            REFERENCE_POINT, model_name=model_name, number=number, reason=str(error)
        )
    write_text(path, dumps(record.to_dict(), indent=2) + "\n")
    return record


def project_range(
    project: Path,
    builder: Callable[..., Any],
    train_data: Any,
    eval_data: Any,
    space: SearchSpace,
    settings: TrialSettings,
    *,
    model_name: str,
    progress: Callable[[TrialRecord, int, int], None] | None = None,
    trials: int = 0,
) -> AutoRange:
    """The auto width range of a project: read back from `auto_width_range.json`, else
    measured on the ReLU reference (evaluated now, when `space.reference` and the project has
    none yet) and written there."""
    path = project / AUTO_RANGE_FILE
    if path.exists():
        return AutoRange.from_dict(decode(json.loads(path.read_text(encoding="utf-8"))))
    measured: list[AutoRange] = []

    def measure(models: list[Any]) -> None:
        batch_size = settings.training.batch_size
        measured.append(measure_range(models[:2], eval_data, space, batch_size=batch_size))

    reference = project / REFERENCE_FILE
    if space.reference and not reference.exists():
        project.mkdir(parents=True, exist_ok=True)
        record = run_reference(
            reference, builder, train_data, eval_data, settings, model_name, on_models=measure
        )
        if progress is not None:
            progress(record, 0, trials)
    if measured:
        auto = measured[0]
    else:  # the reference ran before, failed, or is not evaluated
        auto = reference_range(builder, train_data, eval_data, space, settings)
    project.mkdir(parents=True, exist_ok=True)
    write_text(path, dumps(auto.to_dict(), indent=2) + "\n")
    return auto


def load_auto_range(directory: str | Path, project_name: str) -> AutoRange | None:
    """The auto width range a project recorded, or None."""
    path = Path(directory) / project_name / AUTO_RANGE_FILE
    if not path.exists():
        return None
    return AutoRange.from_dict(decode(json.loads(path.read_text(encoding="utf-8"))))


def tune_keras_tuner(
    model_name: str,
    builder: Callable[..., Any],
    train_data: Any,
    eval_data: Any,
    space: SearchSpace,
    settings: TrialSettings,
    *,
    trials: int,
    directory: str | Path,
    project_name: str | None = None,
    sampler: str = "random",
    seed: int = 0,
    overwrite: bool = False,
    timeout: float | None = None,
    progress: Callable[[TrialRecord, int, int], None] | None = None,
    verbose: int = 1,
    fingerprint: Mapping[str, Any] | None = None,
    on_mismatch: str = "error",
) -> TuningResult:
    """Runs (or resumes) the keras-tuner search of one model; returns all its trials.

    The ReLU reference is evaluated once (kept in the project folder), then keras-tuner runs
    search trials until the project holds `trials` of them. With `overwrite=False` (default) an
    existing project is resumed: its oracle is reloaded, finished trials (complete or failed)
    are not run again, a trial interrupted mid-way runs again with the same hyperparameters.
    Resuming another experiment (model, sampler, space, training settings, data, model config,
    package versions) raises `ValueError` naming what changed, or with
    `on_mismatch="new_study"` runs in a new project `<project_name>.2` (`.3`, ...).

    Args:
        model_name: Name of the model (in every record).
        builder: `builder(activation) -> compiled keras.Model`, or `builder(activation, hp)` to
            tune the builder's own keras-tuner hyperparameters in the same search.
        train_data: Training data for `keras_smelu.replicas.train_replicas`.
        eval_data: Held-out data: both objectives are measured on it.
        space: The families and width range.
        settings: How each trial trains and what it reports.
        trials: Search trials wanted in the project, the reference not counted.
        directory: Folder of the keras-tuner project.
        project_name: The project's folder name in `directory` (default `model_name`); also
            the result's `study_name`.
        sampler: `"random"` (default) or `"grid"`.
        seed: The oracle's seed.
        overwrite: Delete an existing project and start afresh.
        timeout: Start no new trial after this many seconds of search.
        progress: Called after the reference and each trial with
            `(record, finished search trials, trials)`.
        verbose: 0: silent; 1: keras-tuner's progress (a table per trial; its "Best
            multi_objective So Far" is the sum of the objectives, not our frontier) and the
            reason of each failed trial.
        fingerprint: More entries that define the experiment (e.g. a job's `[data]` and
            `[model]` sections), besides those measured here.
        on_mismatch: `"error"` (default) or `"new_study"`.

    Returns:
        The `TuningResult` of every finished trial of the project, this run's or not.
    """
    from keras_smelu.tuning._optuna_backend import ON_MISMATCH

    if on_mismatch not in ON_MISMATCH:
        raise ValueError(
            f"Argument `on_mismatch` must be one of {ON_MISMATCH}; received: "
            f"on_mismatch={on_mismatch!r}"
        )
    if sampler == "grid":
        check_grid_trials(trials)
    hp_builder = takes_hp(builder)

    def with_defaults(activation):  # builders of the hp form: their hyperparameters' defaults
        return builder(activation, keras_tuner.HyperParameters())

    build = with_defaults if hp_builder else builder

    experiment = experiment_fingerprint(build, train_data, eval_data, fingerprint)
    project_name = project_name or model_name
    if not overwrite:
        project_name = _project_for(
            Path(directory),
            project_name,
            comparable_setup(space, settings, experiment, model=model_name, sampler=sampler),
            on_mismatch,
        )
    if space.needs_range:  # fixed before the tuner declares the width's bounds
        project = Path(directory) / project_name
        if overwrite:  # start afresh now: the reference below belongs to the new project
            shutil.rmtree(project, ignore_errors=True)
            overwrite = False
        auto = project_range(
            project,
            build,
            train_data,
            eval_data,
            space,
            settings,
            model_name=model_name,
            progress=progress,
            trials=trials,
        )
        space = space.with_measured_range(auto.low, auto.high)
    quiet = contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext()
    with quiet:  # keras-tuner prints "Reloading Tuner from ..." unconditionally
        tuner = SmoothnessTuner(
            builder,
            space,
            settings,
            model_name=model_name,
            trials=trials,
            sampler=sampler,
            seed=seed,
            directory=directory,
            project_name=project_name,
            overwrite=overwrite,
            timeout=timeout,
            progress=progress,
            fingerprint=experiment,
        )
    tuner.search(train_data, eval_data, verbose=verbose)
    return tuner.result()


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
    sampler: str,
    seed: int,
    timeout: float | None,
    progress: Callable[[TrialRecord, int, int], None] | None,
    fingerprint: Mapping[str, Any] | None = None,
    on_mismatch: str = "error",
) -> TuningResult:
    """`tune`'s entry point: `tune_keras_tuner` with the storage folder as `directory` and
    the study name as `project_name`."""
    return tune_keras_tuner(
        model_name,
        builder,
        train_data,
        eval_data,
        space,
        settings,
        trials=trials,
        directory=storage,
        project_name=study_name,
        sampler=sampler,
        seed=seed,
        timeout=timeout,
        progress=progress,
        verbose=1 if progress else 0,
        fingerprint=fingerprint,
        on_mismatch=on_mismatch,
    )


def load_result(
    directory: str | Path,
    project_name: str,
    model_name: str,
    settings: TrialSettings,
    space: SearchSpace | None = None,
) -> TuningResult:
    """Reads the `TuningResult` of a keras-tuner project back from its folder.

    Trials still marked running (interrupted) are left out; a failed trial without a record of
    ours (failed by keras-tuner itself) gets the last line of keras-tuner's message as reason.

    Args:
        directory: The folder holding the project.
        project_name: The project's folder name.
        model_name: Name of the model.
        settings: The settings the project ran with (objective names and directions).
        space: The project's search space (the default family of trials without a record).
    """
    project = Path(directory) / project_name
    if not project.is_dir():
        raise FileNotFoundError(f"no keras-tuner project {project_name!r} in {str(directory)!r}")
    space = space or SearchSpace()
    records = []
    reference = project / REFERENCE_FILE
    if reference.exists():
        records.append(_read_record(reference))
    ensembles = {
        int(p.stem.removeprefix("reference-x")): p for p in project.glob("reference-x*.json")
    }
    records += [as_ensemble(_read_record(ensembles[k]), k) for k in sorted(ensembles)]
    trials = [
        keras_tuner.engine.trial.Trial.load(str(p)) for p in project.glob("trial_*/trial.json")
    ]
    for trial in sorted(trials, key=lambda t: int(t.trial_id)):
        record = _record_of(trial, project, model_name, settings, space)
        if record is not None:
            records.append(record)
    return TuningResult(
        model=model_name,
        trials=tuple(records),
        directions=settings.directions,
        objective_names=settings.objective_names,
        study_name=project_name,
    )


# --------------------------------------------------------------------------- helpers


def _record_of(
    trial, project: Path, model_name: str, settings: TrialSettings, space: SearchSpace
) -> TrialRecord | None:
    """The record of a finished keras-tuner trial (None while it runs or waits for a retry)."""
    status = keras_tuner.engine.trial.TrialStatus
    if trial.status not in (status.COMPLETED, status.FAILED):
        return None
    path = project / f"trial_{trial.trial_id}" / RECORD_FILE
    if path.exists():
        record = _read_record(path)
        if record.is_complete == (trial.status == status.COMPLETED):
            return record
    # No record of ours: rebuild what the trial itself holds.
    values = dict(trial.hyperparameters.values)
    family = values.get(_FAMILY, space.families[0])
    params = (
        {_SLOPE_LEFT: values[_SLOPE_LEFT]}
        if family == _GENERALIZED and (_SLOPE_LEFT in values)
        else {}
    )
    point = SearchPoint(family, float(values.get(_WIDTH, math.nan)), params)
    number, trial_id = trial_number(trial.trial_id), int(trial.trial_id)
    names = settings.objective_names
    if trial.status == status.COMPLETED and all(trial.metrics.exists(n) for n in names):
        return TrialRecord(
            number=number,
            model=model_name,
            family=point.family,
            width=point.width,
            params=params,
            accuracy=trial.metrics.get_last_value(names[0]),
            pd=trial.metrics.get_last_value(names[1]),
            trial_id=trial_id,
        )
    lines = [line for line in (trial.message or "").splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else "failed (keras-tuner recorded no reason)"
    return failed_record(
        point, model_name=model_name, number=number, reason=reason, trial_id=trial_id
    )


def _read_record(path: Path) -> TrialRecord:
    return TrialRecord.from_dict(decode(json.loads(path.read_text(encoding="utf-8"))))


def _project_changes(path: Path, config: Mapping[str, Any]) -> list[str]:
    """What differs between a project's stored config and `config` (nothing when new)."""
    if not path.exists():
        return []
    stored = decode(json.loads(path.read_text(encoding="utf-8")))
    return setup_changes(stored, config)


def _check_project_config(path: Path, config: Mapping[str, Any]) -> None:
    differences = _project_changes(path, config)
    if differences:
        raise ValueError(
            f"The keras-tuner project in {str(path.parent)!r} was started with other settings "
            f"({'; '.join(differences)}); its trials would not be comparable. Pass "
            "overwrite=True to start afresh, use another directory or project name, or start "
            "a new study (tune(..., on_mismatch='new_study'); keras-smelu tune --new-study)."
        )


def _project_for(
    directory: Path, project_name: str, config: Mapping[str, Any], on_mismatch: str
) -> str:
    """`project_name`, or with `on_mismatch="new_study"` the first of `project_name.2`,
    `.3`, ... that is new or holds the same experiment."""
    for name in suffixed_names(project_name):
        path = directory / name / CONFIG_FILE
        if not _project_changes(path, config):
            if name != project_name:
                print(
                    f"Project {project_name!r} holds another experiment: running a new "
                    f"project {name!r}.",
                    file=sys.stderr,
                )
            return name
        if on_mismatch == "error":
            _check_project_config(path, config)
    raise ValueError(f"every project name from {project_name!r} to {name!r} holds other settings")


@contextlib.contextmanager
def _no_failure_tracebacks() -> Iterator[None]:
    """keras-tuner prints the full traceback of every failed trial while its `DEBUG` flag is
    set (the default); a diverged width is an expected outcome, reported in one line instead."""
    config = sys.modules.get("keras_tuner.src.config")
    if config is None or not hasattr(config, "DEBUG"):
        yield
        return
    previous = config.DEBUG
    config.DEBUG = False
    try:
        yield
    finally:
        config.DEBUG = previous
