"""Bounded-memory categorical vocabularies for streamed data: counted, or hashed into buckets.

Both map a column of raw values (a `pyarrow` string or int64 array) to `int32` ids, with id 0
for missing values (null or `""`) and for values without an id of their own.

- `CountedVocabulary` counts the training values chunk by chunk (pyarrow's hash-based
  `dictionary_encode`, codes counted by `np.bincount`, merged by `group_by`), then keeps those
  seen at least `min_count` times, most frequent first, ties by value: the same ids as the
  in-memory loaders. Its memory grows with the number of distinct values, not with the number
  of rows.
- `HashedVocabulary` needs no counting pass and a fixed memory: `id = 1 + h(value) mod
  (hash_buckets - 1)` with a fixed 64-bit hash (the value itself for an integer or a string of
  at most 8 bytes, FNV-1a over the UTF-8 bytes of a longer string, then a SplitMix64 mix), so
  ids are the same in every process.

Lookups go through 64-bit keys of the values (exact for integers and for strings of at most
8 bytes; FNV-1a for longer strings, whose collisions among a vocabulary's values are detected
and refused).
"""

from __future__ import annotations

import numpy as np

from keras_smelu.datasets._readers import pyarrow_modules

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MERGE_AT = 1 << 17  # values pending (at least) before a merge into the running counts
_DENSE_LIMIT = 1 << 22  # integer values below this are counted and looked up in arrays


def _flat(values):
    pa, _, _ = pyarrow_modules()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


def small_ints(values) -> tuple[np.ndarray, np.ndarray | None] | None:
    """`(int64 values, missing mask or None)` when `values` are integers in `[0, 2**22)` (ids
    such as MovieLens users: counted and looked up in arrays, no hashing), else None."""
    pa, _, _ = pyarrow_modules()
    values = _flat(values)
    if not pa.types.is_integer(values.type):
        return None
    ints = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if len(ints) and (ints.min() < 0 or ints.max() >= _DENSE_LIMIT):
        return None
    missing = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    return ints, missing


def dictionary_encoded(values):
    """A string column as a pyarrow `DictionaryArray` (the chunk's distinct values and codes:
    the form `dictionary` returns without hashing again); integer columns stay as they are."""
    pa, _, pc = pyarrow_modules()
    values = _flat(values)
    if pa.types.is_integer(values.type) or pa.types.is_dictionary(values.type):
        return values
    return pc.dictionary_encode(values, null_encoding="mask")


def dictionary(values) -> tuple[object, np.ndarray]:
    """`(distinct values, index)` of a pyarrow array: `values[i]` is `distinct[index[i]]`, and
    `index[i] == len(distinct)` for a null."""
    pa, _, pc = pyarrow_modules()
    encoded = _flat(values)
    if not pa.types.is_dictionary(encoded.type):
        encoded = pc.dictionary_encode(encoded, null_encoding="mask")
    distinct = encoded.dictionary
    index = encoded.indices
    if index.null_count:
        index = index.fill_null(len(distinct))
    index = index.to_numpy(zero_copy_only=False)
    return distinct, index.astype(np.intp, copy=False)


def keys64(values) -> tuple[np.ndarray, np.ndarray]:
    """`(uint64 keys, missing mask)` of a pyarrow string or integer array."""
    pa, _, _ = pyarrow_modules()
    values = _flat(values)
    n = len(values)
    if values.null_count:
        missing = values.is_null().to_numpy(zero_copy_only=False)
    else:
        missing = np.zeros(n, dtype=bool)
    if pa.types.is_integer(values.type):
        ints = values.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return ints.astype(np.int64, copy=False).view(np.uint64), missing
    values = values.cast(pa.string())
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[values.offset : values.offset + n + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets)
    missing |= lengths == 0  # "" (a null's slot has length 0 too)
    return _fnv1a(data, starts, lengths), missing


