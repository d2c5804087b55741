"""The tuning backends and their samplers, by name: a leaf module every other one may import.

A backend module (`module`) provides `optimize(model_name, builder, train_data, eval_data,
space, settings, *, trials, storage, study_name, sampler, seed, timeout, progress,
fingerprint, on_mismatch)` and `load_result(storage, study_name, model_name, settings,
space)`; `tune` calls whichever the job names, so no module imports the one that calls it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Backend:
    """One tuning backend.

    Attributes:
        name: Its name in `tune(backend=...)` and `[job] backend`.
        samplers: The sampler names it accepts; the first is the default.
        module: The module implementing it (imported on use: it needs an optional package).
        storage_is_folder: Whether its storage is a folder (keras-tuner) rather than a URL.
    """

    name: str
    samplers: tuple[str, ...]
    module: str
    storage_is_folder: bool = False

    @property
    def default_sampler(self) -> str:
        return self.samplers[0]

    def load(self) -> ModuleType:
        """The implementing module."""
        return importlib.import_module(self.module)

    def study_id(self, study_name: str, model_name: str) -> str:
        """Where a model's trials live: its Optuna study, or its keras-tuner project folder
        (the storage folder already belongs to the job)."""
        return model_name if self.storage_is_folder else f"{study_name}/{model_name}"


BACKENDS: dict[str, Backend] = {
    "optuna": Backend(
        "optuna", ("tpe", "nsga2", "random", "grid"), "keras_smelu.tuning._optuna_backend"
    ),
    "keras_tuner": Backend(
        "keras_tuner",
        ("random", "grid"),
        "keras_smelu.tuning._keras_tuner_backend",
        storage_is_folder=True,
    ),
}
BACKEND_NAMES = tuple(BACKENDS)
SAMPLER_NAMES = tuple(dict.fromkeys(s for b in BACKENDS.values() for s in b.samplers))
"""Every sampler name of any backend."""
MAX_GRID_TRIALS = 10_000
"""The most trials a "grid" sampler lays out (each trial trains replica pairs: more is a typo)."""


def check_grid_trials(trials: int) -> None:
    """Refuses a grid of more than `MAX_GRID_TRIALS` points before anything is laid out."""
    if trials > MAX_GRID_TRIALS:
        raise ValueError(
            f"Argument `trials` of the grid sampler is too large: expected at most "
            f"{MAX_GRID_TRIALS} grid points; received: trials={trials}"
        )
