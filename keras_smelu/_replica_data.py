"""Training and evaluation data for replica training: NumPy arrays, a finite tf.data.Dataset,
or a split of a `StreamingDataset` (files read in chunks).

Each adapter gives one epoch of training data in the order a replica's generator draws, cut
into segments at the checkpoints (`segments(data, rng, every)`), and the arguments of
`evaluate`/`predict` on held-out data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
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


def check_labels(labels: np.ndarray, name: str) -> None:
    """Raises unless `labels` are finite numbers (booleans count): a string, object or NaN
    label would train on garbage (a NaN label becomes class 0 in some losses)."""
    if labels.dtype.kind not in "biuf":
        raise ValueError(
            f"The labels of `{name}` must be numbers; received an array of dtype "
            f"{labels.dtype} (e.g. {labels.flat[0]!r})"
        )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        bad = int(np.flatnonzero(~np.isfinite(labels.reshape(len(labels), -1)).any(axis=1))[0])
        raise ValueError(f"The labels of `{name}` must be finite; row {bad} holds {labels[bad]!r}")


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
        for label in keras.tree.flatten(self.y):
            check_labels(label, name)
        self.batch_size = batch_size

    def take(self, index: np.ndarray | slice) -> tuple[Any, Any, Any]:
        """`(x, y, sample_weight)` of the rows `index` selects."""

        def rows(a: np.ndarray) -> np.ndarray:
            return a[index]

        sample_weight = None if self.sample_weight is None else self.sample_weight[index]
        return (
            keras.tree.map_structure(rows, self.x),
            keras.tree.map_structure(rows, self.y),
            sample_weight,
        )

    def epoch(self, rng: np.random.Generator) -> dict[str, Any]:
        x, y, sample_weight = self.take(rng.permutation(self.n))
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
        return self.take(slice(0, min(self.n, self.batch_size)))[0]

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


# ----------------------------------------------------------------------------------------------
# Segments: an epoch cut at the checkpoints


class Segment:
    """The training data up to the next checkpoint: `fit` arguments and the number of batches
    they hold (for a stream, counted while `fit` reads them)."""

    def __init__(self, fit_kwargs: dict[str, Any], steps: int = 0):
        self.fit_kwargs = fit_kwargs
        self.steps = steps


def array_segments(
    data: ArrayData, rng: np.random.Generator, every: int | None
) -> Iterator[Segment]:
    """One permuted epoch of `data`, cut every `every` batches (`None`: one segment)."""
    kwargs = data.epoch(rng)
    n_batches = -(-data.n // data.batch_size)
    if every is None or every >= n_batches:
        yield Segment(kwargs, n_batches)
        return
    rows = every * data.batch_size
    for start in range(0, data.n, rows):
        part = slice(start, min(start + rows, data.n))

        def take(a: np.ndarray, part: slice = part) -> np.ndarray:
            return a[part]

        weight = kwargs["sample_weight"]
        yield Segment(
            {
                "x": keras.tree.map_structure(take, kwargs["x"]),
                "y": keras.tree.map_structure(take, kwargs["y"]),
                "sample_weight": None if weight is None else weight[part],
                "batch_size": data.batch_size,
            },
            -(-(part.stop - part.start) // data.batch_size),
        )


def dataset_segments(
    data: DatasetData, rng: np.random.Generator, every: int | None
) -> Iterator[Segment]:
    """One shuffled epoch of a tf.data pipeline, cut every `every` batches with `skip`/`take`
    (each segment replays the fixed shuffle up to its start: exact, not fast)."""
    batched = data.epoch(rng)["x"]
    n_batches = int(batched.cardinality())
    if every is None or every >= n_batches:
        yield Segment({"x": batched}, n_batches)
        return
    for start in range(0, n_batches, every):
        yield Segment({"x": batched.skip(start).take(every)}, min(every, n_batches - start))


def segments(
    data: ArrayData | DatasetData | StreamData, rng: np.random.Generator, every: int | None
) -> Iterator[Segment]:
    """One epoch of training data in the order `rng` draws, cut at the checkpoints."""
    if isinstance(data, StreamData):
        return data.segments(rng, every)
    if isinstance(data, DatasetData):
        return dataset_segments(data, rng, every)
    return array_segments(data, rng, every)


# ----------------------------------------------------------------------------------------------
# Streams

DEFAULT_SHUFFLE_BUFFER = 100_000
"""Rows a streamed training split holds back for its bounded shuffle, unless told."""


class StreamSplit:
    """One split of a `keras_smelu.datasets.StreamingDataset`, as `train_replicas` data.

    Training data is streamed: each epoch reads the files once, in chunks. A replica's order
    is the dataset's bounded shuffle (`StreamingDataset.epoch(..., shuffle_buffer, seed)`)
    seeded from the replica's order seed, one seed per epoch: with `vary="data_order"` the two
    replicas of a pair see the same rows in different orders, each order the same in every
    run; with `shuffle_buffer=0` every replica reads the file order. Evaluation data is by
    default read into memory once (`in_memory=True` for the test split): it is measured after
    every checkpoint, and a temporal test split, the later slice, is small next to the log.

    Passing the `StreamingDataset` itself to `train_replicas` means `StreamSplit(dataset,
    "train")` as training data and `StreamSplit(dataset, "test")` as evaluation data.

    Args:
        dataset: A `StreamingDataset` (`datasets.load(name, path, streaming=True, ...)`).
        split: `"train"` or `"test"`.
        shuffle_buffer: Rows held back for the shuffle of a streamed split (0: file order;
            `None`: 100,000 for a streamed split).
        max_rows: Use only the first `max_rows` rows of the split (`None`: all).
        in_memory: Read the split into NumPy arrays once (`None`: for the test split only).

    Example:

    ```python
    stream = datasets.load("criteo", "clicks.txt", streaming=True, split="temporal")
    train = StreamSplit(stream, "train", shuffle_buffer=50_000)
    test = StreamSplit(stream, "test", max_rows=100_000)
    train_replicas(build, train, test, epochs=1, eval_every=500)
    ```
    """

    def __init__(
        self,
        dataset: Any,
        split: str = "train",
        *,
        shuffle_buffer: int | None = None,
        max_rows: int | None = None,
        in_memory: bool | None = None,
    ):
        if not is_stream(dataset):
            raise ValueError(
                "`dataset` must be a keras_smelu.datasets.StreamingDataset (from "
                "`datasets.load(name, path, streaming=True)`); received: "
                f"{type(dataset).__name__}"
            )
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test'; received: split={split!r}")
        for name, value in (("shuffle_buffer", shuffle_buffer), ("max_rows", max_rows)):
            minimum = 0 if name == "shuffle_buffer" else 1
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < minimum
            ):
                raise ValueError(
                    f"`{name}` must be an integer >= {minimum} or None; received: {name}={value!r}"
                )
        if in_memory is not None and not isinstance(in_memory, bool):
            raise ValueError(f"`in_memory` must be True, False or None; received: {in_memory!r}")
        self.dataset = dataset
        self.split = split
        self.in_memory = (split == "test") if in_memory is None else in_memory
        self.shuffle_buffer = DEFAULT_SHUFFLE_BUFFER if shuffle_buffer is None else shuffle_buffer
        self.max_rows = max_rows
        self._arrays: tuple[dict[str, np.ndarray], np.ndarray] | None = None
        self._rows: int | None = None

    def __repr__(self) -> str:
        # Stable across processes: a tuning study's fingerprint of its data holds it.
        info = getattr(self.dataset, "info", {}) or {}
        return (
            f"StreamSplit(dataset={self.dataset.name!r}, files={info.get('files')!r}, "
            f"data_split={info.get('split')!r}, vocabulary={info.get('vocabulary')!r}, "
            f"split={self.split!r}, shuffle_buffer={self.shuffle_buffer}, "
            f"max_rows={self.max_rows}, in_memory={self.in_memory})"
        )

    def batches(
        self, batch_size: int, seed: int | None = None
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """One pass as `(x, y)` batches: file order when `seed` is None or the buffer is 0."""
        shuffle = self.shuffle_buffer if seed is not None else 0
        stream = self.dataset.epoch(self.split, batch_size, shuffle_buffer=shuffle, seed=seed)
        if self.max_rows is None:
            yield from stream
            return
        left = self.max_rows
        for x, y in stream:
            if left <= len(y):
                yield {k: v[:left] for k, v in x.items()}, y[:left]
                return
            left -= len(y)
            yield x, y

    def n_rows(self) -> int:
        """Rows of one pass (`max_rows` applied): the dataset's count, else counted by one
        read of the split (once)."""
        if self._rows is None:
            rows = self.dataset.n_train if self.split == "train" else self.dataset.n_test
            if rows is None:  # hashed ids and a random split: no counting pass was made
                rows = sum(len(y) for _, y in self.dataset.epoch(self.split, 65_536))
            self._rows = rows if self.max_rows is None else min(rows, self.max_rows)
        return self._rows

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The split as `(x, y)` NumPy arrays in file order, read once and kept."""
        if self._arrays is None:
            xs, ys = [], []
            for x, y in self.batches(65_536):
                xs.append(x)
                ys.append(y)
            if not ys:
                raise ValueError(f"The {self.split} split of {self.dataset.name!r} has no rows.")
            self._arrays = (
                {k: np.concatenate([x[k] for x in xs]) for k in xs[0]},
                np.concatenate(ys),
            )
        return self._arrays


