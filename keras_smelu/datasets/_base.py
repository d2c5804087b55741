"""The dataset container and the helpers every loader shares.

Everything here is plain NumPy: reading text files, building vocabularies from the training split,
seeded splits, and the data-location rule (explicit path, else `KERAS_SMELU_DATA`, else a clear
`FileNotFoundError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA_ENV_VAR = "KERAS_SMELU_DATA"
TASKS = ("binary", "regression")


@dataclass(frozen=True, eq=False)
class RecDataset:
    """A recommender / CTR dataset split into train and test, ready for an embedding model.

    Every feature is a NumPy array with one row per example. Categorical features are `int32`
    ids in `[0, categorical[name])`, where id 0 is reserved for missing and out-of-vocabulary
    values (the vocabulary is built from the training split only). Numeric features are
    `float32`, already on a sane scale. Features are 1-D (`(n,)`) except "bags": a multi-valued
    categorical feature of shape `(n, k)` (padded with id 0) whose per-id weights are the numeric
    feature `bags[name]` of the same shape; a model pools it as `sum_j w_j * embedding(id_j)`.

    Args:
        name: the dataset's name, e.g. `"movielens-100k"`.
        x_train: feature name -> training array.
        y_train: training labels, `float32` of shape `(n_train,)`.
        x_test: feature name -> test array (same keys as `x_train`).
        y_test: test labels, `float32` of shape `(n_test,)`.
        categorical: categorical feature name -> vocabulary size (including id 0).
        numeric: names of the numeric features.
        task: `"binary"` (labels in {0, 1}) or `"regression"`.
        bags: multi-valued categorical feature -> the numeric feature holding its weights.
        info: provenance (source files, seed, split, transforms) for reproducibility records.

    Example:

    >>> from keras_smelu.datasets import make_synthetic_click_log
    >>> ds = make_synthetic_click_log(n_train=1000, n_test=200)
    >>> ds.n_train, ds.n_test, ds.task
    (1000, 200, 'binary')
    >>> x, y = ds.train
    """

    name: str
    x_train: dict[str, np.ndarray]
    y_train: np.ndarray
    x_test: dict[str, np.ndarray]
    y_test: np.ndarray
    categorical: dict[str, int]
    numeric: tuple[str, ...]
    task: str
    bags: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: task={self.task!r}")
        names = set(self.categorical) | set(self.numeric)
        if len(names) != len(self.categorical) + len(self.numeric):
            raise ValueError(
                "A feature cannot be both categorical and numeric. Received: "
                f"categorical={sorted(self.categorical)}, numeric={list(self.numeric)}"
            )
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if set(x) != names:
                raise ValueError(
                    f"x_{split} keys must be the declared features {sorted(names)}. "
                    f"Received: {sorted(x)}"
                )
            if y.dtype != np.float32 or y.ndim != 1:
                raise ValueError(
                    f"y_{split} must be float32 of shape (n,). "
                    f"Received: dtype={y.dtype}, shape={y.shape}"
                )
            for key, array in x.items():
                if len(array) != len(y):
                    raise ValueError(
                        f"x_{split}[{key!r}] has {len(array)} rows, y_{split} has {len(y)}."
                    )
                expected = np.int32 if key in self.categorical else np.float32
                if array.dtype != expected:
                    raise ValueError(
                        f"x_{split}[{key!r}] must be {np.dtype(expected)}. "
                        f"Received: dtype={array.dtype}"
                    )
        for bag, weights in self.bags.items():
            if bag not in self.categorical or weights not in self.numeric:
                raise ValueError(
                    "`bags` must map a categorical feature to a numeric one. "
                    f"Received: bags={self.bags}"
                )

    def __repr__(self) -> str:
        return (
            f"RecDataset(name={self.name!r}, task={self.task!r}, n_train={self.n_train}, "
            f"n_test={self.n_test}, categorical={len(self.categorical)}, "
            f"numeric={len(self.numeric)})"
        )

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.y_test)

    @property
    def features(self) -> tuple[str, ...]:
        """All feature names: the categorical ones, then the numeric ones."""
        return (*self.categorical, *self.numeric)

    @property
    def train(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The training split as an `(x, y)` tuple, ready for `model.fit(*ds.train)`."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The test split as an `(x, y)` tuple."""
        return self.x_test, self.y_test

    @property
    def base_rate(self) -> float:
        """Mean training label: the click rate for a binary task."""
        return float(self.y_train.mean()) if self.n_train else float("nan")

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> RecDataset:
        """Returns the first `n_train` training and `n_test` test rows (splits are pre-shuffled).

        The vocabulary sizes are kept, so a model built for the full dataset accepts the subset.

        Args:
            n_train: number of training rows to keep (`None`: all).
            n_test: number of test rows to keep (`None`: all).

        Returns:
            A new `RecDataset`.
        """
        tr = slice(None) if n_train is None else slice(0, int(n_train))
        te = slice(None) if n_test is None else slice(0, int(n_test))
        return RecDataset(
            name=self.name,
            x_train={k: v[tr] for k, v in self.x_train.items()},
            y_train=self.y_train[tr],
            x_test={k: v[te] for k, v in self.x_test.items()},
            y_test=self.y_test[te],
            categorical=dict(self.categorical),
            numeric=tuple(self.numeric),
            task=self.task,
            bags=dict(self.bags),
            info=dict(self.info),
        )


