"""Export a tuned width as a trained model that carries its evidence.

A chosen point of a study (the recommendation by default, or any complete trial) is trained
once more as the study trained it: the job's data, model and settings, and the seeds of the
first replica pair, so the exported model is that pair's replica `a`. It is saved as a `.keras`
file, with:

- `<model>.keras.evidence.json`: the evidence (the activation's config, its accuracy and PD
  against ReLU with their intervals, the decision, the experiment's fingerprint, the study it
  came from, the seeds). Keras 3 has no public way to keep custom metadata inside a `.keras`
  file that survives a load and a re-save, so the evidence is a sidecar file; it names a digest
  of the model's weights, which a re-save keeps, so a reader can tell whether it still describes
  the model beside it;
- `<model>.md` (a model card) and `<model>.frontier.png` (the study's plane with the point);
- optionally `<model>.serving/` (`model.export`: serves without the plug-in) and Optuna
  artifacts of the study, so that other machines can fetch the model from a shared storage.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keras_smelu.replicas import ReplicaSettings
from keras_smelu.tuning._files import write_text
from keras_smelu.tuning._record import (
    TrialRecord,
    dumps,
    read_versioned_json,
    system_info,
)
from keras_smelu.tuning._results import RESULTS_JSON, TuningReport, TuningResult
from keras_smelu.tuning._space import make_activation
from keras_smelu.tuning._trial import TrialSettings

EVIDENCE_FORMAT = "keras-smelu-model-evidence"
EVIDENCE_VERSION = 1
EVIDENCE_SUFFIX = ".evidence.json"
# Where the Optuna backend keeps a study's setup (its experiment fingerprint among it).
_STUDY_SETUP_ATTR = "keras_smelu_setup"
# Study user attribute naming the artifacts of an exported trial: `<prefix><trial number>`.
EXPORT_ATTR_PREFIX = "keras_smelu_export/"
# Fingerprint entries that must match the study's for the export to be its model.
_MUST_MATCH = ("data.", "model.", "job.")


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """What `export` wrote.

    Attributes:
        model_path: The `.keras` file.
        evidence_path: The evidence sidecar (`<model_path>.evidence.json`).
        card_path: The model card (Markdown).
        plot_path: The frontier plot, or `None` without matplotlib.
        serving_path: The `model.export` folder, or `None` when not asked for.
        artifacts: Optuna artifact ids (`{"model": id, "evidence": id}`), empty unless asked.
        evidence: The evidence, as written.
        model: The trained Keras model (not saved twice: the file above holds it).
    """

    model_path: Path
    evidence_path: Path
    card_path: Path
    plot_path: Path | None
    serving_path: Path | None
    artifacts: Mapping[str, str]
    evidence: Mapping[str, Any]
    model: Any = dataclasses.field(default=None, repr=False, compare=False)


def evidence_path_of(model_path: str | os.PathLike[str]) -> Path:
    """The evidence sidecar of a `.keras` file: `<model_path>.evidence.json`."""
    return Path(f"{os.fspath(model_path)}{EVIDENCE_SUFFIX}")


def select_trial(result: TuningResult, trial: int | None = None) -> TrialRecord:
    """The trial to export: `trial` (a record number; 0 is the ReLU reference) or the
    recommendation.

    Raises:
        ValueError: no such trial, a trial that did not complete, or no recommendation.
    """
    if trial is None:
        chosen = result.recommended
        if chosen is None:
            decision = result.decision
            why = decision.summary if decision is not None else "no complete smooth trial"
            raise ValueError(
                f"Model {result.model!r} has no recommended width ({why}); expected a "
                "recommendation or an explicit trial; pass `trial` (`--trial` on the command line; "
                "0 is the ReLU reference)"
            )
        return chosen
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise ValueError(f"Argument `trial` must be a trial number; received: {trial!r}")
    found = [t for t in result.trials if t.number == trial]
    if not found:
        numbers = sorted(t.number for t in result.trials)
        raise ValueError(
            f"Argument `trial` names no trial of model {result.model!r}; expected one of "
            f"{numbers}; received: {trial}"
        )
    if found[0].is_ensemble:  # exporting trains one model: it would not be this point
        raise ValueError(
            f"Argument `trial` names the {found[0].label} reference point (an ensemble of "
            f"{found[0].ensemble} models, a comparison); expected a single-model trial (0 is "
            f"the ReLU reference); received: {trial}"
        )
    complete = next((t for t in found if t.is_complete), None)
    if complete is None:
        raise ValueError(
            f"Argument `trial` names a {found[0].state} trial ({found[0].fail_reason}); "
            f"expected a complete trial; received: {trial}"
        )
    return complete


def activation_of(trial: TrialRecord) -> Any:
    """The Keras activation layer of a trial's point (ReLU for the reference)."""
    return make_activation(trial.family, trial.width, **dict(trial.params))


