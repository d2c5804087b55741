"""Bounded-memory categorical vocabularies for streamed data: counted, or hashed into buckets.

Both map a column of raw values (a `pyarrow` string or integer array) to `int32` ids, with id 0
for missing values (null or `""`) and for values without an id of their own.

- `CountedVocabulary` counts the training values chunk by chunk. Each chunk's distinct values
  (pyarrow's hash-based `dictionary_encode`) get codes of the whole file from one `KeyTable`
  per column, so the counts add up in an array by code. `finish` keeps the values seen at
  least `min_count` times, most frequent first, ties by value: the same ids as the in-memory
  loaders. Memory grows with the number of distinct values, not with the number of rows. A
  chunk kept as codes (the chunk cache) is encoded by one gather (`Vocabulary.from_codes`).
- `HashedVocabulary` needs no counting pass and a fixed memory: `id = 1 + h(value) mod
  (hash_buckets - 1)` with a fixed 64-bit hash of the value's key (below), then a SplitMix64
  mix, so ids are the same in every process.

Values are looked up by 64-bit keys: an integer is its own key, and so is a string of at most
8 bytes (its bytes, zero-padded); a longer string is hashed with FNV-1a. Trailing NUL bytes are
not part of a value, as in the in-memory loaders' NumPy strings. Two distinct values with one
key would merge silently, so every hashed key also carries a second, independent hash, and a
value whose key is taken by another value is refused.
"""

from __future__ import annotations

import threading

import numpy as np

from keras_smelu.datasets._key_table import KeyTable
from keras_smelu.datasets._readers import pyarrow_modules

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_CHECK_MULTIPLIER = np.uint64(0xD6E8FEB86659FD93)  # an odd constant: the check's polynomial
# Integers in [0, _DENSE) (ids such as MovieLens users) are their own codes: counted in an array
# by value, no hashing. Other integers get table codes from _DENSE up.
_DENSE = 1 << 22


def _flat(values):
    pa, _, _ = pyarrow_modules()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


def small_ints(values) -> tuple[np.ndarray, np.ndarray | None] | None:
    """`(int64 values, missing mask or None)` when `values` are integers in `[0, 2**22)`,
    else None."""
    pa, _, _ = pyarrow_modules()
    values = _flat(values)
    if not pa.types.is_integer(values.type):
        return None
    ints = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if len(ints) and (ints.min() < 0 or ints.max() >= _DENSE):
        return None
    missing = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    return ints, missing


def _offset(arrow_type) -> int:
    """Where a column's table codes start: after the dense integers in an integer column."""
    pa, _, _ = pyarrow_modules()
    return _DENSE if pa.types.is_integer(arrow_type) else 0


def dictionary(values) -> tuple[object, np.ndarray]:
    """`(distinct values, index)` of a pyarrow array: `values[i]` is `distinct[index[i]]`
    (`int32`); a null is one of the distinct values."""
    pa, _, pc = pyarrow_modules()
    values = _flat(values)
    if _is_id8(values.type):  # hashed as 64-bit integers: cheaper than as bytes
        ints = pc.dictionary_encode(_as_uint64(values), null_encoding="encode")
        distinct = ints.dictionary
        distinct = pa.Array.from_buffers(
            values.type, len(distinct), distinct.buffers(), distinct.null_count, distinct.offset
        )
        index = ints.indices
    else:
        encoded = pc.dictionary_encode(values, null_encoding="encode")
        distinct, index = encoded.dictionary, encoded.indices
    return distinct, index.to_numpy(zero_copy_only=False)


def _is_id8(arrow_type) -> bool:
    pa, _, _ = pyarrow_modules()
    return pa.types.is_fixed_size_binary(arrow_type) and arrow_type.byte_width == 8


def _as_uint64(values):
    """An 8-byte binary array seen as `uint64` (the same buffers, no copy)."""
    pa, _, _ = pyarrow_modules()
    return pa.Array.from_buffers(
        pa.uint64(), len(values), values.buffers(), values.null_count, values.offset
    )


