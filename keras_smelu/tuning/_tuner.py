"""`tune()`: the accuracy/PD Pareto frontier of every model, from Python."""

from __future__ import annotations

import dataclasses
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import keras

from keras_smelu.replicas import ReplicaSettings
from keras_smelu.tuning._backends import BACKEND_NAMES, BACKENDS
from keras_smelu.tuning._comparisons import trial_pairs
from keras_smelu.tuning._confirm import confirm, pair_store, pair_trainer, with_pairs
from keras_smelu.tuning._fingerprint import check_output_folder, job_fingerprint
from keras_smelu.tuning._objective import Objective
from keras_smelu.tuning._paired import compare
from keras_smelu.tuning._record import TrialRecord, system_info
from keras_smelu.tuning._results import TuningReport
from keras_smelu.tuning._space import SearchSpace
from keras_smelu.tuning._trial import TrialSettings, takes_hp

if TYPE_CHECKING:
    from keras_smelu.datasets import RecDataset
    from keras_smelu.tuning._job import Job

Builder = Callable[..., Any]
"""`builder(activation) -> compiled keras.Model` (keras-tuner: also `(activation, hp)`)."""


def split_data(data: Any) -> tuple[Any, Any]:
    """(train, eval) from a `RecDataset`, a loader returning one, or a `(train, eval)` pair."""
    from keras_smelu._replica_data import StreamSplit, is_stream

    if callable(data) and not hasattr(data, "element_spec"):
        data = data()
    if is_stream(data):  # streamed training split, test split read into memory once
        return StreamSplit(data, "train"), StreamSplit(data, "test")
    if hasattr(data, "train") and hasattr(data, "test"):
        return data.train, data.test
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ValueError(
        "Argument `data` must be a keras_smelu.datasets.RecDataset, a loader returning one, "
        "or a pair (train_data, eval_data) of (x, y) tuples or tf.data datasets. "
        f"Received: {type(data).__name__}"
    )


def _named_builders(models: Any) -> dict[str, Callable[..., Any]]:
    if callable(models):
        models = {getattr(models, "__name__", "model"): models}
    if not isinstance(models, Mapping) or not models:
        raise ValueError(
            "Argument `models` must be a model builder (a callable taking the activation) or "
            f"a non-empty dict of name -> builder. Received: {models!r}"
        )
    for name, builder in models.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(
                f"Model names must be non-empty strings of letters, digits, '_', '.', '-' "
                f"(they name studies and files). Received: {name!r}"
            )
        if not callable(builder):
            raise ValueError(f"The builder of model {name!r} is not callable: {builder!r}")
    return dict(models)


def print_progress(
    record: TrialRecord,
    finished: int,
    trials: int,
    names: tuple[str, str] = ("accuracy", "pd"),
    stream: TextIO | None = None,
    *,
    reference: TrialRecord | None = None,
    direction: str = "minimize",
    level: float = 0.9,
) -> None:
    """The one-line progress report of a finished trial.

    With the ReLU `reference` and per-pair data, a search trial's line shows its paired
    comparison: the PD ratio to ReLU and the accuracy cost, each with a `level` interval over
    the pairs (not the replicas' spread, which common random numbers make irrelevant).
    """
    stream = stream or sys.stdout
    counter = (
        "reference" if record.is_reference or record.is_ensemble else f"trial {finished}/{trials}"
    )
    if record.is_complete:
        values = f"{names[0]} {record.accuracy:.4f}, {names[1]} {record.pd:.4f}"
        versus = _versus(record, reference, names, direction, level)
        outcome = f"{values}{versus} ({record.duration_s or 0.0:.1f}s)"
    else:
        outcome = f"FAILED: {record.fail_reason}"
    print(f"[{record.model}] {counter} #{record.number} {record.label}: {outcome}", file=stream)
    stream.flush()


