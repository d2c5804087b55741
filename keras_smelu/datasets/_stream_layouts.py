"""File layouts the streaming loaders read: Criteo, Avazu, MovieLens releases, libSVM/libFM/libFFM.

A layout knows its files, its features and how to turn one block of text into a `Chunk`: the
labels, the raw categorical values (pyarrow arrays), the transformed numeric features and, for a
temporal split, a time key per row. Vocabularies, splits and batching live in `_streaming.py`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from keras_smelu.datasets import _avazu, _criteo, _movielens
from keras_smelu.datasets._base import DATA_ENV_VAR, resolve_data_files
from keras_smelu.datasets._parallel import ordered_map
from keras_smelu.datasets._readers import (
    Block,
    bad_row_error,
    column_numpy,
    decode_error,
    iter_blocks,
    pyarrow_modules,
    read_csv_block,
)


@dataclass
class Ragged:
    """Entries of varying count per row: `values[i]` is in row `rows[i]`, slot `slots[i]`."""

    values: object  # a pyarrow array (raw ids) or a NumPy array (weights)
    rows: np.ndarray
    slots: np.ndarray


@dataclass
class Chunk:
    """The rows of one block: labels, raw categorical columns, numeric features, time keys."""

    y: np.ndarray
    categorical: dict[str, object]
    numeric: dict[str, object]
    file: int
    key: np.ndarray | None = None
    coded: bool = False  # categorical columns as vocabulary codes (the chunk cache), not raw


@dataclass
class Layout:
    """What every layout declares; `chunks` yields the parsed blocks of all files in order."""

    name: str
    files: list[Path]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    task: str = "binary"
    bags: dict[str, str] = field(default_factory=dict)
    # "rows": the last `temporal_fraction` of rows; "files": the last file; "last_key": the rows
    # with the largest key (a day); "latest_keys": the `test_fraction` of rows with the latest keys.
    temporal: str = "rows"
    temporal_fraction: float | None = None
    info: dict[str, object] = field(default_factory=dict)
    # Categorical columns of 8-byte ids (hex hashes: Criteo's, most of Avazu's), parsed as 8-byte
    # binary while every value has 8 bytes (cheaper to parse and to hash); the first block with
    # another width turns this off, so the files cost one extra parse of a block at most.
    fixed_ids: tuple[str, ...] = ()

    def read_block(self, block: Block, *, types: dict[str, str], **options):
        """`read_csv_block` of one of this layout's blocks, its `"str"` columns among the fixed
        ids asked for as `"id8"` while every block had them."""
        pa, _, _ = pyarrow_modules()
        ids = [c for c in self.fixed_ids if types.get(c) == "str"]  # read once: shared
        types = {**types, **dict.fromkeys(ids, "id8")}
        table = read_csv_block(block, types=types, **options)
        if ids and pa.types.is_string(table.column(ids[0]).type):
            self.fixed_ids = ()
        return table

    def parsers(
        self, chunk_bytes: int, *, keys_only: bool = False, numeric: bool = True
    ) -> Iterator[Callable[[], Chunk | None]]:
        """One function per block of text, in file order, that parses it (on any thread) into a
        `Chunk`, or None for a block without rows. The blocks are read here, the parsing is
        left to the caller's threads. `keys_only`: time keys only; `numeric=False`: no numeric
        features."""
        raise NotImplementedError

    def chunks(
        self, chunk_bytes: int, *, workers: int = 1, keys_only: bool = False, numeric: bool = True
    ) -> Iterator[Chunk]:
        """The parsed blocks in file order, parsed on `workers` threads."""
        parsers = self.parsers(chunk_bytes, keys_only=keys_only, numeric=numeric)
        for chunk in ordered_map(_call, parsers, workers):
            if chunk is not None:
                yield chunk


def _call(parse: Callable[[], Chunk | None]) -> Chunk | None:
    return parse()


# --- Criteo ---

DAY_FILE = re.compile(r"^day_(\d+)(\.gz|\.txt|\.tsv|\.csv)?$")


@dataclass
class CriteoLayout(Layout):
    """TAB-separated `label I1..I13 C1..C26`: the Kaggle train.txt or the 1TB day_0..day_23."""

    def parsers(self, chunk_bytes, *, keys_only=False, numeric=True):
        for i, file in enumerate(self.files):
            for block in iter_blocks(file, chunk_bytes):
                yield partial(_parse_criteo, self, block, i, numeric)


def _parse_criteo(layout: Layout, block: Block, file_index: int, numeric: bool) -> Chunk:
    names = ("label", *_criteo.NUMERIC, *_criteo.CATEGORICAL)
    types = {"label": "int", **dict.fromkeys(_criteo.NUMERIC, "int")}  # all checked
    types.update(dict.fromkeys(_criteo.CATEGORICAL, "str"))
    table = layout.read_block(
        block, delimiter="\t", names=names, types=types, what="label I1..I13 C1..C26"
    )
    return Chunk(
        y=binary_labels(table, "label", block),
        categorical={c: table.column(c).combine_chunks() for c in _criteo.CATEGORICAL},
        numeric={
            n: np.log1p(np.maximum(column_numpy(table, n, block), 0)).astype(np.float32)
            for n in (_criteo.NUMERIC if numeric else ())
        },
        file=file_index,
    )


def criteo_layout(path: str | os.PathLike | None) -> CriteoLayout:
    """The Criteo files: day_N files (in day order) when a folder has them, else as in memory."""
    folder = Path(path) if path is not None else None
    if folder is None and os.environ.get(DATA_ENV_VAR):
        folder = next(
            (Path(os.environ[DATA_ENV_VAR]) / f for f in _criteo.FOLDERS
             if (Path(os.environ[DATA_ENV_VAR]) / f).is_dir()),
            None,
        )  # fmt: skip
    days = [folder] if folder is not None and DAY_FILE.match(folder.name) else []
    if folder is not None and folder.is_dir():
        days = [f for f in folder.iterdir() if f.is_file() and DAY_FILE.match(f.name)]
        days.sort(key=lambda f: int(DAY_FILE.match(f.name).group(1)))
    files = days or resolve_data_files(
        path,
        title="Criteo DAC",
        folders=_criteo.FOLDERS,
        layout="TAB-separated `label I1..I13 C1..C26`: train.txt, or day_0 .. day_23",
    )
    return CriteoLayout(
        name="criteo",
        files=files,
        categorical=_criteo.CATEGORICAL,
        numeric=_criteo.NUMERIC,
        temporal="files" if days else "rows",
        temporal_fraction=None if days else 1 / 7,
        info={"numeric_transform": "log1p(max(x, 0)), missing -> 0"},
        fixed_ids=_criteo.CATEGORICAL,
    )


# --- Avazu ---


@dataclass
class AvazuLayout(Layout):
    """Comma-separated `id,click,hour,C1,...,C21`; a header line names the column order."""

    def parsers(self, chunk_bytes, *, keys_only=False, numeric=True):
        header = _avazu.COLUMNS
        for i, file in enumerate(self.files):
            first = True
            for block in iter_blocks(file, chunk_bytes):
                if first and block.data.lstrip(b"\xef\xbb\xbf").startswith(b"id,"):
                    line, block = block.without_first_line()
                    header = avazu_header(line, file, block.first_line - 1)
                first = False
                if block.data:
                    yield partial(_parse_avazu, self, block, i, header, keys_only)


def _parse_avazu(
    layout: Layout, block: Block, file_index: int, header: tuple[str, ...], keys_only: bool
) -> Chunk:
    pa, _, _ = pyarrow_modules()
    types = {"hour": "int"}
    if not keys_only:
        types.update({"click": "int", **dict.fromkeys(_avazu.COLUMNS[3:], "str")})
    table = layout.read_block(
        block, delimiter=",", names=header, types=types, what="id,click,hour,C1..C21"
    )
    hour = column_numpy(table, "hour", block, required=True)
    date = hour // 100
    if keys_only:
        return Chunk(y=np.zeros(len(hour), np.float32), categorical={}, numeric={},
                     file=file_index, key=date)  # fmt: skip
    categorical = {"hour_of_day": pa.array(hour % 100)}
    categorical.update({c: table.column(c).combine_chunks() for c in _avazu.COLUMNS[3:]})
    return Chunk(
        y=binary_labels(table, "click", block),
        categorical=categorical,
        numeric={},
        file=file_index,
        key=date,
    )


def avazu_header(line: bytes, file: Path, number: int) -> tuple[str, ...]:
    header = tuple(f.strip() for f in line.decode("utf-8", "replace").lstrip("\ufeff").split(","))
    if sorted(header) != sorted(_avazu.COLUMNS):
        raise ValueError(
            f"{file}:{number}: the header must name the columns {list(_avazu.COLUMNS)}. "
            f"Received: {list(header)}"
        )
    return header


def avazu_layout(path: str | os.PathLike | None) -> AvazuLayout:
    files = resolve_data_files(
        path,
        title="Avazu",
        folders=_avazu.FOLDERS,
        layout="comma-separated `id,click,hour,C1,...,C21`, e.g. train.csv (with header)",
    )
    return AvazuLayout(
        name="avazu",
        files=files,
        categorical=("hour_of_day", *_avazu.COLUMNS[3:]),
        numeric=(),
        temporal="last_key",
        fixed_ids=_avazu.COLUMNS[5:14],  # site_id .. device_model: 8 hex digits
    )


# --- MovieLens ---

# Rating files of each release, the first found is read: 100K `u.data`; 1M and 10M
# `ratings.dat` (`::`); 20M, 25M, 32M, latest, latest-small `ratings.csv` (with a header).
RATING_FILES = ("u.data", "ratings.dat", "ratings.csv")
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIELENS_FOLDERS = (
    *_movielens.FOLDERS, "movielens", "ml-1m", "ml-10M100K", "ml-10m", "ml-20m", "ml-25m",
    "ml-32m", "ml-latest", "ml-latest-small",
)  # fmt: skip


@dataclass
class MovieLensLayout(Layout):
    """Ratings `user item rating timestamp` in one of the releases' three file formats."""

    label: str = "liked"

    def parsers(self, chunk_bytes, *, keys_only=False, numeric=True):
        file = self.files[0]
        kind = movielens_format(file)
        first = True
        for block in iter_blocks(file, chunk_bytes):
            if first and kind == "ratings.csv":
                line, block = block.without_first_line()
                header = tuple(line.decode("utf-8", "replace").lstrip("\ufeff").split(","))
                if header != CSV_HEADER:
                    raise ValueError(
                        f"{file}:1: expected the header {','.join(CSV_HEADER)}. "
                        f"Received: {','.join(header)!r}"
                    )
            first = False
            yield partial(_parse_ratings, block, kind, self.label, keys_only)


