"""Tests of `keras_smelu.datasets`: real shared data, small files written here, synthetic data."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from keras_smelu.datasets import (
    DATA_ENV_VAR,
    RecDataset,
    available,
    load,
    load_avazu,
    load_criteo,
    load_libsvm,
    load_movielens_100k,
    load_synthetic,
    make_synthetic_click_log,
)
from tests._data import real_data


def check_dataset(ds: RecDataset) -> None:
    """The RecDataset contract: dtypes, shapes, ids within the vocabulary."""
    for x, y in (ds.train, ds.test):
        assert y.dtype == np.float32 and y.shape == (len(y),)
        if ds.task == "binary":
            assert set(np.unique(y)) <= {0.0, 1.0}
        for name, size in ds.categorical.items():
            assert x[name].dtype == np.int32
            assert x[name].min() >= 0 and x[name].max() < size, name
        for name in ds.numeric:
            assert x[name].dtype == np.float32 and np.isfinite(x[name]).all(), name
    # Every vocabulary entry is used in the training split (it was built from it).
    for name, size in ds.categorical.items():
        used = np.unique(ds.x_train[name])
        assert set(range(1, size)) <= set(used.tolist()), name


def same(a: RecDataset, b: RecDataset) -> bool:
    return (
        a.categorical == b.categorical
        and np.array_equal(a.y_train, b.y_train)
        and np.array_equal(a.y_test, b.y_test)
        and all(np.array_equal(a.x_train[k], b.x_train[k]) for k in a.features)
        and all(np.array_equal(a.x_test[k], b.x_test[k]) for k in a.features)
    )


# --- real data ---


@pytest.fixture(scope="module")
def movielens() -> RecDataset:
    return load_movielens_100k(real_data("movielens-100k"))


@pytest.fixture(scope="module")
def criteo() -> RecDataset:
    return load_criteo(real_data("criteo-dac-8k"))


@pytest.fixture(scope="module")
def avazu() -> RecDataset:
    return load_avazu(real_data("avazu-9k"))


def test_movielensreal_data(movielens):
    ds = movielens
    check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (80_000, 20_000)
    assert ds.task == "binary" and 0.5 < ds.base_rate < 0.6  # 55.4 % of ratings are >= 4
    assert ds.categorical["user_id"] == 944 and ds.categorical["gender"] == 3
    assert ds.categorical["age"] == 8 and ds.categorical["occupation"] == 22
    assert ds.categorical["item_id"] <= 1683
    assert len(ds.numeric) == 19 and "genre_sci_fi" in ds.numeric
    # Every movie has at least one genre flag.
    flags = np.stack([ds.x_train[g] for g in ds.numeric], axis=1)
    assert flags.sum(axis=1).min() >= 1
    # Train and test are disjoint sets of (user, item) ratings.
    pairs = [
        set(zip(x["user_id"].tolist(), x["item_id"].tolist(), strict=True))
        for x in (ds.x_train, ds.x_test)
    ]
    assert len(pairs[0]) == ds.n_train
    assert not (pairs[0] & pairs[1])


def test_movielens_rating_label_and_seed():
    path = real_data("movielens-100k")
    start = time.perf_counter()
    ds = load_movielens_100k(path, label="rating", seed=3)
    assert time.perf_counter() - start < 5.0  # about 0.4 s alone; generous for a busy machine
    assert ds.task == "regression"
    labels = np.concatenate([ds.y_train, ds.y_test])
    assert set(np.unique(labels)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    np.testing.assert_allclose(labels.mean(), 3.52986, atol=1e-4)
    assert same(ds, load_movielens_100k(path, label="rating", seed=3))
    assert not np.array_equal(ds.y_test, load_movielens_100k(path, label="rating").y_test)
    with pytest.raises(ValueError, match="label"):
        load_movielens_100k(path, label="stars")


def test_criteoreal_data(criteo):
    ds = criteo
    check_dataset(ds)
    assert ds.n_train + ds.n_test == 8_000 and ds.n_test == 1_600
    assert 0.18 < ds.base_rate < 0.25 and 0.15 < ds.y_test.mean() < 0.28  # 21.6 % overall
    assert len(ds.categorical) == 26 and len(ds.numeric) == 13
    for name in ds.numeric:
        assert ds.x_train[name].min() >= 0.0 and ds.x_train[name].max() < 20.0
    rows = [
        set(zip(*(x[k].tolist() for k in ds.features), strict=True))
        for x in (ds.x_train, ds.x_test)
    ]
    assert len(rows[0]) == ds.n_train and not (rows[0] & rows[1])
    assert same(ds, load_criteo(real_data("criteo-dac-8k")))


def test_criteo_single_file_and_env(monkeypatch):
    path = real_data("criteo-dac-8k")
    ds = load_criteo(path / "dev.csv", seed=1, test_fraction=0.25)
    assert ds.n_train + ds.n_test == 409 and ds.n_test == 102
    monkeypatch.setenv(DATA_ENV_VAR, str(path.parent))
    assert load("criteo").n_train == 6_400


def test_avazureal_data(avazu):
    ds = avazu
    check_dataset(ds)
    assert ds.n_train + ds.n_test == 8_999
    assert 0.14 < ds.base_rate < 0.21  # 17.4 % overall
    assert ds.numeric == () and len(ds.categorical) == 22
    assert "id" not in ds.categorical and "click" not in ds.categorical
    assert ds.categorical["hour_of_day"] == 2  # one hour only in this sample
    assert ds.categorical["C1"] <= 7 and ds.categorical["device_ip"] < 6_678
    assert same(ds, load_avazu(real_data("avazu-9k")))
    assert not np.array_equal(ds.y_train, load_avazu(real_data("avazu-9k"), seed=1).y_train)


def test_load_by_name_from_env(monkeypatch):
    root = real_data("movielens-100k").parent
    monkeypatch.setenv(DATA_ENV_VAR, str(root))
    ds = load("MovieLens_100K", test_fraction=0.1)
    assert ds.name == "movielens-100k" and ds.n_test == 10_000


# --- small files written here ---


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


GENRES_0 = "|".join(["0"] * 19)


def write_movielens(directory: Path, data: str | None = None) -> Path:
    write(
        directory / "u.data",
        data
        or "1\t10\t5\t881250949\n1\t20\t2\t881250950\n2\t10\t4\t881250951\n"
        "2\t30\t3\t881250952\n3\t20\t1\t881250953\n",
    )
    write(
        directory / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n3|17|M|writer|T8H1N\n"
    )
    flags_10 = "|".join("1" if g in (1, 15) else "0" for g in range(19))  # Action, Sci-Fi
    flags_20 = "|".join("1" if g == 5 else "0" for g in range(19))  # Comedy
    write(
        directory / "u.item",
        f"10|Café (1995)|01-Jan-1995||http://x|{flags_10}\n"
        f"20|Old (1931)|01-Jan-1931||http://y|{flags_20}\n"
        f"30|unknown|||http://z|{GENRES_0}\n",
        encoding="latin-1",
    )
    return directory


def test_movielens_small_files(tmp_path):
    ds = load_movielens_100k(write_movielens(tmp_path), test_fraction=0.2, seed=0)
    check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (4, 1)
    x = {k: np.concatenate([ds.x_train[k], ds.x_test[k]]) for k in ds.features}
    y = np.concatenate([ds.y_train, ds.y_test])
    assert sorted(y.tolist()) == [0, 0, 0, 1, 1]  # ratings 5, 2, 4, 3, 1
    # Item 10 (rated 5 and 4) is Action and Sci-Fi; item 30 has no genre and no date.
    liked = y == 1
    assert (x["genre_action"][liked] == 1).all() and (x["genre_sci_fi"][liked] == 1).all()
    assert x["genre_comedy"].sum() == 2
    # Item 30 (one rating) has no release date and no genre: both map to id 0.
    no_date = x["decade"] == 0
    assert no_date.sum() == 1 and x["genre"][no_date] == 0
    assert all(x[g][no_date] == 0 for g in ds.numeric)
    assert set(ds.numeric) == {n for n in ds.numeric if n.startswith("genre_")}
    regression = load_movielens_100k(tmp_path, label="rating")
    assert sorted(np.concatenate([regression.y_train, regression.y_test]).tolist()) == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_movielens_malformed(tmp_path):
    write_movielens(tmp_path, "1\t10\t5\t881250949\n1\t20\t2\n")
    with pytest.raises(ValueError, match=r"u\.data:2: expected 4"):
        load_movielens_100k(tmp_path)
    write_movielens(tmp_path, "1\t10\t5\t881250949\n\n1\t20\tfive\t881250950\n")
    with pytest.raises(ValueError, match=r"u\.data:3: column 'rating' must be an integer.*'five'"):
        load_movielens_100k(tmp_path)
    write_movielens(tmp_path, "1\t10\t5\t881250949\n9\t20\t2\t881250950\n")
    with pytest.raises(ValueError, match=r"u\.data:2: id 9 is not in .*u\.user"):
        load_movielens_100k(tmp_path)


def criteo_line(label: int, i1: str, c1: str, i2: str = "-1") -> str:
    ints = [i1, i2] + [""] * 11
    cats = [c1] + ["68fd1e64"] + [""] * 24
    return "\t".join([str(label), *ints, *cats]) + "\n"


def test_criteo_small_files_partition(tmp_path):
    # I1 = row number, so train and test must partition the rows exactly.
    lines = [criteo_line(int(r % 4 == 0), str(r), "aa" if r % 2 else "bb") for r in range(30)]
    write(tmp_path / "criteo" / "train.csv", "".join(lines[:20]))
    write(tmp_path / "criteo" / "test.csv", "".join(lines[20:25]))
    write(tmp_path / "criteo" / "dev.csv", "".join(lines[25:]))
    write(tmp_path / "criteo" / "README.md", "not data\n")
    ds = load_criteo(tmp_path / "criteo", test_fraction=0.3, seed=5)
    check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (21, 9)
    rows = np.round(np.expm1(np.concatenate([ds.x_train["I1"], ds.x_test["I1"]]))).astype(int)
    assert sorted(rows.tolist()) == list(range(30))
    labels = np.concatenate([ds.y_train, ds.y_test])
    np.testing.assert_array_equal(labels, (rows % 4 == 0).astype(np.float32))
    # I2 = -1 and missing values both become 0; C2 is constant; C3 is always missing.
    assert (ds.x_train["I2"] == 0).all() and (ds.x_train["I3"] == 0).all()
    assert ds.categorical["C1"] == 3 and ds.categorical["C2"] == 2 and ds.categorical["C3"] == 1
    assert (ds.x_train["C3"] == 0).all()


def test_criteo_rare_categories_map_to_zero(tmp_path):
    lines = [criteo_line(0, "1", "common")] * 5 + [criteo_line(1, "2", "rare")]
    file = write(tmp_path / "c.txt", "".join(lines))
    ds = load_criteo(file, test_fraction=0.1, min_count=2)
    train_rare = ds.x_train["C1"][ds.x_train["I1"] > 1]
    test_rare = ds.x_test["C1"][ds.x_test["I1"] > 1]
    assert (np.concatenate([train_rare, test_rare]) == 0).all()
    assert ds.categorical["C1"] == 2


def test_criteo_malformed(tmp_path):
    good = criteo_line(0, "1", "aa")
    write(tmp_path / "bad1" / "train.csv", good + good.replace("\t", " ", 3))
    with pytest.raises(ValueError, match=r"train\.csv:2: expected 40"):
        load_criteo(tmp_path / "bad1")
    write(tmp_path / "bad2.csv", good + good + criteo_line(0, "1.5", "aa"))
    with pytest.raises(ValueError, match=r"bad2\.csv:3: column 'I1' must be an integer"):
        load_criteo(tmp_path / "bad2.csv")
    write(tmp_path / "bad3.csv", good + criteo_line(2, "1", "aa"))
    with pytest.raises(ValueError, match=r"bad3\.csv:2: label must be 0 or 1"):
        load_criteo(tmp_path / "bad3.csv")


AVAZU_HEADER = (
    "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
    "app_category,device_id,device_ip,device_model,device_type,device_conn_type,"
    "C14,C15,C16,C17,C18,C19,C20,C21\n"
)


def avazu_line(row: int, click: int) -> str:
    fields = [str(10**19 + row), str(click), f"141021{row % 3:02d}", "1005", "0"]
    fields += [f"site{row % 2}", "dom", "cat", "app", "ad", "ac", "dev", f"ip{row}", "m"]
    fields += ["1", "0", "15704", "320", "50", "1722", "0", "35", "-1", "79"]
    return ",".join(fields) + "\n"


def test_avazu_small_files(tmp_path):
    write(
        tmp_path / "avazu" / "train.csv",
        AVAZU_HEADER + "".join(avazu_line(r, r % 2) for r in range(8)),
    )
    write(tmp_path / "avazu" / "dev.csv", "".join(avazu_line(r, 1) for r in range(8, 10)))
    ds = load_avazu(tmp_path / "avazu", test_fraction=0.2, min_count=1)
    check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (8, 2)
    assert np.concatenate([ds.y_train, ds.y_test]).sum() == 6
    assert ds.categorical["hour_of_day"] == 4 and ds.categorical["site_id"] == 3
    assert ds.categorical["device_ip"] == 9  # 8 distinct training ips + id 0
    assert (ds.x_test["device_ip"] == 0).all()  # every ip is unique: unseen in test
    assert "id" not in ds.features and "hour" not in ds.features
    # A headerless file alone uses the standard column order.
    only = load_avazu(tmp_path / "avazu" / "dev.csv", test_fraction=0.5)
    assert only.n_train + only.n_test == 2 and only.base_rate == 1.0


def test_avazu_malformed(tmp_path):
    write(tmp_path / "a.csv", AVAZU_HEADER + avazu_line(0, 0) + avazu_line(1, 0)[:-4] + "\n")
    with pytest.raises(ValueError, match=r"a\.csv:3: expected 24"):
        load_avazu(tmp_path / "a.csv")
    write(
        tmp_path / "b.csv",
        AVAZU_HEADER + avazu_line(0, 0) + avazu_line(1, 0).replace(",0,", ",x,", 1),
    )
    with pytest.raises(ValueError, match=r"b\.csv:3: column 'click' must be an integer"):
        load_avazu(tmp_path / "b.csv")
    write(tmp_path / "c.csv", AVAZU_HEADER.replace("click", "clicks") + avazu_line(0, 0))
    with pytest.raises(ValueError, match=r"c\.csv:1: the header"):
        load_avazu(tmp_path / "c.csv")


LIBSVM_TRAIN = """\
+1 1:0.5 3:1 7:2  # a comment
-1 3:1
+1 1:1.5 7:1 9:4 11:1
# only a comment

