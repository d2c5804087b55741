"""`tune()`: the accuracy/PD Pareto frontier of every model, from Python."""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keras_smelu.tuning._results import TrialRecord, TuningReport, system_info
from keras_smelu.tuning._space import SearchSpace
from keras_smelu.tuning._trial import TrialSettings, infer_direction, takes_hp

# The samplers of each backend, named here where no optional package is needed.
SAMPLERS = {"optuna": ("tpe", "nsga2", "random", "grid"), "keras_tuner": ("random", "grid")}
BACKENDS = tuple(SAMPLERS)


def split_data(data: Any) -> tuple[Any, Any]:
    """(train, eval) from a `RecDataset`, a loader returning one, or a `(train, eval)` pair."""
    if callable(data) and not hasattr(data, "element_spec"):
        data = data()
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
    stream=None,
) -> None:
    """The one-line progress report of a finished trial."""
    stream = stream or sys.stdout
    counter = "reference" if record.is_reference else f"trial {finished}/{trials}"
    if record.is_complete:
        values = ", ".join(
            f"{name} {value:.4f}" + (f" ± {std:.4f}" if std is not None else "")
            for name, value, std in zip(
                names,
                (record.accuracy, record.pd),
                (record.accuracy_std, record.pd_std),
                strict=True,
            )
        )
        outcome = f"{values} ({record.duration_s:.1f}s)"
    else:
        outcome = f"FAILED: {record.fail_reason}"
    print(f"[{record.model}] {counter} #{record.number} {record.label}: {outcome}", file=stream)
    stream.flush()


