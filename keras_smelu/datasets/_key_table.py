"""`KeyTable`: a hash table from 64-bit keys to dense codes, vectorised with NumPy.

The counting pass keeps one per categorical column: every chunk's distinct values become codes
of the whole file (so counts add up in an array, without merges), and a cached chunk keeps its
rows as codes (so a later epoch maps them to ids with one gather, without hashing again).
"""

from __future__ import annotations

import numpy as np

_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads keys over slots
_MIN_BITS = 14  # 16K slots (192 KiB): a column's first chunks fit without doubling


class KeyTable:
    """Codes `0..len(table) - 1` for distinct `uint64` keys, in the order they were added.

    Open addressing with linear probing, at most half full (about 1.5 probes per lookup). A
    lookup or an insertion handles a whole array of keys at once: each round probes one slot for
    every key still looking, so the Python loop runs once per probe, not once per key.
    """

    def __init__(self):
        self._allocate(_MIN_BITS)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _allocate(self, bits: int) -> None:
        self._bits = bits
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._slot_keys = np.zeros(1 << bits, dtype=np.uint64)
        self._slot_codes = np.full(1 << bits, -1, dtype=np.int32)  # -1: an empty slot

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _FIBONACCI) >> self._shift).astype(np.intp)

    def keys(self) -> np.ndarray:
        """The keys in code order."""
        full = self._slot_codes >= 0
        keys = np.empty(self._size, dtype=np.uint64)
        keys[self._slot_codes[full]] = self._slot_keys[full]
        return keys

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The `int32` code of each key, or -1 for a key not in the table."""
        return self._probe(keys, add=False)

    def add(self, keys: np.ndarray) -> np.ndarray:
        """The `int32` code of each key, adding the keys not in the table (a key repeated in
        `keys` gets one code)."""
        while 2 * (self._size + len(keys)) > len(self._slot_codes):
            self._grow()
        return self._probe(keys, add=True)

    def _probe(self, keys: np.ndarray, add: bool) -> np.ndarray:
        codes = np.full(len(keys), -1, dtype=np.int32)
        looking = np.arange(len(keys))
        slot = self._home(keys)
        while len(looking):
            code = self._slot_codes[slot]
            hit = (code >= 0) & (self._slot_keys[slot] == keys[looking])
            codes[looking[hit]] = code[hit]
            on = (code >= 0) & ~hit  # a full slot of another key: probe the next one
            if add:
                # An empty slot ends the search: the key is new and takes it. Keys that meet at
                # one empty slot all write their mark there; one write lands, the others probe on.
                empty = np.flatnonzero(code < 0)
                mark = -2 - looking[empty]
                self._slot_codes[slot[empty]] = mark
                lost = self._slot_codes[slot[empty]] != mark
                won = empty[~lost]
                fresh = np.arange(self._size, self._size + len(won), dtype=np.int32)
                self._size += len(won)
                self._slot_codes[slot[won]] = fresh
                self._slot_keys[slot[won]] = keys[looking[won]]
                codes[looking[won]] = fresh
                # A repeat of the key that took the slot has its code; others probe on.
                lost = empty[lost]
                repeat = self._slot_keys[slot[lost]] == keys[looking[lost]]
                codes[looking[lost[repeat]]] = self._slot_codes[slot[lost[repeat]]]
                on[lost[~repeat]] = True
            looking, slot = looking[on], (slot[on] + 1) & self._mask
        return codes

    def _grow(self) -> None:
        """Doubles the slots; every key keeps its code."""
        keys = self.keys()
        self._allocate(self._bits + 1)
        placing = np.arange(len(keys))
        slot = self._home(keys)
        while len(placing):
            free = np.flatnonzero(self._slot_codes[slot] < 0)
            self._slot_codes[slot[free]] = placing[free]  # as in `add`: one write lands
            won = free[self._slot_codes[slot[free]] == placing[free]]
            self._slot_keys[slot[won]] = keys[placing[won]]
            on = np.ones(len(placing), dtype=bool)
            on[won] = False
            placing, slot = placing[on], (slot[on] + 1) & self._mask
