"""Dataset names -> loaders."""

from __future__ import annotations

import os
from collections.abc import Callable

from keras_smelu.datasets import _avazu, _criteo, _movielens
from keras_smelu.datasets._avazu import load_avazu
from keras_smelu.datasets._base import RecDataset
from keras_smelu.datasets._criteo import load_criteo
from keras_smelu.datasets._libsvm import load_libsvm
from keras_smelu.datasets._movielens import load_movielens_100k
from keras_smelu.datasets._synthetic import load_synthetic

LOADERS: dict[str, Callable[..., RecDataset]] = {
    "synthetic": load_synthetic,
    "movielens-100k": load_movielens_100k,
    "criteo": load_criteo,
    "avazu": load_avazu,
    "libsvm": load_libsvm,
}
# The folders each loader looks for under $KERAS_SMELU_DATA when it is given no path.
DATA_FOLDERS: dict[str, tuple[str, ...]] = {
    "movielens-100k": _movielens.FOLDERS,
    "criteo": _criteo.FOLDERS,
    "avazu": _avazu.FOLDERS,
}


def available() -> tuple[str, ...]:
    """The names `load` accepts.

    Returns:
        A tuple of dataset names.
    """
    return tuple(LOADERS)


def load(name: str, path: str | os.PathLike | None = None, **kwargs) -> RecDataset:
    """Loads a dataset by name.

    Args:
        name: one of `available()`: `"synthetic"`, `"movielens-100k"`, `"criteo"`, `"avazu"`,
            `"libsvm"` (case and `_`/`-` do not matter).
        path: where the data is (see each loader); `None` uses `$KERAS_SMELU_DATA`.
            `"synthetic"` takes none, `"libsvm"` requires one.
        **kwargs: passed to the loader (e.g. `seed`, `test_fraction`).

    Returns:
        A `RecDataset`.

    Example:

    >>> ds = load("synthetic", n_train=1000, n_test=100)
    >>> ds.name
    'synthetic'
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in LOADERS:
        raise ValueError(f"Unknown dataset {name!r}. Expected one of: {', '.join(LOADERS)}.")
    return LOADERS[key](path, **kwargs)
