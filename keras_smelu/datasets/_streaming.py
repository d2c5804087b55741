"""`StreamingDataset`: data files too large for memory, read in chunks every epoch.

Peak memory is bounded by the chunk size, the shuffle buffer and the vocabularies, not by the
size of the files (see `keras_smelu.datasets._readers` and `._vocabulary`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np

from keras_smelu.datasets._base import (
    SPLITS,
    TASKS,
    RecDataset,
    check_fraction,
    check_min_count,
    file_info,
    n_test_rows,
)
from keras_smelu.datasets._chunk_cache import ChunkCache
from keras_smelu.datasets._parallel import check_workers, ordered_map
from keras_smelu.datasets._readers import check_chunk_bytes, default_chunk_bytes, pyarrow_modules
from keras_smelu.datasets._stream_layouts import (
    MOVIELENS_FOLDERS,
    Chunk,
    Layout,
    Ragged,
    avazu_layout,
    criteo_layout,
    libsvm_layout,
    movielens_layout,
)
from keras_smelu.datasets._vocabulary import CountedVocabulary, HashedVocabulary, mix64

SPLIT_NAMES = ("train", "test")
T = TypeVar("T")


class StreamingDataset:
    """A dataset read from its files chunk by chunk, as NumPy batches, in bounded memory.

    Built by `keras_smelu.datasets.load(name, path, streaming=True, ...)`. It carries the same
    feature spec as a `RecDataset` (`categorical`, `numeric`, `task`, `bags`), so
    `keras_smelu.models.embedding_mlp(stream)` builds a model for it, and yields batches with
    `epoch`. Every epoch parses the files again: nothing but the vocabularies is kept.

    Construction reads the files once or twice before the first epoch: a temporal split first
    finds its boundary (a row count, or the latest time keys), then the counting pass counts the
    training values of every categorical column (skipped with `hash_buckets`, unless a libSVM
    width must be found or a cache is filled) and the rows of each split.

    With `cache_dir`, that pass also writes every parsed chunk (categorical columns as `int32`
    codes of the counting tables, or ids when hashed) into a folder of its own under
    `cache_dir`, and every epoch reads the chunks from there and maps the codes to ids with one
    gather instead of parsing and hashing the text again: a training run of several epochs or
    replicas parses the files once. The cache takes about 0.6x the text's size on disk
    (Criteo) and is removed with the dataset; memory stays bounded by a chunk.

    Every pass parses, hashes and encodes its chunks on `workers` threads (pyarrow and NumPy
    release the GIL) and hands them out in file order, so the batches are the same for any
    number of workers; at most `workers + 1` chunks are in flight.

    Vocabularies, two kinds:

    - counted (the default): values seen at least `min_count` times in the training split get
      ids `1..V`, most frequent first, ties by value: the ids the in-memory loaders give. Memory
      grows with the number of distinct values (not rows);
    - hashed (`hash_buckets=B`): id `1 + hash(value) mod (B - 1)` with a fixed hash, no counting
      pass, fixed memory; distinct values may share an id.

    Missing values (empty fields) have id 0 in both.

    Splits: `"random"` sends each row to test independently with probability `test_fraction`
    (a seeded hash of its row number, so the test share is close to, not exactly,
    `test_fraction`); `"temporal"` holds out the latest data: the last day (Criteo: the last day
    file `day_N`, or the last 1/7 of the rows of `train.txt`, which is in time order over 7 days;
    Avazu: the rows of the latest date `YYMMDD` of `hour`), or, for MovieLens, the
    `test_fraction` of ratings with the latest timestamps (ties included). libSVM files have no
    time: a given `test_path` is the test split.

    Attributes:
        name: the dataset's name.
        categorical: categorical feature -> vocabulary size (id 0 included).
        numeric: names of the numeric features.
        task: `"binary"` or `"regression"`.
        bags: multi-valued categorical feature -> its weights feature (libSVM: `ids -> values`).
        n_train: training rows, or `None` when unknown (hashed ids, random split: no pass made).
        n_test: test rows, or `None` when unknown.
        info: provenance (files, split, seed, vocabularies, chunk size).

    Example:

    >>> from keras_smelu import datasets
    >>> stream = datasets.load("criteo", "train.txt", streaming=True)  # doctest: +SKIP
    >>> for x, y in stream.epoch("train", batch_size=1024, shuffle_buffer=100_000, seed=0):
    ...     model.train_on_batch(x, y)  # doctest: +SKIP
    """

    def __init__(
        self,
        layout: Layout,
        *,
        split: str = "random",
        test_fraction: float = 0.2,
        seed: int = 0,
        min_count: int = 1,
        hash_buckets: int | None = None,
        max_features: int | None = None,
        chunk_bytes: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        workers: int | None = None,
        by_file: bool = False,
    ):
        pyarrow_modules()  # fail early, with the install hint, when pyarrow is missing
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
        if layout.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: task={layout.task!r}")
        if hash_buckets is not None and (int(hash_buckets) != hash_buckets or hash_buckets < 2):
            raise ValueError(
                f"`hash_buckets` must be an integer >= 2 or None. Received: {hash_buckets!r}"
            )
        if max_features is not None and (int(max_features) != max_features or max_features < 1):
            raise ValueError(f"`max_features` must be an integer >= 1. Received: {max_features!r}")
        self._layout = layout
        self._fraction = check_fraction(test_fraction)
        self._seed = int(seed)
        if chunk_bytes is None:
            chunk_bytes = default_chunk_bytes(1 + len(layout.categorical) + len(layout.numeric))
        self._chunk_bytes = check_chunk_bytes(chunk_bytes)
        self._workers = check_workers(workers)
        min_count = check_min_count(min_count)
        self.name = layout.name
        self.numeric = tuple(layout.numeric)
        self.task = layout.task
        self.bags = dict(layout.bags)
        self._rule, self._threshold = "random", None
        if by_file:
            self._rule, self._threshold = "files", len(layout.files) - 1
        elif split == "temporal":
            self._rule, self._threshold = self._temporal_boundary()
        self._width = max_features
        self.n_train: int | None = None
        self.n_test: int | None = None
        self._cache = None if cache_dir is None else ChunkCache(cache_dir)
        counting = hash_buckets is None or (self.bags and max_features is None) or self._cache
        counters = {} if hash_buckets else {c: CountedVocabulary(c) for c in layout.categorical}
        hashed = {c: HashedVocabulary(hash_buckets) for c in layout.categorical if hash_buckets}
        if counting:
            self._count(counters, hashed)
        # Each column's vocabulary sorted and indexed on the workers (pyarrow's sort and
        # NumPy release the GIL): serial, this took 10-15% of a Criteo load.
        finished = ordered_map(lambda c: c.finish(min_count), counters.values(), self._workers)
        self._vocabularies = hashed or dict(zip(counters, finished, strict=True))
        self.categorical = {c: v.size for c, v in self._vocabularies.items()}
        self.info = {
            "files": file_info(layout.files),
            "split": self._split_text(),
            "seed": self._seed,
            "test_fraction": self._fraction if self._rule in ("random", "latest_keys") else None,
            "vocabulary": f"hashed into {hash_buckets} buckets"
            if hash_buckets
            else f"counted on the training split, min_count={min_count}",
            "chunk_bytes": self._chunk_bytes,
            "cache": None
            if self._cache is None
            else f"{self._cache.chunks} parsed chunks, {self._cache.bytes / 2**20:.0f} MiB",
            **({"max_features": self._width} if self.bags else {}),
            **layout.info,
        }

    def __repr__(self) -> str:
        return (
            f"StreamingDataset(name={self.name!r}, task={self.task!r}, n_train={self.n_train}, "
            f"n_test={self.n_test}, categorical={len(self.categorical)}, "
            f"numeric={len(self.numeric)})"
        )

    @property
    def features(self) -> tuple[str, ...]:
        """All feature names: the categorical ones, then the numeric ones."""
        return (*self.categorical, *self.numeric)

    def n_batches(self, split: str = "train", batch_size: int = 256) -> int | None:
        """Number of batches `epoch(split, batch_size)` yields, or `None` when rows are unknown."""
        rows = self._rows(_check_split(split))
        return None if rows is None else -(-rows // _check_batch_size(batch_size))

    def epoch(
        self,
        split: str = "train",
        batch_size: int = 256,
        *,
        shuffle_buffer: int = 0,
        seed: int | None = None,
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """One pass over a split as `(x, y)` NumPy batches, ready for `model.fit` on any backend.

        `x` maps every feature to an array of `batch_size` rows (the last batch may be smaller):
        `int32` ids for categorical features, `float32` for numeric ones, `(batch, k)` for a
        bag; `y` is `float32` of shape `(batch,)`.

        With `shuffle_buffer=0` the rows come in file order. Otherwise each parsed chunk joins a
        buffer of up to `shuffle_buffer` rows, the pool is permuted, and all but
        `shuffle_buffer` rows are emitted: a bounded-memory shuffle (rows move at most about
        `shuffle_buffer` places plus a chunk), the same for the same `seed`.

        Args:
            split: `"train"` or `"test"`.
            batch_size: rows per batch.
            shuffle_buffer: rows held back for shuffling; 0 keeps file order.
            seed: seed of the shuffle (`None`: a fresh one).

        Returns:
            An iterator of `(x, y)` batches.
        """
        split = _check_split(split)
        batch_size = _check_batch_size(batch_size)
        if int(shuffle_buffer) != shuffle_buffer or shuffle_buffer < 0:
            raise ValueError(
                f"`shuffle_buffer` must be an integer >= 0. Received: {shuffle_buffer!r}"
            )
        rng = np.random.default_rng(seed) if shuffle_buffer else None
        return _batches(self._encoded(split), batch_size, int(shuffle_buffer), rng)

    def materialize(self) -> RecDataset:
        """Reads both splits into memory as a `RecDataset` (rows in file order): small data only.

        Returns:
            A `RecDataset` with this dataset's vocabularies and splits.
        """
        parts = {}
        for split in SPLIT_NAMES:
            xs, ys = [], []
            for x, y in self._encoded(split):
                xs.append(x)
                ys.append(y)
            if not ys:
                raise ValueError(f"{self.name}: the {split} split has no rows.")
            parts[split] = (
                {k: np.concatenate([x[k] for x in xs]) for k in xs[0]},
                np.concatenate(ys),
            )
        return RecDataset(
            name=self.name,
            x_train=parts["train"][0],
            y_train=parts["train"][1],
            x_test=parts["test"][0],
            y_test=parts["test"][1],
            categorical=dict(self.categorical),
            numeric=self.numeric,
            task=self.task,
            bags=dict(self.bags),
            info=dict(self.info),
        )

    # --- passes over the files ---

    def _pass(self, work: Callable[[int, Chunk], T], **kwargs) -> Iterator[tuple[T, np.ndarray]]:
        """`work(index, chunk)` of every chunk, on the worker threads, handed out in file order
        with the chunk's test mask: chunks from the cache once it is whole, else parsed."""
        pa, _, _ = pyarrow_modules()
        pool = pa.default_memory_pool()
        cached = self._cache is not None and self._cache.complete
        if cached:
            tasks = self._cache.readers()
        else:
            tasks = self._layout.parsers(self._chunk_bytes, **kwargs)

        def run(item: tuple[int, Callable[[], Chunk | None]]):
            index, parse = item
            chunk = parse()
            if chunk is None:
                return None
            # The mask needs the row count, file and keys: the raw columns are freed here.
            done = work(index, chunk), (len(chunk.y), chunk.file, chunk.key)
            del chunk
            # pyarrow's allocator keeps freed pages per thread: this worker's too (among them
            # those of its earlier chunks, freed by the consumer).
            pool.release_unused()
            return done

        row = 0
        for done in ordered_map(run, enumerate(tasks), self._workers):
            if done is None:
                continue
            result, (n, file, key) = done
            del done
            yield result, self._test_mask(file, key, row, n)
            row += n
            del result
            # Hand the chunk's freed pages back: pyarrow's allocator keeps them otherwise,
            # and the process's peak would grow with the allocator's caches, not the data.
            pool.release_unused()

    def _test_mask(self, file: int, key: np.ndarray | None, row: int, n: int) -> np.ndarray:
        if self._rule == "random":
            rows = np.arange(row, row + n, dtype=np.uint64)
            u = (mix64(rows ^ mix64(np.array([self._seed], np.uint64))) >> np.uint64(11)) * 2.0**-53
            return u < self._fraction
        if self._rule == "files":
            return np.full(n, file >= self._threshold)
        if self._rule == "rows":
            return np.arange(row, row + n) >= self._threshold
        return key >= self._threshold

    def _count(
        self, counters: dict[str, CountedVocabulary], hashed: dict[str, HashedVocabulary]
    ) -> None:
        n_train = n_test = width = 0
        cache = self._cache

        def code_once(index: int, chunk: Chunk):
            # Each categorical column hashed once, here on the worker: its values become codes
            # of the counters (ids when hashed), counted below and kept by the cache.
            parts, chunk_width = {}, 0
            for name, column in chunk.categorical.items():
                ragged = isinstance(column, Ragged)
                values = column.values if ragged else column
                if ragged and len(column.slots):
                    chunk_width = max(chunk_width, int(column.slots.max()) + 1)
                if name in counters:
                    codes, rows_codes = counters[name].codes(values)
                    parts[name] = (codes, rows_codes, column.rows if ragged else None)
                if cache is None:
                    continue
                coded = codes[rows_codes] if name in counters else hashed[name].encode(values)
                chunk.categorical[name] = (
                    Ragged(coded, column.rows, column.slots) if ragged else coded
                )
            if cache is not None:
                chunk.coded = True
                cache.write(index, chunk)
            return parts, chunk_width

        for (parts, chunk_width), test in self._pass(code_once, numeric=cache is not None):
            tested = int(test.sum())
            n_test += tested
            n_train += len(test) - tested
            # The training rows' positions, once per chunk (None: every row); a bag's entries
            # by the rows they belong to.
            train = None if not test.any() else np.flatnonzero(~test)
            for name, (codes, rows_codes, rows) in parts.items():  # the training values only
                kept = train if train is None or rows is None else np.flatnonzero(~test[rows])
                counters[name].count(codes, rows_codes, kept)
            width = max(width, chunk_width)
        for split, rows in (("train", n_train), ("test", n_test)):
            if rows == 0:
                raise ValueError(
                    f"{self._layout.name}: the {split} split is empty ({self._split_text()}; "
                    f"files {[str(f) for f in self._layout.files]}). Expected rows in both splits."
                )
        self.n_train, self.n_test = n_train, n_test
        if cache is not None:
            cache.finish()
        if self._width is None and self.bags:
            self._width = max(width, 1)

    def _encoded(self, split: str) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        def encode(index: int, chunk: Chunk) -> tuple[dict[str, object], np.ndarray]:
            # Whole chunks encoded on the worker; the split's rows are kept below: NumPy
            # selections of ids, not copies of the raw strings.
            x = {}
            for name, vocabulary in self._vocabularies.items():
                # A cached chunk holds codes (ids when hashed): one gather, no hashing.
                to_ids = vocabulary.from_codes if chunk.coded else vocabulary.encode
                x[name] = _map_values(chunk.categorical[name], to_ids)
            for name in self.numeric:
                x[name] = _map_values(chunk.numeric[name], _float32)
            return x, chunk.y

        for (x, y), test in self._pass(encode):
            keep = test if split == "test" else ~test
            n = int(keep.sum())
            if n == 0:
                continue
            take = _rows_of(keep, n, self._width)
            yield {name: take(v) for name, v in x.items()}, take(y)

    def _temporal_boundary(self) -> tuple[str, object]:
        layout = self._layout
        rule = layout.temporal
        if rule == "files":
            if len(layout.files) < 2:
                raise ValueError(
                    f"A temporal split of {layout.name} needs several day files (day_0 .. day_N) "
                    f"to hold out the last. Received: {[str(f) for f in layout.files]}"
                )
            return rule, len(layout.files) - 1
        if rule == "rows":
            from keras_smelu.datasets._readers import iter_files

            n = sum(block.n_rows() for _, block in iter_files(layout.files, self._chunk_bytes))
            return rule, n - n_test_rows(n, layout.temporal_fraction)
        keys = lambda: (  # noqa: E731
            c.key for c in layout.chunks(self._chunk_bytes, workers=self._workers, keys_only=True)
        )
        if rule == "last_key":
            return rule, max((int(k.max()) for k in keys() if len(k)), default=0)
        return rule, _kth_largest(keys, self._fraction)

    def _rows(self, split: str) -> int | None:
        return self.n_train if split == "train" else self.n_test

    def _split_text(self) -> str:
        rule, threshold = self._rule, self._threshold
        if rule == "random":
            return "random over rows (each row by a seeded hash of its number)"
        if rule == "files":
            return "the last file is the test split"
        if rule == "rows":
            return f"temporal: the last {self._layout.temporal_fraction:.4g} of the rows"
        if rule == "last_key":
            return f"temporal: the latest day ({threshold}) is the test split"
        return f"temporal: ratings at or after timestamp {threshold} are the test split"


