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
from dataclasses import dataclass
from typing import Any

from keras_smelu.tuning._results import TrialRecord, system_info
from keras_smelu.tuning._space import REFERENCE_FAMILY, SearchPoint

_DIRECTIONS = ("minimize", "maximize")
# Metrics Keras users compile with, and which way is better.
METRIC_DIRECTIONS = {
    "loss": "minimize",
    "log_loss": "minimize",
    "binary_crossentropy": "minimize",
    "mse": "minimize",
    "rmse": "minimize",
    "root_mean_squared_error": "minimize",
    "mae": "minimize",
    "auc": "maximize",
    "accuracy": "maximize",
    "binary_accuracy": "maximize",
    "precision": "maximize",
    "recall": "maximize",
}


def infer_direction(metric: str, direction: str | None = None) -> str:
    """The direction of an accuracy metric: given, or known for common Keras metrics."""
    if direction is not None:
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"Argument `direction` must be one of {_DIRECTIONS}. Received: {direction!r}"
            )
        return direction
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    raise ValueError(
        f"Cannot tell whether {metric!r} is better low or high: pass direction='minimize' or "
        f"'maximize'. Known metrics: {sorted(METRIC_DIRECTIONS)}"
    )


@dataclass(frozen=True)
class TrialSettings:
    """How every trial of a study trains and what it reports.

    Attributes:
        pairs: Replica pairs per trial.
        epochs: Epochs per replica.
        batch_size: Training batch size.
        vary: What differs within a pair ("data_order", "init", "both", "none").
        report_epoch: "last" or "best" (lowest mean evaluation loss).
        seed: Base seed; pair k uses the same seeds in every trial.
        accuracy: The accuracy objective: "loss" (evaluation loss) or a compiled metric name.
        direction: "minimize" or "maximize" for `accuracy`.
        pd: PD kind of the second objective ("relative" or "absolute").
        verbose: Keras verbosity inside trials (0 silences the progress bars).
    """

    pairs: int = 2
    epochs: int = 2
    batch_size: int = 256
    vary: str = "data_order"
    report_epoch: str = "last"
    seed: int = 0
    accuracy: str = "loss"
    direction: str = "minimize"
    pd: str = "relative"
    verbose: int = 0

    def __post_init__(self) -> None:
        from keras_smelu.replicas import REPORT_EPOCH_RULES, VARY_OPTIONS

        for name in ("pairs", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Argument `{name}` must be an integer >= 1. Received: {value!r}")
        choices = {
            "vary": VARY_OPTIONS,
            "report_epoch": REPORT_EPOCH_RULES,
            "pd": ("relative", "absolute"),
            "direction": _DIRECTIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"Argument `{name}` must be one of {tuple(allowed)}. "
                    f"Received: {getattr(self, name)!r}"
                )

    @property
    def objective_names(self) -> tuple[str, str]:
        return (f"val_{self.accuracy}", f"pd_{self.pd}")

    @property
    def directions(self) -> tuple[str, str]:
        return (self.direction, "minimize")


class TrialFailedError(RuntimeError):
    """A trial that cannot report its objectives (e.g. its loss became NaN)."""


REFERENCE_POINT = SearchPoint(REFERENCE_FAMILY, 0.0)


def run_trial(
    builder: Callable[..., Any],
    point: SearchPoint,
    train_data: Any,
    eval_data: Any,
    settings: TrialSettings,
    *,
    model_name: str,
    number: int,
) -> TrialRecord:
    """Trains the replica pairs of `point` and returns the complete trial record.

    Raises:
        TrialFailedError: when a loss turns NaN/inf; the message is the reason to record.
        ValueError: when the model does not measure the accuracy objective (stops the study).
    """
    from keras_smelu.replicas import NonFiniteLossError, train_replicas

    start = time.perf_counter()
    try:
        report = train_replicas(
            builder,
            train_data,
            eval_data,
            activation=point.make_activation(),
            pairs=settings.pairs,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            vary=settings.vary,
            seed=settings.seed,
            pd=settings.pd,
            report_epoch=settings.report_epoch,
            verbose=settings.verbose,
        )
    except NonFiniteLossError as error:
        raise TrialFailedError(str(error)) from error
    if settings.accuracy not in report.metrics:  # a setup error: no trial would measure it
        raise ValueError(
            f"the accuracy objective {settings.accuracy!r} was not measured; the model's "
            f"evaluation gives {sorted(report.metrics)}"
        )
    accuracy = float(report.metrics[settings.accuracy])
    if not math.isfinite(accuracy) or not math.isfinite(report.pd_value):
        raise TrialFailedError(
            f"non-finite objectives: {settings.accuracy}={accuracy}, pd={report.pd_value}"
        )
    metrics = {f"val_{k}": float(v) for k, v in report.metrics.items()}
    metrics.update({f"pd_{k}": float(v) for k, v in report.pd.items()})
    metrics.update({f"pd_{k}_std": float(v) for k, v in report.pd_std.items()})
    metrics["train_seconds"] = float(report.train_seconds)  # fit, evaluate, predict
    metrics["replica_seconds"] = float(report.wall_seconds)  # the whole train_replicas call
    history = {
        "accuracy": tuple(float(h["metrics"][settings.accuracy]) for h in report.history),
        "pd": tuple(float(h["pd"][report.pd_kind]) for h in report.history),
    }
    return _record_of_point(
        point,
        model_name,
        number,
        accuracy=accuracy,
        pd=float(report.pd_value),
        accuracy_std=float(report.metrics_std.get(settings.accuracy, math.nan)),
        pd_std=float(report.pd_std.get(report.pd_kind, math.nan)),
        epoch=report.epoch,
        seeds=tuple(int(p["seeds"]["train"]) for p in report.pair_results),
        duration_s=time.perf_counter() - start,
        metrics=metrics,
        history=history,
        system=system_info(),
    )


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


def comparable_setup(space: Any, settings: TrialSettings, **extra: Any) -> dict[str, Any]:
    """What a resumed study must share with the run that started it, flat and JSON-shaped:
    the search space (`space.*`), how trials train and measure (`settings.*`, display aside)
    and any `extra` keys of the backend. Trials run under another setup are not comparable."""
    setup = {f"space.{k}": v for k, v in dataclasses.asdict(space).items()}
    setup.update(
        {f"settings.{k}": v for k, v in dataclasses.asdict(settings).items() if k != "verbose"}
    )
    setup.update(extra)
    return json.loads(json.dumps(setup))  # tuples as lists, as storages give them back


def setup_changes(stored: Mapping[str, Any], setup: Mapping[str, Any]) -> list[str]:
    """`"key: old -> new"` for every key whose value differs between two setups."""
    keys = sorted(set(stored) | set(setup))
    return [
        f"{k}: {stored.get(k)!r} -> {setup.get(k)!r}" for k in keys if stored.get(k) != setup.get(k)
    ]