def _fnv1a(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """64-bit keys of the byte strings `data[starts[i] : starts[i] + lengths[i]]`.

    A string of at most 8 bytes is its own key (its bytes, zero-padded, read as an integer:
    exact); a longer one is hashed with FNV-1a 64.
    """
    n = len(starts)
    width = int(lengths.max(initial=0))
    if width == 0:
        return np.zeros(n, dtype=np.uint64)
    present = lengths > 0
    if width <= 8 and np.all(lengths[present] == width):  # e.g. Criteo: all 8 hex digits
        text = np.zeros((int(present.sum()), 8), dtype=np.uint8)
        first = int(starts[present][0])  # the present strings are contiguous in `data`
        text[:, :width] = data[first : first + len(text) * width].reshape(-1, width)
        keys = np.zeros(n, dtype=np.uint64)
        keys[present] = text.view(np.uint64).ravel()
        return keys
    position = np.arange(8)
    text = data[np.minimum(starts[:, None] + position, len(data) - 1)]
    text[position >= lengths[:, None]] = 0
    keys = np.ascontiguousarray(text).view(np.uint64).ravel()
    long = np.flatnonzero(lengths > 8)
    if len(long):
        starts, lengths = starts[long], lengths[long]
        h = np.full(len(long), _FNV_OFFSET, dtype=np.uint64)
        for j in range(int(lengths.max())):  # only the strings that still have a byte at j
            live = np.flatnonzero(lengths > j)
            h[live] = (h[live] ^ data[starts[live] + j]) * _FNV_PRIME
        keys[long] = h
    return keys


def mix64(keys: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: spreads nearby integers over all 64 bits."""
    z = keys.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


class HashedVocabulary:
    """Ids from a fixed hash into `hash_buckets - 1` buckets, plus id 0 for missing values.

    Args:
        hash_buckets: the vocabulary size, id 0 included (at least 2).
    """

    def __init__(self, hash_buckets: int):
        self.size = int(hash_buckets)

    def encode(self, values) -> np.ndarray:
        """Maps raw values to `int32` ids in `[0, size)`."""
        pa, _, _ = pyarrow_modules()
        if pa.types.is_dictionary(_flat(values).type):  # hash each distinct value once
            distinct, index = dictionary(values)
            ids = np.zeros(len(distinct) + 1, dtype=np.int32)  # the last slot: null values
            ids[:-1] = self.encode(distinct)
            return ids[index]
        keys, missing = keys64(values)
        ids = mix64(keys) % np.uint64(self.size - 1) + np.uint64(1)
        return np.where(missing, 0, ids).astype(np.int32)


class Vocabulary:
    """Ids `1..len(values)` for `values` (a pyarrow array, in id order); others map to 0."""

    def __init__(self, values):
        self.values = values
        self.size = len(values) + 1
        keys, _ = keys64(values)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        if len(keys) and np.any(self._sorted[1:] == self._sorted[:-1]):
            raise ValueError(
                "Two distinct categorical values share a 64-bit key; use `hash_buckets` for "
                f"this column. Received {len(values)} values."
            )
        self._table = None  # small integer values: id by value
        small = small_ints(values) if len(values) else None
        if small is not None:
            self._table = np.zeros(int(small[0].max()) + 1, dtype=np.int32)
            self._table[small[0]] = np.arange(1, len(values) + 1, dtype=np.int32)

    def encode(self, values) -> np.ndarray:
        """Maps raw values to `int32` ids in `[0, size)`."""
        if self.size == 1:
            return np.zeros(len(values), dtype=np.int32)
        small = None if self._table is None else small_ints(values)
        if small is not None:
            ints, missing = small
            inside = ints < len(self._table)
            ids = np.where(inside, self._table[np.where(inside, ints, 0)], 0).astype(np.int32)
            if missing is not None:
                ids[missing] = 0
            return ids
        # Look up each distinct value of the chunk once (popular values repeat), then gather.
        distinct, index = dictionary(values)
        ids = np.zeros(len(distinct) + 1, dtype=np.int32)  # the last slot: null values
        ids[:-1] = self._lookup(distinct)
        return ids[index]

    def _lookup(self, values) -> np.ndarray:
        if self.size - 1 <= len(values):  # a small vocabulary: pyarrow's hash lookup is cheaper
            _, _, pc = pyarrow_modules()
            index = pc.index_in(values, value_set=self.values)
            return (index.fill_null(-1).to_numpy(zero_copy_only=False) + 1).astype(np.int32)
        keys, missing = keys64(values)
        pos = np.minimum(np.searchsorted(self._sorted, keys), self.size - 2)
        found = (self._sorted[pos] == keys) & ~missing
        return np.where(found, self._order[pos] + 1, 0).astype(np.int32)


class CountedVocabulary:
    """Counts one column's training values chunk by chunk; `finish` builds the `Vocabulary`."""

    def __init__(self):
        self._parts: list[tuple[object, object]] = []
        self._pending = 0
        self._distinct = 0
        self._dense: np.ndarray | None = np.zeros(0, dtype=np.int64)  # by value; None: off
        self._type = None

    def add(self, values, rows: np.ndarray | None = None) -> None:
        """Counts the values of one chunk, or of its `rows` (a boolean mask); missing values
        are not counted."""
        pa, _, _ = pyarrow_modules()
        values = _flat(values)
        self._type = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        small = None if self._dense is None else small_ints(values)
        if small is not None:
            ints, missing = small
            if missing is not None:
                rows = ~missing if rows is None else rows & ~missing
            counts = np.bincount(ints if rows is None else ints[rows], minlength=len(self._dense))
            counts[: len(self._dense)] += self._dense
            self._dense = counts
            return
        self._flush_dense()
        self._dense = None  # a value outside the dense range: hash from now on
        # Hash the whole chunk once and count its codes: no copy of the selected strings. Values
        # of test rows only are dropped here (memory); "" is dropped by `finish`.
        value, index = dictionary(values)
        if rows is not None:
            index = index[rows]
        count = np.bincount(index, minlength=len(value) + 1)[:-1]
        seen = count > 0
        if not seen.all():
            value, count = value.filter(pa.array(seen)), count[seen]
        self._parts.append((value, pa.array(count)))
        self._pending += len(value)
        # Pending parts up to half the merged counts: a lower peak than up to all of them
        # (10M Criteo rows: about 45 MiB less), at the same speed.
        if self._pending > max(self._distinct // 2, _MERGE_AT):
            self._merge()

    def _flush_dense(self) -> None:
        pa, _, _ = pyarrow_modules()
        if self._dense is not None and self._dense.any():
            seen = np.flatnonzero(self._dense)
            self._parts.append((pa.array(seen).cast(self._type), pa.array(self._dense[seen])))
            self._pending += len(seen)
        self._dense = np.zeros(0, dtype=np.int64) if self._dense is not None else None

    def _merge(self):
        pa, _, _ = pyarrow_modules()
        self._flush_dense()
        if not self._parts:
            return pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
        table = pa.table(
            {
                "value": pa.concat_arrays([v for v, _ in self._parts]),
                "count": pa.concat_arrays([c for _, c in self._parts]),
            }
        )
        if len(self._parts) > 1:
            table = table.group_by("value", use_threads=False).aggregate([("count", "sum")])
            table = table.rename_columns(["value", "count"])
        self._parts = [
            (table.column("value").combine_chunks(), table.column("count").combine_chunks())
        ]
        self._distinct, self._pending = len(table), 0
        return table

    def finish(self, min_count: int) -> Vocabulary:
        """The values seen at least `min_count` times, most frequent first, ties by value."""
        pa, _, pc = pyarrow_modules()
        table = self._merge()
        keep = pc.greater_equal(table.column("count"), min_count)
        if pa.types.is_string(table.column("value").type):
            keep = pc.and_(keep, pc.not_equal(table.column("value"), ""))  # "": missing
        table = table.filter(keep)
        order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("value", "ascending")])
        return Vocabulary(table.column("value").take(order).combine_chunks())
