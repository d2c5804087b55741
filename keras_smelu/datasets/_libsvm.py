"""libSVM / libFM / libFFM sparse text files (`label idx:val idx:val ...`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from keras_smelu.datasets._base import (
    TASKS,
    RecDataset,
    build_vocabulary,
    check_min_count,
    encode,
    file_info,
    split_indices,
)


def load_libsvm(
    path: str | os.PathLike | None,
    *,
    task: str = "binary",
    test_path: str | os.PathLike | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_features: int | None = None,
    min_count: int = 1,
) -> RecDataset:
    """Loads a libSVM-style sparse text file as a `RecDataset` with one "bag" feature.

    Each non-blank line is `label tok tok ...`, whitespace-separated, where a token is `idx:val`
    (libSVM, libFM) or `field:idx:val` (libFFM; the pair `field:idx` is the feature). Text after
    `#` is a comment. `idx` and `field` must be integers, labels and `val` finite numbers (`nan`,
    `inf` and overflowing values such as `1e400` raise naming `file:line`).

    The result has two features of shape `(n, k)`, `k = max_features` (default: the largest
    number of tokens on a line): `ids` (categorical, the row's active features, padded with id 0)
    and `values` (numeric, their values, padded with 0). `bags == {"ids": "values"}`, so an
    embedding model pools a row as `sum_j values[j] * embedding(ids[j])`, which is exactly the
    libFM input layer. Feature ids are built from the training split (most frequent first);
    features seen fewer than `min_count` times there, and unseen test features, get id 0 (their
    value is kept). Values are used as they are: scale them beforehand if needed. A line with more
    than `k` tokens keeps its first `k`.

    Args:
        path: the (training) file.
        task: `"binary"` (label > 0 is positive, so both 0/1 and -1/+1 labels work) or
            `"regression"` (the label as a float).
        test_path: a separate test file; when given, no random split is made.
        test_fraction: share of the rows held out for test when `test_path` is `None`.
        seed: seed of the random split.
        max_features: number of (id, value) slots per row.
        min_count: minimum training count for a feature to get its own id.

    Returns:
        A `RecDataset` named after the file.

    Example:

    >>> ds = load_libsvm("train.libsvm", test_path="test.libsvm")  # doctest: +SKIP
    >>> ds.x_train["ids"].shape == ds.x_train["values"].shape  # doctest: +SKIP
    True
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
    if max_features is not None and (int(max_features) != max_features or max_features < 1):
        raise ValueError(f"`max_features` must be an integer >= 1. Received: {max_features!r}")
    min_count = check_min_count(min_count)
    if path is None:
        raise FileNotFoundError(
            "libSVM data has no default location: pass `path=` to a libSVM/libFM text file "
            "(KERAS_SMELU_DATA is not used for it)."
        )
    train_file = _existing(path)
    labels, keys, values = _read(train_file, task)
    if test_path is None:
        train_idx, test_idx = split_indices(len(labels), test_fraction, seed)
        files = [train_file]
    else:
        test_file = _existing(test_path)
        test_labels, test_keys, test_values = _read(test_file, task)
        train_idx = np.arange(len(labels))
        test_idx = np.arange(len(labels), len(labels) + len(test_labels))
        labels = np.concatenate([labels, test_labels])
        keys, values = keys + test_keys, values + test_values
        files = [train_file, test_file]
    width = max_features or max((len(k) for k in keys), default=1) or 1

    train_keys = [k for i in train_idx for k in keys[i]]
    vocabulary = build_vocabulary(np.asarray(train_keys, dtype=str), min_count)
    ids = np.zeros((len(labels), width), dtype=np.int32)
    vals = np.zeros((len(labels), width), dtype=np.float32)
    flat = np.asarray([k for row in keys for k in row[:width]], dtype=str)
    flat_ids = encode(flat, vocabulary)
    start = 0
    for i, (row_keys, row_values) in enumerate(zip(keys, values, strict=True)):
        m = min(len(row_keys), width)
        ids[i, :m] = flat_ids[start : start + m]
        vals[i, :m] = row_values[:m]
        start += m
    return RecDataset(
        name=train_file.stem,
        x_train={"ids": ids[train_idx], "values": vals[train_idx]},
        y_train=labels[train_idx],
        x_test={"ids": ids[test_idx], "values": vals[test_idx]},
        y_test=labels[test_idx],
        categorical={"ids": len(vocabulary) + 1},
        numeric=("values",),
        task=task,
        bags={"ids": "values"},
        info={
            "files": file_info(files),
            "seed": seed,
            "test_fraction": None if test_path is not None else test_fraction,
            "min_count": min_count,
            "max_features": width,
            "split": "given test file" if test_path is not None else "random over rows",
        },
    )


def _existing(path: str | os.PathLike) -> Path:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"No such libSVM file: {str(file)!r}.")
    return file


def _read(file: Path, task: str) -> tuple[np.ndarray, list[list[str]], list[list[float]]]:
    labels: list[float] = []
    keys: list[list[str]] = []
    values: list[list[float]] = []
    with open(file, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{file}:{number}: expected UTF-8 text. Received the bytes "
                    f"{raw[max(e.start - 10, 0) : e.end + 10]!r}."
                ) from None
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            label = _finite(tokens[0], file, number, "the label")
            row_keys, row_values = [], []
            for token in tokens[1:]:
                parts = token.split(":")
                try:
                    if len(parts) not in (2, 3):
                        raise ValueError
                    key = ":".join(str(int(p)) for p in parts[:-1])
                except ValueError:
                    raise ValueError(
                        f"{file}:{number}: expected `idx:val` or `field:idx:val` with integer "
                        f"idx and field. Received: {token!r}"
                    ) from None
                row_keys.append(key)
                row_values.append(_finite(parts[-1], file, number, "a value"))
            labels.append(float(label > 0) if task == "binary" else label)
            keys.append(row_keys)
            values.append(row_values)
    return np.asarray(labels, dtype=np.float32), keys, values


def _finite(text: str, file: Path, number: int, what: str) -> float:
    """`float(text)`; `nan`, `inf`, overflow (`1e400`) and non-numbers raise naming `file:line`."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise ValueError(f"{file}:{number}: {what} must be a finite number. Received: {text!r}")
    return value
