"""The two objectives of a tuning study: an accuracy metric and a PD measure.

The tables of known metrics (and which way each is better) and of the PD measures a study can
minimise are defined here, once; the job file's `[objective]` section is an `Objective`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keras_smelu._settings import (
    SettingError,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_str,
)

DIRECTIONS = ("minimize", "maximize")
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
OBJECTIVE_PD_KINDS = ("relative", "absolute", "churn", "topk_distance", "rbo_distance")
"""PD measures a study can minimise: the papers' relative PD; absolute PD where most
predictions are tiny; churn, the share of decisions at `churn_threshold` that differ (binary
tasks); and for ranked outputs the distances `1 - top-k overlap` and `1 - RBO` of the replicas'
rankings within each `group` (e.g. each user's items)."""
RANKING_OBJECTIVES = ("topk_distance", "rbo_distance")
"""Objective PD kinds that rank rows within groups (they need `group`)."""


def infer_direction(metric: str, direction: str | None = None) -> str:
    """The direction of an accuracy metric: given, or known for common Keras metrics."""
    if direction is not None:
        check_choice("direction", direction, DIRECTIONS)
        return direction
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    raise SettingError(
        "direction",
        detail=f'metric {metric!r} is not a known one; set direction = "minimize" or '
        f'"maximize" (known metrics: {sorted(METRIC_DIRECTIONS)})',
    )


@dataclass(frozen=True)
class Objective:
    """What a study optimises: `(accuracy objective, PD)`; PD is always minimised.

    Attributes:
        accuracy: The validation metric: `"loss"` (default: the model's evaluation loss),
            `"log_loss"`, `"binary_crossentropy"`, `"mse"`, `"rmse"`, `"mae"`, `"auc"`,
            `"accuracy"`, or another metric name the model reports (then `direction` is needed).
        direction: `"minimize"` or `"maximize"`; inferred for the known metrics.
        pd: `"relative"` (default; the papers' PD), `"absolute"` (steadier where most
            predictions are tiny), `"churn"` (labelled binary tasks: share of decisions that
            differ at `churn_threshold`; good and bad churn are recorded beside it),
            `"topk_distance"` or `"rbo_distance"` (ranked outputs: `1 - top-k overlap`,
            `1 - rank-biased overlap` of the two replicas' rankings per `group`, averaged
            over groups). All are minimised and recorded per pair, like the other PD kinds.
        level: Confidence level of the paired intervals against ReLU (default 0.9).
        max_accuracy_cost: The accuracy a user gives up for lower PD: a number in the metric's
            units (e.g. `0.002` of log loss), or a percentage of ReLU's value such as `"0.5%"`;
            `None` (default): no worse than ReLU.
        churn_threshold: Decision threshold of `pd = "churn"` (default 0.5).
        group: The evaluation input column whose value groups the rows that are ranked
            together (e.g. `"user_id"`); required by `"topk_distance"` and `"rbo_distance"`.
        top_k: Depth of `"topk_distance"` (default 10).
        rbo_p: Persistence of `"rbo_distance"`'s rank-biased overlap, in (0, 1) (default
            0.9: the top 10 ranks carry about 65% of the weight).
        confirm_pairs: After the search, give the points that decide the answer (ReLU, the
            recommended point, the frontier's unresolved points) more pairs, continuing their
            pair indices, until the decision is resolved or each has this many pairs (0, the
            default: no confirmation stage).
        prune: Stop a trial after an epoch where completed trials dominate it beyond
            uncertainty (paired intervals at that epoch); Optuna backend only. Off by
            default.

    Raises:
        ValueError: (a `SettingError`) naming the first bad field.
    """

    accuracy: str = "loss"
    direction: str | None = None
    pd: str = "relative"
    level: float = 0.9
    max_accuracy_cost: float | str | None = None
    churn_threshold: float = 0.5
    group: str | None = None
    top_k: int = 10
    rbo_p: float = 0.9
    confirm_pairs: int = 0
    prune: bool = False

    def __post_init__(self) -> None:
        check_str("accuracy", self.accuracy)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.accuracy):
            raise SettingError("accuracy", expected="a metric name", received=self.accuracy)
        if self.direction is not None:
            check_choice("direction", self.direction, DIRECTIONS)
        known = METRIC_DIRECTIONS.get(self.accuracy)
        if known is None and self.direction is None:
            infer_direction(self.accuracy)  # raises, naming `direction`
        if known is not None and self.direction is not None and self.direction != known:
            raise SettingError(
                "direction",
                detail=f"{self.accuracy!r} is better when it is {known[:-1]}ed; expected "
                f"{known!r}, got {self.direction!r}",
            )
        check_choice("pd", self.pd, OBJECTIVE_PD_KINDS)
        check_number("churn_threshold", self.churn_threshold)
        check_int("top_k", self.top_k, 1)
        check_number("rbo_p", self.rbo_p, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.group is not None:
            check_str("group", self.group)
        if self.pd in RANKING_OBJECTIVES and not self.group:
            raise SettingError(
                "group",
                detail=f"pd = {self.pd!r} ranks the rows of each group; expected the name of "
                f'the input column holding each row\'s group (e.g. "user_id"); got {self.group!r}',
            )
        check_number("level", self.level, low=0.5, high=1.0, high_open=True)
        check_int("confirm_pairs", self.confirm_pairs, 0)
        check_bool("prune", self.prune)
        if self.max_accuracy_cost is not None:
            from keras_smelu.tuning._decision import parse_budget

            try:
                parse_budget(self.max_accuracy_cost)
            except ValueError as error:
                raise SettingError("max_accuracy_cost", detail=str(error)) from None

    @property
    def measure_settings(self) -> dict[str, object]:
        """The fields that change what the chosen PD kind measures (none for relative and
        absolute PD): part of what a resumed study must share."""
        if self.pd == "churn":
            return {"churn_threshold": self.churn_threshold}
        if self.pd in RANKING_OBJECTIVES:
            return {"group": self.group, "top_k": self.top_k, "rbo_p": self.rbo_p}
        return {}

    @property
    def accuracy_direction(self) -> str:
        """The direction of the accuracy objective (given or inferred)."""
        return self.direction or METRIC_DIRECTIONS[self.accuracy]

    @property
    def directions(self) -> tuple[str, str]:
        """`(accuracy direction, "minimize")`."""
        return (self.accuracy_direction, "minimize")

    @property
    def names(self) -> tuple[str, str]:
        """Objective names, e.g. `("val_loss", "pd_relative")`."""
        return (f"val_{self.accuracy}", f"pd_{self.pd}")