# --- helpers on chunks and batches ---


def _check_split(split: str) -> str:
    if split not in SPLIT_NAMES:
        raise ValueError(f"`split` must be one of {SPLIT_NAMES}. Received: split={split!r}")
    return split


def _check_batch_size(batch_size: int) -> int:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: {batch_size!r}")
    return int(batch_size)


def _map_values(column, function) -> object:
    """`function` of a column's values; a `Ragged` column keeps its rows and slots."""
    if isinstance(column, Ragged):
        return Ragged(function(column.values), column.rows, column.slots)
    return function(column)


def _float32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _rows_of(keep: np.ndarray, n: int, width: int | None):
    """A function `column -> the rows of `keep`` (a boolean mask with `n` true rows) of an array
    aligned with the chunk's rows; a `Ragged` column gives `(n, width)` zero-padded rows."""
    every = n == len(keep)
    # Indices once per chunk, then a gather per column: 4x faster than a mask per column.
    rows_kept = None if every else np.flatnonzero(keep)

    def take(column) -> np.ndarray:
        if isinstance(column, Ragged):
            new_row = np.cumsum(keep) - 1
            sel = keep[column.rows]
            out = np.zeros((n, width), dtype=column.values.dtype)
            rows, slots, values = new_row[column.rows[sel]], column.slots[sel], column.values[sel]
            fits = slots < width
            out[rows[fits], slots[fits]] = values[fits]
            return out
        return column if rows_kept is None else column.take(rows_kept, axis=0)

    return take


