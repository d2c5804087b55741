"""Tuning results: one model's trials and frontier (`TuningResult`), a job's (`TuningReport`).

- `TuningResult`: one model's trials, its Pareto frontier of (accuracy objective, PD), the ReLU
  reference and the recommended width; JSON and CSV round trips; a text table; a PNG plot.
- `TuningReport`: the results of several models, saved to and loaded from a folder
  (`results.json`, `trials.csv`, `frontier-<model>.png`).

Trial records and their codecs are in `_record`, atomic file writing in `_files`, the plot in
`_plot`.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_smelu.tuning._comparisons import candidate_name, trial_pairs
from keras_smelu.tuning._decision import Decision, decide
from keras_smelu.tuning._ensembles import EnsembleComparison, ensemble_words
from keras_smelu.tuning._ensembles import ensemble_comparisons as compare_ensembles
from keras_smelu.tuning._files import folder_lock, write_csv, write_text
from keras_smelu.tuning._imports import import_optional
from keras_smelu.tuning._paired import Comparison, TrialPairs, compare
from keras_smelu.tuning._pareto import hypervolume_2d, normalize, pareto_mask, recommend
from keras_smelu.tuning._plot import pareto_plot_info, render_pareto_plot
from keras_smelu.tuning._record import (
    CSV_FIELDS,
    CSV_RESULT_FIELDS,
    TrialRecord,
    csv_cell,
    csv_value,
    dumps,
    read_versioned_json,
)

FORMAT = "keras-smelu-tuning"
FORMAT_VERSION = 1
RESULTS_JSON = "results.json"
TRIALS_CSV = "trials.csv"
# Paired comparison with ReLU, for spreadsheet readers (derived: not read back).
PAIRED_CSV_COLUMNS = [
    "pd_ratio",
    "pd_ratio_low",
    "pd_ratio_high",
    "accuracy_cost",
    "accuracy_cost_low",
    "accuracy_cost_high",
    "pairs_compared",
]
CSV_COLUMNS = (
    CSV_RESULT_FIELDS[:2]
    + [name for name, _ in CSV_FIELDS]
    + CSV_RESULT_FIELDS[2:]
    + PAIRED_CSV_COLUMNS
)
# Columns that files written by earlier versions lack.
_NEWER_CSV_COLUMNS = {"pairs", "ensemble", "level", "max_accuracy_cost", *PAIRED_CSV_COLUMNS}


def _paired_cells(comparison: Comparison | None) -> dict[str, str]:
    if comparison is None:
        return {}
    ratio, cost = comparison.pd_ratio, comparison.accuracy_cost
    values = (ratio.estimate, ratio.low, ratio.high, cost.estimate, cost.low, cost.high)
    cells = {
        name: csv_cell(value, "float")
        for name, value in zip(PAIRED_CSV_COLUMNS, values, strict=False)
    }
    cells["pairs_compared"] = str(min(ratio.n, cost.n))
    return cells


@dataclass(frozen=True)
class TuningResult:
    """The trials of one model and what they say.

    Attributes:
        model: Model name.
        trials: All trials, complete and failed.
        directions: Directions of `(accuracy objective, PD)`; PD is minimised.
        objective_names: Names of the two objectives, e.g. `("val_loss", "pd_relative")`.
        study_name: The study the trials came from, if any.
        level: Confidence level of the paired intervals against ReLU.
        max_accuracy_cost: The accuracy budget of the recommendation (`Objective`): `None`
            (no worse than ReLU), a number in the metric's units, or a percentage `"0.5%"`.
    """

    model: str
    trials: tuple[TrialRecord, ...] = ()
    directions: tuple[str, str] = ("minimize", "minimize")
    objective_names: tuple[str, str] = ("val_loss", "pd_relative")
    study_name: str | None = None
    level: float = 0.9
    max_accuracy_cost: float | str | None = None

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
        return [t for t in self.trials if t.state == "failed"]

    @property
    def pruned_trials(self) -> list[TrialRecord]:
        """Trials stopped early (dominated beyond uncertainty); never on the frontier."""
        return [t for t in self.trials if t.is_pruned]

    @property
    def reference(self) -> TrialRecord | None:
        """The (first complete) ReLU reference trial, if any."""
        return next((t for t in self.complete_trials if t.is_reference), None)

    @property
    def candidates(self) -> list[TrialRecord]:
        """Complete trials other than the reference and the ReLU ensembles: the widths the
        tuner can recommend."""
        return [t for t in self.complete_trials if not (t.is_reference or t.is_ensemble)]

    @property
    def ensembles(self) -> list[TrialRecord]:
        """The complete ReLU ensemble reference points (one per size, smallest first):
        comparisons at k times the cost, never candidates nor on the frontier."""
        by_size: dict[int, TrialRecord] = {}
        for trial in self.complete_trials:
            if trial.is_ensemble:
                by_size.setdefault(trial.ensemble, trial)
        return [by_size[k] for k in sorted(by_size)]

    def _values(self, trials: list[TrialRecord]) -> np.ndarray:
        return np.array([t.values for t in trials], dtype=float).reshape(-1, 2)

    @property
    def frontier(self) -> list[TrialRecord]:
        """Non-dominated complete trials (the reference included, the ReLU ensembles not),
        best accuracy first."""
        trials = [t for t in self.complete_trials if not t.is_ensemble]
        values = self._values(trials)
        on_front = pareto_mask(values, self.directions)
        loss = normalize(values, self.directions)
        order = sorted(np.flatnonzero(on_front), key=lambda i: (loss[i, 0], loss[i, 1], i))
        return [trials[i] for i in order]

    # -- paired comparisons with ReLU
    @property
    def has_pairs(self) -> bool:
        """Whether the reference and every candidate kept their per-pair data (results
        written before it was kept have none: the legacy rule recommends then)."""
        reference = self.reference
        return bool(
            reference is not None and reference.pairs and all(t.pairs for t in self.candidates)
        )

    def pairs_of(self, trial: TrialRecord) -> TrialPairs | None:
        """`trial`'s per-pair PD and replica metrics at its reported epoch, or `None`."""
        return trial_pairs(trial, self.objective_names)

    def comparison(self, trial: TrialRecord) -> Comparison | None:
        """`trial` against the ReLU reference, pair by pair (PD ratio and accuracy cost with
        `level` intervals); `None` without per-pair data or a reference."""
        if trial.is_reference:
            return None
        if id(trial) in self._comparisons:
            return self._comparisons[id(trial)]
        reference = self.reference  # a record that is not one of this result's own objects
        mine = self.pairs_of(trial)
        theirs = None if reference is None else self.pairs_of(reference)
        if mine is None or theirs is None:
            return None
        return compare(mine, theirs, self.directions[0], self.level)

    @functools.cached_property
    def _comparisons(self) -> dict[int, Comparison]:
        # Computed once per result: the table, the files and the plot all read them.
        reference = self.reference
        theirs = None if reference is None else self.pairs_of(reference)
        if theirs is None:
            return {}
        out = {}
        for trial in [*self.candidates, *self.ensembles]:
            mine = self.pairs_of(trial)
            if mine is not None:
                out[id(trial)] = compare(mine, theirs, self.directions[0], self.level)
        return out

    @functools.cached_property
    def ensemble_comparisons(self) -> list[EnsembleComparison]:
        """Each ReLU ensemble against ReLU and against the recommendation (paired)."""
        return compare_ensembles(self)

    @functools.cached_property
    def decision(self) -> Decision | None:
        """The recommendation rule applied to the candidates (see `keras_smelu.tuning.decide`):
        the lowest PD whose accuracy cost stays within `max_accuracy_cost` and whose PD
        reduction is significant, both at `level`; `None` without per-pair data."""
        if not self.has_pairs:
            return None
        return decide(
            {candidate_name(t): self.pairs_of(t) for t in self.candidates},
            self.pairs_of(self.reference),
            self.max_accuracy_cost,
            self.level,
            direction=self.directions[0],
        )

    @property
    def recommended(self) -> TrialRecord | None:
        """The recommended trial: by `decision` (`None`: keep ReLU) when the trials kept their
        per-pair data; otherwise (older results) by `recommend`, the lowest PD at accuracy no
        worse than ReLU's, else the knee. `None` when there is no complete candidate."""
        candidates = self.candidates
        if not candidates:
            return None
        decision = self.decision
        if decision is not None:
            return next((t for t in candidates if candidate_name(t) == decision.recommended), None)
        reference = self.reference
        index = recommend(
            self._values(candidates),
            None if reference is None else reference.values,
            self.directions,
        )
        return None if index is None else candidates[index]

    # -- the chosen activation, for a user's own model
    def recommended_activation(self, trial: int | None = None) -> Any:
        """The activation layer of the recommendation (or of trial number `trial`), to pass
        to a builder: a `keras_smelu.SmeLU`, a `GeneralizedSmeLU`, a comparator or, for trial
        0, ReLU.

        Raises:
            ValueError: without a recommendation (ReLU is kept: pass `trial=0`), or a trial
                that is unknown or did not complete.

        Example:

        >>> keras.layers.Dense(64, activation=result.recommended_activation())  # doctest: +SKIP
        """
        from keras_smelu.tuning._export import activation_of, select_trial

        return activation_of(select_trial(self, trial))

    def activation_config(self, trial: int | None = None) -> dict[str, Any]:
        """`recommended_activation(trial)` as plain data for a config system
        (`keras.saving.serialize_keras_object`; `deserialize_keras_object` inverts it)."""
        from keras_smelu.tuning._export import activation_config_of, select_trial

        return activation_config_of(select_trial(self, trial))

    def export(
        self,
        builder: Any,
        data: Any,
        output: str | os.PathLike[str],
        *,
        settings: Any,
        trial: int | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        storage: str | None = None,
        serving: bool = False,
        artifacts: str | os.PathLike[str] | None = None,
        plot: bool | None = None,
    ) -> Any:
        """Trains the recommendation (or `trial`) once more and saves it with its evidence.

        The point is trained on `data` with the run's settings and the seeds of its first
        replica pair, up to the reported epoch: the model is that pair's replica a, and the
        evidence records how closely its evaluation metrics match the study's record. Written
        beside `output`: `<output>.evidence.json` (the evidence; Keras has no public way to
        keep it inside the file), `<stem>.md` (a model card) and `<stem>.frontier.png`.

        Args:
            builder: The model builder the run tuned (`activation -> compiled keras.Model`).
            data: The run's data, as `tune` took it.
            output: The `.keras` path to write.
            settings: The run's `TrialSettings` (or `ReplicaSettings`), or its
                `report.metadata["settings"]`.
            trial: A trial number (0 is ReLU); default the recommendation.
            fingerprint: The extra fingerprint entries the run was given.
            storage: The study's Optuna storage: the data and model are checked against the
                study's fingerprint (a mismatch raises), and `artifacts` are uploaded there.
            serving: Also `model.export` to `<stem>.serving/` (serves without the plug-in).
            artifacts: A folder of an Optuna file-system artifact store: upload the model and
                its evidence to the study (see `keras_smelu.tuning.fetch_model`).
            plot: Draw the frontier plot: `None` (default) when matplotlib is installed.

        Returns:
            An `ExportedModel` (paths, evidence, the trained model).

        Raises:
            ValueError: no recommendation and no `trial`; a bad `output`; data, a model or
                settings other than the study's.

        Example:

        >>> exported = result.export(build, ds, "models/mlp.keras",
        ...                          settings=report.metadata["settings"])  # doctest: +SKIP
        """
        from keras_smelu.tuning._export import export_trial

        return export_trial(
            self,
            builder,
            data,
            output,
            settings=settings,
            trial=trial,
            fingerprint=fingerprint,
            storage=storage,
            serving=serving,
            artifacts=artifacts,
            plot=plot,
        )

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
        """Plain data: the trials and settings, plus (for readers; recomputed on load) each
        candidate's comparison with ReLU and the decision with its reasons."""
        decision = self.decision
        comparisons = {}
        for trial in [*self.candidates, *self.ensembles]:
            comparison = self.comparison(trial)
            if comparison is not None:
                comparisons[str(trial.number)] = comparison.to_dict()
        return {
            "model": self.model,
            "study_name": self.study_name,
            "objective_names": list(self.objective_names),
            "directions": list(self.directions),
            "level": self.level,
            "max_accuracy_cost": self.max_accuracy_cost,
            "trials": [t.to_dict() for t in self.trials],
            "comparisons": comparisons,
            "decision": None if decision is None else decision.to_dict(),
            "ensembles": [c.to_dict() for c in self.ensemble_comparisons],
            "ensemble_summary": ensemble_words(self, self.ensemble_comparisons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningResult:
        fields_ = {"model", "study_name", "objective_names", "directions", "trials"}
        fields_ |= {"level", "max_accuracy_cost"}
        # Recomputed from the trials.
        derived = {"comparisons", "decision", "ensembles", "ensemble_summary"}
        unknown = sorted(set(data) - fields_ - derived)
        if unknown:
            raise ValueError(f"unknown result field(s) {unknown}; expected {sorted(fields_)}")
        for name in ("objective_names", "directions"):
            value = data.get(name, ())
            if not isinstance(value, (list, tuple)) or len(value) not in (0, 2):
                raise ValueError(f"result field {name!r}: expected a list of two; got {value!r}")
        trials = data.get("trials", ())
        if not isinstance(trials, (list, tuple)):
            raise ValueError(f"result field 'trials': expected a list; got {trials!r}")
        level = data.get("level")
        return cls(
            model=data["model"],
            trials=tuple(TrialRecord.from_dict(t) for t in trials),
            directions=tuple(data.get("directions") or ("minimize", "minimize")),
            objective_names=tuple(data.get("objective_names") or ("val_loss", "pd_relative")),
            study_name=data.get("study_name"),
            level=0.9 if level is None else float(level),
            max_accuracy_cost=data.get("max_accuracy_cost"),
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write this result as strict JSON; returns the path."""
        document = {"format": FORMAT, "version": FORMAT_VERSION, "result": self.to_dict()}
        return write_text(path, dumps(document, indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TuningResult:
        document = read_document(path)
        if "result" not in document:
            raise ValueError(f"{path}: no 'result' in this file (a TuningReport's results.json?)")
        return cls.from_dict(document["result"])

    def _csv_rows(self) -> Iterable[dict[str, str]]:
        for trial in self.trials:
            row = {
                "model": self.model,
                "study_name": csv_cell(self.study_name, "str"),
                "objective_names": csv_cell(list(self.objective_names), "json"),
                "directions": csv_cell(list(self.directions), "json"),
                "level": csv_cell(self.level, "float"),
                "max_accuracy_cost": csv_cell(self.max_accuracy_cost, "json"),
            }
            for name, kind in CSV_FIELDS:
                row[name] = csv_cell(getattr(trial, name), kind)
            row.update(_paired_cells(self.comparison(trial)))
            yield row

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one row per trial (the columns are `CSV_COLUMNS`); returns the path."""
        return write_csv(path, self._csv_rows(), CSV_COLUMNS)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TuningResult:
        results = read_csv(path)
        if len(results) != 1:
            raise ValueError(
                f"{path}: expected the trials of one model, found {len(results)} models "
                f"({list(results)}); use TuningReport.from_csv"
            )
        return next(iter(results.values()))

    # -- views
    def objective_label(self, index: int) -> str:
        better = "lower" if self.directions[index] == "minimize" else "higher"
        return f"{self.objective_names[index]} ({better} is better)"

    def frontier_table(self) -> str:
        """The frontier (and the ReLU reference) as a printable text table, with each point's
        paired comparison with ReLU and, below it, the decision and its reasons."""
        acc_name, pd_name = self.objective_names
        reference = self.reference
        recommended = self.recommended
        decision = self.decision
        rows = list(self.frontier)
        if reference is not None and reference not in rows:
            rows.insert(0, reference)
        if recommended is not None and recommended not in rows:
            rows.append(recommended)
        ensembles = self.ensembles
        rows += ensembles
        level = f"{self.level:.0%}"
        # With ensembles, each point's training and serving compute relative to one model.
        cost = ["cost"] if ensembles else []
        if decision is not None:
            header = ["", "trial", "activation", *cost, acc_name, pd_name]
            header.append(f"PD x ReLU [{level} CI]")
            header.append(f"{acc_name} cost [{level} CI]")
        else:
            header = ["", "trial", "activation", *cost, acc_name, pd_name, "vs ReLU"]
        lines = []
        for trial in rows:
            mark = "*" if recommended is not None and trial is recommended else ""
            if trial.is_reference:
                mark = mark or "ref"
            elif trial.is_ensemble:
                mark = "ens"
            line = [mark, str(trial.number), trial.label]
            line += [f"{trial.cost:g}x"] if ensembles else []
            line += [f"{trial.accuracy:.4g}", f"{trial.pd:.4g}"]
            comparison = self.comparison(trial)
            if decision is not None:
                line += (
                    ["", ""]
                    if comparison is None
                    else [
                        comparison.pd_ratio.format(3),
                        comparison.accuracy_cost.format(3),
                    ]
                )
            elif reference is not None and not trial.is_reference:
                d_acc = trial.accuracy - reference.accuracy
                ratio = trial.pd / reference.pd if reference.pd else math.nan
                line.append(
                    f"{acc_name} {d_acc:+.4g}, PD x{ratio:.3g} (no interval: the trials kept "
                    "no per-pair data)"
                )
            else:
                line.append("")
            lines.append(line)
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        text = [
            f"{self.model}: {len(self.frontier)} frontier point(s) of "
            f"{len(self.complete_trials)} complete trial(s), {len(self.failed_trials)} failed"
            + (f", {len(self.pruned_trials)} pruned" if self.pruned_trials else "")
            + "; "
            f"{self.objective_label(0)}, {self.objective_label(1)}"
        ]
        for row in [header, ["-" * w for w in widths], *lines]:
            cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            text.append("  ".join(cells).rstrip())
        if decision is not None:
            text.append(f"Decision: {decision.summary}.")
            shown = decision.reasons[:5]
            text += [f"  - {reason}" for reason in shown]
            if len(decision.reasons) > len(shown):
                text.append(f"  ... and {len(decision.reasons) - len(shown)} more (results.json)")
            if decision.unresolved:
                text.append(
                    f"  Unresolved with these pairs: {len(decision.unresolved)} candidate(s); "
                    "more pairs could decide them."
                )
        elif recommended is not None:
            text.append(f"* recommended: {recommended.label} (trial {recommended.number})")
        else:
            text.append("* recommended: none (no complete smooth trial)")
        if reference is None:
            text.append("(no complete ReLU reference trial)")
        text += ensemble_words(self, self.ensemble_comparisons)
        return "\n".join(text)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the trials, the frontier, the ReLU reference and the recommendation to a PNG.

        Needs matplotlib (`pip install "keras-smelu[tuning]"`); uses the object-oriented API
        with the Agg canvas, so it works headless and leaves pyplot alone.
        """
        return render_pareto_plot(pareto_plot_info(self), path)


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
        return write_text(path, dumps(document, indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TuningReport:
        document = read_document(path)
        if "results" not in document:
            raise ValueError(f"{path}: no 'results' in this file (a single TuningResult?)")
        results = {name: TuningResult.from_dict(r) for name, r in document["results"].items()}
        return cls(results, document.get("metadata", {}))

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        rows = (row for r in self.results.values() for row in r._csv_rows())
        return write_csv(path, rows, CSV_COLUMNS)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TuningReport:
        """Read `trials.csv` (metadata is not in the CSV: it comes back empty)."""
        return cls(read_csv(path))

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
        if plots is None:
            try:
                import_optional("matplotlib")
                plots = True
            except ImportError:
                plots = False
        # Workers of one job write the same folder: one writer at a time, each file atomic.
        with folder_lock(directory):
            written = [
                self.to_json(directory / RESULTS_JSON),
                self.to_csv(directory / TRIALS_CSV),
            ]
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
        """The frontier tables of every model (each under its measured width range, for an
        auto range)."""
        if not self.results:
            return "(no results)"
        from keras_smelu.tuning._auto_range import describe

        auto = self.metadata.get("auto_width_range") or {}
        return "\n\n".join(
            (f"{r.model}: {describe(auto[r.model])}\n" if auto.get(r.model) else "")
            + r.frontier_table()
            for r in self.results.values()
        )


def plot_filename(model: str) -> str:
    """`frontier-<model>.png`, with characters unsafe in file names replaced by `_`."""
    return f"frontier-{re.sub(r'[^A-Za-z0-9._-]', '_', model)}.png"


# --------------------------------------------------------------------------- reading


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    return read_versioned_json(path, FORMAT, FORMAT_VERSION, "a keras-smelu tuning results file")


def read_csv(path: str | os.PathLike[str]) -> dict[str, TuningResult]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(set(CSV_COLUMNS) - _NEWER_CSV_COLUMNS - set(reader.fieldnames or ()))
        if missing:
            raise ValueError(f"{path}: not a keras-smelu trials CSV; missing columns {missing}")
        groups: dict[str, dict[str, Any]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                record = TrialRecord.from_dict(
                    {
                        "model": row["model"],
                        **{
                            name: csv_value(row[name], kind)
                            for name, kind in CSV_FIELDS
                            if row.get(name) is not None
                        },
                    }
                )
                key = row["model"]
                group = groups.setdefault(
                    key,
                    {
                        "study_name": csv_value(row["study_name"], "str"),
                        "objective_names": tuple(csv_value(row["objective_names"], "json")),
                        "directions": tuple(csv_value(row["directions"], "json")),
                        "level": csv_value(row.get("level") or "0.9", "float"),
                        "max_accuracy_cost": csv_value(row.get("max_accuracy_cost") or "", "json"),
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
            level=g["level"],
            max_accuracy_cost=g["max_accuracy_cost"],
        )
        for model, g in groups.items()
    }
