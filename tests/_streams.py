"""A tiny streamed click log shared by the streaming replica tests."""

from __future__ import annotations

from pathlib import Path

from keras_smelu import datasets

ROWS, BATCH = 700, 64


def small_click_stream(folder: Path):
    """A 700-row log in the Criteo layout, streamed with a temporal split."""
    path = datasets.write_click_log(folder / "clicks.txt", ROWS, seed=3)
    # Small chunks: the stream crosses many chunk boundaries even in a tiny file.
    return datasets.load("criteo", path, streaming=True, split="temporal", chunk_bytes=16_384)