def _batches(chunks, batch_size: int, buffer: int, rng) -> Iterator[tuple[dict, np.ndarray]]:
    pool_x: dict[str, np.ndarray] | None = None
    pool_y = np.zeros(0, np.float32)
    for x, y in chunks:
        if pool_x is None:
            pool_x = x
            pool_y = y
        else:
            pool_x = {k: np.concatenate([pool_x[k], x[k]]) for k in x}
            pool_y = np.concatenate([pool_y, y])
        if rng is not None:
            order = rng.permutation(len(pool_y))
            pool_x, pool_y = {k: v[order] for k, v in pool_x.items()}, pool_y[order]
        ready = max(len(pool_y) - buffer, 0) // batch_size * batch_size
        for start in range(0, ready, batch_size):
            stop = start + batch_size
            yield {k: v[start:stop] for k, v in pool_x.items()}, pool_y[start:stop]
        pool_x, pool_y = {k: v[ready:] for k, v in pool_x.items()}, pool_y[ready:]
    if pool_x is None:
        return
    if rng is not None:
        order = rng.permutation(len(pool_y))
        pool_x, pool_y = {k: v[order] for k, v in pool_x.items()}, pool_y[order]
    for start in range(0, len(pool_y), batch_size):
        stop = start + batch_size
        yield {k: v[start:stop] for k, v in pool_x.items()}, pool_y[start:stop]