-1 1:2
"""


def test_libsvm_small_files(tmp_path):
    train = write(tmp_path / "a.train", LIBSVM_TRAIN)
    test = write(tmp_path / "a.test", "1 3:2 42:1\n0 1:1\n")
    ds = load_libsvm(train, test_path=test)
    check_dataset(ds)
    assert ds.name == "a" and ds.bags == {"ids": "values"}
    assert ds.x_train["ids"].shape == ds.x_train["values"].shape == (4, 4)
    np.testing.assert_array_equal(ds.y_train, [1, 0, 1, 0])
    np.testing.assert_array_equal(ds.y_test, [1, 0])
    # Ids by training frequency: 1 and 3 (3 times each, tie by value) -> 1, 2; 7 -> 3; then 11, 9.
    np.testing.assert_array_equal(ds.x_train["ids"][0], [1, 2, 3, 0])
    np.testing.assert_array_equal(ds.x_train["values"][0], [0.5, 1, 2, 0])
    np.testing.assert_array_equal(ds.x_train["ids"][2], [1, 3, 5, 4])
    assert ds.categorical == {"ids": 6}
    np.testing.assert_array_equal(ds.x_test["ids"], [[2, 0, 0, 0], [1, 0, 0, 0]])  # 42 unseen
    np.testing.assert_array_equal(ds.x_test["values"], [[2, 1, 0, 0], [1, 0, 0, 0]])

    regression = load_libsvm(train, task="regression", max_features=2, test_fraction=0.25)
    assert regression.x_train["ids"].shape[1] == 2 and regression.n_test == 1
    assert sorted(np.concatenate([regression.y_train, regression.y_test])) == [-1, -1, 1, 1]


def test_libsvm_fields_and_errors(tmp_path):
    ffm = write(tmp_path / "f.ffm", "1 0:5:1 1:5:1\n0 0:5:1\n1 1:5:0.5\n")
    ds = load_libsvm(ffm, test_fraction=0.34, seed=1)
    assert ds.categorical == {"ids": 3}  # field 0 and field 1 of index 5 are two features
    bad = write(tmp_path / "bad.svm", "1 1:1\n0 1:1 x:2\n")
    with pytest.raises(ValueError, match=r"bad\.svm:2: expected `idx:val`.*'x:2'"):
        load_libsvm(bad)
    bad_label = write(tmp_path / "bad2.svm", "1 1:1\n\nyes 1:1\n")
    with pytest.raises(ValueError, match=r"bad2\.svm:3: the label must be a finite number"):
        load_libsvm(bad_label)
    with pytest.raises(FileNotFoundError, match="libSVM"):
        load_libsvm(tmp_path / "nope.svm")
    with pytest.raises(FileNotFoundError, match="path="):
        load("libsvm")
    with pytest.raises(ValueError, match="task"):
        load_libsvm(ffm, task="multiclass")


def test_missing_data_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    for loader in (load_movielens_100k, load_criteo, load_avazu):
        with pytest.raises(FileNotFoundError, match=DATA_ENV_VAR):
            loader()
    with pytest.raises(FileNotFoundError, match=r"u\.data, u\.user, u\.item.*movielens-100k/"):
        load("movielens-100k")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"criteo-dac-8k.*criteo"):
        load_criteo()
    with pytest.raises(FileNotFoundError, match=r"avazu-9k/ or avazu/"):
        load_avazu()
    write(tmp_path / "movielens-100k" / "u.data", "1\t1\t1\t1\n")
    with pytest.raises(FileNotFoundError, match=DATA_ENV_VAR):
        load_movielens_100k()
    with pytest.raises(FileNotFoundError, match=r"lacks u\.user, u\.item"):
        load_movielens_100k(tmp_path / "movielens-100k")
    with pytest.raises(FileNotFoundError, match="No such directory"):
        load_movielens_100k(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        load_criteo(tmp_path / "elsewhere.csv")
    (tmp_path / "criteo").mkdir()
    with pytest.raises(FileNotFoundError, match="no data files"):
        load_criteo()


def test_env_directory_layout(tmp_path, monkeypatch):
    write_movielens(tmp_path / "ml-100k")
    write(tmp_path / "criteo" / "x.tsv", criteo_line(0, "1", "a") + criteo_line(1, "2", "b"))
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert load("movielens-100k").n_train == 4
    assert load("criteo", test_fraction=0.5).n_test == 1


def test_bad_arguments(tmp_path):
    write_movielens(tmp_path)
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="test_fraction"):
            load_movielens_100k(tmp_path, test_fraction=fraction)
    with pytest.raises(ValueError, match="min_count"):
        load_movielens_100k(tmp_path, min_count=0)


# --- registry and container ---


def test_registry():
    assert available() == ("synthetic", "movielens-100k", "criteo", "avazu", "libsvm", "movielens")
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenet'.*synthetic, movielens-100k"):
        load("imagenet")
    with pytest.raises(ValueError, match="takes no path"):
        load("synthetic", "some/where")
    assert load("synthetic", n_train=100, n_test=10).n_train == 100


def test_rec_dataset_contract():
    ds = make_synthetic_click_log(n_train=300, n_test=100)
    assert repr(ds) == (
        "RecDataset(name='synthetic', task='binary', n_train=300, n_test=100, "
        "categorical=6, numeric=3)"
    )
    assert ds.features == (*ds.categorical, *ds.numeric)
    x, y = ds.train
    assert x is ds.x_train and y is ds.y_train
    small = ds.subset(50, 20)
    assert (small.n_train, small.n_test) == (50, 20) and small.categorical == ds.categorical
    with pytest.raises(AttributeError):
        ds.task = "regression"
    fields = dict(
        name="t",
        x_train={"a": np.zeros(2, np.int32)},
        y_train=np.zeros(2, np.float32),
        x_test={"a": np.zeros(1, np.int32)},
        y_test=np.zeros(1, np.float32),
        categorical={"a": 1},
        numeric=(),
        task="binary",
    )
    RecDataset(**fields)
    with pytest.raises(ValueError, match="task"):
        RecDataset(**{**fields, "task": "ranking"})
    with pytest.raises(ValueError, match="must be int32"):
        RecDataset(**{**fields, "x_test": {"a": np.zeros(1, np.int64)}})
    with pytest.raises(ValueError, match="keys"):
        RecDataset(**{**fields, "x_test": {"b": np.zeros(1, np.int32)}})
    with pytest.raises(ValueError, match="rows"):
        RecDataset(**{**fields, "y_train": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="float32"):
        RecDataset(**{**fields, "y_train": np.zeros(2)})


# --- synthetic ---


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_synthetic_deterministic_and_fast():
    start = time.perf_counter()
    ds = make_synthetic_click_log(seed=7)
    assert time.perf_counter() - start < 1.0  # ~0.03 s alone
    check_dataset(ds)
    assert (ds.n_train, ds.n_test) == (20_000, 5_000)
    assert same(ds, make_synthetic_click_log(seed=7))
    assert same(ds, load_synthetic(seed=7))
    assert not same(ds, make_synthetic_click_log(seed=8))
    # Zipf-like popularity: the top user is far more frequent than the median one.
    counts = np.bincount(ds.x_train["user"])[1:]
    assert counts.max() > 20 * np.median(counts)
    assert len(set(ds.categorical.values())) >= 4  # different vocabulary sizes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_click_rate(seed):
    ds = make_synthetic_click_log(seed=seed)
    assert 0.12 < ds.base_rate < 0.18 and 0.12 < ds.y_test.mean() < 0.18
    high = make_synthetic_click_log(n_train=4000, n_test=1000, seed=seed, click_rate=0.25)
    assert 0.22 < high.base_rate < 0.28


def test_synthetic_has_signal():
    ds = make_synthetic_click_log()
    p = ds.info["click_probability_test"]
    base = log_loss(ds.y_test, np.full(ds.n_test, ds.base_rate))
    assert log_loss(ds.y_test, p) < base - 0.05  # the oracle beats the base rate by far
    # The signal is not additive in any one feature: numeric thresholds and interactions.
    cheap = ds.x_train["price"] < 2.5
    assert ds.y_train[cheap].mean() > 1.5 * ds.y_train[~cheap].mean()


def test_synthetic_bad_arguments():
    for kwargs in ({"n_train": 0}, {"n_test": 1.5}, {"click_rate": 1.0}, {"n_users": 1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            make_synthetic_click_log(**kwargs)


# --- temporal splits and undecodable bytes (in memory) ---


def test_temporal_splits_in_memory(tmp_path):
    lines = [criteo_line(int(r % 4 == 0), str(r), "aa" if r % 2 else "bb") for r in range(70)]
    ds = load_criteo(write(tmp_path / "c.txt", "".join(lines)), split="temporal", min_count=1)
    # The last of 7 days: the last 10 rows, in file order; seed and fraction play no part.
    rows = np.round(np.expm1(ds.x_test["I1"])).astype(int)
    assert rows.tolist() == list(range(60, 70)) and ds.info["split"].startswith("temporal")
    assert np.round(np.expm1(ds.x_train["I1"])).astype(int).tolist() == list(range(60))
    write_movielens(
        tmp_path / "ml",
        "1\t10\t5\t300\n1\t20\t2\t100\n2\t10\t4\t500\n2\t30\t3\t500\n3\t20\t1\t200\n",
    )
    ml = load_movielens_100k(tmp_path / "ml", split="temporal", test_fraction=0.2, label="rating")
    # The latest rating (timestamp 500) and its tie go to test.
    assert sorted(ml.y_test.tolist()) == [3.0, 4.0] and ml.y_train.tolist() == [5.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="split"):
        load_avazu(tmp_path / "c.txt", split="by_day")


def test_undecodable_bytes_name_the_line(tmp_path):
    write_movielens(tmp_path)
    (tmp_path / "u.data").write_bytes(b"1\t10\t5\t881250949\n1\t2\xff0\t2\t881250950\n")
    with pytest.raises(ValueError, match=r"u\.data:2: expected UTF-8 text"):
        load_movielens_100k(tmp_path)
    bad = write(tmp_path / "a.csv", AVAZU_HEADER + avazu_line(0, 0))
    bad.write_bytes(bad.read_bytes() + avazu_line(1, 1).replace("site1", "s\xe9").encode("latin-1"))
    with pytest.raises(ValueError, match=r"a\.csv:3: expected UTF-8 text"):
        load_avazu(bad)
