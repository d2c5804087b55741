"""The whole chain on real data: MovieLens 100K -> model -> replicas -> PD above zero."""

from __future__ import annotations

import pytest

import keras_smelu
from keras_smelu import datasets, models
from tests._data import real_data


@pytest.mark.slow
def test_relu_replicas_disagree_on_movielens():
    dataset = datasets.load_movielens_100k(real_data("movielens-100k"), seed=0)
    assert dataset.n_train + dataset.n_test == 100_000

    def build(activation):
        return models.embedding_mlp(dataset, activation=activation, hidden=(64, 32))

    report = keras_smelu.train_replicas(
        build, dataset.train, dataset.test, activation="relu", pairs=2, epochs=1, verbose=0
    )
    assert report.metrics["auc"] > 0.7  # it learned the task
    # Replicas that differ only in data order disagree measurably: PD well above rounding.
    assert report.pd["relative"] > 0.01
    assert all(pair["pd"][-1]["relative"] > 0.005 for pair in report.pair_results)
    assert report.pd["absolute"] > 0.005
