"""Tests of the synthetic click log: determinism, its oracle (true click probabilities and their
AUC), option checks, and that a small model learns from it."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from keras_smelu.datasets import load_synthetic, make_synthetic_click_log, oracle_auc
from keras_smelu.datasets._synthetic import binary_auc

DEMO_JOB = Path(__file__).resolve().parents[1] / "keras_smelu" / "tuning" / "demo.toml"
SMALL = dict(n_train=4096, n_test=2048, n_users=50, n_items=30, click_rate=0.3)


def arrays(ds):
    """Every array of a dataset: features, labels and the true probabilities."""
    yield from (ds.x_train[k] for k in sorted(ds.x_train))
    yield from (ds.x_test[k] for k in sorted(ds.x_test))
    yield from (ds.y_train, ds.y_test)
    yield from (ds.info["click_probability_train"], ds.info["click_probability_test"])


def identical(a, b) -> bool:
    return a.categorical == b.categorical and all(
        np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b), strict=True)
    )


def pairwise_auc(labels, scores) -> float:
    """AUC by its definition: the share of (positive, negative) pairs ranked right, ties 1/2."""
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


# --- determinism ---


@pytest.mark.parametrize("seed", [0, 3])
def test_same_arguments_same_data(seed):
    ds = make_synthetic_click_log(**SMALL, seed=seed, interaction=2.0)
    assert identical(ds, make_synthetic_click_log(**SMALL, seed=seed, interaction=2.0))
    assert identical(ds, load_synthetic(**SMALL, seed=seed, interaction=2.0))
    assert not identical(ds, make_synthetic_click_log(**SMALL, seed=seed + 1, interaction=2.0))
    assert ds.info["oracle_auc_test"] == oracle_auc(
        make_synthetic_click_log(**SMALL, seed=seed, interaction=2.0)
    )


def test_interaction_changes_only_the_truth():
    weak = make_synthetic_click_log(**SMALL, seed=1, interaction=0.0)
    strong = make_synthetic_click_log(**SMALL, seed=1, interaction=3.0)
    # The same rows are drawn (features come before the truth); only probabilities and labels move.
    for name in weak.x_train:
        assert np.array_equal(weak.x_train[name], strong.x_train[name]), name
    key = "click_probability_test"
    assert not np.allclose(weak.info[key], strong.info[key])
    # A stronger user-item term is more signal: the oracle separates clicks better.
    assert oracle_auc(strong) > oracle_auc(weak) + 0.03
    assert weak.info["interaction"] == 0.0 and strong.info["interaction"] == 3.0


# --- the oracle ---


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_probabilities_are_the_label_distribution(seed):
    ds = make_synthetic_click_log(**SMALL, seed=seed, interaction=2.5)
    for split, y in (("train", ds.y_train), ("test", ds.y_test)):
        p = ds.info[f"click_probability_{split}"].astype(np.float64)
        assert p.shape == y.shape and np.all((p > 0) & (p < 1))
        # Labels are Bernoulli(p): the mean label is within 4 standard errors of the mean p.
        standard_error = np.sqrt(np.sum(p * (1 - p))) / len(p)
        assert abs(y.mean() - p.mean()) < 4 * standard_error, split
        # And per quartile of p, the click rate follows p (calibrated, increasing).
        edges = np.quantile(p, [0.25, 0.5, 0.75])
        bins = np.digitize(p, edges)
        rates = [y[bins == b].mean() for b in range(4)]
        assert rates == sorted(rates), (split, rates)
        for b, rate in enumerate(rates):
            q = p[bins == b]
            assert abs(rate - q.mean()) < 4 * np.sqrt(np.sum(q * (1 - q))) / len(q), (split, b)
    assert abs(ds.info["click_probability_train"].mean() - 0.3) < 0.02  # the intercept's target


def test_oracle_auc_is_well_above_chance_and_beats_any_single_feature():
    ds = make_synthetic_click_log(**SMALL, seed=4, interaction=2.5)
    auc = oracle_auc(ds)
    assert auc == ds.info["oracle_auc_test"]
    assert 0.75 < auc < 1.0
    assert 0.75 < oracle_auc(ds, "train") < 1.0
    # No single observed feature, used as a score, comes near the oracle.
    for name in ds.numeric:
        for sign in (1, -1):
            assert binary_auc(ds.y_test, sign * ds.x_test[name]) < auc - 0.1, name


def test_binary_auc_matches_its_definition():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 60)
        scores = rng.integers(0, 8, 60).astype(np.float32)  # many ties
        assert binary_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))
    assert binary_auc(np.array([0, 1]), np.array([0.2, 0.9])) == 1.0
    assert binary_auc(np.array([0, 1]), np.array([0.9, 0.2])) == 0.0
    assert binary_auc(np.array([0, 1, 0, 1]), np.ones(4)) == 0.5
    assert np.isnan(binary_auc(np.ones(3), np.arange(3.0)))
    with pytest.raises(ValueError, match="one value per row"):
        binary_auc(np.ones(3), np.ones(4))


# --- options ---


@pytest.mark.parametrize("interaction", [-0.5, float("nan"), float("inf"), "strong"])
def test_bad_interaction(interaction):
    with pytest.raises(ValueError, match=r"`interaction` must be a finite number >= 0"):
        make_synthetic_click_log(**SMALL, interaction=interaction)


def test_oracle_auc_needs_a_synthetic_dataset():
    ds = make_synthetic_click_log(n_train=200, n_test=100)
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test'"):
        oracle_auc(ds, "valid")
    stripped = ds.subset()
    stripped.info.clear()
    with pytest.raises(ValueError, match="must come from make_synthetic_click_log"):
        oracle_auc(stripped)


def test_demo_job_data_is_learnable_in_principle():
    """The demo's generator settings: many rows per user and item, and a strong oracle."""
    import tomllib

    with open(DEMO_JOB, "rb") as f:
        data = tomllib.load(f)["data"]
    options = data.get("options", {})
    ds = make_synthetic_click_log(data["n_train"], data["n_test"], seed=0, **options)
    assert ds.n_train / (ds.categorical["user"] - 1) >= 100  # rows per user seen in training
    assert ds.n_train / (ds.categorical["item"] - 1) >= 100
    assert oracle_auc(ds) > 0.82  # room above the 0.75 the demo's models must reach


# --- a model learns from it ---


def test_a_tiny_model_learns_the_signal():
    """One hidden layer of 16 units, 3 epochs of 4,096 rows (about 5 s of CPU, mostly JAX
    compiling the model's programs)."""
    import keras

    from keras_smelu import models

    ds = make_synthetic_click_log(**SMALL, seed=0, interaction=2.5)
    keras.utils.set_random_seed(0)
    model = models.embedding_mlp(
        ds, "relu", embedding_dim=4, hidden=(16,), normalization="layer", learning_rate=0.01
    )
    model.fit(*ds.train, epochs=3, batch_size=256, verbose=0)
    p = np.asarray(model.predict(ds.x_test, batch_size=1024, verbose=0), dtype=np.float64)
    auc = binary_auc(ds.y_test, p)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    y = ds.y_test
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    rate = ds.base_rate
    base = -np.mean(y * np.log(rate) + (1 - y) * np.log(1 - rate))
    # Chance is 0.5 (its spread on 2,048 rows: about 0.013); the oracle bounds it from above.
    assert 0.62 < auc < oracle_auc(ds) + 0.02
    assert loss < base - 0.02
