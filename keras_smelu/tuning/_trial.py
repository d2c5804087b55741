"""One tuning trial: train the replica pairs of one search point and read both objectives.

Shared by the Optuna and keras-tuner backends, so that a trial means the same thing in both:
the same replica protocol, the same seeds for pair k in every trial (common random numbers,
docs/findings.md), the same objectives and the same record.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_smelu._replica_summary import EXTRA_PD_KINDS, PairMeasures
from keras_smelu.replicas import ReplicaSettings
from keras_smelu.tuning._early_stopping import TrialPrunedError
from keras_smelu.tuning._fingerprint import MODEL_KEY, UNAVAILABLE
from keras_smelu.tuning._objective import RANKING_OBJECTIVES, Objective
from keras_smelu.tuning._record import TrialRecord, system_info
from keras_smelu.tuning._space import REFERENCE_FAMILY, SearchPoint


@dataclass(frozen=True)
class TrialSettings:
    """How every trial of a study trains and what it reports: the objects of a job file's
    `[training]` and `[objective]` sections, passed unchanged to each trial.

    Attributes:
        training: How the replica pairs train (`keras_smelu.replicas.ReplicaSettings`): pairs,
            epochs, batch size, what varies, the base seed (pair k uses the same seeds in
            every trial), the reported epoch.
        objective: The two objectives (`Objective`): the accuracy metric and its direction,
            the PD measure, the confidence level and the accuracy budget.
        verbose: Keras verbosity inside trials (0 silences the progress bars); display only,
            not part of what makes trials comparable.

    Example:

    >>> TrialSettings(ReplicaSettings(pairs=5, epochs=2), Objective("auc")).directions
    ('maximize', 'minimize')
    """

    training: ReplicaSettings = field(default_factory=lambda: ReplicaSettings(pairs=2, epochs=2))
    objective: Objective = field(default_factory=Objective)
    verbose: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.training, ReplicaSettings):
            raise ValueError(
                "`training` must be a keras_smelu.replicas.ReplicaSettings; received: "
                f"{type(self.training).__name__}"
            )
        if not isinstance(self.objective, Objective):
            raise ValueError(
                f"`objective` must be an Objective; received: {type(self.objective).__name__}"
            )

    @property
    def objective_names(self) -> tuple[str, str]:
        return self.objective.names

    @property
    def directions(self) -> tuple[str, str]:
        return self.objective.directions


class TrialFailedError(RuntimeError):
    """A trial that cannot report its objectives (e.g. its loss became NaN)."""


REFERENCE_POINT = SearchPoint(REFERENCE_FAMILY, 0.0)


def _eval_column(eval_data: Any, name: str, batch_size: int) -> np.ndarray:
    """The input column `name` of the evaluation rows, in prediction order."""
    from keras_smelu._replica_data import ArrayData, prepare_data

    adapter = prepare_data(eval_data, "eval_data", batch_size)
    if isinstance(adapter, ArrayData):
        inputs = [adapter.x]
    else:  # batches of (x, y, ...)
        batches = adapter.predict_kwargs()["x"]
        if hasattr(batches, "as_numpy_iterator"):
            batches = batches.as_numpy_iterator()
        inputs = [batch[0] for batch in batches]
    columns = []
    for x in inputs:
        if not isinstance(x, Mapping) or name not in x:
            known = sorted(x) if isinstance(x, Mapping) else f"{type(x).__name__} inputs"
            raise ValueError(
                f"The objective's `group` names no evaluation input column: expected one of "
                f"{known}; received: group={name!r}"
            )
        column = np.asarray(x[name])
        columns.append(column.reshape(column.shape[0], -1)[:, 0])
    return np.concatenate(columns)


def pair_measures(eval_data: Any, settings: TrialSettings) -> PairMeasures | None:
    """What the objective's churn or ranking kind needs besides the predictions (labels,
    groups), or None for the PD kinds of `prediction_difference`."""
    from keras_smelu._replica_data import prepare_data

    objective = settings.objective
    if objective.pd not in EXTRA_PD_KINDS:
        return None
    batch_size = settings.training.batch_size
    labels = prepare_data(eval_data, "eval_data", batch_size).labels()
    if labels is not None:
        labels = np.asarray(labels).reshape(len(labels), -1)
        binary = labels.shape[1] == 1 and bool(np.isin(labels, (0, 1)).all())
        labels = labels[:, 0] if binary else None
    groups = None
    if objective.pd in RANKING_OBJECTIVES:
        groups = _eval_column(eval_data, objective.group, batch_size)
    return PairMeasures(
        labels=labels,
        groups=groups,
        threshold=float(objective.churn_threshold),
        k=int(objective.top_k),
        p=float(objective.rbo_p),
    )


def train_point(
    builder: Callable[..., Any],
    point: SearchPoint,
    train_data: Any,
    eval_data: Any,
    settings: TrialSettings,
    **kwargs: Any,
) -> Any:
    """`train_replicas` for the activation of `point` under `settings`, recording the
    objective's churn or ranking kind per pair when it is one of them.

    Args:
        **kwargs: More arguments of `train_replicas` (`on_epoch`, `return_models`).

    Returns:
        The `ReplicaReport`; its `pd` and every pair's per-epoch `pd` hold the objective's kind.

    Raises:
        ValueError: the objective's kind is not measured for this task (e.g. churn of a
            regression), naming the kinds that are.
    """
    from keras_smelu._replica_summary import extra_measures
    from keras_smelu.replicas import train_replicas

    objective = settings.objective
    measures = pair_measures(eval_data, settings)
    # Churn and ranking kinds ride along with the relative PD (the replicas' headline).
    base = "relative" if measures is not None else objective.pd
    with extra_measures(measures):
        report = train_replicas(
            builder,
            train_data,
            eval_data,
            activation=point.make_activation(),
            settings=settings.training,
            pd=base,
            verbose=settings.verbose,
            **kwargs,
        )
    if measures is not None and objective.pd not in report.pd:
        raise ValueError(
            f"pd = {objective.pd!r} is not measured for a {report.task} task (churn needs a "
            f"binary task with 0/1 labels); expected one of {sorted(report.pd)}; received: "
            f"pd={objective.pd!r}"
        )
    return report


def objective_kind(report: Any, settings: TrialSettings) -> str:
    """The per-pair PD kind a trial reports: the objective's churn or ranking kind, else the
    replicas' headline kind (relative PD of a regression is relative to the mean)."""
    pd = settings.objective.pd
    return pd if pd in EXTRA_PD_KINDS else report.pd_kind