def _parse_ratings(block: Block, kind: str, label: str, keys_only: bool) -> Chunk:
    names = ("user_id", "item_id", "rating", "timestamp")
    types = {"timestamp": "int"}
    if not keys_only:
        types.update({"user_id": "int", "item_id": "int", "rating": "float"})
    if kind == "ratings.dat":  # `::` separators: one byte for the columnar reader
        block = Block(block.path, block.data.replace(b"::", b"\t"), block.offset)
    table = read_csv_block(
        block,
        delimiter="," if kind == "ratings.csv" else "\t",
        names=names,
        types=types,
        what="user item rating timestamp",
    )
    key = column_numpy(table, "timestamp", block, required=True)
    if keys_only:
        return Chunk(y=np.zeros(len(key), np.float32), categorical={}, numeric={}, file=0, key=key)
    rating = column_numpy(table, "rating", block, required=True)
    bad = ~(np.isfinite(rating) & (rating > 0) & (rating <= 5))
    if bad.any():
        raise bad_row_error(block, bad, "rating must be a number in (0, 5]", rating)
    for name in ("user_id", "item_id"):
        if table.column(name).null_count:
            column_numpy(table, name, block, required=True)  # raises with file:line
    y = (rating >= 4) if label == "liked" else rating
    return Chunk(
        y=y.astype(np.float32),
        categorical={n: table.column(n).combine_chunks() for n in ("user_id", "item_id")},
        numeric={},
        file=0,
        key=key,
    )


