"""Chunks of a pass processed on a few threads, handed out in file order.

Parsing a block (pyarrow's CSV reader), hashing its strings (pyarrow's `dictionary_encode`) and
encoding its ids (NumPy gathers) all release the GIL, so a small thread pool keeps every core
busy while the consumer batches the previous chunk. Results come back in the order of the
items, whatever the order the threads finish in, so every pass sees the same rows in the same
order for any number of workers. At most `workers + 1` items are in flight: memory stays
bounded by a few chunks.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_DEFAULT_WORKERS = 4
_worker = threading.local()


def check_workers(workers: int | None) -> int:
    """Validates `workers`; `None` is the usable cores, at most `MAX_DEFAULT_WORKERS`."""
    if workers is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, MAX_DEFAULT_WORKERS))
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"`workers` must be an integer >= 1 or None. Received: {workers!r}")
    return int(workers)


def in_worker() -> bool:
    """Whether the calling thread is one of `ordered_map`'s workers (which then leave the other
    cores to the other workers instead of starting threads of their own)."""
    return getattr(_worker, "active", False)


def _mark_worker() -> None:
    _worker.active = True


def ordered_map(function: Callable[[In], Out], items: Iterable[In], workers: int) -> Iterator[Out]:
    """`map(function, items)` on `workers` threads, results in the order of `items`.

    `items` is iterated in the calling thread, at most `workers + 1` ahead of the result being
    consumed. An exception raised for an item is raised when that item's result is reached. When
    the consumer stops early, items not yet started are dropped.

    Args:
        function: applied to every item, on a worker thread.
        items: the inputs, read lazily.
        workers: threads; 1 runs everything in the calling thread.

    Returns:
        An iterator of `function(item)`, in order.
    """
    if workers <= 1:
        yield from map(function, items)
        return
    pool = ThreadPoolExecutor(
        workers, thread_name_prefix="keras-smelu-chunks", initializer=_mark_worker
    )
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
