"""Parsed chunks kept on disk between passes: the text is parsed once, every later pass reads.

A `StreamingDataset` with `cache_dir` writes each chunk of its first pass (labels, numeric
features, time keys, and categorical columns as `int32` codes of the counting pass's tables,
or ids when hashed) into a folder of its own under `cache_dir`, one file per chunk. Later
passes (every epoch of every replica) read those files and map codes to ids with one gather,
instead of parsing and hashing the text again. Memory stays bounded by one chunk; the folder is
removed when the dataset is garbage collected or the process exits.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path


class ChunkCache:
    """Chunks written once, in order, then read back any number of times.

    Args:
        cache_dir: the folder to create the cache's own folder in (made if missing).
    """

    def __init__(self, cache_dir: str | os.PathLike):
        base = Path(cache_dir)
        try:
            base.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix="keras-smelu-chunks-", dir=base))
        except OSError as exc:
            raise ValueError(
                f"`cache_dir` must be a folder that can be written to. Received: "
                f"cache_dir={str(cache_dir)!r} ({exc.strerror})"
            ) from None
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)
        self._lock = threading.Lock()
        self._written: list[int] = []
        self._full: int | None = None  # the errno of a full disk, once one was met
        self.bytes = 0
        self.complete = False

    def write(self, index: int, chunk: object) -> None:
        """Stores chunk number `index` (any thread, any order); a full disk removes the partial
        cache and says where it was."""
        file = self.path / f"{index:07d}.pkl"
        try:
            with open(file, "wb") as f:
                pickle.dump(chunk, f, protocol=pickle.HIGHEST_PROTOCOL)
                size = f.tell()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._full = exc.errno
            self.remove()
            # A chunk written beside the one that filled the disk fails too (its folder is
            # gone): whichever the caller sees first must say why.
            if self._full is not None:
                raise OSError(
                    self._full,
                    f"The chunk cache ran out of disk space in {self.path.parent} after "
                    f"{self.chunks} chunks ({self.bytes / 2**20:.0f} MiB). Pass a `cache_dir` "
                    "on a disk with room for about 0.6x the data files, or `cache_dir=None` to "
                    "parse the files every pass.",
                ) from exc
            raise
        with self._lock:
            self._written.append(index)
            self.bytes += size

    @property
    def chunks(self) -> int:
        """The number of chunks written."""
        return len(self._written)

    def finish(self) -> None:
        """Marks the first pass as whole: from now on, passes read the cache."""
        self._written.sort()
        self.complete = True

    def readers(self) -> Iterator[Callable[[], object]]:
        """One function per chunk, in order, that reads it back (on any thread)."""
        for index in self._written:
            yield partial(_read, self.path / f"{index:07d}.pkl")

    def remove(self) -> None:
        """Deletes the cache's folder now (also done at garbage collection and exit)."""
        self.complete = False
        self._remove()


def _read(file: Path) -> object:
    with open(file, "rb") as f:
        return pickle.load(f)