def movielens_format(file: Path) -> str:
    """Which release format a rating file has, by name, else by its first line."""
    if file.name in RATING_FILES:
        return file.name
    with open(file, "rb") as f:
        first = f.readline()
    if b"::" in first:
        return "ratings.dat"
    return "ratings.csv" if b"," in first else "u.data"


def movielens_layout(
    path: str | os.PathLike | None, *, label: str, folders: Sequence[str] = MOVIELENS_FOLDERS
) -> MovieLensLayout:
    if label not in _movielens.LABELS:
        raise ValueError(f"`label` must be one of {_movielens.LABELS}. Received: label={label!r}")
    candidates = [Path(path)] if path is not None else []
    if path is None and os.environ.get(DATA_ENV_VAR):
        candidates = [Path(os.environ[DATA_ENV_VAR]) / f for f in folders]
    file = None
    for candidate in candidates:
        if candidate.is_file():
            file = candidate
        elif candidate.is_dir():
            file = next((candidate / n for n in RATING_FILES if (candidate / n).is_file()), None)
        if file is not None:
            break
    if file is None:
        where = str(path) if path is not None else f"{DATA_ENV_VAR} ({', '.join(folders)})"
        raise FileNotFoundError(
            f"MovieLens ratings not found at {where}: pass `path=` to a release's folder or "
            f"rating file ({', '.join(RATING_FILES)}), or set {DATA_ENV_VAR} to a directory "
            f"holding one of {', '.join(f + '/' for f in folders)}."
        )
    return MovieLensLayout(
        name="movielens",
        files=[file],
        categorical=("user_id", "item_id"),
        numeric=(),
        task="binary" if label == "liked" else "regression",
        temporal="latest_keys",
        label=label,
        info={"label": "rating >= 4" if label == "liked" else "rating"},
    )


