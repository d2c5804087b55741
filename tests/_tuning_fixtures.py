"""Small real tuning setups shared by the tuner tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from keras_smelu import datasets, models


def tiny_dataset():
    return datasets.load("synthetic", n_train=600, n_test=200, seed=0)


def tiny_builder(dataset):
    def build(activation):
        return models.embedding_mlp(dataset, activation=activation, hidden=(8,), embedding_dim=4)

    return build


def write_job(directory: Path, *, trials: int = 3, name: str = "tiny", extra: str = "") -> Path:
    """A tiny synthetic job file; `extra` is appended to its `[job]` section (e.g. a storage)."""
    path = directory / "job.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            name = "{name}"
            trials = {trials}
            output = "{(directory / "out").as_posix()}"
            {extra}

            [data]
            dataset = "synthetic"
            n_train = 600
            n_test = 200

            [model]
            hidden = [8]
            embedding_dim = 4

            [training]
            epochs = 1
            pairs = 1
            """
        )
    )
    return path
