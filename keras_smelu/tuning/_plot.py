"""The frontier plot: its plain data computed first (tests check it), then drawn."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from keras_smelu.tuning._comparisons import pairs_at
from keras_smelu.tuning._imports import import_optional
from keras_smelu.tuning._space import REFERENCE_FAMILY

if TYPE_CHECKING:
    from keras_smelu.tuning._results import TuningResult


class ParetoPlotInfo(NamedTuple):
    """Everything the frontier plot shows, computed without drawing (tests check this)."""

    title: str
    x_label: str
    y_label: str
    families: tuple[str, ...]  # legend order
    points: tuple[tuple[int, str, float, float, float | None, float | None], ...]
    # points: (trial number, family, x, y, x std, y std) for every complete trial
    front: tuple[tuple[float, float], ...]  # frontier points, in drawing order (x ascending)
    front_numbers: tuple[int, ...]
    front_labels: tuple[str, ...]  # what each frontier point is, e.g. "smelu w=0.44"
    reference: tuple[float, float] | None
    recommended: tuple[float, float] | None
    recommended_label: str | None
    n_failed: int
    # Paired intervals against ReLU, where the trials kept per-pair data:
    # {trial number: (x low, x high, y low, y high)} on the plane (ReLU's value shifted by the
    # accuracy cost interval, scaled by the PD ratio interval).
    intervals: dict[int, tuple[float, float, float, float]] = {}
    widths: dict[int, float] = {}  # {trial number: width} of the candidates
    budget_x: float | None = None  # the accuracy budget on the plane's x axis
    # The width response: (number, family, width, ratio, ratio low, ratio high, cost, cost
    # low, cost high) per candidate with an interval-bearing comparison.
    response: tuple[tuple[int, str, float, float, float, float, float, float, float], ...] = ()
    budget_cost: float | None = None  # the budget in accuracy-cost units (response panel)
    cost_label: str = "accuracy cost vs ReLU"
    level: float = 0.9
    # Trials stopped early: (number, x, y) at the epoch they stopped (means over their pairs).
    pruned: tuple[tuple[int, float, float], ...] = ()
    # ReLU ensembles (reference points): (number, size, x, y, label such as "ReLU x2"); their
    # paired intervals vs ReLU are in `intervals` under their (negative) numbers.
    ensembles: tuple[tuple[int, int, float, float, str], ...] = ()


def _finite_or_zero(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else 0.0


def pareto_plot_info(result: TuningResult) -> ParetoPlotInfo:
    """The plain data of the frontier plot of `result`."""
    complete = result.complete_trials
    families: list[str] = []
    for trial in complete:
        if trial.family not in families:
            families.append(trial.family)
    points = tuple(
        (t.number, t.family, float(t.accuracy), float(t.pd), t.accuracy_std, t.pd_std)
        for t in complete
    )
    front = sorted(result.frontier, key=lambda t: (t.accuracy, t.pd))
    reference = result.reference
    recommended = result.recommended
    sign = 1.0 if result.directions[0] == "minimize" else -1.0  # cost > 0: worse than ReLU
    intervals: dict[int, tuple[float, float, float, float]] = {}
    response = []
    budget_cost = None
    decision = result.decision
    if decision is not None and reference is not None:
        for trial in [*result.candidates, *result.ensembles]:
            comparison = result.comparison(trial)
            if comparison is None:
                continue
            ratio, cost = comparison.pd_ratio, comparison.accuracy_cost
            if not (ratio.has_interval and cost.has_interval):
                continue
            xs = sorted(reference.accuracy + sign * c for c in (cost.low, cost.high))
            intervals[trial.number] = (
                xs[0],
                xs[1],
                reference.pd * ratio.low,
                reference.pd * ratio.high,
            )
            if trial.is_ensemble:
                continue
            response.append(
                (
                    trial.number,
                    trial.family,
                    trial.width,
                    ratio.estimate,
                    ratio.low,
                    ratio.high,
                    cost.estimate,
                    cost.low,
                    cost.high,
                )
            )
            if budget_cost is None:
                budget_cost = decision.budget.absolute(comparison.reference_accuracy)
    return ParetoPlotInfo(
        title=f"{result.model}: accuracy / PD trade-off",
        x_label=result.objective_label(0),
        y_label=result.objective_label(1),
        families=tuple(families),
        points=points,
        front=tuple((float(t.accuracy), float(t.pd)) for t in front),
        front_numbers=tuple(t.number for t in front),
        front_labels=tuple(t.label for t in front),
        reference=None if reference is None else (float(reference.accuracy), float(reference.pd)),
        recommended=(
            None if recommended is None else (float(recommended.accuracy), float(recommended.pd))
        ),
        recommended_label=None if recommended is None else recommended.label,
        n_failed=len(result.failed_trials),
        intervals=intervals,
        widths={t.number: t.width for t in result.candidates},
        budget_x=(
            None
            if budget_cost is None or reference is None
            else reference.accuracy + sign * budget_cost
        ),
        response=tuple(sorted(response, key=lambda r: (r[1], r[2]))),
        budget_cost=budget_cost,
        cost_label=f"{result.objective_names[0]} cost vs ReLU (> 0: worse)",
        level=result.level,
        pruned=tuple(_pruned_points(result)),
        ensembles=tuple(
            (t.number, t.ensemble, float(t.accuracy), float(t.pd), ensemble_label(t.ensemble))
            for t in result.ensembles
        ),
    )


def ensemble_label(size: int) -> str:
    """How the plot names a ReLU ensemble: `"ReLU x2"`."""
    return f"ReLU x{size}"


def _pruned_points(result: TuningResult):
    for trial in result.pruned_trials:
        measured = pairs_at(trial.pairs, result.objective_names, trial.epoch or 0)
        if measured is None:
            continue
        accuracy = [v for both in measured.accuracy.values() for v in both]
        pd = list(measured.pd.values())
        yield (trial.number, sum(accuracy) / len(accuracy), sum(pd) / len(pd))


_MARKERS = {"smelu": "o", "generalized_smelu": "s", "gelu": "^", "swish": "v", "softplus": "P"}


def _labels_without_collisions(ax, items, min_pixels: float = 28.0):
    """Annotates `(x, y, text)` items in order, skipping one that would sit within
    `min_pixels` of a label already placed."""
    placed: list[tuple[float, float]] = []
    for x, y, text in items:
        px, py = ax.transData.transform((x, y))
        if any(
            abs(px - qx) < min_pixels * 2.5 and abs(py - qy) < min_pixels / 2 for qx, qy in placed
        ):
            continue
        placed.append((px, py))
        ax.annotate(text, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=7)


def render_pareto_plot(info: ParetoPlotInfo, path: str | os.PathLike[str]) -> Path:
    """Draws `info`: the accuracy/PD plane with paired intervals, coloured by log width, and
    (with intervals) the width response: PD ratio and accuracy cost against width."""
    figure_module = import_optional("matplotlib.figure", "Plotting the frontier")
    agg = import_optional("matplotlib.backends.backend_agg", "Plotting the frontier")
    matplotlib = import_optional("matplotlib")
    paired = bool(info.intervals)
    figure = figure_module.Figure(figsize=(12.5 if paired else 7.0, 5.2), layout="constrained")
    agg.FigureCanvasAgg(figure)
    if paired:
        grid = figure.add_gridspec(2, 2, width_ratios=(1.35, 1.0))
        ax = figure.add_subplot(grid[:, 0])
        ratio_ax = figure.add_subplot(grid[0, 1])
        cost_ax = figure.add_subplot(grid[1, 1], sharex=ratio_ax)
    else:
        ax = figure.add_subplot()
    candidates = [p for p in info.points if p[1] != REFERENCE_FAMILY]
    widths = [info.widths.get(p[0], math.nan) for p in candidates]
    positive = [w for w in widths if w > 0 and math.isfinite(w)]
    norm = matplotlib.colors.LogNorm(min(positive), max(positive)) if len(positive) > 1 else None
    cmap = matplotlib.colormaps["viridis"]
    mappable = None
    for family in info.families:
        if family == REFERENCE_FAMILY:
            continue
        pts = [p for p in candidates if p[1] == family]
        x = [p[2] for p in pts]
        y = [p[3] for p in pts]
        for p in pts:
            if p[0] in info.intervals:
                _interval_cross(ax, p[2], p[3], info.intervals[p[0]], color="0.55")
            elif not paired:
                xerr, yerr = _finite_or_zero(p[4]), _finite_or_zero(p[5])
                ax.errorbar(p[2], p[3], xerr=xerr, yerr=yerr, fmt="none", ecolor="0.6", alpha=0.5)
        colors = [info.widths.get(p[0], math.nan) for p in pts]
        mappable = ax.scatter(
            x,
            y,
            c=colors if norm is not None else None,
            cmap=cmap if norm is not None else None,
            norm=norm,
            marker=_MARKERS.get(family, "o"),
            s=34,
            edgecolors="black",
            linewidths=0.4,
            label=family,
            zorder=3,
        )
    if norm is not None and mappable is not None:
        figure.colorbar(mappable, ax=ax, label="width (SmeLU beta units, log)")
    if info.front:
        fx = [x for x, _ in info.front]
        fy = [y for _, y in info.front]
        ax.plot(fx, fy, color="black", linewidth=1.0, zorder=2, label="Pareto frontier")
    if info.reference is not None:
        ax.scatter(
            [info.reference[0]],
            [info.reference[1]],
            marker="*",
            s=220,
            color="tab:red",
            edgecolors="black",
            zorder=5,
            label="ReLU reference",
        )
    if info.ensembles:
        _draw_ensembles(ax, info)
    if info.pruned:
        ax.scatter(
            [p[1] for p in info.pruned],
            [p[2] for p in info.pruned],
            marker="x",
            s=30,
            color="0.5",
            zorder=2,
            label=f"pruned ({len(info.pruned)}; at the epoch they stopped)",
        )
    if info.budget_x is not None:
        ax.axvline(info.budget_x, color="tab:red", linestyle="--", linewidth=0.9, label="budget")
    labels = [(x, y, text) for (x, y), text in zip(info.front, info.front_labels, strict=True)]
    if info.recommended is not None:
        ax.scatter(
            [info.recommended[0]],
            [info.recommended[1]],
            marker="D",
            s=110,
            facecolors="none",
            edgecolors="tab:green",
            linewidths=2.0,
            zorder=6,
            label=f"recommended: {info.recommended_label}",
        )
        labels.insert(0, (*info.recommended, info.recommended_label))
    labels += [(x, y, f"{label} ({size}x cost)") for _, size, x, y, label in info.ensembles]
    _labels_without_collisions(ax, labels)
    ax.set_xlabel(info.x_label)
    ax.set_ylabel(info.y_label)
    title = info.title + (f"  ({info.n_failed} failed)" if info.n_failed else "")
    if paired:
        title += f"\nbars: {info.level:.0%} paired intervals vs ReLU"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if info.points:
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, "no complete trials", ha="center", va="center", transform=ax.transAxes)
    if paired:
        _draw_response(info, ratio_ax, cost_ax, cmap, norm)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    return path


def _interval_cross(ax, x: float, y: float, bounds, *, color: str, alpha: float = 1.0) -> None:
    """A point's paired intervals as a cross: `bounds` is `(x_low, x_high, y_low, y_high)`."""
    x_low, x_high, y_low, y_high = bounds
    ax.plot([x_low, x_high], [y, y], color=color, linewidth=0.8, alpha=alpha, zorder=1)
    ax.plot([x, x], [y_low, y_high], color=color, linewidth=0.8, alpha=alpha, zorder=1)


