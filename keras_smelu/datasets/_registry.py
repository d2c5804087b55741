"""Dataset names -> loaders."""

from __future__ import annotations

import os
from collections.abc import Callable

from keras_smelu.datasets import _avazu, _criteo, _movielens, _stream_layouts
from keras_smelu.datasets._avazu import load_avazu
from keras_smelu.datasets._base import RecDataset
from keras_smelu.datasets._criteo import load_criteo
from keras_smelu.datasets._libsvm import load_libsvm
from keras_smelu.datasets._movielens import load_movielens, load_movielens_100k
from keras_smelu.datasets._streaming import StreamingDataset, open_stream
from keras_smelu.datasets._synthetic import load_synthetic

LOADERS: dict[str, Callable[..., RecDataset]] = {
    "synthetic": load_synthetic,
    "movielens-100k": load_movielens_100k,
    "criteo": load_criteo,
    "avazu": load_avazu,
    "libsvm": load_libsvm,
    "movielens": load_movielens,
}
# The folders each loader looks for under $KERAS_SMELU_DATA when it is given no path.
DATA_FOLDERS: dict[str, tuple[str, ...]] = {
    "movielens-100k": _movielens.FOLDERS,
    "criteo": _criteo.FOLDERS,
    "avazu": _avazu.FOLDERS,
    "movielens": _stream_layouts.MOVIELENS_FOLDERS,
}


def available() -> tuple[str, ...]:
    """The names `load` accepts.

    Returns:
        A tuple of dataset names.
    """
    return tuple(LOADERS)


def load(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    streaming: bool = False,
    **kwargs,
) -> RecDataset | StreamingDataset:
    """Loads a dataset by name, into memory or as a stream.

    In memory (the default), the result is a `RecDataset` holding every row. With
    `streaming=True` it is a `StreamingDataset`: the files are read in chunks of about
    `chunk_bytes` every epoch, with peak memory bounded by the chunk and shuffle buffer sizes
    and the vocabularies, not by the files' size (it needs the optional `pyarrow`: `pip install
    "keras-smelu[data]"`). Both carry the same feature spec, so the same model builders apply.

    Args:
        name: one of `available()`: `"synthetic"`, `"movielens-100k"`, `"criteo"`, `"avazu"`,
            `"libsvm"`, `"movielens"` (any release: 100K, 1M, 10M, 20M, 25M, 32M, latest;
            ratings only) (case and `_`/`-` do not matter).
        path: where the data is (see each loader); `None` uses `$KERAS_SMELU_DATA`.
            `"synthetic"` takes none, `"libsvm"` requires one.
        streaming: return a `StreamingDataset` (all names but `"synthetic"`). Streaming
            `"movielens-100k"` reads the ratings only, like `"movielens"`.
        **kwargs: passed to the loader (e.g. `seed`, `test_fraction`, `split="temporal"`);
            streaming also takes `hash_buckets` (hashed ids instead of a counted vocabulary),
            `chunk_bytes`, `cache_dir` (parse once, read every later pass from there) and
            `workers` (threads that parse and encode chunks; `None`: the usable cores, at
            most 4); see `StreamingDataset`.

    Returns:
        A `RecDataset`, or a `StreamingDataset` when `streaming`.

    Example:

    >>> ds = load("synthetic", n_train=1000, n_test=100)
    >>> ds.name
    'synthetic'
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in LOADERS:
        raise ValueError(f"Unknown dataset {name!r}. Expected one of: {', '.join(LOADERS)}.")
    if streaming:
        if key == "synthetic":
            raise ValueError(
                "The synthetic dataset is generated in memory and cannot stream; to stream a "
                "large synthetic log, write it with `write_click_log` and load that file. "
                f"Received: name={name!r}, streaming=True"
            )
        return open_stream(key, path, **kwargs)
    return LOADERS[key](path, **kwargs)