def _versus(
    record: TrialRecord,
    reference: TrialRecord | None,
    names: tuple[str, str],
    direction: str,
    level: float,
) -> str:
    if record.is_reference or reference is None:
        return ""
    mine, theirs = trial_pairs(record, names), trial_pairs(reference, names)
    if mine is None or theirs is None:
        return ""
    comparison = compare(mine, theirs, direction, level)
    cost = f", at {record.cost:g}x compute" if record.is_ensemble else ""
    return (
        f"; vs ReLU: PD x{comparison.pd_ratio.format(3)}, {names[0]} cost "
        f"{comparison.accuracy_cost.format(3)} ({level:.0%} CI, {comparison.pd_ratio.n} pairs)"
        f"{cost}"
    )


class _Progress:
    """The progress printer of one run: remembers each model's reference for the paired
    comparison of its later trials."""

    def __init__(self, settings: TrialSettings) -> None:
        self.settings = settings
        self.references: dict[str, TrialRecord] = {}

    def __call__(self, record: TrialRecord, finished: int, trials: int) -> None:
        if record.is_reference and record.is_complete:
            self.references[record.model] = record
        print_progress(
            record,
            finished,
            trials,
            self.settings.objective_names,
            reference=self.references.get(record.model),
            direction=self.settings.directions[0],
            level=self.settings.objective.level,
        )


