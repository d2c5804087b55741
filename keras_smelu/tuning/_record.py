"""The record of one tuning trial, and its codecs: strict JSON and CSV cells.

JSON is strict: non-finite floats are written as `{"$float": "nan"}` (or `"inf"`, `"-inf"`).
CSV cells hold scalars as text (floats with `repr`, so they read back exactly) and the
structured columns (`params`, `seeds`, `metrics`, `history`, ...) as JSON; an empty cell is
`None`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata as _metadata
from typing import Any

import numpy as np

from keras_smelu.tuning._space import REFERENCE_FAMILY

TRIAL_STATES = ("complete", "failed", "pruned")


def encode(obj: Any) -> Any:
    """Plain data with non-finite floats tagged, so that `json.dumps(allow_nan=False)` works."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"$float": repr(obj)}
    if isinstance(obj, Mapping):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return encode(obj.item())
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"$float"}:
            return float(obj["$float"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def canonical(obj: Any) -> Any:
    """`obj` with every NaN replaced by a marker, for NaN-aware equality."""
    if isinstance(obj, float) and math.isnan(obj):
        return ("nan",)
    if isinstance(obj, Mapping):
        return {k: canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def read_versioned_json(
    path: str | os.PathLike[str], format: str, version: int, what: str
) -> dict[str, Any]:
    """The decoded JSON object of `path`, checked to be `format` at `version`.

    Raises:
        ValueError: naming the file: not JSON, not `what` (another format), another version.
    """
    from pathlib import Path

    try:
        document = decode(json.loads(Path(path).read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != format:
        raise ValueError(f"{path}: not {what} (format {format!r})")
    if document.get("version") != version:
        raise ValueError(
            f"{path}: {what} version {document.get('version')!r}; this keras-smelu reads "
            f"version {version}"
        )
    return document


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(encode(obj), allow_nan=False, **kwargs)


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
        state: `"complete"`, `"failed"`, or `"pruned"` (stopped early: dominated beyond
            uncertainty at `epoch`).
        fail_reason: Why a failed trial failed (e.g. `"loss became NaN at epoch 2"`), or why a
            pruned one stopped.
        epoch: The reported epoch (1-based); for a pruned trial, the epoch it stopped after.
        seeds: The seed of each replica pair (the same in every trial of a job).
        duration_s: Wall time of the trial.
        metrics: Further measured values at the reported epoch (other PD kinds, shift-corrected
            PD, other validation metrics, ...).
        history: Per-epoch trajectories, e.g. `{"accuracy": [...], "pd": [...]}` (pair means).
        system: `system_info()` of the process that ran the trial.
        trial_id: The storage's trial id, when it has one.
        pairs: Per replica pair, as `ReplicaReport.pair_results` holds it: `{"pair", "seeds",
            "initial_weights", "replicas": [{"replica", "train_loss": [...], "metrics":
            [...]}, ...], "pd": [per-epoch dict of PD kinds]}`. What paired comparisons with
            ReLU are computed from; empty in records written before it was kept.
        ensemble: Models averaged per replica: 1 for a trial of one model; k > 1 for a
            reference point of k-ensembles of ReLU (numbered `-k`, trained with the ReLU
            reference's pair seeds). Records written before it existed read as 1.
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
    pairs: tuple[Mapping[str, Any], ...] = ()
    ensemble: int = 1

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
        set_(self, "pairs", tuple(dict(p) for p in self.pairs))
        if (
            isinstance(self.ensemble, bool)
            or not isinstance(self.ensemble, int)
            or (self.ensemble < 1)
        ):
            raise ValueError(
                f"ensemble must be an integer >= 1; got {self.ensemble!r} (trial {self.number})"
            )
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
        return canonical(self.to_dict()) == canonical(other.to_dict())

    @property
    def is_complete(self) -> bool:
        return self.state == "complete"

    @property
    def is_pruned(self) -> bool:
        return self.state == "pruned"

    @property
    def is_reference(self) -> bool:
        """The ReLU reference (a single model; ReLU ensembles are `is_ensemble`)."""
        return self.family == REFERENCE_FAMILY and self.ensemble == 1

    @property
    def is_ensemble(self) -> bool:
        """A reference point of k-ensembles (`ensemble > 1`): a comparison, never a candidate."""
        return self.ensemble > 1

    @property
    def cost(self) -> float:
        """Training and serving compute relative to one model: the models averaged per
        replica (an activation's own cost is taken as ReLU's)."""
        return float(self.ensemble)

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
        size = f" x{self.ensemble}" if self.is_ensemble else ""
        if self.family == REFERENCE_FAMILY:
            return f"{REFERENCE_FAMILY}{size}"
        extra = "".join(f", {k}={v:.3g}" for k, v in sorted(self.params.items()) if _is_num(v))
        return f"{self.family} w={self.width:.3g}{extra}{size}"

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
CSV_FIELDS = [
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
    ("pairs", "json"),
    ("ensemble", "int"),
]
CSV_RESULT_FIELDS = [
    "model",
    "study_name",
    "objective_names",
    "directions",
    "level",
    "max_accuracy_cost",
]


def csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "float":
        return repr(float(value))
    if kind == "json":
        return dumps(value, sort_keys=False, separators=(",", ":"))
    return str(value)


def csv_value(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "json":
        return decode(json.loads(text))
    return text