def run_trial(
    builder: Callable[..., Any],
    point: SearchPoint,
    train_data: Any,
    eval_data: Any,
    settings: TrialSettings,
    *,
    model_name: str,
    number: int,
    on_epoch: Callable[[int, list[dict[str, Any]]], None] | None = None,
    on_models: Callable[[list[Any]], None] | None = None,
) -> TrialRecord:
    """Trains the replica pairs of `point` and returns the complete trial record.

    Args:
        on_epoch: Passed to `train_replicas` (early stopping: `_early_stopping.epoch_pruner`).
        on_models: Called with the trained replicas `[pair1_a, pair1_b, ...]` of a complete
            trial (the ReLU reference of an auto width range); they are kept only then.

    Raises:
        TrialFailedError: when a loss turns NaN/inf; the message is the reason to record.
        TrialPrunedError: when `on_epoch` stops the trial; its `record` is the pruned record.
        ValueError: when the model does not measure the accuracy objective (stops the study).
    """
    from keras_smelu.replicas import NonFiniteLossError

    objective = settings.objective
    start = time.perf_counter()
    try:
        report = train_point(
            builder,
            point,
            train_data,
            eval_data,
            settings,
            on_epoch=on_epoch,
            return_models=on_models is not None,
        )
    except NonFiniteLossError as error:
        raise TrialFailedError(str(error)) from error
    except TrialPrunedError as pruned:
        pruned.record = _record_of_point(
            point,
            model_name,
            number,
            state="pruned",
            fail_reason=pruned.reason,
            epoch=pruned.epoch,
            duration_s=time.perf_counter() - start,
            system=system_info(),
            pairs=tuple(pruned.pairs),
        )
        raise
    if objective.accuracy not in report.metrics:  # a setup error: no trial would measure it
        raise ValueError(
            f"the accuracy objective {objective.accuracy!r} was not measured; the model's "
            f"evaluation gives {sorted(report.metrics)}"
        )
    degenerate = degenerate_reason(report, eval_data)
    if degenerate is not None:
        raise TrialFailedError(degenerate)
    accuracy = float(report.metrics[objective.accuracy])
    kind = objective_kind(report, settings)
    pd_value = float(report.pd[kind])
    if not math.isfinite(accuracy) or not math.isfinite(pd_value):
        raise TrialFailedError(
            f"non-finite objectives: {objective.accuracy}={accuracy}, pd={pd_value}"
        )
    metrics = {f"val_{k}": float(v) for k, v in report.metrics.items()}
    metrics.update({f"pd_{k}": float(v) for k, v in report.pd.items()})
    metrics.update({f"pd_{k}_std": float(v) for k, v in report.pd_std.items()})
    metrics["train_seconds"] = float(report.train_seconds)  # fit, evaluate, predict
    metrics["replica_seconds"] = float(report.wall_seconds)  # the whole train_replicas call
    history = {
        "accuracy": tuple(float(h["metrics"][objective.accuracy]) for h in report.history),
        "pd": tuple(float(h["pd"][kind]) for h in report.history),
    }
    if on_models is not None:
        on_models(report.models)
    return _record_of_point(
        point,
        model_name,
        number,
        accuracy=accuracy,
        pd=pd_value,
        accuracy_std=float(report.metrics_std.get(objective.accuracy, math.nan)),
        pd_std=float(report.pd_std.get(kind, math.nan)),
        epoch=report.epoch,
        seeds=tuple(int(p["seeds"]["train"]) for p in report.pair_results),
        duration_s=time.perf_counter() - start,
        metrics=metrics,
        history=history,
        system=system_info(),
        pairs=tuple(report.pair_results),
    )


