"""Tuning results: trial records, per-model frontiers, text tables, plots and files.

- `TrialRecord`: one trial, with everything that makes it reproducible.
- `TuningResult`: one model's trials, its Pareto frontier of (accuracy objective, PD), the ReLU
  reference and the recommended width; JSON and CSV round trips; a text table; a PNG plot.
- `TuningReport`: the results of several models, saved to and loaded from a folder
  (`results.json`, `trials.csv`, `frontier-<model>.png`).

JSON files are strict JSON: non-finite floats are written as `{"$float": "nan"}` (or `"inf"`,
`"-inf"`). CSV cells hold scalars as text (floats with `repr`, so they read back exactly) and
the structured columns (`params`, `seeds`, `metrics`, `history`, ...) as JSON; an empty cell is
`None`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from keras_smelu.tuning._imports import import_optional
from keras_smelu.tuning._pareto import hypervolume_2d, normalize, pareto_mask, recommend
from keras_smelu.tuning._space import REFERENCE_FAMILY

FORMAT = "keras-smelu-tuning"
FORMAT_VERSION = 1
TRIAL_STATES = ("complete", "failed")
RESULTS_JSON = "results.json"
TRIALS_CSV = "trials.csv"


# --------------------------------------------------------------------------- encoding helpers


def _encode(obj: Any) -> Any:
    """Plain data with non-finite floats tagged, so that `json.dumps(allow_nan=False)` works."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"$float": repr(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return _encode(obj.item())
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"$float"}:
            return float(obj["$float"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def _canonical(obj: Any) -> Any:
    """`obj` with every NaN replaced by a marker, for NaN-aware equality."""
    if isinstance(obj, float) and math.isnan(obj):
        return ("nan",)
    if isinstance(obj, Mapping):
        return {k: _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def _dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(_encode(obj), allow_nan=False, **kwargs)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def system_info() -> dict[str, str]:
    """What a trial ran on: Python, platform, Keras backend and the relevant package versions."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    packages = ("keras-smelu", "keras", "numpy", "jax", "tensorflow", "tensorflow-cpu", "torch")
    for package in packages + ("optuna", "keras-tuner"):
        try:
            info[package] = _metadata.version(package)
        except _metadata.PackageNotFoundError:
            pass
    if "keras" in sys.modules or "keras" in info:
        try:
            import keras

            info["keras_backend"] = keras.config.backend()
        except Exception:  # pragma: no cover - keras unusable: record what we can
            info["keras_backend"] = os.environ.get("KERAS_BACKEND", "unknown")
    return info


# --------------------------------------------------------------------------- trial record


@dataclass(frozen=True)
class TrialRecord:
    """One tuning trial.

    Attributes:
        number: The trial's number in its study (0-based).
        model: The model it tuned.
        family: Activation family (`"relu"` for the reference).
        width: Width on the shared axis (SmeLU `beta` units; 0 for ReLU).
        params: The family's extra parameters (e.g. `{"slope_left": 0.1}`).
        accuracy: Mean accuracy objective over the replica pairs at the reported epoch.
        pd: Mean PD over the pairs at the reported epoch.
        accuracy_std: Standard deviation of the accuracy objective over the replicas.
        pd_std: Standard deviation of PD over the pairs.
        state: `"complete"` or `"failed"`.
        fail_reason: Why a failed trial failed (e.g. `"loss became NaN at epoch 2"`).
        epoch: The reported epoch (1-based).
        seeds: The seed of each replica pair (the same in every trial of a job).
        duration_s: Wall time of the trial.
        metrics: Further measured values at the reported epoch (other PD kinds, shift-corrected
            PD, other validation metrics, ...).
        history: Per-epoch trajectories, e.g. `{"accuracy": [...], "pd": [...]}` (pair means).
        system: `system_info()` of the process that ran the trial.
        trial_id: The storage's trial id, when it has one.
    """

    number: int
    model: str
    family: str
    width: float
    params: Mapping[str, Any] = field(default_factory=dict)
    accuracy: float | None = None
    pd: float | None = None
    accuracy_std: float | None = None
    pd_std: float | None = None
    state: str = "complete"
    fail_reason: str | None = None
    epoch: int | None = None
    seeds: tuple[int, ...] = ()
    duration_s: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    history: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    system: Mapping[str, str] = field(default_factory=dict)
    trial_id: int | None = None

    def __post_init__(self) -> None:
        # Normalise containers and numbers, so that equal records compare equal after a round
        # trip through JSON or CSV.
        set_ = object.__setattr__
        set_(self, "width", float(self.width))
        for name in ("accuracy", "pd", "accuracy_std", "pd_std", "duration_s"):
            set_(self, name, _as_float(getattr(self, name)))
        set_(self, "seeds", tuple(int(s) for s in self.seeds))
        set_(self, "params", dict(self.params))
        set_(self, "metrics", dict(self.metrics))
        set_(self, "system", dict(self.system))
        set_(self, "history", {k: tuple(v) for k, v in dict(self.history).items()})
        if self.state not in TRIAL_STATES:
            raise ValueError(f"state must be one of {TRIAL_STATES}; got {self.state!r}")
        if self.state == "complete":
            for name in ("accuracy", "pd"):
                value = getattr(self, name)
                if value is None or math.isnan(value):
                    raise ValueError(
                        f"a complete trial needs a number for {name}; got {value!r} "
                        f"(trial {self.number}); record it as failed instead"
                    )

    def __eq__(self, other: object) -> bool:
        # Field by field, except that NaN equals NaN (a missing spread survives a round trip).
        if not isinstance(other, TrialRecord):
            return NotImplemented
        return _canonical(self.to_dict()) == _canonical(other.to_dict())

    @property
    def is_complete(self) -> bool:
        return self.state == "complete"

    @property
    def is_reference(self) -> bool:
        return self.family == REFERENCE_FAMILY

    @property
    def values(self) -> tuple[float, float]:
        """`(accuracy, pd)`, NaN where missing."""
        return (
            math.nan if self.accuracy is None else self.accuracy,
            math.nan if self.pd is None else self.pd,
        )

    @property
    def label(self) -> str:
        """Short description, e.g. `"smelu w=0.1"` or `"relu"`."""
        if self.is_reference:
            return REFERENCE_FAMILY
        extra = "".join(f", {k}={v:.3g}" for k, v in sorted(self.params.items()) if _is_num(v))
        return f"{self.family} w={self.width:.3g}{extra}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(value).items()}
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """Inverse of `to_dict`; unknown keys raise `ValueError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown trial record field(s) {unknown}; expected {sorted(names)}")
        data = {k: v for k, v in data.items() if v is not None or k in _OPTIONAL}
        return cls(**data)


_OPTIONAL = {
    "accuracy",
    "pd",
    "accuracy_std",
    "pd_std",
    "fail_reason",
    "epoch",
    "duration_s",
    "trial_id",
}


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# CSV columns: (field, kind); kinds are int, float, str or json.
_CSV_FIELDS = [
    ("number", "int"),
    ("trial_id", "int"),
    ("state", "str"),
    ("family", "str"),
    ("width", "float"),
    ("accuracy", "float"),
    ("accuracy_std", "float"),
    ("pd", "float"),
    ("pd_std", "float"),
    ("epoch", "int"),
    ("fail_reason", "str"),
    ("params", "json"),
    ("seeds", "json"),
    ("duration_s", "float"),
    ("metrics", "json"),
    ("history", "json"),
    ("system", "json"),
]
_CSV_RESULT_FIELDS = ["model", "study_name", "objective_names", "directions"]
CSV_COLUMNS = _CSV_RESULT_FIELDS[:2] + [name for name, _ in _CSV_FIELDS] + _CSV_RESULT_FIELDS[2:]


def _csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "float":
        return repr(float(value))
    if kind == "json":
        return _dumps(value, sort_keys=False, separators=(",", ":"))
    return str(value)


def _csv_value(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "json":
        return _decode(json.loads(text))
    return text


# --------------------------------------------------------------------------- one model's result


class _ParetoPlotInfo(NamedTuple):
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


@dataclass(frozen=True)
class TuningResult:
    """The trials of one model and what they say.

    Attributes:
        model: Model name.
        trials: All trials, complete and failed.
        directions: Directions of `(accuracy objective, PD)`; PD is minimised.
        objective_names: Names of the two objectives, e.g. `("val_loss", "pd_relative")`.
        study_name: The study the trials came from, if any.
    """

    model: str
    trials: tuple[TrialRecord, ...] = ()
    directions: tuple[str, str] = ("minimize", "minimize")
    objective_names: tuple[str, str] = ("val_loss", "pd_relative")
    study_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "trials", tuple(self.trials))
        object.__setattr__(self, "directions", tuple(self.directions))
        object.__setattr__(self, "objective_names", tuple(self.objective_names))
        if len(self.directions) != 2 or len(self.objective_names) != 2:
            raise ValueError(
                "a TuningResult has two objectives (accuracy, PD); got "
                f"{self.directions=} and {self.objective_names=}"
            )
        normalize(np.zeros((0, 2)), self.directions)  # checks the direction names
        if self.directions[1] != "minimize":
            raise ValueError(f"PD is minimised; got {self.directions[1]=}")

    # -- selections
    @property
    def complete_trials(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.is_complete]

    @property
    def failed_trials(self) -> list[TrialRecord]:
        return [t for t in self.trials if not t.is_complete]

    @property
    def reference(self) -> TrialRecord | None:
        """The (first complete) ReLU reference trial, if any."""
        return next((t for t in self.complete_trials if t.is_reference), None)

    @property
    def candidates(self) -> list[TrialRecord]:
        """Complete trials other than the reference: the widths the tuner can recommend."""
        return [t for t in self.complete_trials if not t.is_reference]

    def _values(self, trials: list[TrialRecord]) -> np.ndarray:
        return np.array([t.values for t in trials], dtype=float).reshape(-1, 2)

    @property
    def frontier(self) -> list[TrialRecord]:
        """Non-dominated complete trials (the reference included), best accuracy first."""
        trials = self.complete_trials
        values = self._values(trials)
        on_front = pareto_mask(values, self.directions)
        loss = normalize(values, self.directions)
        order = sorted(np.flatnonzero(on_front), key=lambda i: (loss[i, 0], loss[i, 1], i))
        return [trials[i] for i in order]

    @property
    def recommended(self) -> TrialRecord | None:
        """The recommended trial (`recommend`: the lowest PD at accuracy no worse than ReLU's,
        else the knee); `None` when there is no complete candidate."""
        candidates = self.candidates
        if not candidates:
            return None
        reference = self.reference
        index = recommend(
            self._values(candidates),
            None if reference is None else reference.values,
            self.directions,
        )
        return None if index is None else candidates[index]

    def hypervolume(self, reference_point: tuple[float, float] | None = None) -> float:
        """Area dominated by the candidates up to `reference_point` (default: the ReLU point,
        so this is the area of improvement over ReLU); 0.0 when there is no reference."""
        if reference_point is None:
            reference = self.reference
            if reference is None:
                return 0.0
            reference_point = reference.values
        return hypervolume_2d(self._values(self.candidates), reference_point, self.directions)

    # -- files
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "study_name": self.study_name,
            "objective_names": list(self.objective_names),
            "directions": list(self.directions),
            "trials": [t.to_dict() for t in self.trials],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningResult:
        expected = {"model", "study_name", "objective_names", "directions", "trials"}
        unknown = sorted(set(data) - expected)
        if unknown:
            raise ValueError(f"unknown result field(s) {unknown}; expected {sorted(expected)}")
        return cls(
            model=data["model"],
            trials=tuple(TrialRecord.from_dict(t) for t in data.get("trials", ())),
            directions=tuple(data.get("directions", ("minimize", "minimize"))),
            objective_names=tuple(data.get("objective_names", ("val_loss", "pd_relative"))),
            study_name=data.get("study_name"),
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write this result as strict JSON; returns the path."""
        document = {"format": FORMAT, "version": FORMAT_VERSION, "result": self.to_dict()}
        return _write_text(path, _dumps(document, indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TuningResult:
        document = _read_document(path)
        if "result" not in document:
            raise ValueError(f"{path}: no 'result' in this file (a TuningReport's results.json?)")
        return cls.from_dict(document["result"])

    def _csv_rows(self) -> Iterable[dict[str, str]]:
        for trial in self.trials:
            row = {
                "model": self.model,
                "study_name": _csv_cell(self.study_name, "str"),
                "objective_names": _csv_cell(list(self.objective_names), "json"),
                "directions": _csv_cell(list(self.directions), "json"),
            }
            for name, kind in _CSV_FIELDS:
                row[name] = _csv_cell(getattr(trial, name), kind)
            yield row

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one row per trial (the columns are `CSV_COLUMNS`); returns the path."""
        return _write_csv(path, self._csv_rows())

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TuningResult:
        results = _read_csv(path)
        if len(results) != 1:
            raise ValueError(
                f"{path}: expected the trials of one model, found {len(results)} models "
                f"({list(results)}); use TuningReport.from_csv"
            )
        return next(iter(results.values()))

    # -- views
    def _objective_label(self, index: int) -> str:
        better = "lower" if self.directions[index] == "minimize" else "higher"
        return f"{self.objective_names[index]} ({better} is better)"

    def frontier_table(self) -> str:
        """The frontier (and the ReLU reference) as a printable text table."""
        acc_name, pd_name = self.objective_names
        reference = self.reference
        recommended = self.recommended
        rows = list(self.frontier)
        if reference is not None and reference not in rows:
            rows.insert(0, reference)
        header = ["", "trial", "activation", acc_name, pd_name, "vs ReLU"]
        lines = []
        for trial in rows:
            mark = "*" if recommended is not None and trial is recommended else ""
            if trial.is_reference:
                mark = mark or "ref"
            versus = ""
            if reference is not None and not trial.is_reference:
                d_acc = trial.accuracy - reference.accuracy
                ratio = trial.pd / reference.pd if reference.pd else math.nan
                versus = f"{acc_name} {d_acc:+.4g}, PD x{ratio:.3g}"
            lines.append(
                [
                    mark,
                    str(trial.number),
                    trial.label,
                    _with_std(trial.accuracy, trial.accuracy_std),
                    _with_std(trial.pd, trial.pd_std),
                    versus,
                ]
            )
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        text = [
            f"{self.model}: {len(self.frontier)} frontier point(s) of "
            f"{len(self.complete_trials)} complete trial(s), {len(self.failed_trials)} failed; "
            f"{self._objective_label(0)}, {self._objective_label(1)}"
        ]
        for row in [header, ["-" * w for w in widths], *lines]:
            cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            text.append("  ".join(cells).rstrip())
        if recommended is not None:
            text.append(f"* recommended: {recommended.label} (trial {recommended.number})")
        else:
            text.append("* recommended: none (no complete smooth trial)")
        if reference is None:
            text.append("(no complete ReLU reference trial)")
        return "\n".join(text)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the trials, the frontier, the ReLU reference and the recommendation to a PNG.

        Needs matplotlib (`pip install "keras-smelu[tuning]"`); uses the object-oriented API
        with the Agg canvas, so it works headless and leaves pyplot alone.
        """
        return _render_pareto_plot(_pareto_plot_info(self), path)


def _with_std(value: float | None, std: float | None) -> str:
    if value is None:
        return "-"
    if std is None or not math.isfinite(std):
        return f"{value:.4g}"
    return f"{value:.4g} ± {std:.2g}"


def _finite_or_zero(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else 0.0


def _pareto_plot_info(result: TuningResult) -> _ParetoPlotInfo:
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
    return _ParetoPlotInfo(
        title=f"{result.model}: accuracy / PD trade-off",
        x_label=result._objective_label(0),
        y_label=result._objective_label(1),
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
    )


def _render_pareto_plot(info: _ParetoPlotInfo, path: str | os.PathLike[str]) -> Path:
    figure_module = import_optional("matplotlib.figure", "Plotting the frontier")
    agg = import_optional("matplotlib.backends.backend_agg", "Plotting the frontier")
    figure = figure_module.Figure(figsize=(7.0, 5.0), layout="constrained")
    agg.FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    colors = import_optional("matplotlib").rcParams["axes.prop_cycle"].by_key()["color"]
    for i, family in enumerate(info.families):
        if family == REFERENCE_FAMILY:
            continue
        pts = [p for p in info.points if p[1] == family]
        x = [p[2] for p in pts]
        y = [p[3] for p in pts]
        xerr = [_finite_or_zero(p[4]) for p in pts]
        yerr = [_finite_or_zero(p[5]) for p in pts]
        color = colors[i % len(colors)]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=color, alpha=0.25, linewidth=0.8)
        ax.scatter(x, y, color=color, alpha=0.6, s=28, label=family)
    if info.front:
        fx = [x for x, _ in info.front]
        fy = [y for _, y in info.front]
        ax.plot(fx, fy, color="black", linewidth=1.2, zorder=3, label="Pareto frontier")
        ax.scatter(fx, fy, facecolors="none", edgecolors="black", s=70, linewidths=1.2, zorder=4)
        for x, y, label in zip(fx, fy, info.front_labels, strict=True):
            ax.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=7)
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
    if info.recommended is not None:
        ax.scatter(
            [info.recommended[0]],
            [info.recommended[1]],
            marker="D",
            s=90,
            facecolors="none",
            edgecolors="tab:green",
            linewidths=2.0,
            zorder=6,
            label=f"recommended: {info.recommended_label}",
        )
    ax.set_xlabel(info.x_label)
    ax.set_ylabel(info.y_label)
    title = info.title + (f"  ({info.n_failed} failed)" if info.n_failed else "")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if info.points:
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, "no complete trials", ha="center", va="center", transform=ax.transAxes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    return path


# --------------------------------------------------------------------------- several models


@dataclass(frozen=True)
class TuningReport:
    """The results of a job, one `TuningResult` per model, plus free-form metadata (the job,
    when it ran, ...). Saved to a folder as `results.json` (everything), `trials.csv` (all
    trials, one row each) and `frontier-<model>.png`."""

    results: Mapping[str, TuningResult]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, result in self.results.items():
            if result.model != name:
                raise ValueError(f"results[{name!r}] holds model {result.model!r}")

    @classmethod
    def from_results(
        cls, results: Iterable[TuningResult], metadata: Mapping[str, Any] | None = None
    ) -> TuningReport:
        return cls({r.model: r for r in results}, dict(metadata or {}))

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "metadata": dict(self.metadata),
            "results": {name: r.to_dict() for name, r in self.results.items()},
        }
        return _write_text(path, _dumps(document, indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TuningReport:
        document = _read_document(path)
        if "results" not in document:
            raise ValueError(f"{path}: no 'results' in this file (a single TuningResult?)")
        results = {name: TuningResult.from_dict(r) for name, r in document["results"].items()}
        return cls(results, document.get("metadata", {}))

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        rows = (row for r in self.results.values() for row in r._csv_rows())
        return _write_csv(path, rows)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TuningReport:
        """Read `trials.csv` (metadata is not in the CSV: it comes back empty)."""
        return cls(_read_csv(path))

    def save(self, directory: str | os.PathLike[str], *, plots: bool | None = None) -> list[Path]:
        """Write `results.json`, `trials.csv` and (with `plots`) `frontier-<model>.png` files.

        Args:
            directory: Output folder (created if needed).
            plots: `True`: draw (needs matplotlib); `False`: do not; `None` (default): draw
                when matplotlib is installed.

        Returns:
            The written paths.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = [self.to_json(directory / RESULTS_JSON), self.to_csv(directory / TRIALS_CSV)]
        if plots is None:
            try:
                import_optional("matplotlib")
                plots = True
            except ImportError:
                plots = False
        if plots:
            written += self.plot(directory)
        return written

    def plot(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Draw each model's accuracy/PD plane as `frontier-<model>.png` in `directory`.

        Returns:
            The written paths.
        """
        return [
            result.plot(Path(directory) / plot_filename(name))
            for name, result in self.results.items()
        ]

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TuningReport:
        """Read a folder written by `save` (from its `results.json`)."""
        path = Path(directory) / RESULTS_JSON
        if not path.exists():
            raise FileNotFoundError(
                f"no {RESULTS_JSON} in {str(directory)!r}: not a results folder"
            )
        return cls.from_json(path)

    def summary(self) -> str:
        """The frontier tables of every model."""
        if not self.results:
            return "(no results)"
        return "\n\n".join(r.frontier_table() for r in self.results.values())


def plot_filename(model: str) -> str:
    """`frontier-<model>.png`, with characters unsafe in file names replaced by `_`."""
    return f"frontier-{re.sub(r'[^A-Za-z0-9._-]', '_', model)}.png"


# --------------------------------------------------------------------------- file helpers


def _write_text(path: str | os.PathLike[str], text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # never leave a half-written results file behind
    return path


def _read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        document = _decode(json.loads(Path(path).read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a keras-smelu tuning results file (format {FORMAT!r})")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: results format version {document.get('version')!r}; this keras-smelu "
            f"reads version {FORMAT_VERSION}"
        )
    return document


def _write_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, str]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def _read_csv(path: str | os.PathLike[str]) -> dict[str, TuningResult]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(set(CSV_COLUMNS) - set(reader.fieldnames or ()))
        if missing:
            raise ValueError(f"{path}: not a keras-smelu trials CSV; missing columns {missing}")
        groups: dict[str, dict[str, Any]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                record = TrialRecord.from_dict(
                    {
                        "model": row["model"],
                        **{name: _csv_value(row[name], kind) for name, kind in _CSV_FIELDS},
                    }
                )
                key = row["model"]
                group = groups.setdefault(
                    key,
                    {
                        "study_name": _csv_value(row["study_name"], "str"),
                        "objective_names": tuple(_csv_value(row["objective_names"], "json")),
                        "directions": tuple(_csv_value(row["directions"], "json")),
                        "trials": [],
                    },
                )
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}, line {line}: {exc}") from exc
            group["trials"].append(record)
    return {
        model: TuningResult(
            model=model,
            trials=tuple(g["trials"]),
            directions=g["directions"],
            objective_names=g["objective_names"],
            study_name=g["study_name"],
        )
        for model, g in groups.items()
    }
