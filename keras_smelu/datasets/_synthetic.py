"""A seeded synthetic click log with a hidden nonlinear ground truth (the embedded default)."""

from __future__ import annotations

import numpy as np

from keras_smelu.datasets._base import RecDataset, split_dataset

NUMERIC = ("price", "user_activity", "recency")
DIM = 4  # latent dimension of the hidden user/item factors


def make_synthetic_click_log(
    n_train: int = 20_000,
    n_test: int = 5_000,
    *,
    seed: int = 0,
    click_rate: float = 0.15,
    n_users: int = 2_000,
    n_items: int = 1_000,
    interaction: float = 1.5,
) -> RecDataset:
    """Generates a synthetic click log whose clicks follow a hidden nonlinear model.

    Categorical features (Zipf-like popularity, so the tails are rare): `user` (`n_users`
    values), `item` (`n_items`), `category` (24, a function of the item), `site` (200),
    `device` (4), `hour` (24). Numeric features: `price` (log of a log-normal price),
    `user_activity` (log1p of a per-user activity count) and `recency` (log1p of the hours since
    the user's last visit).

    The hidden click logit is a sum of a saturated interaction of user and item latent factors,
    `interaction * tanh(u . v / 2)` (the item factors cluster by category), item and site biases,
    a device-by-hour table, and thresholds of the numeric features (cheap items and recent
    visitors click more, expensive items on device 1 much less, active users more in the
    evening); its intercept is solved so that the mean click probability equals `click_rate`.
    Labels are Bernoulli draws. Vocabularies are built from the training split as for real data.
    Everything derives from one `numpy.random.default_rng(seed)`: the same arguments give
    identical data.

    The oracle: the true click probabilities are kept in `info["click_probability_train"]` and
    `info["click_probability_test"]`, and `info["oracle_auc_test"]` is their AUC on the test
    labels (`oracle_auc`): the best AUC any model can expect there, to print beside a model's.

    What a model can learn depends on the rows per user and item: the user-item term needs
    many rows per user (each user's factors are learned from its own rows alone), and a
    multilayer perceptron learns a product of factors slowly. With the defaults (2,000 users,
    1,000 items) a few thousand rows leave it unlearnable; a few hundred users and items with
    tens of thousands of rows, a higher `click_rate` and a stronger `interaction` make it
    learnable (see `keras_smelu/tuning/demo.toml`).

    Args:
        n_train: number of training rows.
        n_test: number of test rows.
        seed: the random seed.
        click_rate: target mean click probability, in (0, 1).
        n_users: number of distinct users.
        n_items: number of distinct items.
        interaction: scale of the user-item term in the click logit, >= 0 (0: no interaction).

    Returns:
        A binary `RecDataset` named `"synthetic"`.

    Example:

    >>> ds = make_synthetic_click_log(n_train=2000, n_test=500, seed=1)
    >>> 0.1 < ds.base_rate < 0.2
    True
    >>> 0.7 < ds.info["oracle_auc_test"] < 0.95
    True
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if int(value) != value or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    for name, value in (("n_users", n_users), ("n_items", n_items)):
        if int(value) != value or value < 2:
            raise ValueError(f"`{name}` must be an integer >= 2. Received: {name}={value!r}")
    if not 0.0 < click_rate < 1.0:
        raise ValueError(f"`click_rate` must be strictly between 0 and 1. Received: {click_rate!r}")
    if not (isinstance(interaction, (int, float)) and 0.0 <= interaction < np.inf):
        raise ValueError(
            f"`interaction` must be a finite number >= 0. Received: interaction={interaction!r}"
        )
    n_train, n_test, n_users, n_items = int(n_train), int(n_test), int(n_users), int(n_items)
    n = n_train + n_test
    rng = np.random.default_rng(seed)

    # Who sees what: Zipf-like popularity, ids shuffled so popularity is not the id order.
    user = _zipf(rng, n_users, 1.0, n)
    item = _zipf(rng, n_items, 1.1, n)
    item_category = _zipf(rng, 24, 0.8, n_items)
    category = item_category[item]
    site = _zipf(rng, 200, 1.2, n)
    device = rng.choice(4, size=n, p=[0.6, 0.3, 0.08, 0.02])
    daily = 1.0 + 0.8 * np.sin((np.arange(24) - 9) * np.pi / 12)
    hour = rng.choice(24, size=n, p=daily / daily.sum())

    # Numeric features.
    item_price = rng.normal(3.0, 1.0, n_items)
    price = item_price[item] + rng.normal(0.0, 0.1, n)
    user_rate = rng.gamma(1.5, 8.0, n_users)
    user_activity = np.log1p(rng.poisson(user_rate[user]))
    recency = np.log1p(rng.exponential(24.0, n))

    # Hidden truth. Item factors cluster around their category's, so a model can share them.
    u = rng.normal(0.0, 1.0, (n_users, DIM))
    centers = rng.normal(0.0, 1.0, (24, DIM))
    v = centers[item_category] + rng.normal(0.0, 0.5, (n_items, DIM))
    device_hour = rng.normal(0.0, 0.6, (4, 24))
    item_bias = rng.normal(0.0, 0.4, n_items)
    site_bias = rng.normal(0.0, 0.4, 200)
    evening = (hour >= 18) | (hour < 2)
    logit = (
        interaction * np.tanh(np.sum(u[user] * v[item], axis=1) / np.sqrt(DIM))
        + item_bias[item]
        + site_bias[site]
        + device_hour[device, hour]
        + 1.0 * (price < 2.5)
        - 1.2 * ((device == 1) & (price > 3.5))
        - 1.0 * (recency > 3.5)
        + 0.8 * ((user_activity > 2.5) & evening)
    )
    p = _sigmoid(logit + _intercept(logit, click_rate))
    y = (rng.random(n) < p).astype(np.float32)

    raw = {
        "user": user,
        "item": item,
        "category": category,
        "site": site,
        "device": device,
        "hour": hour,
    }
    return split_dataset(
        "synthetic",
        y,
        raw,
        dict(zip(NUMERIC, (price, user_activity, recency), strict=True)),
        (np.arange(n_train), np.arange(n_train, n)),
        task="binary",
        min_count=1,
        info={
            "seed": seed,
            "click_rate": click_rate,
            "n_users": n_users,
            "n_items": n_items,
            "interaction": interaction,
            "click_probability_train": p[:n_train].astype(np.float32),
            "click_probability_test": p[n_train:].astype(np.float32),
            "oracle_auc_test": binary_auc(y[n_train:], p[n_train:]),
        },
    )


def load_synthetic(path: None = None, **kwargs) -> RecDataset:
    """Alias of `make_synthetic_click_log` with a loader's signature (`path` must be `None`).

    Args:
        path: must be `None`: the synthetic log is generated, not read.
        **kwargs: passed to `make_synthetic_click_log`.

    Returns:
        A binary `RecDataset` named `"synthetic"`.
    """
    if path is not None:
        raise ValueError(
            f"The synthetic dataset is generated and takes no path. Received: {path!r}"
        )
    return make_synthetic_click_log(**kwargs)


def oracle_auc(dataset: RecDataset, split: str = "test") -> float:
    """The AUC of the generator's true click probabilities on a split of a synthetic log.

    No model can expect more on these rows (up to the sampling noise of the labels): print it
    beside a model's validation AUC to tell "learned what there is" from "learned nothing".

    Args:
        dataset: a `RecDataset` from `make_synthetic_click_log` (its `info` holds the true
            click probabilities).
        split: `"test"` (the held-out rows, the default) or `"train"`.

    Returns:
        The AUC, in [0, 1].

    Example:

    >>> ds = make_synthetic_click_log(n_train=2000, n_test=1000, n_users=100, n_items=50)
    >>> 0.7 < oracle_auc(ds) < 0.95
    True
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test'. Received: split={split!r}")
    key = f"click_probability_{split}"
    if key not in dataset.info:
        raise ValueError(
            "`dataset` must come from make_synthetic_click_log (its info holds the true click "
            f"probabilities). Received: a dataset named {dataset.name!r} without info[{key!r}]"
        )
    labels = dataset.y_train if split == "train" else dataset.y_test
    return binary_auc(labels, dataset.info[key])


def binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve of `scores` for 0/1 `labels` (ties count one half).

    `AUC = (sum of the positives' ranks - n1 (n1 + 1) / 2) / (n1 n0)`, the Mann-Whitney
    statistic, with average ranks for tied scores.

    Args:
        labels: 0/1 labels, shape `(n,)`.
        scores: scores of the same rows, shape `(n,)`; higher means more likely 1.

    Returns:
        The AUC; NaN when the labels hold a single class.

    Example:

    >>> binary_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(
            "`labels` and `scores` must have one value per row each. "
            f"Received: {labels.shape=} and {scores.shape=}"
        )
    positive = labels == 1
    n1 = int(positive.sum())
    n0 = len(labels) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score: ties share the mean of their ranks.
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(average_rank[inverse][positive].sum())
    return (rank_sum - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def _zipf(rng: np.random.Generator, size: int, exponent: float, n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    labels = rng.permutation(size)
    return labels[rng.choice(size, size=n, p=weights / weights.sum())]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _intercept(logit: np.ndarray, rate: float) -> float:
    """The offset b with mean(sigmoid(logit + b)) == rate, by bisection (monotone in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _sigmoid(logit + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