def is_stream(data: Any) -> bool:
    """Whether `data` is a `StreamingDataset` (checked by type name: pyarrow stays optional)."""
    return type(data).__name__ == "StreamingDataset" and hasattr(data, "epoch")


class StreamData:
    """A streamed split: every epoch reads the files once, in the order of a replica's seed."""

    def __init__(self, source: StreamSplit, name: str, batch_size: int):
        self.source = source
        self.name = name
        self.batch_size = batch_size

    def _pass(self) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        return self.source.batches(self.batch_size)

    def segments(self, rng: np.random.Generator, every: int | None) -> Iterator[Segment]:
        """One epoch in the order of `rng`'s next seed, cut every `every` batches; each segment
        must be read to its end before the next is asked for.

        Each segment's `fit` arguments hold its batch count (`steps_per_epoch`): `fit` on a
        generator of unknown length takes one more step that finds no data, and on TensorFlow
        that step still counts in the per-output loss means of a multi-output model (the
        replica stack's losses came out as k/(k+1) of the true mean).
        """
        seed = int(rng.integers(2**31 - 1))
        batches = self.source.batches(self.batch_size, seed)
        left = -(-self.source.n_rows() // self.batch_size)
        first = next(batches, None)
        if first is None:
            raise ValueError(f"`{self.name}` is empty: the {self.source.split} split has no rows.")
        while first is not None:
            steps = left if every is None else min(every, left)
            left -= steps
            segment = Segment({"steps_per_epoch": max(steps, 1)})

            def read(first: Any = first, segment: Segment = segment) -> Iterator[Any]:
                segment.steps += 1
                yield first
                for batch in itertools.islice(batches, None if every is None else every - 1):
                    segment.steps += 1
                    yield batch

            segment.fit_kwargs["x"] = read()
            yield segment
            first = next(batches, None)

    def evaluate_kwargs(self) -> dict[str, Any]:
        return {"x": self._pass()}

    predict_kwargs = evaluate_kwargs

    def sample_x(self) -> Any:
        for x, _ in self._pass():
            return x
        raise ValueError(f"`{self.name}` is empty: the {self.source.split} split has no rows.")

    def labels(self) -> np.ndarray | None:
        parts = [y for _, y in self._pass()]
        return np.concatenate(parts) if parts else None


def prepare_data(data: Any, name: str, batch_size: int) -> ArrayData | DatasetData | StreamData:
    """The adapter for `data`: `(x, y)` arrays, a tf.data.Dataset, a `StreamSplit`, or a
    `StreamingDataset` (its train split for `train_data`, its test split otherwise)."""
    if data is None:
        raise ValueError(
            f"`{name}` is required: an `(x, y)` tuple, a tf.data.Dataset or a StreamSplit; "
            "received: None"
        )
    if is_tf_dataset(data):
        return DatasetData(data, name, batch_size)
    if is_stream(data):
        data = StreamSplit(data, "train" if name == "train_data" else "test")
    if isinstance(data, StreamSplit):
        if data.in_memory:
            return ArrayData(data.arrays(), name, batch_size)
        return StreamData(data, name, batch_size)
    return ArrayData(data, name, batch_size)
