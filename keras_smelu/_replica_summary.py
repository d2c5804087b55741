"""What a pair's predictions measure, and the summary of many pairs.

- The task (binary, multiclass, regression) decides which PD measures are recorded.
- Churn and ranking measures need more than the two predictions (labels, the group of each
  row): `extra_measures` switches them on, with a `PairMeasures`, for the pairs trained inside
  it, and `pair_pd` records them beside the PD kinds.
- `summarize_pairs` turns per-pair records into per-epoch means and spreads, and picks the
  reported epoch.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from keras_smelu import churn as _churn
from keras_smelu import prediction_difference as _pd

# PD measures recorded per task (names from `prediction_difference.PD_KINDS`).
TASK_PD_KINDS = {
    "binary": (
        "relative",
        "absolute",
        "relative_shift_corrected",
        "absolute_shift_corrected",
        "top1",
    ),
    "multiclass": ("total_variation", "top1", "absolute", "relative"),
    "regression": (
        "absolute",
        "relative_to_mean",
        "absolute_shift_corrected_identity",
        "relative_to_mean_shift_corrected",
    ),
}


def infer_task(predictions: np.ndarray, labels: np.ndarray | None) -> str:
    p = _pd.squeeze_trailing_one(np.asarray(predictions, dtype=np.float64))
    if p.ndim >= 2:  # the rule the multiclass PD kinds check
        return "multiclass" if _pd.is_distribution(p) else "regression"
    in_unit = _pd.in_unit_interval(p)
    if labels is None:
        return "binary" if in_unit else "regression"
    binary_labels = bool(np.isin(np.asarray(labels), (0, 1)).all())
    if binary_labels and not in_unit:
        raise ValueError(
            "The evaluation labels are 0/1 but the predictions range over "
            f"[{p.min():.4g}, {p.max():.4g}]: the model seems to output logits. Add a sigmoid "
            "output (PD is measured on probabilities), or pass task='regression'."
        )
    return "binary" if binary_labels else "regression"


def resolve_pd_kind(pd: str, task: str) -> str:
    kind = "relative_to_mean" if (pd == "relative" and task == "regression") else pd
    if kind not in TASK_PD_KINDS[task]:
        raise ValueError(
            f"pd={pd!r} is not measured for a {task} task; expected one of "
            f"{list(TASK_PD_KINDS[task])}."
        )
    return kind


CHURN_KINDS = ("churn", "good_churn", "bad_churn")
"""Decision measures of a binary task (`keras_smelu.churn`), replica a as the baseline:
the share of examples whose thresholded decision differs, and the changes that fix (good) or
introduce (bad) an error; good and bad need labels."""
RANKING_KINDS = ("topk_distance", "rbo_distance")
"""Ranking measures per group (e.g. the items of each user): `1 - topk_overlap` and
`1 - rank_biased_overlap`, distances so that, like PD, lower is more reproducible."""
EXTRA_PD_KINDS = CHURN_KINDS + RANKING_KINDS


@dataclasses.dataclass(frozen=True)
class PairMeasures:
    """What the churn and ranking measures of a pair need besides its predictions.

    Attributes:
        labels: The evaluation labels (0/1) in prediction order, or None (then good and bad
            churn are not recorded).
        groups: The group of each evaluation row (e.g. its user id), or None (then the
            ranking measures are not recorded).
        threshold: Decision threshold of the churn measures.
        k: Depth of the top-k overlap.
        p: Persistence of the rank-biased overlap, in (0, 1).
    """

    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    threshold: float = 0.5
    k: int = 10
    p: float = 0.9

    def measure(self, p1: np.ndarray, p2: np.ndarray, task: str) -> dict[str, float]:
        """The churn kinds (binary tasks) and ranking kinds (with groups) of one pair."""
        out: dict[str, float] = {}
        if task == "binary":
            out["churn"] = _churn.churn(p1, p2, threshold=self.threshold)
            if self.labels is not None:
                stats = _churn.churn_stats(p1, p2, self.labels, threshold=self.threshold)
                out["good_churn"], out["bad_churn"] = stats.good_churn, stats.bad_churn
        if self.groups is not None and np.ndim(_pd.squeeze_trailing_one(np.asarray(p1))) == 1:
            overlap = _churn.topk_overlap(p1, p2, self.groups, k=self.k)
            rbo = _churn.rank_biased_overlap(p1, p2, self.groups, p=self.p)
            out["topk_distance"], out["rbo_distance"] = 1.0 - overlap, 1.0 - rbo
        return out


_MEASURES: contextvars.ContextVar[PairMeasures | None] = contextvars.ContextVar(
    "keras_smelu_pair_measures", default=None
)


@contextlib.contextmanager
def extra_measures(measures: PairMeasures | None) -> Iterator[None]:
    """Records the churn and ranking kinds of `measures` for every pair measured inside the
    block (None: nothing extra). Scoped to the current thread or task."""
    token = _MEASURES.set(measures)
    try:
        yield
    finally:
        _MEASURES.reset(token)


def pair_pd(p1: np.ndarray, p2: np.ndarray, task: str) -> dict[str, float]:
    """Every PD kind recorded for `task`, plus the extra kinds switched on by
    `extra_measures`."""
    out = {kind: _pd.compute_pd(kind, p1, p2) for kind in TASK_PD_KINDS[task]}
    measures = _MEASURES.get()
    if measures is not None:
        out.update(measures.measure(p1, p2, task))
    return out


def aggregate(dicts: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    means, stds = {}, {}
    for key in dicts[0]:
        means[key], stds[key] = _pd.mean_std([d[key] for d in dicts])
    return means, stds


def summarize_pairs(
    pair_results: list[dict[str, Any]], epochs: int, report_epoch: str
) -> tuple[list[dict[str, Any]], int]:
    """Per-epoch means and spreads over the pairs, and the index of the reported epoch.

    Args:
        pair_results: Per pair: `{"replicas": [{"train_loss": [...], "metrics": [...]}, ...],
            "pd": [per-epoch dict of PD kinds]}`.
        epochs: Number of epochs recorded.
        report_epoch: `"last"`, or `"best"`: the lowest evaluation loss averaged over all
            replicas (the earliest on ties).

    Returns:
        `(history, index)`: per epoch `{"epoch", "train_loss", "metrics", "metrics_std", "pd",
        "pd_std"}`, and the 0-based index of the reported epoch.
    """
    history = []
    for e in range(epochs):
        replicas = [rec for result in pair_results for rec in result["replicas"]]
        metrics_mean, metrics_std = aggregate([rec["metrics"][e] for rec in replicas])
        pd_mean, pd_std = aggregate([result["pd"][e] for result in pair_results])
        history.append(
            {
                "epoch": e + 1,
                "train_loss": _pd.mean_std([rec["train_loss"][e] for rec in replicas])[0],
                "metrics": metrics_mean,
                "metrics_std": metrics_std,
                "pd": pd_mean,
                "pd_std": pd_std,
            }
        )
    if report_epoch == "best":
        return history, int(np.argmin([h["metrics"]["loss"] for h in history]))
    return history, epochs - 1
