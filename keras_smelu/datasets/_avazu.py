"""Avazu mobile-ad click logs (Kaggle 2014 "Click-Through Rate Prediction")."""

from __future__ import annotations

import os

import numpy as np

from keras_smelu.datasets._base import (
    RecDataset,
    check_min_count,
    check_split,
    parse_binary_labels,
    parse_ints,
    read_rows,
    resolve_data_files,
    split_pooled_files,
)

COLUMNS = (
    "id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category",
    "app_id", "app_domain", "app_category", "device_id", "device_ip", "device_model",
    "device_type", "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)  # fmt: skip
# Folders looked up under $KERAS_SMELU_DATA.
FOLDERS = ("avazu-9k", "avazu")


def load_avazu(
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    min_count: int = 2,
    split: str = "random",
) -> RecDataset:
    """Loads Avazu click logs as a `RecDataset` with a seeded random or a temporal split.

    Comma-separated, 24 fields `id,click,hour,C1,...,C21`. A file whose first line starts with
    `id,` has a header (its column order is used); a file without one (the shared sample's
    `dev.csv`, `test.csv`) takes the previous file's header, or the standard order above. Rows of
    all files found are pooled, then split at random, or, with `split="temporal"`, the rows of
    the latest date (`YYMMDD` of `hour`; the full file holds 10 days) are the test split (both
    splits keep file order; `seed` and `test_fraction` are then unused). For files too large for
    memory, use `keras_smelu.datasets.load("avazu", path, streaming=True)`.

    Features, all categorical: `hour_of_day` (the last two digits of `hour`, which is
    `YYMMDDHH`; the date part is dropped), and every other column except `id` and `click`, as
    strings. Vocabularies come from the training split; values seen fewer than `min_count` times
    there, missing values and unseen test values map to id 0.

    Args:
        path: a data file, or a folder whose `train`, `dev`, `test` (`.csv`, `.tsv` or `.txt`)
            files are pooled; default: `avazu-9k/` or `avazu/` under `$KERAS_SMELU_DATA`.
        seed: seed of the random split.
        test_fraction: share of the rows held out for test.
        min_count: minimum training count for a category to get its own id.
        split: `"random"` or `"temporal"` (the latest day, as above).

    Returns:
        A binary `RecDataset` named `"avazu"`.

    Example:

    >>> ds = load_avazu("shared/datasets/avazu-9k")  # doctest: +SKIP
    >>> ds.n_train + ds.n_test  # doctest: +SKIP
    8999
    """
    min_count = check_min_count(min_count)
    check_split(split)
    files = resolve_data_files(
        path,
        title="Avazu",
        folders=FOLDERS,
        layout="comma-separated `id,click,hour,C1,...,C21`, e.g. train.csv (with header)",
    )
    header = COLUMNS
    labels, dates, categorical = [], [], {name: [] for name in ("hour_of_day", *COLUMNS[3:])}
    for file in files:
        rows, lines = read_rows(file, ",", len(COLUMNS))
        if rows and rows[0][0].strip() == "id":
            header = tuple(field.strip() for field in rows[0])
            if sorted(header) != sorted(COLUMNS):
                raise ValueError(
                    f"{file}:{lines[0]}: the header must name the columns {list(COLUMNS)}. "
                    f"Received: {list(header)}"
                )
            rows, lines = rows[1:], lines[1:]
        if not rows:
            continue
        columns = dict(zip(header, zip(*rows, strict=True), strict=True))
        labels.append(parse_binary_labels(columns["click"], file, lines, "click"))
        hour = parse_ints(columns["hour"], file, lines, "hour")
        categorical["hour_of_day"].append(hour % 100)
        dates.append(hour // 100)
        for name in COLUMNS[3:]:
            categorical[name].append(np.asarray(columns[name], dtype=str))
    return split_pooled_files(
        "avazu",
        "Avazu",
        files,
        labels,
        categorical,
        {},
        seed=seed,
        test_fraction=test_fraction,
        min_count=min_count,
        temporal=None if split == "random" else (_latest_date(dates), "the latest day of `hour`"),
    )


def _latest_date(dates: list[np.ndarray]):
    """Test mask of the rows of the latest date (`YYMMDD`)."""

    def test_mask(n: int) -> np.ndarray:
        date = np.concatenate(dates)
        return date >= date.max()

    return test_mask
