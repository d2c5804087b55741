"""Writing large synthetic click logs and rating files to disk, chunk by chunk, with NumPy.

The rows follow a hidden model drawn once from the seed (so a model can learn them), and each
chunk of rows is drawn from its own seeded generator and written as text by vectorised byte
assembly (no loop over rows): millions of rows per minute, memory bounded by `chunk_rows`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LAYOUTS = ("criteo", "movielens")
# Vocabulary sizes of the 26 Criteo-like categorical columns: a few tiny, most mid-sized, a few
# large (the real ones range from 3 to about 10 million values).
CRITEO_VOCABULARIES = (
    4, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000,
    5, 20, 50, 200, 500, 2_000, 5_000, 20_000, 50_000, 200_000, 500_000, 1_500, 15,
)  # fmt: skip
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def write_click_log(
    path: str | os.PathLike,
    n_rows: int,
    *,
    layout: str = "criteo",
    seed: int = 0,
    chunk_rows: int = 200_000,
) -> Path:
    """Writes a synthetic log of `n_rows` rows to `path` in a real data set's text layout.

    Layouts:

    - `"criteo"`: Criteo DAC's `label I1..I13 C1..C26`, TAB-separated, no header: counts
      (about 1 in 5 missing, `I2` sometimes -1), 8-hex-digit categories with Zipf-like
      popularity over vocabularies of 4 to 3 million values, clicks (about 25 %) from a hidden
      logistic model of 8 categorical columns and the counts. Load it with `load("criteo", path)`.
    - `"movielens"`: MovieLens 20M's `ratings.csv` (`userId,movieId,rating,timestamp` with
      header; half-star ratings from user and item biases; timestamps 2000-2020). Load it with
      `load("movielens", path)`.

    Each chunk of `chunk_rows` rows is generated and appended on its own, so memory does not
    grow with `n_rows`; the same arguments write the same bytes.

    Args:
        path: the file to write (replaced if it exists).
        n_rows: number of rows (without the header).
        layout: `"criteo"` or `"movielens"`.
        seed: the random seed.
        chunk_rows: rows generated and written at a time.

    Returns:
        The path written.

    Example:

    >>> from keras_smelu.datasets import write_click_log
    >>> write_click_log("/tmp/log.txt", 1000).stat().st_size > 100_000
    True
    """
    if layout not in LAYOUTS:
        raise ValueError(f"`layout` must be one of {LAYOUTS}. Received: layout={layout!r}")
    for name, value in (("n_rows", n_rows), ("chunk_rows", chunk_rows)):
        if int(value) != value or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    path = Path(path)
    hidden = _criteo_hidden(seed) if layout == "criteo" else _movielens_hidden(seed)
    with open(path, "wb") as f:
        if layout == "movielens":
            f.write(b"userId,movieId,rating,timestamp\n")
        for i, start in enumerate(range(0, int(n_rows), int(chunk_rows))):
            n = min(int(chunk_rows), int(n_rows) - start)
            rng = np.random.default_rng([seed, i])
            rows = (
                _criteo_rows(rng, n, hidden)
                if layout == "criteo"
                else _movielens_rows(rng, n, hidden)
            )
            f.write(rows)
    return path


# --- Criteo layout ---


def _criteo_hidden(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    hidden = {
        "cdf": [_zipf_cdf(v, 1.1) for v in CRITEO_VOCABULARIES],
        "salt": rng.integers(0, 2**31, len(CRITEO_VOCABULARIES)),
        # Per-category click effects of the first 8 columns, and count effects.
        "effects": [rng.normal(0.0, 0.7, v) for v in CRITEO_VOCABULARIES[:8]],
        "count_weights": rng.normal(0.0, 0.3, 13),
        "count_scale": rng.uniform(0.5, 200.0, 13),
        "intercept": 0.0,
    }
    # The intercept that gives a 25 % click rate, solved once on a sample (by bisection).
    _, _, logit = _criteo_draw(np.random.default_rng([seed, 2**31]), 20_000, hidden)
    lo, hi = -30.0, 30.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < 0.25 else (lo, mid)
    hidden["intercept"] = 0.5 * (lo + hi)
    return hidden


def _criteo_draw(rng: np.random.Generator, n: int, hidden: dict):
    cats = [np.searchsorted(cdf, rng.random(n)) for cdf in hidden["cdf"]]
    counts = rng.geometric(1.0 / (1.0 + hidden["count_scale"]), size=(n, 13)) - 1
    counts[:, 1] -= rng.random(n) < 0.1  # I2 is sometimes -1
    logit = hidden["intercept"] + np.log1p(np.maximum(counts, 0)) @ hidden["count_weights"]
    for column, effect in zip(cats, hidden["effects"], strict=False):
        logit = logit + effect[column]
    return cats, counts, logit


def _criteo_rows(rng: np.random.Generator, n: int, hidden: dict) -> bytes:
    cats, counts, logit = _criteo_draw(rng, n, hidden)
    missing = rng.random((n, 13)) < 0.2
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    cat_missing = rng.random((n, 26)) < 0.05
    fields = [_int_field(label, np.zeros(n, bool))]
    fields += [_int_field(counts[:, j], missing[:, j]) for j in range(13)]
    fields += [
        _hex_field(c.astype(np.uint64) + np.uint64(salt), cat_missing[:, j])
        for j, (c, salt) in enumerate(zip(cats, hidden["salt"], strict=True))
    ]
    return _join(fields, ord("\t"))


# --- MovieLens layout ---


def _movielens_hidden(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    users, items = 138_000, 27_000
    return {
        "user_cdf": _zipf_cdf(users, 0.6),
        "item_cdf": _zipf_cdf(items, 1.0),
        "user_bias": rng.normal(0.0, 0.5, users),
        "item_bias": rng.normal(0.0, 0.6, items),
    }


def _movielens_rows(rng: np.random.Generator, n: int, hidden: dict) -> bytes:
    user = np.searchsorted(hidden["user_cdf"], rng.random(n))
    item = np.searchsorted(hidden["item_cdf"], rng.random(n))
    score = 3.5 + hidden["user_bias"][user] + hidden["item_bias"][item] + rng.normal(0, 0.8, n)
    half_stars = np.clip(np.round(score * 2), 1, 10).astype(np.int64)  # 0.5 .. 5.0
    rating = np.stack(
        [_DIGITS[half_stars // 2], np.full(n, ord("."), np.uint8), _DIGITS[(half_stars % 2) * 5]],
        axis=1,
    )
    timestamp = rng.integers(946_684_800, 1_577_836_800, n)  # 2000-01-01 .. 2020-01-01
    none = np.zeros(n, bool)
    fields = [
        _int_field(user + 1, none),
        _int_field(item + 1, none),
        (rating, np.full(n, 3)),
        _int_field(timestamp, none),
    ]
    return _join(fields, ord(","))


# --- vectorised text assembly ---


def _zipf_cdf(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def _int_field(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(bytes (n, w), lengths (n,))` of decimal integers; missing ones are empty."""
    values = values.astype(np.int64)
    negative = values < 0
    magnitude = np.abs(values)
    digits = np.maximum(np.floor(np.log10(np.maximum(magnitude, 1))).astype(np.int64) + 1, 1)
    digits = digits + (magnitude >= 10**digits)  # float log10 rounding at powers of ten
    width = int(digits.max(initial=1)) + 1
    text = np.zeros((len(values), width), dtype=np.uint8)
    length = digits + negative
    for j in range(width):  # position j holds the digit of 10**(length - 1 - j)
        power = length - 1 - j
        text[:, j] = _DIGITS[(magnitude // 10 ** np.maximum(power, 0)) % 10]
    text[negative, 0] = ord("-")
    return text, np.where(missing, 0, length)


def _hex_field(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8 hex digits of a scrambled 32-bit hash of each value; missing ones are empty."""
    z = (values * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    shifts = np.arange(28, -1, -4, dtype=np.uint64)
    text = _HEX[((z[:, None] >> shifts) & np.uint64(15)).astype(np.int64)]
    return text, np.where(missing, 0, 8)


def _join(fields: list[tuple[np.ndarray, np.ndarray]], separator: int) -> bytes:
    """Rows of the fields separated by `separator`, each row ending with a newline."""
    n = len(fields[0][1])
    blocks, keeps = [], []
    for i, (text, length) in enumerate(fields):
        sep = np.full((n, 1), ord("\n") if i == len(fields) - 1 else separator, np.uint8)
        blocks += [text, sep]
        keeps += [np.arange(text.shape[1]) < length[:, None], np.ones((n, 1), bool)]
    return np.concatenate(blocks, axis=1)[np.concatenate(keeps, axis=1)].tobytes()