def activation_config_of(trial: TrialRecord) -> dict[str, Any]:
    """The serialized activation of a trial (`keras.saving.serialize_keras_object`): plain
    data that `keras.saving.deserialize_keras_object` turns back into the layer."""
    import keras

    return json.loads(json.dumps(keras.saving.serialize_keras_object(activation_of(trial))))


def replica_settings(settings: Any) -> ReplicaSettings:
    """The replicas' settings from a `ReplicaSettings`, a `TrialSettings` or a results file's
    flat `metadata["settings"]` dict."""
    if isinstance(settings, ReplicaSettings):
        return settings
    if isinstance(settings, TrialSettings):
        return settings.training
    if isinstance(settings, Mapping):
        names = {f.name for f in dataclasses.fields(ReplicaSettings)}
        return ReplicaSettings(**{k: v for k, v in settings.items() if k in names})
    raise ValueError(
        "Argument `settings` must be the tuning run's ReplicaSettings, TrialSettings or its "
        f"results' metadata['settings']; received: {type(settings).__name__}"
    )


def _check_fingerprint(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Refuses data or a model other than the study's; returns notes on other differences
    (package versions: the model is trained under this process's)."""
    if not stored:
        return ["the study's fingerprint was not available to compare with"]
    changed, notes = [], []
    for key in sorted(set(stored) | set(current)):
        if key not in stored or key not in current or stored[key] == current[key]:
            continue
        line = f"{key}: {stored[key]!r} -> {current[key]!r}"
        (changed if key.startswith(_MUST_MATCH) else notes).append(line)
    if changed:
        raise ValueError(
            "The data or model given to export differ from the study's; expected the "
            "experiment the study ran; received: " + "; ".join(changed)
        )
    return notes


def _stored_setup(storage: str | None, study_name: str | None) -> dict[str, Any] | None:
    if not storage or not study_name or "://" not in storage and not storage.startswith("journal:"):
        return None
    from keras_smelu.tuning._optuna_backend import make_storage

    storage_obj = make_storage(storage)
    try:
        study_id = storage_obj.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return storage_obj.get_study_user_attrs(study_id).get(_STUDY_SETUP_ATTR)


def _trained_pair_one(builder, train_data, eval_data, trial: TrialRecord, training, pd: str):
    """Trains pair 1 of `trial`'s point up to its reported epoch; returns (replica a, its
    measured metrics, the pair's seeds)."""
    from keras_smelu.replicas import train_replicas

    settings = dataclasses.replace(
        training, pairs=1, first_pair=0, epochs=int(trial.epoch or training.epochs)
    )
    report = train_replicas(
        builder,
        train_data,
        eval_data,
        activation=activation_of(trial),
        settings=settings,
        pd=pd,
        verbose=0,
        return_models=True,
    )
    pair = report.pair_results[0]
    return report.models[0], dict(pair["replicas"][0]["metrics"][-1]), pair["seeds"]


def _headline_pd(pd: Any) -> str:
    """The replicas' headline PD kind for an objective's `pd`: churn and ranking kinds are
    measured beside relative PD (export compares metrics, not PD)."""
    from keras_smelu._replica_summary import EXTRA_PD_KINDS

    return "relative" if pd in EXTRA_PD_KINDS else str(pd)


def _recorded_pair_one(trial: TrialRecord) -> tuple[dict[str, float] | None, Any]:
    """Replica a's metrics at the reported epoch in the study's pair 1, and the pair's seeds."""
    pair = next((p for p in trial.pairs if int(p.get("pair", 0)) == 1), None)
    if pair is None or trial.epoch is None:
        return None, None
    metrics = pair["replicas"][0]["metrics"]
    index = int(trial.epoch) - 1
    return (dict(metrics[index]) if index < len(metrics) else None), pair.get("seeds")


def _reproduction(measured: Mapping[str, float], recorded: Mapping[str, float] | None):
    if recorded is None:
        return {"measured": dict(measured), "recorded": None, "max_relative_difference": None}
    shared = sorted(set(measured) & set(recorded))
    gaps = [
        abs(measured[k] - recorded[k]) / max(abs(recorded[k]), 1e-12)
        for k in shared
        if math.isfinite(recorded[k])
    ]
    return {
        "measured": dict(measured),
        "recorded": {k: recorded[k] for k in shared},
        "max_relative_difference": max(gaps) if gaps else None,
    }


def _weights_sha256(model: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def build_evidence(
    result: TuningResult,
    trial: TrialRecord,
    *,
    fingerprint: Mapping[str, Any],
    settings: Mapping[str, Any],
    study: Mapping[str, Any],
    reproduction: Mapping[str, Any],
    seeds: Any,
    weights_sha256: str,
    notes: list[str],
) -> dict[str, Any]:
    """The evidence of an exported trial as plain data (see the module docstring)."""
    comparison = result.comparison(trial)
    decision = result.decision
    reference = result.reference
    recommended = result.recommended
    return {
        "format": EVIDENCE_FORMAT,
        "version": EVIDENCE_VERSION,
        "model": result.model,
        "trial": trial.number,
        "recommended": recommended is not None and recommended.number == trial.number,
        "activation": {
            "family": trial.family,
            "width": trial.width,
            "params": dict(trial.params),
            "label": trial.label,
            "config": activation_config_of(trial),
        },
        "objective_names": list(result.objective_names),
        "directions": list(result.directions),
        "level": result.level,
        "max_accuracy_cost": result.max_accuracy_cost,
        "measured": {
            "accuracy": trial.accuracy,
            "accuracy_std": trial.accuracy_std,
            "pd": trial.pd,
            "pd_std": trial.pd_std,
            "epoch": trial.epoch,
            "pairs": len(trial.pairs),
        },
        "reference": None
        if reference is None
        else {"trial": reference.number, "accuracy": reference.accuracy, "pd": reference.pd},
        "comparison": None if comparison is None else comparison.to_dict(),
        "decision": None if decision is None else decision.to_dict(),
        "fingerprint": dict(fingerprint),
        "settings": dict(settings),
        "study": dict(study),
        "training": {"pair": 1, "replica": "a", "seeds": seeds, "epochs": trial.epoch},
        "reproduction": dict(reproduction),
        "weights_sha256": weights_sha256,
        "notes": list(notes),
        "system": system_info(),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_trial(
    result: TuningResult,
    builder: Callable[[Any], Any],
    data: Any,
    output: str | os.PathLike[str],
    *,
    settings: Any,
    trial: int | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    storage: str | None = None,
    study: Mapping[str, Any] | None = None,
    serving: bool = False,
    artifacts: str | os.PathLike[str] | None = None,
    plot: bool | None = None,
) -> ExportedModel:
    """Trains a tuned point once more and saves it with its evidence.

    See `TuningResult.export`, which calls this.
    """
    import keras

    from keras_smelu.tuning._fingerprint import experiment_fingerprint
    from keras_smelu.tuning._tuner import settings_metadata, split_data

    chosen = select_trial(result, trial)
    output = Path(output)
    if output.suffix != ".keras":
        raise ValueError(
            f"Argument `output` must be a path ending in '.keras'; received: {str(output)!r}"
        )
    flat_settings = dict(settings) if isinstance(settings, Mapping) else None
    training = replica_settings(settings)
    if flat_settings is None:
        objective = settings.objective if isinstance(settings, TrialSettings) else None
        flat_settings = settings_metadata(settings) if objective is not None else training.to_dict()
    train_data, eval_data = split_data(data)
    current = experiment_fingerprint(builder, train_data, eval_data, fingerprint)
    notes = _check_fingerprint(_stored_setup(storage, result.study_name), current)

    recorded, recorded_seeds = _recorded_pair_one(chosen)
    model, measured, seeds = _trained_pair_one(
        builder,
        train_data,
        eval_data,
        chosen,
        training,
        _headline_pd(flat_settings.get("pd", "relative")),
    )
    if recorded_seeds is not None and recorded_seeds != seeds:
        raise ValueError(
            "The settings given to export train pair 1 with other seeds than the study's; "
            f"expected the tuning run's settings (seeds {recorded_seeds}); received: "
            f"settings giving seeds {seeds}"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    study_info = {"name": result.study_name, "storage": storage, **dict(study or {})}
    evidence = build_evidence(
        result,
        chosen,
        fingerprint=current,
        settings=flat_settings,
        study=study_info,
        reproduction=_reproduction(measured, recorded),
        seeds=seeds,
        weights_sha256=_weights_sha256(model),
        notes=notes,
    )
    plot_path = _plot(result, output, plot)
    evidence["files"] = {
        "model": output.name,
        "card": _card_path(output).name,
        "plot": None if plot_path is None else plot_path.name,
    }
    serving_path = None
    if serving:
        serving_path = output.with_suffix(".serving")
        model.export(str(serving_path), verbose=False)
        evidence["files"]["serving"] = serving_path.name
    ids: dict[str, str] = {}
    if artifacts is not None:
        ids = _upload(output, evidence, storage, result.study_name, chosen.number, artifacts)
        evidence["artifacts"] = dict(ids)
    evidence_path = write_evidence(output, evidence)
    card_path = write_text(_card_path(output), _card(evidence))
    return ExportedModel(
        model_path=output,
        evidence_path=evidence_path,
        card_path=card_path,
        plot_path=plot_path,
        serving_path=serving_path,
        artifacts=ids,
        evidence=evidence,
        model=model if isinstance(model, keras.Model) else None,
    )


def _card(evidence: Mapping[str, Any]) -> str:
    from keras_smelu.tuning._model_card import model_card

    return model_card(evidence)


def _card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".md")


def _plot(result: TuningResult, output: Path, plot: bool | None) -> Path | None:
    path = output.with_suffix(".frontier.png")
    if plot is False:
        return None
    try:
        return result.plot(path)
    except ImportError:
        if plot:
            raise
        return None


def write_evidence(model_path: str | os.PathLike[str], evidence: Mapping[str, Any]) -> Path:
    """Writes `evidence` beside `model_path` (atomically); returns the sidecar's path."""
    return write_text(evidence_path_of(model_path), dumps(evidence, indent=2) + "\n")


def read_evidence(path: str | os.PathLike[str], *, check_model: bool = True) -> dict[str, Any]:
    """The evidence of an exported model.

    Args:
        path: The `.keras` file (its sidecar is read) or the sidecar itself.
        check_model: Load the model (`safe_mode=True`) and say in `evidence["matches_model"]`
            whether its weights are the ones the evidence describes (a re-save keeps them;
            another training does not).

    Returns:
        The evidence dict (see `build_evidence`), with `matches_model` when checked.

    Raises:
        FileNotFoundError: no sidecar beside the model (not exported by keras-smelu).
        ValueError: a sidecar that is not an evidence file.

    Example:

    >>> read_evidence("models/embedding_mlp.keras")["comparison"]["pd_ratio"]  # doctest: +SKIP
    """
    path = Path(path)
    sidecar = path if path.name.endswith(EVIDENCE_SUFFIX) else evidence_path_of(path)
    if not sidecar.is_file():
        raise FileNotFoundError(
            f"no evidence file {sidecar.name!r} beside {str(path)!r}: not a model exported "
            "by `keras-smelu export` (the evidence travels as that sidecar file)"
        )
    evidence = read_versioned_json(
        sidecar, EVIDENCE_FORMAT, EVIDENCE_VERSION, "a keras-smelu evidence file"
    )
    model_path = sidecar.with_name(sidecar.name[: -len(EVIDENCE_SUFFIX)])
    if check_model and model_path.is_file():
        import keras

        import keras_smelu  # noqa: F401  (registers the activations the model holds)

        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
        evidence["matches_model"] = _weights_sha256(model) == evidence.get("weights_sha256")
    return evidence


# --------------------------------------------------------------------------- job runs


def export_run(
    run_dir: str | os.PathLike[str],
    *,
    model: str | None = None,
    trial: int | None = None,
    output: str | os.PathLike[str] | None = None,
    serving: bool = False,
    artifacts: str | os.PathLike[str] | None = None,
    storage: str | None = None,
    plot: bool | None = None,
) -> ExportedModel:
    """Exports a point of a job's results folder (what `keras-smelu export` runs).

    The folder's `results.json` holds the job (written by `tune_job`), so its data and models
    are built again; a folder written by a Python `tune()` call with builders cannot be: use
    `TuningResult.export(builder, data, ...)` there.

    Args:
        run_dir: The results folder.
        model: The model's name; may be left out when the job tuned one model.
        trial: A trial number (0: ReLU); default: the recommendation.
        output: The `.keras` path; default `<run_dir>/models/<model>.keras`.
        serving: Also write `model.export` beside it (serves without the plug-in).
        artifacts: An Optuna file-system artifact store folder: upload the model and its
            evidence to the study, for other machines (`fetch_model`).
        storage: The study's storage; default the one the run recorded.
        plot: As in `export_trial`.

    Returns:
        An `ExportedModel`.

    Raises:
        ValueError: an unknown model, a folder without its job, another experiment's data.
    """
    from keras_smelu.tuning._fingerprint import job_fingerprint
    from keras_smelu.tuning._job import job_from_dict
    from keras_smelu.tuning._tuner import job_builders, job_dataset

    run_dir = Path(run_dir)
    report = TuningReport.load(run_dir)
    name = _model_name(report, model, run_dir)
    job_data = report.metadata.get("job")
    if not isinstance(job_data, Mapping):
        raise ValueError(
            f"{run_dir / RESULTS_JSON} holds no job (a Python `tune()` run): its builders and "
            "data are not in the file; expected a job's results folder; use "
            "TuningResult.export(builder, data, ...) from Python instead"
        )
    job = job_from_dict(job_data, source=str(run_dir / RESULTS_JSON))
    dataset = job_dataset(job)
    builder = job_builders(job, dataset)[name]
    storage = storage or report.metadata.get("storage")
    output = Path(output) if output is not None else run_dir / "models" / f"{name}.keras"
    return export_trial(
        report.results[name],
        builder,
        dataset,
        output,
        settings=report.metadata.get("settings") or job.trial_settings(),
        trial=trial,
        fingerprint=job_fingerprint(job),
        storage=storage if report.metadata.get("backend", "optuna") == "optuna" else None,
        study={"job": job.name, "backend": report.metadata.get("backend"), "run": str(run_dir)},
        serving=serving,
        artifacts=artifacts,
        plot=plot,
    )


def _model_name(report: TuningReport, model: str | None, run_dir: Path) -> str:
    names = sorted(report.results)
    if model is None:
        if len(names) != 1:
            raise ValueError(
                f"Argument `model` is needed: {run_dir} holds several models; expected one of "
                f"{names}; received: None"
            )
        return names[0]
    if model not in report.results:
        raise ValueError(
            f"Argument `model` names no model of {run_dir}; expected one of {names}; "
            f"received: {model!r}"
        )
    return model


# --------------------------------------------------------------------------- shared storage


def _upload(model_path, evidence, storage, study_name, number, artifacts) -> dict[str, str]:
    """Uploads the model and its evidence as artifacts of the study.

    Optuna refuses new attributes on a finished trial, so they are the study's artifacts, and
    the study's user attribute `keras_smelu_export/<trial number>` names them.
    """
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    from keras_smelu.tuning._optuna_backend import make_storage

    if not storage or not study_name:
        raise ValueError(
            "Argument `artifacts` needs the study's Optuna storage; expected a storage URL; "
            f"received: storage={storage!r}, study {study_name!r}"
        )
    storage_obj = make_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=storage_obj)
    store_dir = Path(artifacts)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(store_dir))
    ids = {
        "model": upload_artifact(
            artifact_store=store, file_path=str(model_path), study_or_trial=study
        )
    }
    sidecar = write_evidence(model_path, {**evidence, "artifacts": dict(ids)})
    ids["evidence"] = upload_artifact(
        artifact_store=store, file_path=str(sidecar), study_or_trial=study
    )
    study.set_user_attr(
        f"{EXPORT_ATTR_PREFIX}{number}",
        {**ids, "file": Path(model_path).name, "exported": evidence["exported"]},
    )
    return ids


def fetch_model(
    storage: str,
    study_name: str,
    artifacts: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    trial: int | None = None,
) -> Path:
    """Downloads an exported model and its evidence from a study's artifacts.

    Args:
        storage: The Optuna storage URL (e.g. `postgresql://...`).
        study_name: The study (`<job>/<model>`).
        artifacts: The file-system artifact store folder the export used.
        output: The `.keras` path to write (its evidence lands beside it).
        trial: The exported trial's number; default: the only (or latest) export.

    Returns:
        The `.keras` path.

    Raises:
        ValueError: the study has no export (of that trial).
    """
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, download_artifact

    from keras_smelu.tuning._optuna_backend import make_storage

    study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    exports = {
        int(key[len(EXPORT_ATTR_PREFIX) :]): value
        for key, value in study.user_attrs.items()
        if key.startswith(EXPORT_ATTR_PREFIX)
    }
    if trial is None and exports:
        trial = max(exports, key=lambda k: exports[k].get("exported", ""))
    if trial not in exports:
        raise ValueError(
            f"Argument `trial` names no exported trial of study {study_name!r}; expected one "
            f"of {sorted(exports)}; received: {trial!r}"
        )
    store = FileSystemArtifactStore(str(artifacts))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    download_artifact(
        artifact_store=store, artifact_id=exports[trial]["model"], file_path=str(output)
    )
    download_artifact(
        artifact_store=store,
        artifact_id=exports[trial]["evidence"],
        file_path=str(evidence_path_of(output)),
    )
    return output