def tune(
    models: Builder | Mapping[str, Builder],
    data: RecDataset | Callable[[], RecDataset] | tuple[Any, Any],
    space: SearchSpace | None = None,
    settings: TrialSettings | None = None,
    *,
    backend: str = "optuna",
    sampler: str | None = None,
    storage: str | None = None,
    study_name: str = "keras-smelu",
    output: str | Path | None = None,
    trials: int = 20,
    timeout: float | None = None,
    compilation_cache: bool | str | Path = True,
    verbose: int = 1,
    fingerprint: Mapping[str, Any] | None = None,
    on_mismatch: str = "error",
    families: tuple[str, ...] | list[str] | None = None,
    width_range: tuple[float, float] | str | None = None,
    log: bool | None = None,
    slope_left_range: tuple[float, float] | None = None,
    reference: bool | None = None,
    ensembles: tuple[int, ...] | list[int] | None = None,
    accuracy: str | None = None,
    direction: str | None = None,
    pd: str | None = None,
    level: float | None = None,
    max_accuracy_cost: float | str | None = None,
    confirm_pairs: int | None = None,
    prune: bool | None = None,
    pairs: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    vary: str | None = None,
    report_epoch: str | None = None,
    seed: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> TuningReport:
    """Searches the activation width of each model for accuracy and prediction difference.

    Every trial trains `pairs` pairs of replicas of one model with one activation (family and
    width) and reports two objectives on the evaluation data: the accuracy objective (mean over
    replicas) and PD (mean over pairs); spreads, seeds and per-epoch trajectories are kept.
    Pair k uses the same seeds in every trial, so widths are compared on common random
    numbers. ReLU is evaluated once per model as the reference.

    What to search and how trials train are two settings objects, the same ones a job file's
    sections are: `space` (a `SearchSpace`) and `settings` (a `TrialSettings`: the replicas'
    `ReplicaSettings` and the `Objective`). The keyword conveniences below (`families`,
    `width_range`, ..., `pairs`, `epochs`, ...) override single fields of either.

    Args:
        models: A builder `builder(activation) -> compiled keras.Model`, or a dict
            `{name: builder}`; each model gets its own study and frontier. With the keras-tuner
            backend a builder may take `(activation, hp)` to add its own hyperparameters.
        data: A `keras_smelu.datasets.RecDataset` (trained on `.train`, measured on `.test`),
            a loader returning one, or a pair `(train_data, eval_data)` of `(x, y)` tuples
            or `tf.data` datasets.
        space: The families and width range (default `SearchSpace()`).
        settings: How trials train and what they report (default: 2 pairs of 2 epochs, the
            evaluation loss and relative PD).
        backend: "optuna" (default) or "keras_tuner".
        sampler: Optuna: "tpe" (default), "nsga2", "random", "grid"; keras-tuner: "random"
            (default) or "grid".
        storage: Optuna storage URL: `sqlite:///file.db`, `journal:<file>` (several processes
            on one machine) or an RDB URL such as `postgresql://...` (several machines).
            Default: `study.db` in `output`. With keras-tuner: the folder of its projects
            (default `output/keras_tuner`).
        study_name: Study names are `f"{study_name}/{model}"`: stable, so reruns and other
            workers join the same studies.
        output: Folder for the results (`results.json`, `trials.csv`, `frontier-<model>.png`)
            and the default storage. Default: `keras-smelu-runs/<study_name>` under the
            working directory.
        trials: Search trials per model (the reference not counted). Trials already in the
            storage count: rerunning resumes.
        timeout: Seconds after which no new trial starts (per model).
        compilation_cache: On the JAX backend, turn on JAX's persistent compilation cache
            (`keras_smelu.enable_compilation_cache`) so that the replicas' identical programs
            compile once: True (default) uses `<output>/.jax-cache`, a path uses that folder,
            False leaves JAX as it is. It changes the speed only, never a result.
        verbose: 0 silent; 1 a line per trial; 2 also Keras progress bars.
        fingerprint: More entries that define the experiment, stored with each study beside
            what is measured (the data's shapes and a hash of its arrays, the builder's model
            config, optimizer and learning rate, package versions). What a builder closes
            over is only seen through the model it builds: put anything else here.
        on_mismatch: A resumed study that ran another experiment (settings, data, model,
            versions): "error" (default) raises ValueError naming what changed;
            "new_study" runs a new study `<study>.2` (`.3`, ...) instead.
        families: `space.families`: "smelu", "generalized_smelu", "gelu", "swish",
            "softplus" (comparators share SmeLU's width axis by matched curvature).
        width_range: `(space.width_low, space.width_high)`, in SmeLU `beta` units; or
            `"auto"` (`space.width_range`): the range measured from the ReLU reference's
            pre-activation scales (within `width_low`-`width_high`), recorded in the results
            (`metadata["auto_width_range"]`) and kept by a resumed study.
        log: `space.log`: sample widths on a log scale.
        slope_left_range: `(space.slope_left_low, space.slope_left_high)` of g-SmeLU.
        reference: `space.reference`: evaluate the ReLU reference point.
        ensembles: `space.ensembles`: sizes of ReLU ensembles evaluated as reference points
            (e.g. `[2, 4]`), shown with their cost (k x compute) beside the frontier.
        accuracy: `Objective.accuracy`: "loss" (evaluation loss) or a compiled metric name.
        direction: `Objective.direction`: inferred for known metrics.
        pd: `Objective.pd`: "relative", "absolute", "churn", "topk_distance" or
            "rbo_distance" (the last three take their settings, such as `group`, from
            `settings=TrialSettings(objective=Objective(...))`).
        level: `Objective.level`: confidence level of the paired intervals (0.9).
        max_accuracy_cost: `Objective.max_accuracy_cost`: `0.002` or `"0.5%"`.
        confirm_pairs: `Objective.confirm_pairs`: after the search, more pairs (up to this
            many per point) for the points that decide the answer, until it is resolved.
        prune: `Objective.prune`: stop trials dominated beyond uncertainty after an epoch.
        pairs: `ReplicaSettings.pairs`: replica pairs per trial (>= 5 for a claim).
        epochs: `ReplicaSettings.epochs`: epochs per replica.
        batch_size: `ReplicaSettings.batch_size`.
        vary: `ReplicaSettings.vary`: "data_order", "init", "both", "none".
        report_epoch: `ReplicaSettings.report_epoch`: "last" or "best".
        seed: `ReplicaSettings.seed`: seed of the replica pairs and of the sampler.
        metadata: More entries for the results file's metadata (a job run stores its job,
            so that `keras-smelu export` can train the chosen point again).

    Returns:
        A `TuningReport`: per model, a `TuningResult` with all trials, `.frontier` (the
        non-dominated trials), `.reference` (ReLU) and `.recommended`; saved to `output`.

    Raises:
        ValueError: for an invalid argument or setting, naming it (nothing is trained);
            an `output` folder holding another job's results; a resume of another
            experiment.
        KeyboardInterrupt: after Ctrl-C, once the completed trials are saved.

    Example:

    >>> report = keras_smelu.tuning.tune(
    ...     lambda act: keras_smelu.models.embedding_mlp(ds, activation=act),
    ...     ds, trials=10, pairs=2, epochs=2)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    builders = _named_builders(models)
    space = _with_fields(
        space if space is not None else SearchSpace(),
        SearchSpace,
        "space",
        families=None if families is None else tuple(families),
        width_range="auto" if width_range == "auto" else None,
        width_low=None if width_range in (None, "auto") else width_range[0],
        width_high=None if width_range in (None, "auto") else width_range[1],
        log=log,
        slope_left_low=None if slope_left_range is None else slope_left_range[0],
        slope_left_high=None if slope_left_range is None else slope_left_range[1],
        reference=reference,
        ensembles=None if ensembles is None else tuple(ensembles),
    )
    settings = settings if settings is not None else TrialSettings()
    if not isinstance(settings, TrialSettings):
        raise ValueError(f"`settings` must be a TrialSettings; received: {settings!r}")
    objective = settings.objective
    if accuracy is not None and direction is None and accuracy != objective.accuracy:
        objective = dataclasses.replace(objective, direction=None)  # inferred for the new one
    settings = dataclasses.replace(
        settings,
        training=_with_fields(
            settings.training,
            ReplicaSettings,
            "settings.training",
            pairs=pairs,
            epochs=epochs,
            batch_size=batch_size,
            vary=vary,
            report_epoch=report_epoch,
            seed=seed,
        ),
        objective=_with_fields(
            objective,
            Objective,
            "settings.objective",
            accuracy=accuracy,
            direction=direction,
            pd=pd,
            level=level,
            max_accuracy_cost=max_accuracy_cost,
            confirm_pairs=confirm_pairs,
            prune=prune,
        ),
        verbose=1 if verbose >= 2 else 0,
    )
    if backend not in BACKENDS:
        raise ValueError(
            f"Argument `backend` must be one of {BACKEND_NAMES}. Received: {backend!r}"
        )
    chosen = BACKENDS[backend]
    if chosen.storage_is_folder and storage and re.match(r"^[A-Za-z][\w+.-]*:", storage):
        raise ValueError(
            f"Argument `storage` of the {backend} backend is a folder (it keeps its state in "
            f"files), not an Optuna storage URL. Received: storage={storage!r}"
        )
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"Argument `trials` must be an integer >= 1. Received: {trials!r}")
    train_data, eval_data = split_data(data)
    output = Path(output) if output is not None else Path("keras-smelu-runs") / study_name
    check_output_folder(output, study_name)
    if compilation_cache:
        from keras_smelu.compilation_cache import enable_compilation_cache

        cache = output / ".jax-cache" if compilation_cache is True else compilation_cache
        enable_compilation_cache(cache)
    storage = storage or _default_storage(backend, output)
    progress = _Progress(settings) if verbose else None

    results = []
    auto_ranges: dict[str, Any] = {}
    started = time.time()
    interrupted = False
    try:
        for name, builder in builders.items():
            if backend == "optuna" and takes_hp(builder):
                raise ValueError(
                    f"The builder of model {name!r} takes (activation, hp): that form is for "
                    "the keras_tuner backend. With Optuna, a builder takes the activation only."
                )
            result = chosen.load().optimize(
                name,
                builder,
                train_data,
                eval_data,
                space,
                settings,
                trials=trials,
                storage=storage,
                study_name=chosen.study_id(study_name, name),
                sampler=sampler or chosen.default_sampler,
                seed=settings.training.seed,
                timeout=timeout,
                progress=progress,
                fingerprint=fingerprint,
                on_mismatch=on_mismatch,
            )
            result = _with_decision_settings(result, settings)
            if space.is_auto:
                auto = chosen.load().load_auto_range(storage, result.study_name)
                auto_ranges[name] = None if auto is None else auto.to_dict()
            if settings.objective.confirm_pairs:
                result = confirm(
                    result,
                    pair_store(chosen, storage, chosen.study_id(study_name, name)),
                    pair_trainer(builder, train_data, eval_data, settings),
                    confirm_pairs=settings.objective.confirm_pairs,
                    progress=print if verbose else None,
                )
            results.append(result)
    except KeyboardInterrupt:
        interrupted = True
        results += _partial_results(builders, results, space, settings, chosen, storage, study_name)
    results = [_with_decision_settings(r, settings) for r in results]
    if settings.objective.confirm_pairs:  # pairs confirmed before an interruption count
        results = [
            with_pairs(r, pair_store(chosen, storage, chosen.study_id(study_name, r.model)).load())
            for r in results
        ]
    metadata = {
        "study_name": study_name,
        "backend": backend,
        "storage": redact_password(storage),
        "trials": trials,
        "settings": settings_metadata(settings),
        "space": dataclasses.asdict(space),
        **({"auto_width_range": auto_ranges} if space.is_auto else {}),
        "started": started,
        "interrupted": interrupted,
        "system": system_info(),
        **dict(metadata or {}),
    }
    report = TuningReport.from_results(results, metadata)
    written = report.save(output)
    if verbose:
        print(report.summary())
        print("Wrote: " + ", ".join(str(p) for p in written))
    if interrupted:
        print(
            f"Interrupted: every completed trial is kept in {metadata['storage']}; "
            "run the same command again to resume.",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    return report


def redact_password(url: str) -> str:
    """`url` with the password of its user part replaced by `***` (results files are shared;
    a database password must not travel with them)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _with_decision_settings(result: Any, settings: TrialSettings) -> Any:
    """`result` deciding with this run's budget and confidence level."""
    objective = settings.objective
    return dataclasses.replace(
        result, level=objective.level, max_accuracy_cost=objective.max_accuracy_cost
    )


def settings_metadata(settings: TrialSettings) -> dict[str, Any]:
    """The settings as results files record them: flat, the training fields first."""
    out = dataclasses.asdict(settings.training)
    out.update(dataclasses.asdict(settings.objective))
    out["direction"] = settings.objective.accuracy_direction
    out["verbose"] = settings.verbose
    return out


def _with_fields(obj: Any, cls: type, name: str, **changes: Any) -> Any:
    """`obj` (an instance of `cls`) with the given (non-None) fields replaced, checked."""
    if not isinstance(obj, cls):
        raise ValueError(f"`{name}` must be a {cls.__name__}; received: {obj!r}")
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(obj, **given) if given else obj


def _default_storage(backend: str, output: Path) -> str:
    if BACKENDS[backend].storage_is_folder:
        return str(output / backend)
    from keras_smelu.tuning._optuna_backend import default_storage

    return default_storage(output)


def _partial_results(builders, done, space, settings, backend, storage, study_name):
    """After Ctrl-C: what the interrupted model's study holds on disk."""
    finished = {r.model for r in done}
    out = []
    for name in builders:
        if name in finished:
            continue
        study = backend.study_id(study_name, name)
        try:
            out.append(backend.load().load_result(storage, study, name, settings, space))
        except (KeyError, FileNotFoundError):  # this model's study was never created
            break
    return out


def tune_job(
    job: Job,
    *,
    trials: int | None = None,
    storage: str | None = None,
    output: str | Path | None = None,
    verbose: int = 1,
    on_mismatch: str = "error",
) -> TuningReport:
    """Runs (or resumes) a declarative job: loads its data, builds its models, calls `tune`.

    Args:
        job: A validated `Job` (`keras_smelu.tuning.load_job("tuning/x.toml")`).
        trials: Overrides `[job] trials`.
        storage: Overrides `[job] storage` (whose `"env:NAME"` is read from `NAME`).
        output: Overrides `[job] output`.
        verbose: As in `tune`.
        on_mismatch: As in `tune`; the job's `[data]` and `[model]` sections are part of
            what a resumed study must share.

    Returns:
        The `TuningReport`, also saved in the output folder.

    Raises:
        JobError: the dataset loader refuses the job's `[data]` fields.
    """
    # Before the data is loaded: an unset `storage = "env:NAME"` variable fails at once.
    storage = storage or job.job.storage_url()
    dataset = job_dataset(job)
    if verbose:
        print(
            f"Job {job.name!r}: {dataset.name} ({dataset.n_train} train / {dataset.n_test} "
            f"eval rows), models {list(job.model.names)}, {trials or job.job.trials} trials "
            f"x {job.training.pairs} pairs x {job.training.epochs} epochs, on Keras's "
            f"{keras.backend.backend()} backend"
        )
    report = tune(
        job_builders(job, dataset),
        job_data(job, dataset),
        job.search,
        job.trial_settings(),
        trials=trials or job.job.trials,
        backend=job.job.backend,
        sampler=job.job.sampler,
        storage=storage,
        study_name=job.name,
        output=output or job.output_dir(),
        timeout=job.job.timeout_s,
        verbose=verbose,
        fingerprint=job_fingerprint(job),
        on_mismatch=on_mismatch,
        metadata={"job": job.to_dict()},
    )
    oracle = dataset.info.get("oracle_auc_test") if isinstance(dataset.info, dict) else None
    if verbose and oracle is not None:
        for name, result in report.results.items():
            reference = result.reference
            auc = None if reference is None else reference.metrics.get("val_auc")
            shown = "not measured" if auc is None else f"{auc:.3f}"
            print(
                f"[{name}] ReLU validation AUC {shown}; the generator's own click "
                f"probabilities (the oracle) reach {oracle:.3f} on the same rows"
            )
    return report


def job_dataset(job: Job) -> RecDataset:
    """The data of a job: its `[data]` section loaded (and subset for real data).

    Raises:
        JobError: the dataset loader refuses the job's `[data]` fields.
    """
    from keras_smelu import datasets
    from keras_smelu.tuning._job import JobError

    data_kwargs = job.dataset_kwargs()
    try:
        dataset = datasets.load(data_kwargs.pop("name"), data_kwargs.pop("path"), **data_kwargs)
    except (TypeError, ValueError) as error:  # e.g. an option of the wrong type
        raise JobError(
            f"[data] options: the {job.data.dataset} loader refused them: {error}"
        ) from None
    if job.data.streaming:
        return dataset  # `job_data` bounds the rows read
    if job.data.dataset != "synthetic" and (job.data.n_train or job.data.n_test):
        dataset = dataset.subset(job.data.n_train, job.data.n_test)
    return dataset


def job_data(job: Job, dataset: Any) -> Any:
    """What a job trains and measures on: `dataset`, or with `[data] streaming` its streamed
    training split (`shuffle_buffer`, at most `n_train` rows) and its test split in memory
    (at most `n_test` rows)."""
    if not job.data.streaming:
        return dataset
    from keras_smelu._replica_data import StreamSplit

    train = StreamSplit(
        dataset, "train", shuffle_buffer=job.data.shuffle_buffer, max_rows=job.data.n_train
    )
    return train, StreamSplit(dataset, "test", max_rows=job.data.n_test)


def job_builders(job: Job, dataset: RecDataset) -> dict[str, Builder]:
    """`{model name: builder(activation)}` of a job's `[model]` section on `dataset`; with
    `[model] warm_start`, builders that start from the saved model
    (`keras_smelu.models.warm_start`)."""
    from keras_smelu import models

    def builder_for(name: str) -> Builder:
        if job.model.warm_start is not None:  # the saved model, its activation swapped
            return models.warm_start(
                job.model.warm_start,
                optimizer=job.model.optimizer,
                learning_rate=job.model.learning_rate,
            )
        build = getattr(models, name)
        kwargs = job.model_kwargs(name)
        return lambda activation: build(dataset, activation=activation, **kwargs)

    return {name: builder_for(name) for name in job.model.names}
