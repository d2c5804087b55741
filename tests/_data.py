"""Where the tests find the real data sets: `KERAS_SMELU_DATA`, else `../shared/datasets`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keras_smelu.datasets import DATA_ENV_VAR

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def data_root() -> Path | None:
    """The folder holding the data set folders, or None when there is none."""
    env = os.environ.get(DATA_ENV_VAR)
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def real_data(folder: str) -> Path:
    """The path of one real data set folder; skips the test, saying why, when it is absent."""
    root = data_root()
    if root is None or not (root / folder).is_dir():
        pytest.skip(f"real data {folder}/ not found (set {DATA_ENV_VAR} or add ../shared/datasets)")
    return root / folder