# --- libSVM / libFM / libFFM ---


@dataclass
class LibsvmLayout(Layout):
    """`label idx:val ...` or `label field:idx:val ...` lines; `#` starts a comment."""

    def parsers(self, chunk_bytes, *, keys_only=False, numeric=True):
        for i, file in enumerate(self.files):
            for block in iter_blocks(file, chunk_bytes):
                yield partial(parse_libsvm_block, block, i, self.task)


def parse_libsvm_block(block: Block, file_index: int, task: str) -> Chunk | None:
    """Vectorised parse of a block of libSVM lines (pyarrow string kernels, no loop over rows)."""
    pa, _, pc = pyarrow_modules()
    try:
        text = pa.array([block.data], pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        raise decode_error(block) from None
    lines = pc.list_flatten(pc.split_pattern(text, "\n"))
    lines = lines.slice(0, len(lines) - 1)  # the block ends with a newline
    lines = pc.list_element(pc.split_pattern(lines, "#", max_splits=1), 0)
    tokens = pc.utf8_split_whitespace(lines)
    line_of = pc.list_parent_indices(tokens).to_numpy()
    tokens = pc.list_flatten(tokens)
    keep = pc.greater(pc.utf8_length(tokens), 0).to_numpy(zero_copy_only=False)
    tokens, line_of = tokens.filter(pa.array(keep)), line_of[keep]
    if len(tokens) == 0:
        return None
    first = np.concatenate([[True], line_of[1:] != line_of[:-1]])
    # line_of: every token's line within the block (the file's line number only in errors)
    label = _floats(block, tokens.filter(pa.array(first)), line_of[first], "the label")
    rows = np.cumsum(first) - 1  # row of every token
    features = tokens.filter(pa.array(~first))
    feature_rows, feature_lines = rows[~first], line_of[~first]
    parts = pc.split_pattern(features, ":")
    count = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    starts = parts.offsets.to_numpy()[:-1]
    flat = pc.list_flatten(parts)
    bad = (count < 2) | (count > 3)
    if not bad.any():
        try:
            index = pc.cast(flat.take(pa.array(starts + count - 2)), pa.int64())
            field_ = pc.cast(flat.take(pa.array(starts)), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = ~_int_like(flat.take(pa.array(starts + count - 2))) | ~_int_like(
                flat.take(pa.array(starts))
            )
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{block.path}:{block.first_line + feature_lines[j]}: expected `idx:val` or "
            f"`field:idx:val` with integer idx and field. Received: {features[j].as_py()!r}"
        )
    index_text = pc.cast(index, pa.string())
    keys = pc.if_else(
        pa.array(count == 3),
        pc.binary_join_element_wise(pc.cast(field_, pa.string()), index_text, ":"),
        index_text,
    )
    values = _floats(block, flat.take(pa.array(starts + count - 1)), feature_lines, "a value")
    row_starts = np.flatnonzero(first) - np.arange(first.sum())  # first feature of each row
    slots = np.arange(len(feature_rows)) - row_starts[feature_rows]
    y = (label > 0).astype(np.float32) if task == "binary" else label.astype(np.float32)
    return Chunk(
        y=y,
        categorical={"ids": Ragged(keys, feature_rows, slots)},
        numeric={"values": Ragged(values.astype(np.float32), feature_rows, slots)},
        file=file_index,
    )


def _int_like(strings) -> np.ndarray:
    _, _, pc = pyarrow_modules()
    return pc.match_substring_regex(strings, r"^[+-]?[0-9]+$").to_numpy(zero_copy_only=False)


def _floats(block: Block, strings, lines: np.ndarray, what: str) -> np.ndarray:
    """Finite float64 values of `strings` (on the block's `lines`, 0-based); the first bad one
    raises naming `file:line`."""
    pa, _, pc = pyarrow_modules()
    try:
        values = pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        values = np.array([_float_or_nan(s) for s in strings.to_pylist()])  # error path only
    bad = ~np.isfinite(values)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{block.path}:{block.first_line + lines[j]}: {what} must be a finite number. "
            f"Received: {strings[j].as_py()!r}"
        )
    return values


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def libsvm_layout(
    path: str | os.PathLike | None, test_path: str | os.PathLike | None, task: str
) -> LibsvmLayout:
    if path is None:
        raise FileNotFoundError(
            "libSVM data has no default location: pass `path=` to a libSVM/libFM text file "
            "(KERAS_SMELU_DATA is not used for it)."
        )
    files = [Path(path)] + ([Path(test_path)] if test_path is not None else [])
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"No such libSVM file: {str(file)!r}.")
    return LibsvmLayout(
        name=files[0].stem,
        files=files,
        categorical=("ids",),
        numeric=("values",),
        task=task,
        bags={"ids": "values"},
        temporal="files",
    )


# --- shared checks ---


def binary_labels(table, name: str, block: Block) -> np.ndarray:
    """A 0/1 label column as float32; empty or other values raise naming `file:line`."""
    label = column_numpy(table, name, block, required=True)
    bad = (label != 0) & (label != 1)
    if bad.any():
        raise bad_row_error(block, bad, f"{name} must be 0 or 1", label)
    return label.astype(np.float32)
