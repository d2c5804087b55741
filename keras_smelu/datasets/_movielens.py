"""MovieLens 100K (GroupLens `ml-100k`): ratings with user and movie side features."""

from __future__ import annotations

import os

import numpy as np

from keras_smelu.datasets._base import (
    RecDataset,
    check_min_count,
    check_split,
    file_info,
    latest_rows,
    parse_ints,
    read_rows,
    resolve_dataset_dir,
    slug,
    split_dataset,
    split_indices,
    temporal_indices,
)

FILES = ("u.data", "u.user", "u.item")
# Folders looked up under $KERAS_SMELU_DATA.
FOLDERS = ("movielens-100k", "ml-100k")
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
GENRE_FEATURES = tuple(f"genre_{slug(g)}" for g in GENRES)
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's age groups: <18, 18-24, ..., 56+
LABELS = ("liked", "rating")


def load_movielens_100k(
    path: str | os.PathLike | None = None,
    *,
    label: str = "liked",
    test_fraction: float = 0.2,
    seed: int = 0,
    min_count: int = 1,
    split: str = "random",
) -> RecDataset:
    """Loads MovieLens 100K as a `RecDataset`, split at random over ratings or by time.

    Reads `u.data` (TAB-separated `user item rating timestamp`), `u.user`
    (`id|age|gender|occupation|zip`) and `u.item` (latin-1, `id|title|release date|video release
    date|url|` + 19 genre flags in `u.genre` order).

    Features (vocabularies built from the training split, id 0 = missing/unseen):

    - categorical: `user_id`, `item_id`, `age` (groups <18, 18-24, 25-34, 35-44, 45-49, 50-55,
      56+), `gender`, `occupation`, `zip` (first 3 characters of the zip code), `genre` (the
      movie's first genre in `u.genre` order), `decade` (of the release date; missing -> 0);
    - numeric: `genre_<name>` for the 19 genres (multi-hot 0/1 flags, e.g. `genre_sci_fi`).

    With `split="temporal"`, the test split holds the latest ratings: those at or after the
    timestamp of the `round(n * test_fraction)`-th latest one (ties included), and both splits
    keep file order (`seed` is unused). Other releases (1M, 10M, 20M, 25M, 32M, latest) and
    files too large for memory: `keras_smelu.datasets.load("movielens", path, streaming=...)`.

    Args:
        path: folder holding `u.data`, `u.user`, `u.item`; default: `movielens-100k/` under
            `$KERAS_SMELU_DATA`.
        label: `"liked"` for the binary label `rating >= 4` (task `"binary"`), or `"rating"` for
            the raw 1-5 rating (task `"regression"`).
        test_fraction: share of the ratings held out for test.
        seed: seed of the random split.
        min_count: values seen fewer times in the training split map to id 0.
        split: `"random"` or `"temporal"` (the latest ratings, as above).

    Returns:
        A `RecDataset` named `"movielens-100k"`.

    Example:

    >>> ds = load_movielens_100k("shared/datasets/movielens-100k")  # doctest: +SKIP
    >>> ds.n_train + ds.n_test  # doctest: +SKIP
    100000
    """
    if label not in LABELS:
        raise ValueError(f"`label` must be one of {LABELS}. Received: label={label!r}")
    min_count = check_min_count(min_count)
    check_split(split)
    directory = resolve_dataset_dir(path, title="MovieLens 100K", folders=FOLDERS, required=FILES)
    data_path, user_path, item_path = (directory / name for name in FILES)

    rows, lines = read_rows(data_path, "\t", 4)
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    user = parse_ints(columns[0], data_path, lines, "user_id")
    item = parse_ints(columns[1], data_path, lines, "item_id")
    rating = parse_ints(columns[2], data_path, lines, "rating")
    timestamp = parse_ints(columns[3], data_path, lines, "timestamp")
    bad = np.flatnonzero((rating < 1) | (rating > 5))
    if bad.size:
        raise ValueError(
            f"{data_path}:{lines[bad[0]]}: rating must be in 1..5. Received: {rating[bad[0]]}"
        )

    users = _read_users(user_path)
    items = _read_items(item_path)
    raw = {
        "user_id": user,
        "item_id": item,
        **{
            name: _lookup(table, user, user_path, data_path, lines) for name, table in users.items()
        },
        **{
            name: _lookup(table, item, item_path, data_path, lines)
            for name, table in items.items()
            if name not in GENRE_FEATURES
        },
    }
    if label == "liked":
        y, task = (rating >= 4).astype(np.float32), "binary"
    else:
        y, task = rating.astype(np.float32), "regression"
    genres = {
        name: _lookup(items[name], item, item_path, data_path, lines) for name in GENRE_FEATURES
    }
    if split == "random":
        rows = split_indices(len(rating), test_fraction, seed)
        how = {"seed": seed, "test_fraction": test_fraction, "split": "random over ratings"}
    else:
        rule = "the latest ratings by timestamp"
        rows = temporal_indices(latest_rows(timestamp, test_fraction), "MovieLens 100K", rule)
        how = {"test_fraction": test_fraction, "split": f"temporal: {rule}"}
    return split_dataset(
        "movielens-100k",
        y,
        raw,
        genres,
        rows,
        task=task,
        min_count=min_count,
        info={
            "files": file_info((data_path, user_path, item_path)),
            "label": "rating >= 4" if label == "liked" else "rating",
            **how,
        },
    )


