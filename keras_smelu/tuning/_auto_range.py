"""The auto width range: the widths worth searching, measured from the ReLU reference.

A width only means something relative to the scale of the pre-activations (docs/findings.md).
With `SearchSpace(width_range="auto")` the tuner trains the ReLU reference, measures the
pre-activations of its first pair's two replicas on the evaluation data
(`keras_smelu.diagnostics.inspect_activations`) and searches the range that
`keras_smelu.diagnostics.auto_width_range` derives from them (`AUTO_RULE`), clamped to the
space's `[width_low, width_high]`. The range is stored with the study, so a resumed run (or
another worker) searches the same one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

LOW_SHARE = 0.01
HIGH_SHARE = 0.9
MAX_ROWS = 4096
AUTO_RULE = (
    "low: the smallest width at which some hidden layer has 1% of its pre-activations inside "
    "SmeLU's band (min over layers of the 1% quantile of |x|); high: the largest at which "
    "every hidden layer has 90% inside (max over layers of the 90% quantile of |x|); measured "
    "on the ReLU reference's first pair, clamped to [width_low, width_high], at least a decade"
)
"""The rule of an auto range, in words (recorded with it)."""


@dataclasses.dataclass(frozen=True)
class AutoRange:
    """A measured width range and how it was measured.

    Attributes:
        low: Smallest searched width.
        high: Largest searched width.
        low_share: Band share that defines `low` (a quantile level of `|x|`).
        high_share: Band share that defines `high`.
        bounds: The `(width_low, width_high)` the range was clamped to.
        max_rows: The replicas were measured on the first `max_rows` evaluation rows (all,
            when there are fewer).
        layers: The hidden activations measured, by layer path.
        rule: `AUTO_RULE`.
    """

    low: float
    high: float
    low_share: float = LOW_SHARE
    high_share: float = HIGH_SHARE
    bounds: tuple[float, float] = (0.01, 10.0)
    max_rows: int = MAX_ROWS
    layers: tuple[str, ...] = ()
    rule: str = AUTO_RULE

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as results files and study attributes hold it."""
        out = dataclasses.asdict(self)
        out["bounds"] = list(self.bounds)
        out["layers"] = list(self.layers)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoRange:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["bounds"] = tuple(values.get("bounds", (0.01, 10.0)))
        values["layers"] = tuple(values.get("layers", ()))
        return cls(**values)


def describe(auto: AutoRange | Mapping[str, Any]) -> str:
    """The range in words: `"widths 0.05-3.2 (auto: from ReLU's pre-activation scales)"`."""
    if isinstance(auto, Mapping):
        auto = AutoRange.from_dict(auto)
    return f"widths {auto.low:.3g}-{auto.high:.3g} (auto: from ReLU's pre-activation scales)"


def _model_inputs(eval_data: Any, batch_size: int) -> Any:
    """The evaluation inputs as `inspect_activations` takes them: arrays, or batches."""
    from keras_smelu._replica_data import prepare_data

    return prepare_data(eval_data, "eval_data", batch_size).predict_kwargs()["x"]


def measure_range(
    models: Sequence[Any], eval_data: Any, space: Any, *, batch_size: int = 256
) -> AutoRange:
    """The auto range of trained ReLU `models` on (at most `MAX_ROWS` rows of) `eval_data`.

    Args:
        models: Trained replicas (the reference's first pair).
        eval_data: The evaluation data, as `train_replicas` takes it.
        space: The `SearchSpace` (its `width_low`, `width_high` bound the range).
        batch_size: Batch size for array data.

    Returns:
        An `AutoRange`.

    Raises:
        ValueError: the models have no hidden activation to measure.
    """
    from keras_smelu.diagnostics import auto_width_range, inspect_activations

    if not models:
        raise ValueError("An auto width range needs at least one trained ReLU model; got none")
    x = _model_inputs(eval_data, batch_size)
    rows = []
    for model in models:
        report = inspect_activations(
            model,
            x,
            quantiles=(LOW_SHARE, 0.1, 0.5, HIGH_SHARE, 0.99),
            batch_size=batch_size,
            max_rows=MAX_ROWS,
        )
        rows.extend(report)
    bounds = (float(space.width_low), float(space.width_high))
    try:
        low, high = auto_width_range(
            rows, low_share=LOW_SHARE, high_share=HIGH_SHARE, bounds=bounds
        )
    except ValueError as error:
        raise ValueError(
            f"width_range = 'auto' cannot measure this model's pre-activations: {error}"
        ) from None
    hidden = [s for s in rows if s.activation == "relu"] or rows
    return AutoRange(
        low=low,
        high=high,
        bounds=bounds,
        layers=tuple(dict.fromkeys(s.layer for s in hidden)),
    )


def reference_range(
    builder: Callable[..., Any],
    train_data: Any,
    eval_data: Any,
    space: Any,
    settings: Any,
) -> AutoRange:
    """Trains the ReLU reference's first pair again (its seeds make it the same pair) and
    measures the auto range on it: for a study whose reference ran without recording one."""
    from keras_smelu.replicas import NonFiniteLossError
    from keras_smelu.tuning._trial import REFERENCE_POINT, train_point

    first_pair = dataclasses.replace(settings.training, pairs=1, first_pair=0)
    try:
        report = train_point(
            builder,
            REFERENCE_POINT,
            train_data,
            eval_data,
            dataclasses.replace(settings, training=first_pair),
            return_models=True,
        )
    except NonFiniteLossError as error:
        raise ValueError(
            "width_range = 'auto' measures a trained ReLU reference, but its training "
            f"diverged ({error}); give width_low and width_high instead"
        ) from None
    return measure_range(report.models, eval_data, space, batch_size=settings.training.batch_size)