# A replica whose evaluation predictions spread less than this fraction of the labels' spread
# predicts a constant: two such replicas agree trivially, so their PD of ~0 means nothing.
MIN_PREDICTION_SPREAD = 1e-3


def degenerate_reason(report: Any, eval_data: Any) -> str | None:
    """Why a trial's replicas are degenerate (predictions without spread), or None.

    A model whose outputs saturate or collapse to a constant (e.g. a huge learning rate;
    Keras clips the loss, so nothing turns NaN) measures PD 0 and would sit at the low-PD end
    of a frontier. It is degenerate when any replica's evaluation predictions, at the reported
    epoch, have a standard deviation below `MIN_PREDICTION_SPREAD` times the labels' (1 for
    labels without spread). For a binary task the reason also compares the replica's loss with
    the constant base-rate model's log loss.

    Args:
        report: The `ReplicaReport` of the trial.
        eval_data: The evaluation data (for the labels).

    Returns:
        The failure reason, or None for a model whose predictions spread.
    """
    from keras_smelu._replica_data import prepare_data

    epoch = report.epoch - 1
    replicas = [
        (pair["pair"], rec)
        for pair in report.pair_results
        for rec in pair["replicas"]
        if rec.get("prediction_std")
    ]
    if not replicas:
        return None
    pair, replica = min(replicas, key=lambda item: item[1]["prediction_std"][epoch])
    spread = float(replica["prediction_std"][epoch])
    try:
        labels = prepare_data(eval_data, "eval_data", report.config.get("batch_size", 256)).labels()
    except Exception:  # data whose labels cannot be listed: compare with a unit scale
        labels = None
    scale = float(np.std(labels)) if labels is not None else 0.0
    if spread > MIN_PREDICTION_SPREAD * (scale if scale > 0 else 1.0):
        return None
    reason = (
        f"degenerate model: the predictions of pair {pair}, replica {replica['replica']} do "
        f"not spread (standard deviation {spread:.3g} over the evaluation rows at epoch "
        f"{report.epoch}), so its PD says nothing about reproducibility"
    )
    loss = replica["metrics"][epoch].get("loss")
    if report.task == "binary" and labels is not None and loss is not None:
        rate = float(np.clip(np.mean(labels), 1e-7, 1 - 1e-7))
        base = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
        better = "better" if loss < base else "no better"
        reason += (
            f"; its loss {loss:.4g} is {better} than the constant base-rate model's {base:.4g}"
        )
    return reason + " (saturated or constant outputs: learning rate too high?)"


