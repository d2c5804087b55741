"""The Optuna backend: one multi-objective study per model, (accuracy, PD) per trial.

Optuna does the distributed part: a study lives in a storage (a SQLite file by default, a
journal file for several processes on one machine, any RDB URL for many machines) and every
worker that opens the same study name shares its trials. Our part is the objective (train the
replica pairs of one width), the ReLU reference, and turning trials into `TrialRecord`s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import random
import re
import socket
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock between local workers
    fcntl = None

from keras_smelu.tuning._auto_range import AutoRange, measure_range, reference_range
from keras_smelu.tuning._backends import BACKENDS, check_grid_trials
from keras_smelu.tuning._early_stopping import TrialPrunedError, epoch_pruner
from keras_smelu.tuning._ensembles import as_ensemble, run_ensemble
from keras_smelu.tuning._fingerprint import experiment_fingerprint, suffixed_names
from keras_smelu.tuning._imports import import_optional
from keras_smelu.tuning._record import TrialRecord
from keras_smelu.tuning._results import TuningResult
from keras_smelu.tuning._space import REFERENCE_FAMILY, SearchPoint, SearchSpace
from keras_smelu.tuning._trial import (
    REFERENCE_POINT,
    TrialFailedError,
    TrialSettings,
    comparable_setup,
    failed_record,
    run_trial,
    setup_changes,
)

SAMPLERS = BACKENDS["optuna"].samplers
_RECORD = "keras_smelu_record"
_FAIL_REASON = "fail_reason"
_FAMILY = "family"
# A trial whose process died stops sending heartbeats; after the grace period Optuna marks it
# failed, so a resumed study neither waits for it nor counts it.
_HEARTBEAT_S = 10
_SETUP = "keras_smelu_setup"
# Search trial k of a study is record number k + 1; the ReLU reference is number 0.
_SEARCH_OFFSET = 1
_SQLITE_LOCK_TIMEOUT_S = 120
# Workers that create a server's schema at the same moment collide; the losers retry.
_SCHEMA_ATTEMPTS = 5
_UNFINISHED_STATES = ("RUNNING", "WAITING")
# Trials that hold a result or may still produce one.
_LIVE_STATES = (*_UNFINISHED_STATES, "COMPLETE")
# On a pruned reference trial: the number of the reference trial that is evaluated instead.
_DUPLICATE_OF = "duplicate_of"
# On a pruned search trial: the study already held its trials when it started (a hard cap
# across workers).
_SURPLUS = "surplus"
# On every trial: the machine and process running it, to tell a killed trial from a live one.
_WORKER = "worker"
# A worker records itself as its objective's first step, milliseconds after the storage creates
# the trial. A running trial without a worker after this long belongs to a process killed in
# between: it may have no heartbeat either, and Optuna fails only trials whose heartbeat stopped.
_CLAIM_S = _HEARTBEAT_S
# On the study: how many workers of the machine joined it (each draws its own sampler stream).
_WORKERS = "keras_smelu_workers"
# On the study: the measured auto width range (`_auto_range.AutoRange.to_dict()`).
AUTO_RANGE_ATTR = "keras_smelu_width_range"
INTERRUPTED_REASON = "interrupted or killed before it finished"
ON_MISMATCH = ("error", "new_study")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _optuna():
    return import_optional("optuna", "the Optuna tuning backend")


@contextlib.contextmanager
def _quiet_experimental():
    """Heartbeats and metric names are stable in practice but flagged experimental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _optuna().exceptions.ExperimentalWarning)
        yield


def check_storage_url(url: str) -> None:
    """Refuses a storage URL no storage can open, before anything is trained: a form other
    than `journal:<file>` or `<scheme>://...`, a scheme SQLAlchemy has no dialect for, or a
    file storage whose folder is a file.

    Raises:
        ValueError: naming the storage and what was expected.
    """
    expected = "'sqlite:///<file>', 'journal:<file>' or an RDB URL such as 'postgresql://...'"
    if not isinstance(url, str) or not url:
        raise ValueError(f"Argument `storage` must be {expected}; received: storage={url!r}")
    path = _file_of(url)
    if path is None:
        if _URL_SCHEME.match(url) is None:
            raise ValueError(f"Argument `storage` must be {expected}; received: storage={url!r}")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(url).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as error:
            raise ValueError(
                f"Argument `storage` has an unknown URL scheme {_URL_SCHEME.match(url)[1]!r} "
                f"({error}); expected {expected}; received: storage={url!r}"
            ) from None
        return
    if not path.name:
        raise ValueError(f"Argument `storage` names no file; received: storage={url!r}")
    for parent in (path, *path.parents):
        if parent.exists():
            if parent != path and not parent.is_dir():
                raise ValueError(
                    f"Argument `storage` lies inside {str(parent)!r}, which is a file, not a "
                    f"folder; received: storage={url!r}"
                )
            if parent == path and path.is_dir():
                raise ValueError(
                    f"Argument `storage` names a folder, not a file; received: storage={url!r}"
                )
            break