def _read_users(path) -> dict[str, dict[int, object]]:
    rows, lines = read_rows(path, "|", 5, encoding="latin-1")
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    ids = parse_ints(columns[0], path, lines, "user_id")
    ages = parse_ints(columns[1], path, lines, "age")
    age_group = np.searchsorted(AGE_EDGES, ages, side="right")
    zips = [z.strip()[:3].upper() for z in columns[4]]
    return {
        "age": dict(zip(ids.tolist(), age_group.tolist(), strict=True)),
        "gender": dict(zip(ids.tolist(), (g.strip().upper() for g in columns[2]), strict=True)),
        "occupation": dict(zip(ids.tolist(), (o.strip().lower() for o in columns[3]), strict=True)),
        "zip": dict(zip(ids.tolist(), zips, strict=True)),
    }


def _read_items(path) -> dict[str, dict[int, object]]:
    rows, lines = read_rows(path, "|", 5 + len(GENRES), encoding="latin-1")
    columns = list(zip(*rows, strict=True)) if rows else [()] * (5 + len(GENRES))
    ids = parse_ints(columns[0], path, lines, "movie_id")
    flags = np.zeros((len(rows), len(GENRES)), dtype=np.int64)
    for g, name in enumerate(GENRE_FEATURES):
        flags[:, g] = parse_ints(columns[5 + g], path, lines, name)
    first_genre = [
        GENRES[g] if any_flag else ""
        for g, any_flag in zip(flags.argmax(axis=1), flags.any(axis=1), strict=True)
    ]
    decades = []
    for date in columns[2]:
        year = date.strip()[-4:]
        decades.append(f"{int(year) // 10 * 10}s" if year.isdigit() else "")  # "": missing
    keys = ids.tolist()
    tables: dict[str, dict[int, object]] = {
        "genre": dict(zip(keys, first_genre, strict=True)),
        "decade": dict(zip(keys, decades, strict=True)),
    }
    for g, name in enumerate(GENRE_FEATURES):
        tables[name] = dict(zip(keys, flags[:, g].tolist(), strict=True))
    return tables


def _lookup(table, keys: np.ndarray, table_path, data_path, lines) -> np.ndarray:
    """Side-feature column for each rating row; an id missing from the side file is an error."""
    unique, inverse = np.unique(keys, return_inverse=True)
    try:
        values = [table[k] for k in unique.tolist()]
    except KeyError as e:
        row = int(np.flatnonzero(keys == e.args[0])[0])
        raise ValueError(
            f"{data_path}:{lines[row]}: id {e.args[0]} is not in {table_path}."
        ) from None
    return np.asarray(values)[inverse]


def load_movielens(
    path: str | os.PathLike | None = None,
    *,
    label: str = "liked",
    split: str = "random",
    test_fraction: float = 0.2,
    seed: int = 0,
    min_count: int = 1,
    hash_buckets: int | None = None,
) -> RecDataset:
    """Loads the ratings of any MovieLens release into memory as a `RecDataset`.

    Reads the release's rating file: 100K `u.data` (TAB-separated `user item rating
    timestamp`), 1M and 10M `ratings.dat` (`::`-separated), 20M, 25M, 32M, latest and
    latest-small `ratings.csv` (header `userId,movieId,rating,timestamp`). Features: `user_id`
    and `item_id` (categorical; side files are not read: `load_movielens_100k` adds 100K's). The
    file is parsed by the streaming reader, then held in memory (rows in file order); for a
    release too large for memory use `load("movielens", path, streaming=True)` instead.

    Args:
        path: a release's folder or its rating file; default: a MovieLens folder (`ml-1m/`,
            `ml-20m/`, ...) under `$KERAS_SMELU_DATA`.
        label: `"liked"` (`rating >= 4`, binary) or `"rating"` (regression).
        split: `"random"` (each rating to test with probability `test_fraction`, by a seeded
            hash of its row) or `"temporal"` (the `test_fraction` of latest ratings).
        test_fraction: share of the ratings held out for test.
        seed: seed of the random split.
        min_count: values seen fewer times in the training split map to id 0.
        hash_buckets: hash ids into this many buckets instead of counting a vocabulary.

    Returns:
        A `RecDataset` named `"movielens"`.

    Example:

    >>> ds = load_movielens("ml-latest-small", split="temporal")  # doctest: +SKIP
    >>> sorted(ds.categorical)  # doctest: +SKIP
    ['item_id', 'user_id']
    """
    from keras_smelu.datasets._streaming import open_stream

    return open_stream(
        "movielens",
        path,
        label=label,
        split=split,
        test_fraction=test_fraction,
        seed=seed,
        min_count=min_count,
        hash_buckets=hash_buckets,
    ).materialize()