def keys64(values) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`(uint64 keys, missing mask, checks or None)` of a pyarrow string or integer array.

    `checks` holds, for each string whose key is a hash, a second and independent 64-bit hash
    (odd, so never 0), and 0 for an exact key; None when every key is exact.
    """
    pa, _, _ = pyarrow_modules()
    values = _flat(values)
    n = len(values)
    if values.null_count:
        missing = values.is_null().to_numpy(zero_copy_only=False)
    else:
        missing = np.zeros(n, dtype=bool)
    if pa.types.is_integer(values.type):
        ints = values.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return ints.astype(np.int64, copy=False).view(np.uint64), missing, None
    if _is_id8(values.type):  # its own key, as a string of 8 bytes would be
        # The data buffer as is: a null's slot holds no key, and `missing` marks it.
        data = values.buffers()[1]
        keys = np.frombuffer(data or b"", dtype=np.uint64)[values.offset :][:n]
        return keys, missing | (keys == 0), None  # 8 NUL bytes: "" once NULs are dropped
    data, starts, lengths = _string_buffers(values)
    missing |= lengths == 0  # "" (a null's slot has length 0 too)
    keys, checks = _string_keys(data, starts, lengths)
    return keys, missing, checks


def _string_buffers(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(bytes, starts, lengths)` of a pyarrow string array, without copying the text.

    Trailing NUL bytes are not part of a value, as in the in-memory loaders' NumPy strings
    (`"ab\\0"` is `"ab"`, `"\\0"` is missing): both paths give the same ids.
    """
    pa, _, _ = pyarrow_modules()
    n = len(values)
    values = values.cast(pa.string())
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[values.offset : values.offset + n + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets)
    ends_in_nul = np.flatnonzero(lengths > 0)
    while len(ends_in_nul):  # rare: one pass per trailing NUL
        ends_in_nul = ends_in_nul[data[starts[ends_in_nul] + lengths[ends_in_nul] - 1] == 0]
        lengths[ends_in_nul] -= 1
        ends_in_nul = ends_in_nul[lengths[ends_in_nul] > 0]
    return data, starts, lengths