def _file_of(url: str) -> Path | None:
    """The file of a `journal:` or `sqlite:///` storage; None for other URLs."""
    if url.startswith("journal:"):
        return Path(url[len("journal:") :])
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    return None


def make_storage(url: str):
    """An Optuna storage from a URL: `journal:<file>` or any RDB URL (`sqlite:///...`,
    `postgresql://...`). SQLite folders are created; RDB storages send heartbeats so that
    trials of a killed process are marked failed.

    Raises:
        ValueError: for a URL no storage can open (`check_storage_url`).
    """
    optuna = _optuna()
    check_storage_url(url)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        # Other workers, heartbeats and readers (`keras-smelu report`) share the file: wait for
        # its lock rather than fail after SQLite's default 5 s.
        engine_kwargs["connect_args"] = {"timeout": _SQLITE_LOCK_TIMEOUT_S}
    # Creating the storage creates its tables: under the lock, so that two local processes
    # opening a new SQLite file at once (workers, a reader) do not both write the schema. No
    # lock spans the machines of a server: the worker that loses that race tries again.
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with _quiet_experimental(), _storage_lock(url):
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=_HEARTBEAT_S
                )
        except (IntegrityError, ProgrammingError):
            if attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)


def make_sampler(name: str, space: SearchSpace, *, trials: int, seed: int):
    """The sampler named `name` ("tpe", "nsga2", "random" or "grid"), seeded."""
    optuna = _optuna()
    if name == "tpe":
        # Fewer random start-up trials than Optuna's default 10: studies here are short.
        startup = min(10, max(3, trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
    if name == "nsga2":
        # Several generations even in a short study (a generation of `trials` is random search).
        # Optuna's default mutation redraws each parameter with probability 1/n_params: with the
        # width as the only parameter NSGA-II samples like random search; TPE is the default.
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, trials // 4))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        check_grid_trials(trials)
        grid: dict[str, list[Any]] = {"width": space.grid_widths(trials)}  # the measured range
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
    width = trial.suggest_float("width", space.low, space.high, log=space.log)
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
    if state == "PRUNED":  # stopped early as dominated: an answer too (not a surplus trial)
        return _RECORD in trial.user_attrs
    return state == "COMPLETE" or (state == "FAIL" and _FAIL_REASON in trial.user_attrs)


def _done(study) -> int:
    return sum(_counts_toward_target(t) for t in study.get_trials(deepcopy=False))


def _record_of(trial, model_name: str, offset: int = _SEARCH_OFFSET) -> TrialRecord | None:
    """The `TrialRecord` of a finished Optuna trial (None for running/waiting ones), numbered
    `trial.number + offset`: the reference is number 0, search trial k is number k + 1."""
    state = trial.state.name
    if state == "RUNNING" and _worker_died(trial):
        state = "FAIL"  # reported as interrupted; the next run of the study fails it
    pruned = state == "PRUNED" and _RECORD in trial.user_attrs  # stopped early, recorded
    if state not in ("COMPLETE", "FAIL") and not pruned:
        return None
    number = trial.number + offset
    stored = trial.user_attrs.get(_RECORD)
    if stored is not None:  # as the process that ran the trial recorded it
        return dataclasses.replace(
            TrialRecord.from_dict(stored), number=number, trial_id=trial._trial_id
        )
    # Interrupted or killed before it finished: rebuilt from Optuna's own trial record.
    params = dict(trial.params)
    family = params.pop(_FAMILY, trial.user_attrs.get(_FAMILY, REFERENCE_FAMILY))
    width = params.pop("width", 0.0)
    return failed_record(
        SearchPoint(family, width, params),
        model_name=model_name,
        number=number,
        reason=INTERRUPTED_REASON,
        system={},  # the process that ran it is unknown
        trial_id=trial._trial_id,
    )


def _record_failure(
    trial, point: SearchPoint, model_name: str, number: int, error: Exception
) -> TrialRecord:
    """Stores a failed trial's reason and record (with the system it failed on) on `trial`."""
    record = failed_record(point, model_name=model_name, number=number, reason=str(error))
    trial.set_user_attr(_FAIL_REASON, record.fail_reason)
    trial.set_user_attr(_RECORD, record.to_dict())
    return record


@contextlib.contextmanager
def _storage_lock(storage: str):
    """An exclusive lock between the processes of one machine that share a file storage.

    Yields True when held; False for storages no lock spans (RDB servers of several machines).
    """
    path = None
    if storage.startswith("journal:"):
        path = storage[len("journal:") :]
    elif storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :]
    if path is None or fcntl is None:
        yield False
        return
    with open(f"{path}.keras-smelu.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _evaluate_reference(ref_study, storage: str, run, model_name: str) -> TrialRecord | None:
    """Evaluates ReLU once, in a study of its own (`<study>/reference`).

    Kept out of the search study so that samplers see one search space (a parameterless trial
    would empty the intersection space that multivariate TPE and NSGA-II learn from).

    Once for all workers: on a file storage the workers of the machine take the storage lock in
    turn; the first evaluates the reference, the others find it done, and a reference left
    running under the lock belongs to a worker that died and is redone. On an RDB server
    shared by several machines no lock spans the workers: a reference running elsewhere is
    left to its worker while its heartbeat lives, and of workers that start it at once the
    lowest-numbered trial evaluates it while the others are pruned as duplicates.

    Returns:
        The new record, or None when there was nothing to do.
    """
    optuna = _optuna()
    new: list[TrialRecord] = []
    with _storage_lock(storage) as exclusive:
        if not exclusive:
            _fail_dead_trials(ref_study)  # its worker died mid-reference
        trials = ref_study.get_trials(deepcopy=False)
        if any(_counts_toward_target(t) for t in trials):
            return None
        pending = [t for t in trials if t.state.name in _UNFINISHED_STATES]
        if pending and not exclusive:
            return None
        for abandoned in pending:
            ref_study.tell(abandoned.number, state=optuna.trial.TrialState.FAIL)

        def objective(trial):
            trial.set_user_attr(_WORKER, _worker_info())
            trial.set_user_attr(_FAMILY, REFERENCE_FAMILY)
            first = min(t.number for t in ref_study.get_trials(states=_live_states()))
            if first != trial.number:
                trial.set_user_attr(_DUPLICATE_OF, first)
                raise optuna.TrialPruned(f"the reference is trial {first}'s")
            try:
                record = run(REFERENCE_POINT, 0)
            except TrialFailedError as error:
                new.append(_record_failure(trial, REFERENCE_POINT, model_name, 0, error))
                raise
            trial.set_user_attr(_RECORD, record.to_dict())
            new.append(record)
            return record.accuracy, record.pd

        # `optimize` rather than ask/tell: the trial sends heartbeats like the search trials.
        ref_study.optimize(objective, n_trials=1, catch=(TrialFailedError,))
    return new[0] if new else None


def _live_states():
    state = _optuna().trial.TrialState
    return tuple(getattr(state, name) for name in _LIVE_STATES)


def _check_same_setup(study, setup: dict) -> None:
    """A resumed study must run the same experiment (settings, data, model, versions) as
    before: otherwise its trials are not comparable and one frontier would mix them."""
    stored = study.user_attrs.get(_SETUP)
    if stored is None:
        study.set_user_attr(_SETUP, setup)
        return
    changed = setup_changes(stored, setup)
    if changed:
        raise ValueError(mismatch_message(f"Study {study.study_name!r}", changed))
    if stored != setup:  # entries that were not comparable (a model that could not be built)
        study.set_user_attr(_SETUP, setup)


def mismatch_message(what: str, changed: list[str]) -> str:
    """The refusal of a resume whose experiment differs, listing `"key: old -> new"`."""
    return (
        f"{what} was run with other settings ({'; '.join(changed)}); its trials would not be "
        "comparable. Use the original setup, another study name or output folder, or start a "
        "new study (tune(..., on_mismatch='new_study'); keras-smelu tune --new-study)."
    )


def check_on_mismatch(on_mismatch: str) -> None:
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(
            f"Argument `on_mismatch` must be one of {ON_MISMATCH}; received: "
            f"on_mismatch={on_mismatch!r}"
        )


def _study_name_for(storage_obj, study_name: str, setup: dict, on_mismatch: str) -> str:
    """`study_name`, or with `on_mismatch="new_study"` the first of `study_name.2`, `.3`, ...
    that is new or holds the same experiment."""
    check_on_mismatch(on_mismatch)
    for name in suffixed_names(study_name):
        try:
            study_id = storage_obj.get_study_id_from_name(name)
        except KeyError:
            return name
        stored = storage_obj.get_study_user_attrs(study_id).get(_SETUP)
        changed = [] if stored is None else setup_changes(stored, setup)
        if not changed:
            return name
        if on_mismatch == "error":
            raise ValueError(mismatch_message(f"Study {name!r}", changed))
    raise ValueError(f"every study name from {study_name!r} to {name!r} holds other settings")


def _worker_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _worker_died(trial) -> bool:
    """Whether a running trial's process is known to have ended: it ran on this machine and
    its process is gone, or it recorded no worker within `_CLAIM_S` of its start (on any
    machine). Trials that other machines recorded are left to Optuna's heartbeats."""
    worker = trial.user_attrs.get(_WORKER)
    if worker is None:
        started = trial.datetime_start  # naive local time, as Optuna's storages write it
        return started is not None and (
            datetime.datetime.now() - started > datetime.timedelta(seconds=_CLAIM_S)
        )
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _fail_dead_trials(study) -> int:
    """Fails the running trials whose process died (e.g. SIGKILL), so that a resumed study
    reports them as interrupted and neither waits for nor counts them; returns how many."""
    optuna = _optuna()
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not _worker_died(trial):
            continue
        with contextlib.suppress(RuntimeError, ValueError):  # another worker failed it first
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
    with _quiet_experimental():
        optuna.storages.fail_stale_trials(study)  # other machines' dead trials, by heartbeat
    return failed


def _wait_for_running(study, poll_s: float = 1.0) -> None:
    """Waits until no trial of `study` runs (other workers' trials finish, dead ones fail)."""
    running = (_optuna().trial.TrialState.RUNNING,)
    while study.get_trials(deepcopy=False, states=running):
        time.sleep(poll_s)
        _fail_dead_trials(study)


def _is_surplus(study, number: int, trials: int) -> bool:
    """Whether trial `number` would exceed the study's `trials`: that many trials numbered
    before it are running or finished (failed ones with a reason count, as in `_done`).

    Trial numbers are given out atomically by the storage, so every worker reaches the same
    answer for a trial and the cap holds across workers and machines without a lock."""
    ahead = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.number < number and (
            trial.state.name in _UNFINISHED_STATES or _counts_toward_target(trial)
        ):
            ahead += 1
    return ahead >= trials


def _sampler_seed(seed: int, study, storage: str) -> int:
    """The job's seed for the first worker of a fresh study (reproducible); mixed with the
    trials already there (a resumed run must not redraw them) and with the worker: on file
    storages its number among the workers that joined the study (counted under the storage
    lock), on servers its machine and process. Two workers never draw the same widths."""
    entropy = [seed, len(study.get_trials(deepcopy=False))]
    with _storage_lock(storage) as exclusive:
        if exclusive:
            worker = int(study.user_attrs.get(_WORKERS, 0))
            study.set_user_attr(_WORKERS, worker + 1)
            if worker:
                entropy.append(worker)
        else:
            entropy += [zlib.crc32(socket.gethostname().encode()), os.getpid()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


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
    fingerprint: dict[str, Any] | None = None,
    on_mismatch: str = "error",
) -> TuningResult:
    """Runs (or resumes) the study of one model until it holds `trials` finished search trials.

    The study records its experiment (search space, settings, data, model, versions:
    `_fingerprint.experiment_fingerprint`); a resume that differs is refused, naming what
    changed, or with `on_mismatch="new_study"` runs in a new study `<study_name>.2` (`.3`,
    ...). Trials whose process died are failed as interrupted when the study resumes. The
    study never holds more than `trials` search trials, however many workers share it.

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
        fingerprint: More entries that define the experiment (e.g. a job's `[data]` and
            `[model]` sections), besides those measured here.
        on_mismatch: `"error"` (default): refuse a resume of another experiment;
            `"new_study"`: run it in a new study with a suffixed name.

    Returns:
        The `TuningResult` of every finished trial of the study, this process's or not.

    Raises:
        ValueError: a resume of another experiment (naming what changed), a bad storage URL.
        KeyboardInterrupt: re-raised after the completed trials are safely in the storage.
    """
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_on_mismatch(on_mismatch)
    if sampler == "grid":
        check_grid_trials(trials)
    storage_obj = make_storage(storage)

    setup = comparable_setup(
        space, settings, experiment_fingerprint(builder, train_data, eval_data, fingerprint)
    )
    chosen = _study_name_for(storage_obj, study_name, setup, on_mismatch)
    if chosen != study_name:
        print(
            f"Study {study_name!r} holds another experiment: running a new study {chosen!r}.",
            file=sys.stderr,
        )
        study_name = chosen

    def open_study(name):
        study = optuna.create_study(
            study_name=name,
            storage=storage_obj,
            directions=list(settings.directions),
            load_if_exists=True,
        )
        _check_same_setup(study, setup)
        with _quiet_experimental():
            study.set_metric_names(list(settings.objective_names))
        return study

    study = open_study(study_name)
    _fail_dead_trials(study)

    def run(point: SearchPoint, number: int, on_epoch=None, on_models=None) -> TrialRecord:
        return run_trial(
            builder,
            point,
            train_data,
            eval_data,
            settings,
            model_name=model_name,
            number=number,
            on_epoch=on_epoch,
            on_models=on_models,
        )

    # An auto range is measured on the reference's first pair, kept for that alone.
    measured: list[AutoRange] = []
    measure = None
    if space.needs_range and AUTO_RANGE_ATTR not in study.user_attrs:

        def measure(models):
            batch_size = settings.training.batch_size
            measured.append(measure_range(models[:2], eval_data, space, batch_size=batch_size))

    ref_study = None
    if space.reference:
        ref_study = open_study(reference_study_name(study_name))
        record = _evaluate_reference(
            ref_study,
            storage,
            lambda point, number: run(point, number, on_models=measure),
            model_name,
        )
        if record is not None and progress is not None:
            progress(record, _done(study), trials)
    if space.needs_range:
        auto = _study_range(
            study,
            storage,
            measured,
            lambda: reference_range(builder, train_data, eval_data, space, settings),
        )
        space = space.with_measured_range(auto.low, auto.high)
    study.sampler = make_sampler(
        sampler, space, trials=trials, seed=_sampler_seed(seed, study, storage)
    )

    capped = []

    def objective(trial):
        trial.set_user_attr(_WORKER, _worker_info())
        if _is_surplus(study, trial.number, trials):
            trial.set_user_attr(_SURPLUS, True)
            capped.append(trial.number)
            study.stop()
            raise optuna.TrialPruned(f"the study already holds its {trials} trials")
        point = suggest_point(trial, space)
        trial.set_user_attr(_FAMILY, point.family)
        on_epoch = _epoch_pruner(study, ref_study, model_name, settings)
        try:
            record = run(point, trial.number + _SEARCH_OFFSET, on_epoch)
        except TrialFailedError as error:
            _record_failure(trial, point, model_name, trial.number + _SEARCH_OFFSET, error)
            raise
        except TrialPrunedError as pruned:
            trial.set_user_attr(_RECORD, pruned.record.to_dict())
            raise optuna.TrialPruned(pruned.reason) from None
        trial.set_user_attr(_RECORD, record.to_dict())
        return record.accuracy, record.pd

    def after_trial(study, frozen):
        finished = _done(study)
        if progress is not None:
            record = _record_of(frozen, model_name)
            if record is not None:
                progress(record, finished, trials)
        if finished >= trials:
            study.stop()

    deadline = None if timeout is None else time.monotonic() + timeout
    while (remaining := trials - _done(study)) > 0:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        capped.clear()
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=left,
            catch=(TrialFailedError,),
            callbacks=[after_trial],
        )
        if not capped:
            break
        # The study's last trials run elsewhere: wait for them, to report them too. One whose
        # worker dies leaves the study short; this worker then runs the trials still missing.
        _wait_for_running(study)
    ensembles = {}
    for size in space.ensembles if ref_study is not None else ():
        # After the search, so that the workers of a study search first; each size once for
        # all workers, in a study of its own, as the reference is.
        ensembles[size] = open_study(ensemble_study_name(study_name, size))
        record = _evaluate_reference(
            ensembles[size],
            storage,
            lambda point, number, size=size: run_ensemble(
                builder, train_data, eval_data, settings, size, model_name=model_name
            ),
            model_name,
        )
        if record is not None and progress is not None:
            progress(as_ensemble(record, size), _done(study), trials)
    return study_result(study, ref_study, model_name, settings, ensembles)


def _study_range(study, storage: str, measured: list[AutoRange], measure_again) -> AutoRange:
    """The study's auto width range: as stored (a resumed run or another worker searches the
    same range), else the one measured now, stored as a study attribute; `measure_again()`
    measures it when this run did not (the reference ran earlier, or failed)."""
    stored = study.user_attrs.get(AUTO_RANGE_ATTR)
    if stored is not None:
        return AutoRange.from_dict(stored)
    auto = measured[0] if measured else measure_again()
    with _storage_lock(storage):
        stored = study.user_attrs.get(AUTO_RANGE_ATTR)
        if stored is not None:  # another worker stored it first: search the same range
            return AutoRange.from_dict(stored)
        study.set_user_attr(AUTO_RANGE_ATTR, auto.to_dict())
    return auto


def load_auto_range(storage: str, study_name: str) -> AutoRange | None:
    """The auto width range a study recorded, or None (a given range, or none measured)."""
    optuna = _optuna()
    try:
        study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    except KeyError:
        return None
    stored = study.user_attrs.get(AUTO_RANGE_ATTR)
    return None if stored is None else AutoRange.from_dict(stored)


def _epoch_pruner(study, ref_study, model_name: str, settings: TrialSettings):
    """The early-stopping callback of a search trial (`Objective.prune`): against the study's
    complete trials and the reference, as they are when the trial starts; None when off."""
    if not settings.objective.prune or ref_study is None:
        return None
    references = [
        _record_of(t, model_name, -t.number) for t in ref_study.get_trials(deepcopy=False)
    ]
    reference = next((r for r in references if r is not None and r.is_complete), None)
    complete = [_record_of(t, model_name) for t in study.get_trials(deepcopy=False)]
    return epoch_pruner(
        [r for r in complete if r is not None and r.is_complete],
        reference,
        settings.objective_names,
        settings.directions[0],
        settings.objective.level,
    )


def reference_study_name(study_name: str) -> str:
    """The study holding the ReLU reference of `study_name`."""
    return f"{study_name}/reference"


def ensemble_study_name(study_name: str, size: int) -> str:
    """The study holding the ReLU `size`-ensemble reference point of `study_name`."""
    return f"{study_name}/reference-x{size}"


def _ensemble_studies(storage_obj, study_name: str) -> dict[int, Any]:
    """The ReLU ensemble studies of `study_name` found in a storage, by size."""
    optuna = _optuna()
    pattern = re.compile(re.escape(study_name) + r"/reference-x([0-9]+)")
    found = {}
    for name in optuna.study.get_all_study_names(storage=storage_obj):
        match = pattern.fullmatch(name)
        if match:
            found[int(match[1])] = optuna.load_study(study_name=name, storage=storage_obj)
    return dict(sorted(found.items()))


def study_result(
    study, ref_study, model_name: str, settings: TrialSettings, ensembles=None
) -> TuningResult:
    """The `TuningResult` of every finished trial of `study`, of its reference study and of
    its ReLU ensemble studies (`{size: study}`)."""
    records = []
    if ref_study is not None:
        # Every reference record is number 0, however many attempts its study holds.
        refs = ref_study.get_trials(deepcopy=False)
        records += [_record_of(t, model_name, -t.number) for t in refs]
    for size, ensemble_study in (ensembles or {}).items():
        for trial in ensemble_study.get_trials(deepcopy=False):
            record = _record_of(trial, model_name, -trial.number)
            records.append(None if record is None else as_ensemble(record, size))
    records += [_record_of(t, model_name) for t in study.get_trials(deepcopy=False)]
    return TuningResult(
        model=model_name,
        trials=tuple(r for r in records if r is not None),
        directions=settings.directions,
        objective_names=settings.objective_names,
        study_name=study.study_name,
    )


def load_result(
    storage: str,
    study_name: str,
    model_name: str,
    settings: TrialSettings,
    space: SearchSpace | None = None,
) -> TuningResult:
    """Reads a study (and its reference) back from its storage, e.g. after Ctrl-C or to report
    on a study that other workers ran."""
    optuna = _optuna()
    storage_obj = make_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=storage_obj)
    try:
        ref_study = optuna.load_study(
            study_name=reference_study_name(study_name), storage=storage_obj
        )
    except KeyError:
        ref_study = None
    ensembles = _ensemble_studies(storage_obj, study.study_name)
    return study_result(study, ref_study, model_name, settings, ensembles)


def default_storage(output: str | os.PathLike[str]) -> str:
    """The default storage: a SQLite file `study.db` in the output folder."""
    return f"sqlite:///{Path(output).resolve() / 'study.db'}"