def tune(
    models: Any,
    data: Any,
    *,
    families: tuple[str, ...] | list[str] = ("smelu",),
    width_range: tuple[float, float] = (0.01, 10.0),
    log: bool = True,
    slope_left_range: tuple[float, float] = (0.0, 0.3),
    reference: bool = True,
    accuracy: str = "loss",
    direction: str | None = None,
    pd: str = "relative",
    trials: int = 20,
    pairs: int = 2,
    epochs: int = 2,
    batch_size: int = 256,
    vary: str = "data_order",
    report_epoch: str = "last",
    backend: str = "optuna",
    sampler: str | None = None,
    storage: str | None = None,
    study_name: str = "keras-smelu",
    output: str | Path | None = None,
    seed: int = 0,
    timeout: float | None = None,
    compilation_cache: bool | str | Path = True,
    verbose: int = 1,
) -> TuningReport:
    """Searches the activation width of each model for accuracy and prediction difference.

    Every trial trains `pairs` pairs of replicas of one model with one activation (family and
    width) and reports two objectives on the evaluation data: the accuracy objective (mean over
    replicas) and PD (mean over pairs); spreads, seeds and per-epoch trajectories are kept.
    Pair k uses the same seeds in every trial, so widths are compared on common random
    numbers. ReLU is evaluated once per model as the reference.

    Args:
        models: A builder `builder(activation) -> compiled keras.Model`, or a dict
            `{name: builder}`; each model gets its own study and frontier. With the keras-tuner
            backend a builder may take `(activation, hp)` to add its own hyperparameters.
        data: A `keras_smelu.datasets.RecDataset` (trained on `.train`, measured on `.test`),
            a loader returning one, or a pair `(train_data, eval_data)` of `(x, y)` tuples
            or `tf.data` datasets.
        families: Activation families to search: "smelu", "generalized_smelu", "gelu",
            "swish", "softplus" (comparators share SmeLU's width axis by matched curvature).
        width_range: `(low, high)` width range in SmeLU `beta` units.
        log: Sample widths on a log scale (the useful range spans decades).
        slope_left_range: Range of g-SmeLU's left slope.
        reference: Evaluate the ReLU reference point.
        accuracy: The accuracy objective: "loss" (evaluation loss, default) or a compiled
            metric name such as "auc".
        direction: "minimize" or "maximize" for `accuracy`; inferred for known metrics.
        pd: PD objective: "relative" (default) or "absolute".
        trials: Search trials per model (the reference not counted). Trials already in the
            storage count: rerunning resumes.
        pairs: Replica pairs per trial (>= 5 for a claim; PD is heavy-tailed).
        epochs: Epochs per replica.
        batch_size: Training batch size.
        vary: What differs within a pair: "data_order" (default), "init", "both", "none".
        report_epoch: "last" or "best" (lowest evaluation loss) epoch.
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
        seed: Seed of the sampler and of the replica pairs.
        timeout: Seconds after which no new trial starts (per model).
        compilation_cache: On the JAX backend, turn on JAX's persistent compilation cache
            (`keras_smelu.enable_compilation_cache`) so that the replicas' identical programs
            compile once: True (default) uses `<output>/.jax-cache`, a path uses that folder,
            False leaves JAX as it is. It changes the speed only, never a result.
        verbose: 0 silent; 1 a line per trial; 2 also Keras progress bars.

    Returns:
        A `TuningReport`: per model, a `TuningResult` with all trials, `.frontier` (the
        non-dominated trials), `.reference` (ReLU) and `.recommended`; saved to `output`.

    Raises:
        KeyboardInterrupt: after Ctrl-C, once the completed trials are saved.

    Example:

    >>> report = keras_smelu.tuning.tune(
    ...     lambda act: keras_smelu.models.embedding_mlp(ds, activation=act),
    ...     ds, trials=10, pairs=2, epochs=2)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    builders = _named_builders(models)
    space = SearchSpace(
        families=tuple(families),
        width_low=width_range[0],
        width_high=width_range[1],
        log=log,
        slope_left_low=slope_left_range[0],
        slope_left_high=slope_left_range[1],
        reference=reference,
    )
    try:
        space.validate()
    except ValueError as error:
        raise ValueError(f"Invalid search space: {error}") from None
    if backend not in BACKENDS:
        raise ValueError(f"Argument `backend` must be one of {BACKENDS}. Received: {backend!r}")
    if backend == "keras_tuner" and storage and re.match(r"^[A-Za-z][\w+.-]*:", storage):
        raise ValueError(
            "Argument `storage` of the keras_tuner backend is a folder (keras-tuner keeps its "
            f"state in files), not an Optuna storage URL. Received: storage={storage!r}"
        )
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"Argument `trials` must be an integer >= 1. Received: {trials!r}")
    settings = TrialSettings(
        pairs=pairs,
        epochs=epochs,
        batch_size=batch_size,
        vary=vary,
        report_epoch=report_epoch,
        seed=seed,
        accuracy=accuracy,
        direction=infer_direction(accuracy, direction),
        pd=pd,
        verbose=1 if verbose >= 2 else 0,
    )
    train_data, eval_data = split_data(data)
    output = Path(output) if output is not None else Path("keras-smelu-runs") / study_name
    if compilation_cache:
        from keras_smelu.compilation_cache import enable_compilation_cache

        cache = output / ".jax-cache" if compilation_cache is True else compilation_cache
        enable_compilation_cache(cache)
    storage = storage or _default_storage(backend, output)
    progress = functools.partial(print_progress, names=settings.objective_names)
    if not verbose:
        progress = None

    results = []
    started = time.time()
    interrupted = False
    try:
        for name, builder in builders.items():
            results.append(
                _tune_one(
                    name,
                    builder,
                    train_data,
                    eval_data,
                    space,
                    settings,
                    backend=backend,
                    sampler=sampler,
                    storage=storage,
                    study_name=study_name,
                    trials=trials,
                    seed=seed,
                    timeout=timeout,
                    progress=progress,
                )
            )
    except KeyboardInterrupt:
        interrupted = True
        results += _partial_results(
            builders, results, space, settings, backend, storage, study_name
        )
    metadata = {
        "study_name": study_name,
        "backend": backend,
        "storage": storage,
        "trials": trials,
        "settings": settings.__dict__,
        "space": space.__dict__,
        "started": started,
        "interrupted": interrupted,
        "system": system_info(),
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


def _default_storage(backend: str, output: Path) -> str:
    if backend == "keras_tuner":
        return str(output / "keras_tuner")
    from keras_smelu.tuning._optuna_backend import default_storage

    return default_storage(output)


def _tune_one(
    name,
    builder,
    train_data,
    eval_data,
    space,
    settings,
    *,
    backend,
    sampler,
    storage,
    study_name,
    trials,
    seed,
    timeout,
    progress,
):
    if backend == "optuna":
        from keras_smelu.tuning import _optuna_backend

        if takes_hp(builder):
            raise ValueError(
                f"The builder of model {name!r} takes (activation, hp): that form is for the "
                "keras_tuner backend. With Optuna, a builder takes the activation only."
            )
        return _optuna_backend.optimize(
            name,
            builder,
            train_data,
            eval_data,
            space,
            settings,
            trials=trials,
            storage=storage,
            study_name=_study_id(backend, study_name, name),
            sampler=sampler or "tpe",
            seed=seed,
            timeout=timeout,
            progress=progress,
        )
    from keras_smelu.tuning import _keras_tuner_backend

    return _keras_tuner_backend.tune_keras_tuner(
        name,
        builder,
        train_data,
        eval_data,
        space,
        settings,
        trials=trials,
        directory=storage,
        project_name=_study_id(backend, study_name, name),
        sampler=sampler or "random",
        seed=seed,
        timeout=timeout,
        progress=progress,
        verbose=1 if progress else 0,
    )


def _study_id(backend: str, study_name: str, model_name: str) -> str:
    """Where a model's trials live: its Optuna study, or its keras-tuner project folder (the
    storage folder already belongs to the job)."""
    return f"{study_name}/{model_name}" if backend == "optuna" else model_name


def _partial_results(builders, done, space, settings, backend, storage, study_name):
    """After Ctrl-C: what the interrupted model's study holds on disk."""
    finished = {r.model for r in done}
    out = []
    for name in builders:
        if name in finished:
            continue
        study = _study_id(backend, study_name, name)
        try:
            if backend == "optuna":
                from keras_smelu.tuning import _optuna_backend

                out.append(_optuna_backend.load_result(storage, study, name, settings))
            else:
                from keras_smelu.tuning import _keras_tuner_backend

                out.append(_keras_tuner_backend.load_result(storage, study, name, settings, space))
        except (KeyError, FileNotFoundError):  # this model's study was never created
            break
    return out