def _string_keys(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """64-bit keys of the byte strings `data[starts[i] : starts[i] + lengths[i]]` (none ending
    in NUL), and the checks of the hashed ones (None: none is hashed).

    A string of at most 8 bytes is its own key (its bytes, zero-padded, read as an integer:
    exact); a longer one is hashed with FNV-1a 64, and checked by a polynomial hash with another
    multiplier, mixed with its length (independent of FNV-1a).
    """
    n = len(starts)
    width = int(lengths.max(initial=0))
    if width == 0:
        return np.zeros(n, dtype=np.uint64), None
    present = np.flatnonzero(lengths > 0)
    first = int(starts[present[0]])
    if (  # e.g. Criteo: all 8 hex digits, one after the other in `data`
        width <= 8
        and np.array_equal(starts[present], first + width * np.arange(len(present)))
        and np.all(lengths[present] == width)
    ):
        text = np.zeros((len(present), 8), dtype=np.uint8)
        text[:, :width] = data[first : first + len(present) * width].reshape(-1, width)
        keys = np.zeros(n, dtype=np.uint64)
        keys[present] = text.view(np.uint64).ravel()
        return keys, None
    position = np.arange(8)
    text = data[np.minimum(starts[:, None] + position, len(data) - 1)]
    text[position >= lengths[:, None]] = 0
    keys = np.ascontiguousarray(text).view(np.uint64).ravel()
    long = np.flatnonzero(lengths > 8)
    if not len(long):
        return keys, None
    starts, lengths = starts[long], lengths[long]
    keys[long] = _byte_hash(data, starts, lengths, _FNV_OFFSET, lambda h, b: (h ^ b) * _FNV_PRIME)
    check = _byte_hash(
        data, starts, lengths, lengths, lambda h, b: (h + b + np.uint64(1)) * _CHECK_MULTIPLIER
    )
    checks = np.zeros(n, dtype=np.uint64)
    checks[long] = mix64(check ^ lengths.astype(np.uint64)) | np.uint64(1)
    return keys, checks


def _byte_hash(data, starts, lengths, first, step) -> np.ndarray:
    """`h = step(h, byte)` over each byte string from `h = first`, vectorised over the strings
    (a loop over byte positions, each step only on the strings that still have a byte there)."""
    h = np.zeros(len(starts), dtype=np.uint64) + np.asarray(first, dtype=np.uint64)
    for j in range(int(lengths.max(initial=0))):
        live = np.flatnonzero(lengths > j)
        h[live] = step(h[live], data[starts[live] + j])
    return h


def _collision_error(values, column: str | None = None) -> ValueError:
    where = f"column {column!r}" if column else "this column"
    return ValueError(
        f"Two distinct categorical values share a 64-bit key; use `hash_buckets` for {where}. "
        f"Received values such as {values[:3].to_pylist()!r}."
    )


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
        keys, missing, _ = keys64(values)
        ids = mix64(keys) % np.uint64(self.size - 1) + np.uint64(1)
        return np.where(missing, 0, ids).astype(np.int32)

    def from_codes(self, codes: np.ndarray) -> np.ndarray:
        """Ids of a chunk kept as codes: a hashed vocabulary keeps the ids themselves."""
        return codes


class Vocabulary:
    """Ids `1..len(values)` for `values` (a pyarrow array, in id order); others map to 0.

    Args:
        values: the vocabulary's values, in id order.
        codes: their codes in the `CountedVocabulary` that counted them, for `from_codes`.
        n_codes: the number of table codes that counter gave.
        n_dense: the size of that counter's dense range (integers seen there are below it).
        keys: the values' keys, when that counter has them (distinct, checked there).
    """

    def __init__(
        self,
        values,
        codes: np.ndarray | None = None,
        n_codes: int = 0,
        n_dense: int = 0,
        keys: np.ndarray | None = None,
    ):
        self.values = values
        self.size = len(values) + 1
        if keys is None:
            keys, _, _ = keys64(values)
            if len(np.unique(keys)) < len(keys):
                raise _collision_error(values)
        ids = np.arange(1, len(keys) + 1, dtype=np.int32)
        self._table = KeyTable()
        self._ids = np.zeros(len(keys) + 1, dtype=np.int32)  # by table code; last: not found
        self._ids[self._table.add(keys)] = ids
        self._offset = _offset(values.type)
        # Ids by value of the small integers (their own codes); the last slot: 0.
        small = np.zeros(len(keys), dtype=bool)
        if self._offset:
            ints = keys.view(np.int64)
            small = (ints >= 0) & (ints < _DENSE)
            n_dense = max(n_dense, int(ints[small].max(initial=-1)) + 1)
        self._dense_ids = np.zeros(n_dense + 1, dtype=np.int32)
        if small.any():
            self._dense_ids[keys.view(np.int64)[small]] = ids[small]
        # Ids by table code of the counter; the last slot serves code -1 (a missing value).
        self._table_ids = np.zeros(n_codes + 1, dtype=np.int32)
        if codes is not None:
            table = codes >= self._offset
            self._table_ids[codes[table] - self._offset] = ids[table]

    def encode(self, values) -> np.ndarray:
        """Maps raw values to `int32` ids in `[0, size)`."""
        if self.size == 1:
            return np.zeros(len(values), dtype=np.int32)
        small = small_ints(values) if self._offset else None
        if small is not None:  # looked up by value
            ints, missing = small
            ids = self._dense_ids[np.minimum(ints, len(self._dense_ids) - 1)]
            if missing is not None:
                ids[missing] = 0
            return ids
        # Look up each distinct value of the chunk once (popular values repeat), then gather.
        # The counter coded every value of the files and refused shared keys: a key found here
        # is its value's.
        distinct, index = dictionary(values)
        keys, missing, _ = keys64(distinct)
        code = self._table.lookup(keys)
        code[missing] = -1
        return self._ids[code][index]

    def from_codes(self, codes: np.ndarray) -> np.ndarray:
        """Ids of values given as codes of the counter that built this vocabulary."""
        if not self._offset:
            return self._table_ids[codes]
        dense = codes < self._offset  # small integers, and -1 (missing): the last slot, 0
        if dense.all():
            return self._dense_ids[codes]
        return np.where(
            dense,
            self._dense_ids[np.where(dense, codes, -1)],
            self._table_ids[np.where(dense, -1, codes - self._offset)],
        )


class CountedVocabulary:
    """Counts one column's training values chunk by chunk; `finish` builds the `Vocabulary`.

    `codes` may run on several threads at once (it holds a lock while it adds values); `count`
    and `finish` run on one.

    Args:
        name: the column's name, for errors.
    """

    def __init__(self, name: str | None = None):
        self.name = name
        self._table = KeyTable()
        self._counts = np.zeros(0, dtype=np.int64)  # by table code
        self._dense = np.zeros(0, dtype=np.int64)  # by value of the small integers
        self._dense_top = 0  # above every small integer coded (test rows' too)
        self._checks: np.ndarray | None = None  # by code, once a hashed key is met
        self._hashed: list[tuple[np.ndarray, object]] = []  # (codes, values) of hashed keys
        self._type = None
        self._lock = threading.Lock()

    def codes(self, values) -> tuple[np.ndarray, np.ndarray]:
        """`(codes, index)` of a chunk's values: `codes[index[i]]` is row `i`'s code (-1 for a
        missing value), so `codes[index]` is the chunk as codes. Adds new values."""
        pa, _, _ = pyarrow_modules()
        values = _flat(values)
        self._type = values.type
        small = small_ints(values)
        if small is not None:  # their own codes: the chunk's "distinct values" are 0..max
            ints, missing = small
            top = int(ints.max(initial=-1)) + 1
            with self._lock:
                self._dense_top = max(self._dense_top, top)
            codes = np.arange(top + 1, dtype=np.int32)
            codes[top] = -1  # the slot of missing values
            return codes, ints if missing is None else np.where(missing, top, ints)
        distinct, index = dictionary(values)
        keys, missing, checks = keys64(distinct)
        codes = np.full(len(distinct), -1, dtype=np.int32)
        present = np.flatnonzero(~missing)
        offset = _offset(distinct.type)
        if offset:  # small integers among larger ones: still their own codes
            ints = keys.view(np.int64)[present]
            dense = (ints >= 0) & (ints < _DENSE)
            codes[present[dense]] = ints[dense]
            present = present[~dense]
            with self._lock:
                self._dense_top = max(self._dense_top, int(ints[dense].max(initial=-1)) + 1)
        with self._lock:
            first_new = len(self._table)
            codes[present] = offset + self._table.add(keys[present])
            if checks is not None or self._checks is not None:
                self._check(distinct, codes, checks, present, first_new)
        return codes, index

    def _check(self, distinct, codes, checks, present, first_new) -> None:
        """Refuses a value whose key belongs to another value; keeps the hashed values (their
        trailing NULs dropped, as their keys drop them)."""
        pa, _, pc = pyarrow_modules()
        check = np.zeros(len(codes), np.uint64) if checks is None else checks
        if self._checks is None:
            self._checks = np.zeros(0, dtype=np.uint64)  # codes so far: exact keys
        if len(self._checks) < len(self._table):
            self._checks = np.concatenate(
                [self._checks, np.zeros(2 * len(self._table) - len(self._checks), np.uint64)]
            )
        new = present[codes[present] >= first_new]
        self._checks[codes[new]] = check[new]
        clash = present[self._checks[codes[present]] != check[present]]
        if len(clash):
            raise _collision_error(distinct.take(pa.array(clash)), self.name)
        if checks is not None:
            kept = new[checks[new] != 0]
            kept = kept[np.unique(codes[kept], return_index=True)[1]]
            values = distinct.take(pa.array(kept)).cast(pa.string())
            self._hashed.append((codes[kept], pc.utf8_rtrim(values, characters="\x00")))

    def count(self, codes: np.ndarray, index: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Counts a chunk given as `codes(values)`, or its `rows` (a boolean mask or
        positions)."""
        count = np.bincount(index if rows is None else index[rows], minlength=len(codes))
        seen = np.flatnonzero((count > 0) & (codes >= 0))
        offset = _offset(self._type)
        dense = codes[seen] < offset
        self._dense = _added(self._dense, codes[seen[dense]], count[seen[dense]], _DENSE)
        self._counts = _added(self._counts, codes[seen[~dense]] - offset, count[seen[~dense]])

    def add(self, values, rows: np.ndarray | None = None) -> None:
        """Counts the values of one chunk, or of its `rows` (a boolean mask); missing values
        are not counted."""
        self.count(*self.codes(values), rows)

    def finish(self, min_count: int) -> Vocabulary:
        """The values seen at least `min_count` times, most frequent first, ties by value."""
        pa, _, pc = pyarrow_modules()
        n = len(self._table)
        counts = np.zeros(n, dtype=np.int64)
        counts[: min(n, len(self._counts))] = self._counts[:n]
        table_codes = np.flatnonzero(counts >= max(min_count, 1))
        small = np.flatnonzero(self._dense >= max(min_count, 1))
        offset = _offset(self._type) if self._type is not None else 0
        keys = np.concatenate([small.view(np.uint64), self._table.keys()[table_codes]])
        table = pa.table(
            {
                "value": self._values(small, table_codes, keys[len(small) :]),
                "count": np.concatenate([self._dense[small], counts[table_codes]]),
                "code": np.concatenate([small, offset + table_codes]).astype(np.int32),
            }
        )
        order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("value", "ascending")])
        table = table.take(order)
        return Vocabulary(
            table.column("value").combine_chunks(),
            table.column("code").to_numpy(),
            n_codes=n,
            n_dense=self._dense_top,
            keys=keys[order.to_numpy()],
        )

    def _values(self, small: np.ndarray, codes: np.ndarray, keys: np.ndarray):
        """The small integers `small`, then the values of table `codes` (in that order) from
        their `keys`, or kept (hashed)."""
        pa, _, pc = pyarrow_modules()
        if self._type is None:
            return pa.array([], pa.string())
        if pa.types.is_integer(self._type):
            return pa.array(np.concatenate([small, keys.view(np.int64)])).cast(self._type)
        hashed_codes, hashed_values = self._hashed_values()
        position = np.full(len(self._table), -1, dtype=np.int64)
        position[codes] = np.arange(len(codes))
        wanted = np.flatnonzero(position[hashed_codes] >= 0)
        at = position[hashed_codes[wanted]]  # where the kept hashed values go
        text = keys.view(np.uint8).reshape(-1, 8)  # the exact keys' bytes, zero-padded
        filled = text != 0
        lengths = np.where(filled.any(axis=1), 8 - np.argmax(filled[:, ::-1], axis=1), 0)
        lengths[at] = 0  # a hashed key's bytes are no text: its value is filled in below
        offsets = np.zeros(len(codes) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        data = np.ascontiguousarray(text[np.arange(8) < lengths[:, None]])
        values = pa.StringArray.from_buffers(len(codes), pa.py_buffer(offsets), pa.py_buffer(data))
        if not len(at):
            return values
        where = np.zeros(len(codes), dtype=bool)
        where[at] = True
        order = np.argsort(at)
        return pc.replace_with_mask(
            values, pa.array(where), hashed_values.take(pa.array(wanted[order]))
        )

    def _hashed_values(self) -> tuple[np.ndarray, object]:
        """`(codes, values)` of every value with a hashed key."""
        pa, _, _ = pyarrow_modules()
        if not self._hashed:
            return np.zeros(0, dtype=np.int32), pa.array([], pa.string())
        return (
            np.concatenate([c for c, _ in self._hashed]),
            pa.concat_arrays([v for _, v in self._hashed]),
        )


def _added(
    counts: np.ndarray, where: np.ndarray, amount: np.ndarray, limit: int | None = None
) -> np.ndarray:
    """`counts` with `amount` added at the positions `where` (repeats add up: raw values that
    differ in trailing NULs share a code), grown to fit them (to twice its size at least,
    within `limit`: few copies as codes grow)."""
    if not len(where):
        return counts
    needed = int(where.max()) + 1
    if needed > len(counts):
        size = max(needed, min(2 * len(counts), limit or 2 * len(counts)))
        grown = np.zeros(size, dtype=np.int64)
        grown[: len(counts)] = counts
        counts = grown
    np.add.at(counts, where, amount)
    return counts
