"""Warm start: trials fine-tune a saved model with their activation swapped in."""

from __future__ import annotations

import textwrap

import keras
import numpy as np
import pytest

import keras_smelu
from keras_smelu import models
from keras_smelu._replica_models import weights_digest
from keras_smelu.surgery import activation_name
from keras_smelu.tuning import load_job, tune_job
from keras_smelu.tuning._job import JobError
from tests._tuning_fixtures import tiny_dataset


def _saved_relu_model(path, dataset, seed):
    keras.utils.set_random_seed(seed)
    model = models.embedding_mlp(dataset, "relu", hidden=(8,), embedding_dim=4)
    model.fit(dataset.x_train, dataset.y_train, epochs=1, batch_size=128, verbose=0)
    model.save(path)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    dataset = tiny_dataset()
    first = _saved_relu_model(folder / "relu.keras", dataset, seed=1)
    _saved_relu_model(folder / "other.keras", dataset, seed=2)
    return folder, dataset, first.get_weights()


def test_builder_swaps_the_activation_and_keeps_the_weights(saved):
    folder, dataset, weights = saved
    build = models.warm_start(folder / "relu.keras", optimizer="sgd", learning_rate=0.25)
    reference = build("relu")
    smooth = build(keras_smelu.SmeLU(beta=0.3))
    for model in (reference, smooth):
        assert weights_digest(model.get_weights()) == weights_digest(weights)
        assert isinstance(model.optimizer, keras.optimizers.SGD)
        assert float(model.optimizer.learning_rate) == pytest.approx(0.25)
    names = {activation_name(layer) for layer in smooth.layers if "activation" in layer.name}
    assert names == {"smelu"}
    # The swapped model computes something else from the same weights.
    x = {k: v[:32] for k, v in dataset.x_test.items()}
    assert not np.allclose(reference.predict(x, verbose=0), smooth.predict(x, verbose=0))


def test_builder_refuses_a_missing_or_uncompiled_file(saved, tmp_path):
    folder, dataset, _ = saved
    with pytest.raises(ValueError, match="path"):
        models.warm_start(tmp_path / "missing.keras")
    uncompiled = tmp_path / "uncompiled.keras"
    loaded = keras.saving.load_model(folder / "relu.keras")
    keras.Model(loaded.inputs, loaded.outputs).save(uncompiled)  # never compiled
    with pytest.raises(ValueError, match="compile"):
        models.warm_start(uncompiled)("relu")


def _job(directory, warm_start, extra=""):
    path = directory / "job.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            name = "warm"
            trials = 1
            sampler = "random"
            output = "{(directory / "out").as_posix()}"

            [data]
            dataset = "synthetic"
            n_train = 600
            n_test = 200

            [model]
            warm_start = "{warm_start.as_posix()}"
            learning_rate = 0.0005

            [training]
            epochs = 1
            pairs = 1
            {extra}
            """
        )
    )
    return path


def test_job_trials_start_from_the_saved_weights_and_resume_checks_the_file(saved, tmp_path):
    folder, _, weights = saved
    job = load_job(_job(tmp_path, folder / "relu.keras"))
    report = tune_job(job, verbose=0)
    result = report.results["embedding_mlp"]
    trials = result.complete_trials
    assert result.reference is not None and len(trials) == 2
    for trial in trials:  # ReLU as saved, and SmeLU swapped in: both from the saved weights
        for pair in trial.pairs:
            assert pair["initial_weights"] == [weights_digest(weights)] * 2
    assert {t.family for t in trials} == {"relu", "smelu"}

    # A resume with another file (same architecture, other weights) is refused.
    other = load_job(_job(tmp_path, folder / "other.keras"))
    with pytest.raises(ValueError, match="warm_start") as error:
        tune_job(other, verbose=0)
    assert "other.keras" in str(error.value)


def test_job_refuses_init_variation_and_a_missing_file(saved, tmp_path):
    folder, _, _ = saved
    with pytest.raises(JobError, match=r"^\[training\] vary:"):
        load_job(_job(tmp_path, folder / "relu.keras", extra='vary = "init"'))
    with pytest.raises(JobError, match=r"^\[model\] warm_start:.*does not exist"):
        load_job(_job(tmp_path, folder / "nowhere.keras"))
    with pytest.raises(JobError, match=r"^\[model\] warm_start: expected a saved model"):
        load_job(_job(tmp_path, folder / "relu.h5"))