def _record_of_point(point: SearchPoint, model_name: str, number: int, **fields) -> TrialRecord:
    """A `TrialRecord` of the search point `point` with the given outcome `fields`."""
    return TrialRecord(
        number=number,
        model=model_name,
        family=point.family,
        width=point.width,
        params=dict(point.params),
        **fields,
    )


def failed_record(
    point: SearchPoint, *, model_name: str, number: int, reason: str, system=None, **extra
):
    """The record of a trial that failed for `reason`; `system` defaults to this process's."""
    return _record_of_point(
        point,
        model_name,
        number,
        state="failed",
        fail_reason=reason,
        system=system_info() if system is None else system,
        **extra,
    )


def takes_hp(builder: Callable[..., Any]) -> bool:
    """Whether `builder` is called as `builder(activation, hp)` rather than `builder(activation)`.

    It is when it has a parameter named `hp`, or at least two positional parameters without
    defaults.
    """
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # builtins, some C callables
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return any(p.name == "hp" for p in parameters) or len(required) >= 2


def comparable_setup(
    space: Any,
    settings: TrialSettings,
    fingerprint: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What a resumed study must share with the run that started it, flat and JSON-shaped:
    the search space (`space.*`), how trials train and measure (`settings.*`, display aside),
    the experiment's `fingerprint` (data, model, versions: `_fingerprint.experiment_fingerprint`)
    and any `extra` keys of the backend. Trials run under another setup are not comparable."""
    setup = {f"space.{k}": v for k, v in dataclasses.asdict(space).items()}
    # Reference ensembles live in studies of their own: the search's trials do not depend on them.
    setup.pop("space.ensembles", None)
    setup.pop("space.measured_range", None)  # measured by the study itself (auto range)
    if setup.get("space.width_range", 0) is None:  # as studies written before the field
        setup.pop("space.width_range")
    training = dataclasses.asdict(settings.training)
    training.pop("fused")  # speed only: fused pairs train bit for bit as sequential ones
    training.pop("first_pair")  # which pairs a call trains; a study's trials start at 0
    if training.get("ensemble", 1) == 1:  # search trials train single models
        training.pop("ensemble", None)
    if training["task"] == "auto":  # as studies written before the field existed
        training.pop("task")
    if training.get("eval_every", 0) is None:  # likewise
        training.pop("eval_every")
    objective = settings.objective
    training.update(accuracy=objective.accuracy, direction=objective.accuracy_direction)
    training.update(pd=objective.pd)
    training.update(objective.measure_settings)
    setup.update({f"settings.{k}": v for k, v in training.items()})
    setup.update(fingerprint or {})
    setup.update(extra)
    return json.loads(json.dumps(setup))  # tuples as lists, as storages give them back


_NOT_RECORDED = "(not recorded)"


def setup_changes(stored: Mapping[str, Any], setup: Mapping[str, Any]) -> list[str]:
    """`"key: old -> new"` for every key whose value differs between two setups (a key one
    of them lacks shows as "(not recorded)").

    A stored model whose builder could not build it (`model.config_sha256` "unavailable")
    trained no trial, so the model entries are not compared then: a fixed builder resumes."""
    if str(stored.get(MODEL_KEY, "")).startswith(UNAVAILABLE):
        stored = {k: v for k, v in stored.items() if not k.startswith("model.")}
        setup = {k: v for k, v in setup.items() if not k.startswith("model.")}
    keys = sorted(set(stored) | set(setup))

    def shown(values: Mapping[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else _NOT_RECORDED

    return [
        f"{k}: {shown(stored, k)} -> {shown(setup, k)}"
        for k in keys
        if k not in stored or k not in setup or stored[k] != setup[k]
    ]