# --- locating files ---


def resolve_dataset_dir(
    path: str | os.PathLike | None,
    *,
    title: str,
    folders: Sequence[str],
    required: Sequence[str],
) -> Path:
    """Finds a dataset folder: `path`, else a folder under `$KERAS_SMELU_DATA`, else raises."""
    hint = (
        f"{title} needs the files {', '.join(required)} in one folder. Pass `path=` to that "
        f"folder, or set the environment variable {DATA_ENV_VAR} to a directory that contains "
        f"it as {' or '.join(f + '/' for f in folders)}."
    )
    if path is not None:
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"No such directory: {str(directory)!r}. {hint}")
        missing = [name for name in required if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{str(directory)!r} lacks {', '.join(missing)}. {hint}")
        return directory
    root = os.environ.get(DATA_ENV_VAR)
    if not root:
        raise FileNotFoundError(f"{title} not found: {DATA_ENV_VAR} is not set. {hint}")
    for folder in folders:
        directory = Path(root) / folder
        if all((directory / name).is_file() for name in required):
            return directory
    raise FileNotFoundError(
        f"{title} not found under {DATA_ENV_VAR}={root!r} (looked in {', '.join(folders)}). {hint}"
    )


DATA_SUFFIXES = (".csv", ".tsv", ".txt")


def resolve_data_files(
    path: str | os.PathLike | None, *, title: str, folders: Sequence[str], layout: str
) -> list[Path]:
    """The data files of a file-or-folder dataset (Criteo, Avazu), in a fixed order.

    A file is used as is; a folder contributes its `train`, `dev`/`valid`, `test` files (any of
    `.csv`, `.tsv`, `.txt`) in that order, then its other data files sorted by name.
    """
    hint = (
        f"{title}: pass `path=` to a data file or to a folder of them ({layout}), or set "
        f"{DATA_ENV_VAR} to a directory containing {' or '.join(f + '/' for f in folders)}."
    )
    if path is not None:
        candidates = [Path(path)]
        if not candidates[0].exists():
            raise FileNotFoundError(f"No such file or directory: {str(path)!r}. {hint}")
    else:
        root = os.environ.get(DATA_ENV_VAR)
        if not root:
            raise FileNotFoundError(f"{title} not found: {DATA_ENV_VAR} is not set. {hint}")
        candidates = [Path(root) / folder for folder in folders]
    for candidate in candidates:
        if candidate.is_file():
            return [candidate]
        if candidate.is_dir():
            files = [
                f for f in candidate.iterdir() if f.is_file() and f.suffix.lower() in DATA_SUFFIXES
            ]
            order = {"train": 0, "dev": 1, "valid": 1, "validation": 1, "test": 2}
            files.sort(key=lambda f: (order.get(f.stem.lower(), 3), f.name))
            if files:
                return files
    where = str(path) if path is not None else f"{DATA_ENV_VAR}={os.environ[DATA_ENV_VAR]!r}"
    raise FileNotFoundError(f"{title}: no data files found at {where}. {hint}")


# --- parsing ---


def read_rows(
    path: Path,
    sep: str,
    n_fields: int | None,
    *,
    encoding: str = "utf-8",
) -> tuple[list[list[str]], list[int]]:
    """Reads a delimited text file into rows of strings, with 1-based line numbers.

    Blank lines are skipped. A row with the wrong number of fields raises `ValueError` naming the
    file and the line.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}:{line}: expected {encoding.upper()} text. Received the bytes "
            f"{data[max(e.start - 10, 0) : e.end + 10]!r}."
        ) from None
    lines = text.splitlines()
    rows: list[list[str]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if n_fields is not None and len(fields) != n_fields:
            raise ValueError(
                f"{path}:{number}: expected {n_fields} {sep!r}-separated fields, "
                f"got {len(fields)}: {line[:80]!r}"
            )
        rows.append(fields)
        numbers.append(number)
    return rows, numbers


def parse_ints(
    values: Sequence[str],
    path: Path,
    lines: Sequence[int],
    column: str,
    *,
    allow_missing: bool = False,
) -> np.ndarray:
    """Parses a column of strings as int64.

    Empty strings are missing when `allow_missing` (parsed as 0), otherwise an error. A non-integer
    raises `ValueError` naming the file, the 1-based line and the column.
    """
    raw = np.asarray(values, dtype=str)
    if allow_missing:
        raw = np.where(raw == "", "0", raw)
    try:
        return raw.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    for value, line in zip(raw, lines, strict=True):
        try:
            int(value)
        except ValueError:
            raise ValueError(
                f"{path}:{line}: column {column!r} must be an integer. Received: {value!r}"
            ) from None
    raise ValueError(f"{path}: column {column!r} has an integer out of the int64 range.")


# --- vocabularies and splits ---


def build_vocabulary(train_values: np.ndarray, min_count: int = 1) -> np.ndarray:
    """The in-vocabulary values of a training column, most frequent first (ties by value).

    Values seen fewer than `min_count` times, and the empty string (missing), are left out: they
    map to id 0.
    """
    values, counts = np.unique(train_values, return_counts=True)
    keep = counts >= min_count
    if values.dtype.kind == "U":
        keep &= values != ""  # an empty string is a missing value
    values, counts = values[keep], counts[keep]
    order = np.lexsort((values, -counts))  # by count descending, then by value
    return values[order]


def encode(values: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Maps values to ids `1..len(vocabulary)` by position in `vocabulary`; unknown -> 0."""
    if len(vocabulary) == 0:
        return np.zeros(len(values), dtype=np.int32)
    order = np.argsort(vocabulary, kind="stable")
    sorted_vocab = vocabulary[order]
    pos = np.searchsorted(sorted_vocab, values)
    pos = np.minimum(pos, len(sorted_vocab) - 1)
    found = sorted_vocab[pos] == values
    return np.where(found, order[pos] + 1, 0).astype(np.int32)


def encode_split(
    train_values: np.ndarray, test_values: np.ndarray, min_count: int = 1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Builds the vocabulary on train, encodes both splits; returns `(train, test, size)`."""
    vocabulary = build_vocabulary(train_values, min_count)
    return encode(train_values, vocabulary), encode(test_values, vocabulary), len(vocabulary) + 1


def check_fraction(test_fraction: float) -> float:
    """Validates a test fraction in the open interval (0, 1)."""
    fraction = float(test_fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"`test_fraction` must be strictly between 0 and 1. Received: {test_fraction!r}"
        )
    return fraction


def n_test_rows(n: int, test_fraction: float) -> int:
    """Test rows of a split of `n` rows: `round(n * test_fraction)`, clipped to [1, n - 1]."""
    fraction = check_fraction(test_fraction)
    if n < 2:
        raise ValueError(f"Need at least 2 rows to split into train and test. Received: {n=}")
    return min(max(int(round(n * fraction)), 1), n - 1)


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `range(n)` into (train, test) index arrays, each shuffled."""
    n_test = n_test_rows(n, test_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


SPLITS = ("random", "temporal")


def check_split(split: str) -> str:
    """Validates a split name: `"random"` or `"temporal"`."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    return split


def temporal_indices(test: np.ndarray, title: str, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """`(train, test)` row indices, in file order, from a boolean test mask; both non-empty."""
    for name, rows in (("test", test), ("train", ~test)):
        if not rows.any():
            raise ValueError(
                f"{title}: the temporal split ({rule}) leaves the {name} split empty. "
                f"Expected rows on both sides. Received {len(test)} rows."
            )
    return np.flatnonzero(~test), np.flatnonzero(test)


def latest_rows(keys: np.ndarray, test_fraction: float) -> np.ndarray:
    """Test mask of the rows whose key is at least the `n_test_rows`-th largest (ties included)."""
    k = n_test_rows(len(keys), test_fraction)
    return keys >= np.partition(keys, len(keys) - k)[len(keys) - k]


def split_dataset(
    name: str,
    y: np.ndarray,
    categorical: Mapping[str, np.ndarray],
    numeric: Mapping[str, np.ndarray],
    split: tuple[np.ndarray, np.ndarray],
    *,
    task: str,
    min_count: int,
    info: Mapping[str, object],
) -> RecDataset:
    """Splits pooled rows into a `RecDataset` by `split = (train_idx, test_idx)`.

    Categorical columns (raw values) are encoded with vocabularies of the training split;
    numeric columns are split as they are, as float32.
    """
    train_idx, test_idx = split
    x_train: dict[str, np.ndarray] = {}
    x_test: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    for column_name, column in categorical.items():
        x_train[column_name], x_test[column_name], sizes[column_name] = encode_split(
            column[train_idx], column[test_idx], min_count
        )
    for column_name, column in numeric.items():
        column = np.asarray(column, dtype=np.float32)
        x_train[column_name], x_test[column_name] = column[train_idx], column[test_idx]
    return RecDataset(
        name=name,
        x_train=x_train,
        y_train=y[train_idx],
        x_test=x_test,
        y_test=y[test_idx],
        categorical=sizes,
        numeric=tuple(numeric),
        task=task,
        info={"min_count": min_count, **info},
    )


def parse_binary_labels(column, file: Path, lines, name: str) -> np.ndarray:
    """Parses a 0/1 label column as float32; other values raise naming the file and line."""
    label = parse_ints(column, file, lines, name)
    bad = np.flatnonzero((label != 0) & (label != 1))
    if bad.size:
        raise ValueError(
            f"{file}:{lines[bad[0]]}: {name} must be 0 or 1. Received: {label[bad[0]]}"
        )
    return label.astype(np.float32)


def check_min_count(min_count: int) -> int:
    """Validates `min_count >= 1`."""
    if int(min_count) != min_count or min_count < 1:
        raise ValueError(f"`min_count` must be an integer >= 1. Received: {min_count!r}")
    return int(min_count)


def slug(text: str) -> str:
    """A lower-case identifier made of letters, digits and underscores."""
    out = "".join(c if c.isalnum() else "_" for c in text.lower().replace("'", ""))
    return "_".join(part for part in out.split("_") if part)


def split_pooled_files(
    name: str,
    title: str,
    files: Sequence[Path],
    labels: Sequence[np.ndarray],
    categorical: Mapping[str, Sequence[np.ndarray]],
    numeric: Mapping[str, Sequence[np.ndarray]],
    *,
    seed: int,
    test_fraction: float,
    min_count: int,
    temporal: tuple[Callable[[int], np.ndarray], str] | None = None,
    **info: object,
) -> RecDataset:
    """A binary dataset from the rows of several files pooled, then split.

    `labels` and every feature hold one part per file read, in the order of `files`; `info`
    adds provenance entries (e.g. a transform) to the files, seed and split. The split is random
    unless `temporal = (test_mask_of, rule)` is given: `test_mask_of(n)` is the boolean test mask
    of the `n` pooled rows, and both splits keep the rows' file order.
    """
    if not labels:
        raise ValueError(f"{title}: the files {[str(f) for f in files]} hold no rows.")
    y = np.concatenate(labels)
    if temporal is None:
        split = split_indices(len(y), test_fraction, seed)
        info = {"seed": seed, "test_fraction": test_fraction, **info}
        info["split"] = "random over pooled rows"
    else:
        test_mask_of, rule = temporal
        split = temporal_indices(test_mask_of(len(y)), title, rule)
        info = {**info, "split": f"temporal: {rule}"}
    return split_dataset(
        name,
        y,
        {key: np.concatenate(parts) for key, parts in categorical.items()},
        {key: np.concatenate(parts) for key, parts in numeric.items()},
        split,
        task="binary",
        min_count=min_count,
        info={"files": file_info(files), **info},
    )


def file_info(paths: Iterable[Path]) -> list[str]:
    """Absolute file names, for `RecDataset.info`."""
    return [str(Path(p).resolve()) for p in paths]
