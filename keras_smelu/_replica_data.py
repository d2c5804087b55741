"""Training and evaluation data for replica training: NumPy arrays or a finite tf.data.Dataset.

Each adapter gives one epoch of training data in the order a replica's generator draws
(`epoch(rng)`), and the arguments of `evaluate`/`predict` on held-out data.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def is_tf_dataset(data: Any) -> bool:
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def is_batched(dataset: Any) -> bool:
    """Whether a tf.data pipeline is batched.

    A batching transformation (`batch`, `padded_batch`, `rebatch`, ...) in the pipeline, not
    undone by a later `unbatch`, counts; failing that, a dataset whose every component has an
    unknown leading dimension counts as batched (e.g. `from_generator` yielding batches).
    """
    node, seen = dataset, 0
    while node is not None and seen < 1000:
        name = type(node).__name__.lower()
        if "unbatch" in name:
            return False
        if "batch" in name:
            return True
        node, seen = getattr(node, "_input_dataset", None), seen + 1
    import tensorflow as tf

    specs = [s for s in tf.nest.flatten(dataset.element_spec) if hasattr(s, "shape")]
    return bool(specs) and all(
        s.shape.rank is not None and s.shape.rank >= 1 and s.shape[0] is None for s in specs
    )


class ArrayData:
    """`(x, y)` or `(x, y, sample_weight)` with NumPy arrays (x may be a dict or list)."""

    def __init__(self, data: Any, name: str, batch_size: int):
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(
                f"`{name}` must be an `(x, y)` or `(x, y, sample_weight)` tuple of NumPy arrays "
                f"(x may be a dict of arrays), or a tf.data.Dataset; received: "
                f"{type(data).__name__}"
                + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
            )
        x, y = data[0], data[1]
        sample_weight = data[2] if len(data) == 3 else None
        if x is None or y is None:
            raise ValueError(f"`{name}` needs both inputs and labels; received x={x!r}, y={y!r}")
        self.x = keras.tree.map_structure(np.asarray, x)
        self.y = keras.tree.map_structure(np.asarray, y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        leaves = keras.tree.flatten((self.x, self.y)) + (
            [] if self.sample_weight is None else [self.sample_weight]
        )
        lengths = {int(a.shape[0]) if a.ndim else -1 for a in leaves}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError(
                f"All arrays of `{name}` must have the same number of rows; got shapes "
                f"{[a.shape for a in leaves]}"
            )
        self.n = lengths.pop()
        if self.n == 0:
            raise ValueError(f"`{name}` is empty (0 rows).")
        self.batch_size = batch_size

    def _take(self, index: np.ndarray | slice) -> tuple[Any, Any, Any]:
        def take(a: np.ndarray) -> np.ndarray:
            return a[index]

        sample_weight = None if self.sample_weight is None else self.sample_weight[index]
        return (
            keras.tree.map_structure(take, self.x),
            keras.tree.map_structure(take, self.y),
            sample_weight,
        )

    def epoch(self, rng: np.random.Generator) -> dict[str, Any]:
        x, y, sample_weight = self._take(rng.permutation(self.n))
        return {"x": x, "y": y, "sample_weight": sample_weight, "batch_size": self.batch_size}

    def evaluate_kwargs(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "sample_weight": self.sample_weight,
            "batch_size": self.batch_size,
        }

    def predict_kwargs(self) -> dict[str, Any]:
        return {"x": self.x, "batch_size": self.batch_size}

    def sample_x(self) -> Any:
        return self._take(slice(0, min(self.n, self.batch_size)))[0]

    def labels(self) -> np.ndarray | None:
        return self.y if isinstance(self.y, np.ndarray) else None


class DatasetData:
    """A finite tf.data.Dataset of `(x, y)` or `(x, y, sample_weight)`, batched or not.

    Unbatched: each epoch is `shuffle(cardinality, seed=s).batch(batch_size)`, a full shuffle
    of the examples with a seed drawn from the replica's order generator. Already batched: the
    batches keep their composition and size (`batch_size` is ignored) and only their order is
    shuffled; pass an unbatched dataset for an example-level shuffle.
    """

    def __init__(self, dataset: Any, name: str, batch_size: int):
        import tensorflow as tf

        cardinality = int(dataset.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(
                f"`{name}` is an infinite tf.data.Dataset (e.g. `.repeat()` without a count); "
                "pass a finite dataset (one epoch of data)."
            )
        if cardinality == int(tf.data.UNKNOWN_CARDINALITY):
            # `filter`, `from_generator` and the like: an endless one would hang every epoch.
            raise ValueError(
                f"`{name}` is a tf.data.Dataset of unknown length (e.g. after `filter` or "
                "`from_generator`), which may be endless; make it finite and declare its "
                "number of elements with `dataset.apply(tf.data.experimental."
                "assert_cardinality(n))`."
            )
        if cardinality == 0:
            raise ValueError(f"`{name}` is an empty tf.data.Dataset.")
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                f"`{name}` must yield `(x, y)` or `(x, y, sample_weight)` tuples; element_spec "
                f"is {spec!r}"
            )
        self.dataset = dataset
        self.batched = is_batched(dataset)
        self.batch_size = batch_size
        self.buffer_size = cardinality

    def _batched(self, dataset: Any) -> Any:
        return dataset if self.batched else dataset.batch(self.batch_size)

    def epoch(self, rng: np.random.Generator) -> dict[str, Any]:
        seed = int(rng.integers(2**31 - 1))
        shuffled = self.dataset.shuffle(self.buffer_size, seed=seed, reshuffle_each_iteration=False)
        return {"x": self._batched(shuffled)}

    def evaluate_kwargs(self) -> dict[str, Any]:
        return {"x": self._batched(self.dataset)}

    predict_kwargs = evaluate_kwargs

    def sample_x(self) -> Any:
        for element in self._batched(self.dataset).take(1).as_numpy_iterator():
            return element[0]
        raise ValueError("The dataset is empty.")

    def labels(self) -> np.ndarray | None:
        parts = [element[1] for element in self._batched(self.dataset).as_numpy_iterator()]
        if not parts or not all(isinstance(p, np.ndarray) for p in parts):
            return None
        return np.concatenate(parts, axis=0)


def prepare_data(data: Any, name: str, batch_size: int) -> ArrayData | DatasetData:
    if data is None:
        raise ValueError(
            f"`{name}` is required: an `(x, y)` tuple or a tf.data.Dataset; received: None"
        )
    if is_tf_dataset(data):
        return DatasetData(data, name, batch_size)
    return ArrayData(data, name, batch_size)