def _kth_largest(keys, fraction: float) -> int:
    """The `n_test_rows(n, fraction)`-th largest key, in two passes of fixed-size histograms."""
    counts: dict[int, int] = {}
    for k in keys():
        high, c = np.unique(k >> 16, return_counts=True)
        for h, m in zip(high.tolist(), c.tolist(), strict=True):
            counts[h] = counts.get(h, 0) + m
    n = sum(counts.values())
    k = n_test_rows(n, fraction)
    above = 0
    for high in sorted(counts, reverse=True):
        if above + counts[high] >= k:
            break
        above += counts[high]
    low = np.zeros(1 << 16, dtype=np.int64)
    for part in keys():
        low += np.bincount(part[(part >> 16) == high] & 0xFFFF, minlength=1 << 16)
    from_top = np.cumsum(low[::-1])
    position = int(np.searchsorted(from_top, k - above))  # k - above >= 1 lies in this bin
    return (high << 16) | ((1 << 16) - 1 - position)


# --- building ---


def open_stream(name: str, path: str | os.PathLike | None = None, **kwargs) -> StreamingDataset:
    """Opens a `StreamingDataset` by name (the `streaming=True` branch of `datasets.load`).

    Args:
        name: `"criteo"`, `"avazu"`, `"movielens"` (any release), `"movielens-100k"` or
            `"libsvm"`.
        path: a data file or folder; `None` looks under `$KERAS_SMELU_DATA` (not for libSVM).
        **kwargs: `split`, `test_fraction`, `seed`, `min_count`, `hash_buckets`,
            `chunk_bytes`, `cache_dir`, `workers`; MovieLens also `label`; libSVM also `task`,
            `test_path`, `max_features`.

    Returns:
        A `StreamingDataset`.
    """
    kwargs = dict(kwargs)
    if name in ("criteo", "avazu"):
        kwargs.setdefault("min_count", 2)
        layout = (criteo_layout if name == "criteo" else avazu_layout)(path)
    elif name in ("movielens", "movielens-100k"):
        from keras_smelu.datasets import _movielens

        folders = _movielens.FOLDERS if name == "movielens-100k" else MOVIELENS_FOLDERS
        layout = movielens_layout(path, label=kwargs.pop("label", "liked"), folders=folders)
        layout.name = name
    elif name == "libsvm":
        test_path = kwargs.pop("test_path", None)
        if kwargs.get("split", "random") != "random":
            raise ValueError(
                "libSVM rows carry no time: a temporal split is not available; pass "
                f"`test_path=` for a given test file. Received: split={kwargs['split']!r}"
            )
        layout = libsvm_layout(path, test_path, kwargs.pop("task", "binary"))
        kwargs["by_file"] = test_path is not None
    else:
        raise ValueError(
            "Streaming reads files: expected one of criteo, avazu, movielens, movielens-100k, "
            f"libsvm. Received: {name!r}"
        )
    return StreamingDataset(layout, **kwargs)
