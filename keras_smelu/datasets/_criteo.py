"""Criteo Display Advertising Challenge (Kaggle 2014) click logs."""

from __future__ import annotations

import os

import numpy as np

from keras_smelu.datasets._base import (
    RecDataset,
    check_min_count,
    check_split,
    n_test_rows,
    parse_binary_labels,
    parse_ints,
    read_rows,
    resolve_data_files,
    split_pooled_files,
)

NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))
N_FIELDS = 1 + len(NUMERIC) + len(CATEGORICAL)
# Folders looked up under $KERAS_SMELU_DATA.
FOLDERS = ("criteo-dac-8k", "criteo")


def load_criteo(
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    min_count: int = 2,
    split: str = "random",
) -> RecDataset:
    """Loads Criteo DAC click logs as a `RecDataset` with a seeded random or a temporal split.

    Each line has 40 TAB-separated fields, no header: `label I1..I13 C1..C26` (label 0/1;
    I-values integer counts, possibly negative; C-values hashed categories; empty = missing).
    All rows of the files found are pooled, then split at random (the upstream train/dev/test
    assignment of the shared sample is ignored: it is too small to keep apart), or, with
    `split="temporal"`, the last 1/7 of the pooled rows is the test split: the Kaggle
    `train.txt` holds 7 days in time order, so that is its last day (both splits keep file
    order; `seed` and `test_fraction` are then unused). For files too large for memory, use
    `keras_smelu.datasets.load("criteo", path, streaming=True)`.

    Features:

    - numeric `I1..I13`: `log1p(max(x, 0))`, so negative values (e.g. `I2 = -1`) and missing
      values both become 0;
    - categorical `C1..C26`: vocabulary from the training split; values seen fewer than
      `min_count` times there, missing values and unseen test values map to id 0.

    Args:
        path: a data file, or a folder whose `train`, `dev`, `test` (`.csv`, `.tsv` or `.txt`)
            files are pooled; default: `criteo-dac-8k/` or `criteo/` under `$KERAS_SMELU_DATA`.
        seed: seed of the random split.
        test_fraction: share of the rows held out for test.
        min_count: minimum training count for a category to get its own id.
        split: `"random"` or `"temporal"` (the last day, as above).

    Returns:
        A binary `RecDataset` named `"criteo"`.

    Example:

    >>> ds = load_criteo("shared/datasets/criteo-dac-8k")  # doctest: +SKIP
    >>> ds.n_train + ds.n_test  # doctest: +SKIP
    8000
    """
    min_count = check_min_count(min_count)
    check_split(split)
    files = resolve_data_files(
        path,
        title="Criteo DAC",
        folders=FOLDERS,
        layout="TAB-separated `label I1..I13 C1..C26`, e.g. train.csv, dev.csv, test.csv",
    )
    labels, numeric, categorical = [], {n: [] for n in NUMERIC}, {c: [] for c in CATEGORICAL}
    for file in files:
        rows, lines = read_rows(file, "\t", N_FIELDS)
        if not rows:
            continue
        columns = list(zip(*rows, strict=True))
        labels.append(parse_binary_labels(columns[0], file, lines, "label"))
        for j, name in enumerate(NUMERIC, start=1):
            counts = parse_ints(columns[j], file, lines, name, allow_missing=True)
            numeric[name].append(np.log1p(np.maximum(counts, 0)))
        for j, name in enumerate(CATEGORICAL, start=1 + len(NUMERIC)):
            categorical[name].append(np.asarray(columns[j], dtype=str))
    return split_pooled_files(
        "criteo",
        "Criteo DAC",
        files,
        labels,
        categorical,
        numeric,
        seed=seed,
        test_fraction=test_fraction,
        min_count=min_count,
        temporal=None if split == "random" else (_last_day, "the last 1/7 of the rows"),
        numeric_transform="log1p(max(x, 0)), missing -> 0",
    )


def _last_day(n: int) -> np.ndarray:
    """Test mask of the last of 7 days of `n` rows in time order."""
    return np.arange(n) >= n - n_test_rows(n, 1 / 7)