def _draw_ensembles(ax, info: ParetoPlotInfo) -> None:
    """ReLU ensembles: a distinct marker (a cross in a red outline), with paired interval bars."""
    for number, _, x, y, _ in info.ensembles:
        if number in info.intervals:
            _interval_cross(ax, x, y, info.intervals[number], color="tab:red", alpha=0.6)
    ax.scatter(
        [e[2] for e in info.ensembles],
        [e[3] for e in info.ensembles],
        marker="X",
        s=90,
        color="white",
        edgecolors="tab:red",
        linewidths=1.4,
        zorder=5,
        label="ReLU ensembles (k x cost)",
    )


def _draw_response(info: ParetoPlotInfo, ratio_ax, cost_ax, cmap, norm) -> None:
    """Panel 2: PD ratio and accuracy cost against width, with their intervals."""
    for family in dict.fromkeys(r[1] for r in info.response):
        rows = sorted((r for r in info.response if r[1] == family), key=lambda r: r[2])
        w = [r[2] for r in rows]
        marker = _MARKERS.get(family, "o")
        for ax, (est, low, high) in ((ratio_ax, (3, 4, 5)), (cost_ax, (6, 7, 8))):
            ax.errorbar(
                w,
                [r[est] for r in rows],
                yerr=[[r[est] - r[low] for r in rows], [r[high] - r[est] for r in rows]],
                fmt=marker + "-",
                markersize=4,
                linewidth=0.8,
                capsize=2,
                label=family,
            )
    ratio_ax.axhline(1.0, color="tab:red", linestyle=":", linewidth=0.9)
    ratio_ax.set_ylabel("PD ratio to ReLU")
    ratio_ax.set_xscale("log")
    ratio_ax.grid(True, alpha=0.3)
    ratio_ax.set_title(f"width response ({info.level:.0%} paired intervals)", fontsize=10)
    ratio_ax.legend(fontsize="small", loc="best")
    cost_ax.axhline(0.0, color="tab:red", linestyle=":", linewidth=0.9)
    if info.budget_cost is not None:
        cost_ax.axhline(info.budget_cost, color="tab:red", linestyle="--", linewidth=0.9)
    cost_ax.set_ylabel(info.cost_label, fontsize=8)
    cost_ax.set_xlabel("width (SmeLU beta units)")
    cost_ax.grid(True, alpha=0.3)