def tune_job(
    job: Any,
    *,
    trials: int | None = None,
    storage: str | None = None,
    output: str | Path | None = None,
    verbose: int = 1,
) -> TuningReport:
    """Runs (or resumes) a declarative job: loads its data, builds its models, calls `tune`.

    Args:
        job: A validated `Job` (`keras_smelu.tuning.load_job("tuning/x.toml")`).
        trials: Overrides `[job] trials`.
        storage: Overrides `[job] storage`.
        output: Overrides `[job] output`.
        verbose: As in `tune`.

    Returns:
        The `TuningReport`, also saved in the output folder.
    """
    from keras_smelu import datasets, models

    data_kwargs = job.dataset_kwargs()
    dataset = datasets.load(data_kwargs.pop("name"), data_kwargs.pop("path"), **data_kwargs)
    if job.data.dataset != "synthetic" and (job.data.n_train or job.data.n_test):
        dataset = dataset.subset(job.data.n_train, job.data.n_test)

    def builder_for(name: str):
        build = getattr(models, name)
        kwargs = job.model_kwargs(name)
        return lambda activation: build(dataset, activation=activation, **kwargs)

    if verbose:
        print(
            f"Job {job.name!r}: {dataset.name} ({dataset.n_train} train / {dataset.n_test} "
            f"eval rows), models {list(job.model.names)}, {trials or job.job.trials} trials "
            f"x {job.training.pairs} pairs x {job.training.epochs} epochs"
        )
    space = job.search_space()
    return tune(
        {name: builder_for(name) for name in job.model.names},
        dataset,
        families=space.families,
        width_range=(space.width_low, space.width_high),
        log=space.log,
        slope_left_range=(space.slope_left_low, space.slope_left_high),
        reference=space.reference,
        accuracy=job.objective.accuracy,
        direction=job.objective.directions[0],
        pd=job.objective.pd,
        trials=trials or job.job.trials,
        pairs=job.training.pairs,
        epochs=job.training.epochs,
        batch_size=job.training.batch_size,
        vary=job.training.vary,
        report_epoch=job.training.report_epoch,
        backend=job.job.backend,
        sampler=job.job.sampler,
        storage=storage or job.job.storage or None,
        study_name=job.name,
        output=output or job.output_dir(),
        seed=job.job.seed,
        timeout=job.job.timeout_s,
        verbose=verbose,
    )
