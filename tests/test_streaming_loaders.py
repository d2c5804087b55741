"""Tests of the streaming loaders: every layout, equality with the in-memory path, bounded memory,
shuffling, hashed vocabularies and the `file:line` errors for bad content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from keras_smelu import datasets, models  # noqa: E402
from keras_smelu.datasets import StreamingDataset, load, write_click_log  # noqa: E402
from tests._data import real_data  # noqa: E402
from tests._subprocess import run_python  # noqa: E402

SMALL_CHUNK = 1024  # bytes: many chunks even for a small file


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def criteo_line(label, ints, cats) -> str:
    ints = [str(v) for v in ints] + [""] * (13 - len(ints))
    cats = list(cats) + [""] * (26 - len(cats))
    return "\t".join([str(label), *ints, *cats]) + "\n"


def criteo_rows(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for r in range(n):
        cats = [f"{rng.integers(0, 6):08x}", f"{rng.integers(0, 40):08x}", "", "x" * (r % 11)]
        lines.append(criteo_line(int(rng.random() < 0.3), [r, rng.integers(-1, 50)], cats))
    return "".join(lines)


def collect(stream: StreamingDataset, split: str, **kwargs):
    xs, ys = [], []
    for x, y in stream.epoch(split, **kwargs):
        xs.append(x)
        ys.append(y)
    return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}, np.concatenate(ys)


def same_data(a, b, features) -> bool:
    return (
        np.array_equal(a.y_train, b.y_train)
        and np.array_equal(a.y_test, b.y_test)
        and all(np.array_equal(a.x_train[k], b.x_train[k]) for k in features)
        and all(np.array_equal(a.x_test[k], b.x_test[k]) for k in features)
    )


# --- every layout parses; the streamed and in-memory paths agree ---


def test_criteo_stream_equals_in_memory(tmp_path):
    file = write(tmp_path / "train.txt", criteo_rows(700))
    memory = datasets.load_criteo(file, split="temporal", min_count=2)
    stream = load("criteo", file, streaming=True, split="temporal", chunk_bytes=SMALL_CHUNK)
    assert (stream.n_train, stream.n_test) == (600, 100)  # the last 1/7 of the rows
    assert stream.categorical == memory.categorical and stream.numeric == memory.numeric
    assert same_data(stream.materialize(), memory, memory.features)
    # The rows keep file order: I1 is the row number; I2 = -1 maps to 0 like a missing value.
    x, y = collect(stream, "test", batch_size=64)
    np.testing.assert_allclose(np.expm1(x["I1"]), np.arange(600, 700), rtol=1e-5)
    assert (x["I2"] >= 0).all() and (x["I3"] == 0).all() and (x["C3"] == 0).all()
    assert stream.categorical["C4"] == 11  # 10 non-empty lengths of "x" + id 0
    # The model builder takes the stream's spec.
    model = models.embedding_mlp(stream, "relu", hidden=(4,), embedding_dim=2)
    history = model.fit(
        stream.epoch("train", 128, shuffle_buffer=200, seed=0),
        steps_per_epoch=stream.n_batches("train", 128),
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])


def test_8_byte_ids_give_the_ids_of_strings_before_and_after_other_widths(tmp_path):
    # Blocks of 8-byte ids parse as binary, the first block with another width switches the
    # rest of the file to strings; a value gets one id wherever it stands.
    rng = np.random.default_rng(3)
    eight = ["0000000a", "ffff0001", "caf\u00e9123", "a b c de", "1234567\x00", "\x00" * 8]
    lines = []
    for r in range(900):
        cats = [eight[rng.integers(0, 6)], f"{rng.integers(0, 30):08x}", ""]  # 8 bytes each
        if r >= 600:  # other widths in the last third: strings from there on
            cats[2] = ["", "x", "0000000a", "a longer value", "1234567"][r % 5]
            cats[1] = cats[1] if r % 3 else cats[1][:5]
            cats[0] = cats[0] if r % 7 else "1234567"  # beside "1234567\x00": one value
        lines.append(criteo_line(r % 2, [r], cats))
    file = write(tmp_path / "train.txt", "".join(lines))
    memory = datasets.load_criteo(file, split="temporal", min_count=1)
    stream = load(
        "criteo", file, streaming=True, split="temporal", min_count=1, chunk_bytes=4096
    )
    assert stream.categorical == memory.categorical
    assert same_data(stream.materialize(), memory, memory.features)
    hashed = load("criteo", file, streaming=True, hash_buckets=1 << 20, chunk_bytes=4096)
    x = hashed.materialize()
    rows = np.round(np.expm1(x.x_train["I1"])).astype(int)
    c1_ids = {}
    for row, id_ in zip(rows.tolist(), x.x_train["C1"].tolist(), strict=True):
        c1_ids.setdefault(lines[row].split("\t")[14], set()).add(id_)
    assert all(len(v) == 1 for v in c1_ids.values()) and len(c1_ids) == 7
    assert c1_ids["1234567"] == c1_ids["1234567\x00"]
    assert c1_ids["\x00" * 8] == {0}  # all NUL: "" once trailing NULs are dropped, missing
    # Values in C3's string blocks get the ids C1's 8-byte blocks gave them.
    c3_ids = zip(rows.tolist(), x.x_train["C3"].tolist(), strict=True)
    c3 = {lines[row].split("\t")[16]: id_ for row, id_ in c3_ids}
    assert c3["0000000a"] in c1_ids["0000000a"] and c3["1234567"] in c1_ids["1234567\x00"]


def test_criteo_day_files_temporal(tmp_path):
    for day in range(3):
        write(tmp_path / f"day_{day}", criteo_rows(50 + day, seed=day))
    write(tmp_path / "day_10", criteo_rows(7, seed=10))  # numeric order: day_10 is the last
    stream = load("criteo", tmp_path, streaming=True, split="temporal")
    assert (stream.n_train, stream.n_test) == (50 + 51 + 52, 7)
    assert [Path(f).name for f in stream.info["files"]] == ["day_0", "day_1", "day_2", "day_10"]
    with pytest.raises(ValueError, match="several day files"):
        load("criteo", tmp_path / "day_0", streaming=True, split="temporal")


AVAZU_HEADER = (
    "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
    "app_category,device_id,device_ip,device_model,device_type,device_conn_type,"
    "C14,C15,C16,C17,C18,C19,C20,C21\n"
)


def avazu_rows(rows: range) -> str:
    out = []
    for r in rows:
        day = 21 + r // 40  # 40 rows a day
        fields = [str(10**19 + r), str(r % 3 == 0), f"1410{day:02d}{r % 24:02d}", "1005", "0"]
        fields[1] = str(int(r % 3 == 0))
        fields += [f"site{r % 5}", "dom", "cat", f"app{r % 2}", "ad", "ac", "dev", f"ip{r % 13}"]
        fields += ["m", "1", "0", "15704", "320", "50", "1722", "0", "35", "-1", "79"]
        out.append(",".join(fields) + "\n")
    return "".join(out)


def test_avazu_stream_equals_in_memory(tmp_path):
    write(tmp_path / "avazu" / "train.csv", AVAZU_HEADER + avazu_rows(range(100)))
    write(tmp_path / "avazu" / "valid.csv", avazu_rows(range(100, 130)))  # no header
    memory = datasets.load_avazu(tmp_path / "avazu", split="temporal", min_count=1)
    stream = load(
        "avazu", tmp_path / "avazu", streaming=True, split="temporal", min_count=1, chunk_bytes=2048
    )
    assert (stream.n_train, stream.n_test) == (120, 10)  # day 24 holds rows 120..129
    assert stream.categorical == memory.categorical
    assert same_data(stream.materialize(), memory, memory.features)
    assert "141024" in stream.info["split"]
    with pytest.raises(ValueError, match="train split is empty"):
        one_day = write(tmp_path / "one_day.csv", avazu_rows(range(120, 130)))
        load("avazu", one_day, streaming=True, split="temporal")


GENRES_0 = "|".join(["0"] * 19)


def test_movielens_releases(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    user, item = rng.integers(1, 20, n), rng.integers(1, 40, n)
    half = rng.integers(1, 11, n)  # 0.5 .. 5.0 stars
    stamp = rng.integers(10**9, 10**9 + 10**6, n)
    stamp[:5] = stamp.max()  # ties at the latest timestamp
    stars = half / 2
    lines_100k = "".join(
        f"{u}\t{i}\t{max(h // 2, 1)}\t{t}\n"
        for u, i, h, t in zip(user, item, half, stamp, strict=True)
    )
    write(tmp_path / "ml-100k" / "u.data", lines_100k)
    write(tmp_path / "ml-100k" / "u.user", "".join(f"{u}|30|M|other|12345\n" for u in range(1, 20)))
    write(
        tmp_path / "ml-100k" / "u.item",
        "".join(f"{i}|T (1990)|01-Jan-1990||u|{GENRES_0}\n" for i in range(1, 40)),
    )
    dat = "".join(
        f"{u}::{i}::{max(h // 2, 1)}::{t}\n"
        for u, i, h, t in zip(user, item, half, stamp, strict=True)
    )
    write(tmp_path / "ml-1m" / "ratings.dat", dat)
    csv = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},{s:.1f},{t}\n" for u, i, s, t in zip(user, item, stars, stamp, strict=True)
    )
    write(tmp_path / "ml-20m" / "ratings.csv", csv)

    memory = datasets.load_movielens_100k(tmp_path / "ml-100k", split="temporal", label="rating")
    by_release = {
        folder: load(
            "movielens", tmp_path / folder, streaming=True, split="temporal", label="rating"
        )
        for folder in ("ml-100k", "ml-1m", "ml-20m")
    }
    order = np.argsort(stamp, kind="stable")
    n_test = round(n * 0.2)
    test = stamp >= stamp[order[n - n_test]]
    for folder, stream in by_release.items():
        assert stream.task == "regression" and stream.n_test == test.sum() >= n_test, folder
        x, y = collect(stream, "test", batch_size=32)
        expected = stars[test] if folder == "ml-20m" else np.maximum(half[test] // 2, 1)
        np.testing.assert_array_equal(y, expected.astype(np.float32))
    # 100K streamed == 100K in memory on the shared features; 1M's `::` file gives the same.
    ml100k = by_release["ml-100k"].materialize()
    assert same_data(ml100k, memory, ("user_id", "item_id"))
    assert same_data(by_release["ml-1m"].materialize(), ml100k, ("user_id", "item_id"))
    liked = load("movielens", tmp_path / "ml-20m" / "ratings.csv", split="temporal")
    np.testing.assert_array_equal(liked.y_test, (stars[test] >= 4).astype(np.float32))


LIBSVM_TRAIN = """\
+1 1:0.5 3:1 7:2  # a comment
-1 3:1
+1 1:1.5 7:1 9:4 11:1
# only a comment

-1 1:2
+1 0:5:1 1:5:0.25
"""


def test_libsvm_stream_equals_in_memory(tmp_path):
    train = write(tmp_path / "a.train", LIBSVM_TRAIN)
    test = write(tmp_path / "a.test", "1 3:2 42:1\n0 1:1 0:5:3\n")
    memory = datasets.load_libsvm(train, test_path=test)
    stream = load("libsvm", train, streaming=True, test_path=test, chunk_bytes=SMALL_CHUNK)
    assert stream.bags == {"ids": "values"} and stream.categorical == memory.categorical
    assert (stream.n_train, stream.n_test) == (5, 2)
    assert same_data(stream.materialize(), memory, ("ids", "values"))
    narrow = load("libsvm", train, streaming=True, test_path=test, max_features=2)
    x, _ = collect(narrow, "train", batch_size=2)
    assert x["ids"].shape == (5, 2)
    np.testing.assert_array_equal(x["values"][2], [1.5, 1.0])
    hashed = load("libsvm", train, streaming=True, task="regression", hash_buckets=16)
    assert hashed.categorical == {"ids": 16} and hashed.task == "regression"


# --- splits, shuffling, chunking ---


def test_random_split_shuffle_and_chunking(tmp_path):
    file = write(tmp_path / "c.txt", criteo_rows(1000))
    stream = load("criteo", file, streaming=True, seed=3, chunk_bytes=8 * SMALL_CHUNK)
    big_chunks = load("criteo", file, streaming=True, seed=3)
    train, _ = collect(stream, "train", batch_size=100)
    test, _ = collect(stream, "test", batch_size=100)
    rows = np.round(np.expm1(np.concatenate([train["I1"], test["I1"]]))).astype(int)
    assert sorted(rows.tolist()) == list(range(1000))  # train and test partition the rows
    assert 0.15 < stream.n_test / 1000 < 0.25 and len(test["I1"]) == stream.n_test
    assert stream.n_batches("train", 100) == -(-stream.n_train // 100)
    # The chunk size changes nothing; the seed changes the split.
    assert same_data(stream.materialize(), big_chunks.materialize(), stream.features)
    other = load("criteo", file, streaming=True, seed=4)
    assert other.n_test != stream.n_test or not np.array_equal(
        collect(other, "test", batch_size=100)[0]["I1"], test["I1"]
    )
    # A bounded shuffle: a permutation of the rows, the same for a seed, not file order.
    plain_x, plain_y = collect(stream, "train", batch_size=64)
    a, ya = collect(stream, "train", batch_size=64, shuffle_buffer=100, seed=1)
    b, _ = collect(stream, "train", batch_size=64, shuffle_buffer=100, seed=1)
    c, _ = collect(stream, "train", batch_size=64, shuffle_buffer=100, seed=2)
    assert np.array_equal(a["I1"], b["I1"]) and not np.array_equal(a["I1"], c["I1"])
    assert not np.array_equal(a["I1"], plain_x["I1"])
    assert np.array_equal(np.sort(a["I1"]), np.sort(plain_x["I1"]))
    key = np.lexsort((a["C1"], a["I1"]))
    np.testing.assert_array_equal(ya[key], plain_y[np.lexsort((plain_x["C1"], plain_x["I1"]))])
    sizes = [len(y) for _, y in stream.epoch("train", 64, shuffle_buffer=100, seed=1)]
    assert sizes[:-1] == [64] * (len(sizes) - 1) and sum(sizes) == stream.n_train


def test_hashed_vocabulary(tmp_path):
    file = write(tmp_path / "c.txt", criteo_rows(500))
    hashed = load("criteo", file, streaming=True, hash_buckets=50, chunk_bytes=SMALL_CHUNK)
    assert hashed.n_train is None and hashed.n_batches() is None  # no counting pass
    assert set(hashed.categorical.values()) == {50}
    x, _ = collect(hashed, "train", batch_size=128)
    assert x["C1"].min() >= 1 and x["C1"].max() < 50 and (x["C3"] == 0).all()
    # The same value gets the same id whatever the chunk and the process.
    counted_x, _ = collect(
        load("criteo", file, streaming=True, min_count=1), "train", batch_size=128
    )
    pairs = set(zip(counted_x["C2"].tolist(), x["C2"].tolist(), strict=True))
    assert len({c for c, _ in pairs}) == len(pairs)  # each counted id -> exactly one hashed id
    code = f"""
        from keras_smelu.datasets import load
        s = load("criteo", {str(file)!r}, streaming=True, hash_buckets=50)
        print(next(s.epoch("train", 8))[0]["C2"].tolist())
    """
    assert run_python(code).stdout.strip() == str(x["C2"][:8].tolist())


# --- parse once: the chunk cache ---


def _layout_files(tmp_path: Path, layout: str) -> tuple[list[Path], dict]:
    """Small files of one layout and the `load` arguments that stream them."""
    if layout == "criteo":
        file = write(tmp_path / "train.txt", criteo_rows(700))
        return [file], {"name": "criteo", "path": file, "split": "temporal"}
    if layout == "criteo-hashed":
        file = write(tmp_path / "train.txt", criteo_rows(400, seed=2))
        return [file], {"name": "criteo", "path": file, "hash_buckets": 64}
    if layout == "avazu":
        file = write(tmp_path / "avazu.csv", AVAZU_HEADER + avazu_rows(range(130)))
        return [file], {"name": "avazu", "path": file, "split": "temporal", "min_count": 1}
    if layout == "movielens":
        rng = np.random.default_rng(1)
        users, items, half = (rng.integers(1, k, 400) for k in (30, 60, 11))
        rows = zip(users, items, half, strict=True)
        text = "userId,movieId,rating,timestamp\n" + "".join(
            f"{u},{i},{h / 2:.1f},{10**9 + r}\n" for r, (u, i, h) in enumerate(rows)
        )
        file = write(tmp_path / "ml-20m" / "ratings.csv", text)
        return [file], {"name": "movielens", "path": file, "split": "temporal"}
    train = write(tmp_path / "a.train", LIBSVM_TRAIN * 20)
    test = write(tmp_path / "a.test", "1 3:2 42:1\n0 1:1 0:5:3\n")
    return [train, test], {"name": "libsvm", "path": train, "test_path": test}


@pytest.mark.parametrize("layout", ["criteo", "criteo-hashed", "avazu", "movielens", "libsvm"])
def test_a_cache_gives_the_same_data_and_reads_no_text_after_the_first_pass(tmp_path, layout):
    files, kwargs = _layout_files(tmp_path, layout)
    name, path = kwargs.pop("name"), kwargs.pop("path")
    parsed = load(name, path, streaming=True, chunk_bytes=SMALL_CHUNK, **kwargs)
    cache_dir = tmp_path / "cache"
    cached = load(
        name, path, streaming=True, chunk_bytes=SMALL_CHUNK, cache_dir=cache_dir, **kwargs
    )
    assert cached.categorical == parsed.categorical and cached.numeric == parsed.numeric
    assert cached.n_test is not None  # the first pass also counts the splits (hashed too)
    if parsed.n_test is not None:
        assert (cached.n_train, cached.n_test) == (parsed.n_train, parsed.n_test)
    assert "parsed chunks" in cached.info["cache"] and parsed.info["cache"] is None
    expected = [collect(parsed, split, batch_size=16, shuffle_buffer=50, seed=4) for split in
                ("train", "test")]  # fmt: skip
    for f in files:  # from now on the text is gone: only the cache can give the data
        f.rename(f.with_name(f.name + ".moved"))
    for split, (x, y) in zip(("train", "test"), expected, strict=True):
        got_x, got_y = collect(cached, split, batch_size=16, shuffle_buffer=50, seed=4)
        np.testing.assert_array_equal(got_y, y)
        for feature in x:
            np.testing.assert_array_equal(got_x[feature], x[feature], err_msg=feature)
    with pytest.raises(FileNotFoundError):
        collect(parsed, "train", batch_size=16)
    # The cache's folder goes with the dataset.
    (folder,) = cache_dir.iterdir()
    assert len(list(folder.iterdir())) > 1  # one file per chunk
    del cached
    import gc

    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize("layout", ["criteo", "criteo-hashed", "avazu", "movielens", "libsvm"])
def test_any_number_of_workers_gives_the_same_batches(tmp_path, layout):
    _, kwargs = _layout_files(tmp_path, layout)
    name, path = kwargs.pop("name"), kwargs.pop("path")
    one = load(name, path, streaming=True, chunk_bytes=SMALL_CHUNK, workers=1, **kwargs)
    expected = [collect(one, split, batch_size=16, shuffle_buffer=50, seed=4) for split in
                ("train", "test")]  # fmt: skip
    for workers, cache_dir in ((3, None), (4, tmp_path / "cache")):
        many = load(
            name, path, streaming=True, chunk_bytes=SMALL_CHUNK, workers=workers,
            cache_dir=cache_dir, **kwargs,
        )  # fmt: skip
        assert many.categorical == one.categorical
        if one.n_test is not None:
            assert (many.n_train, many.n_test) == (one.n_train, one.n_test)
        for _ in range(2):  # the counting pass, then a pass from the cache
            for split, (x, y) in zip(("train", "test"), expected, strict=True):
                got_x, got_y = collect(many, split, batch_size=16, shuffle_buffer=50, seed=4)
                np.testing.assert_array_equal(got_y, y)
                for feature in x:
                    np.testing.assert_array_equal(got_x[feature], x[feature], err_msg=feature)


def test_ordered_map_keeps_order_bounds_read_ahead_and_raises_in_place():
    import threading
    import time

    from keras_smelu.datasets._parallel import ordered_map

    def slow_early(i):  # the first items finish last
        time.sleep(0.02 * (5 - i) if i < 5 else 0)
        if i == 7:
            raise KeyError(i)
        return i * i, threading.current_thread().name

    taken = []

    def items():
        for i in range(100):
            taken.append(i)
            yield i

    results = ordered_map(slow_early, items(), workers=3)
    got = [next(results) for _ in range(7)]
    assert [r for r, _ in got] == [i * i for i in range(7)]
    assert all(name.startswith("keras-smelu-chunks") for _, name in got)
    assert len(taken) <= 7 + 3 + 1  # at most workers + 1 ahead of the consumer
    with pytest.raises(KeyError):  # item 7's error, at item 7
        next(results)
    results.close()
    assert list(ordered_map(lambda i: -i, range(4), workers=1)) == [0, -1, -2, -3]
    stopped = ordered_map(slow_early, items(), workers=2)
    next(stopped)
    stopped.close()  # a consumer that stops early: nothing more is read
    before = len(taken)
    time.sleep(0.1)
    assert len(taken) == before


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_errors_deep_in_a_file_name_the_line_with_several_workers(tmp_path, suffix):
    import gzip

    good = criteo_line(0, [1], ["aa"])
    text = good * 150 + "\n" + good * 149 + criteo_line(1, [2], ["aa"]).replace("\t", " ", 2)
    file = tmp_path / f"deep{suffix}"
    (gzip.open if suffix.endswith(".gz") else open)(file, "wt").write(text)  # 151: blank
    with pytest.raises(ValueError, match=r"deep\.txt(\.gz)?:301: expected 40"):
        load("criteo", file, streaming=True, chunk_bytes=SMALL_CHUNK, workers=3)
    dat = "".join(f"{u}::{u + 1}::4::{10**9 + u}\n" for u in range(1, 300)) + "7::8::9::10\n"
    write(tmp_path / "ml-1m" / "ratings.dat", dat)
    with pytest.raises(ValueError, match=r"ratings\.dat:300: rating must be a number"):
        load("movielens", tmp_path / "ml-1m", streaming=True, chunk_bytes=SMALL_CHUNK, workers=3)
    svm = write(tmp_path / "deep.svm", "1 1:1 2:0.5\n" * 200 + "0 3:x\n")
    with pytest.raises(ValueError, match=r"deep\.svm:201: a value must be a finite number"):
        load("libsvm", svm, streaming=True, chunk_bytes=SMALL_CHUNK, workers=3)


def test_a_cache_dir_that_is_not_a_folder_is_refused(tmp_path):
    file = write(tmp_path / "c.txt", criteo_rows(50))
    with pytest.raises(ValueError, match="`cache_dir` must be a folder that can be written to"):
        load("criteo", file, streaming=True, cache_dir=file)


FULL_CACHE = """
set -eu
mount -t tmpfs -o size=64k tmpfs "$1"
"$2" -c '
import sys
from keras_smelu.datasets import load
try:
    load("criteo", sys.argv[1], streaming=True, chunk_bytes=1024, cache_dir=sys.argv[2])
except OSError as e:
    import os
    print("ERROR", e)
    print("LEFT", os.listdir(sys.argv[2]))
' "$3" "$1"
"""


def test_a_full_disk_under_the_cache_says_so_and_leaves_nothing(tmp_path):
    import shutil
    import subprocess
    import sys

    mount = tmp_path / "small"
    mount.mkdir()
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {mount}"],
        capture_output=True,
    ) if shutil.which("unshare") else None  # fmt: skip
    if probe is None or probe.returncode != 0:
        pytest.skip("a small tmpfs cannot be mounted here (needs unshare -m and mount rights)")
    file = write(tmp_path / "c.txt", criteo_rows(3000))  # ~ 400 KB of text
    script = write(tmp_path / "full.sh", FULL_CACHE)
    out = subprocess.run(
        ["unshare", "-m", "sh", str(script), str(mount), sys.executable, str(file)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert "ran out of disk space" in out.stdout and "cache_dir" in out.stdout, out
    assert "LEFT []" in out.stdout, out.stdout  # the partial cache is removed


# --- bounded memory ---

MEMORY_CODE = """
    import json, sys
    from keras_smelu.datasets import load
    stream = load("criteo", sys.argv[1] if len(sys.argv) > 1 else {path!r}, streaming=True,
                  chunk_bytes=1 << 20, min_count=2)
    rows = sum(len(y) for _, y in stream.epoch("train", 4096, shuffle_buffer=20_000, seed=0))
    with open("/proc/self/status") as f:  # getrusage's ru_maxrss starts at the parent's peak
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({{"rows": rows, "peak_kb": peak_kb}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_does_not_grow_with_rows(tmp_path):
    small = write_click_log(tmp_path / "small.txt", 10_000, seed=1)
    large = write_click_log(tmp_path / "large.txt", 100_000, seed=1)
    assert large.stat().st_size > 9 * small.stat().st_size  # ~27 MB
    peaks = {}
    for file in (small, large):
        out = json.loads(
            run_python(MEMORY_CODE.format(path=str(file))).stdout.strip().splitlines()[-1]
        )
        assert 0.75 * 0.8 * (10_000 if file == small else 100_000) < out["rows"]
        peaks[file.name] = out["peak_kb"]
    assert peaks["large.txt"] < 1.3 * peaks["small.txt"], peaks


# --- bad content: file:line and what was expected ---


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 1:1\n0 2:nan\n", r"bad\.svm:2: a value must be a finite number.*'nan'"),
        ("1 1:1\n\n1 2:inf\n", r"bad\.svm:3: a value must be a finite number.*'inf'"),
        ("1 1:1e400\n", r"bad\.svm:1: a value must be a finite number.*'1e400'"),
        ("1 1:1\nnan 2:1\n", r"bad\.svm:2: the label must be a finite number.*'nan'"),
        ("-inf 2:1\n", r"bad\.svm:1: the label must be a finite number"),
        ("1 1:1\n1e400 2:1\n", r"bad\.svm:2: the label must be a finite number"),
        ("1 1:1\nyes 2:1\n", r"bad\.svm:2: the label must be a finite number.*'yes'"),
        ("1 1:1\n0 1:1 x:2\n", r"bad\.svm:2: expected `idx:val` or `field:idx:val`.*'x:2'"),
        ("1 1:1\n0 1:2:3:4\n", r"bad\.svm:2: expected `idx:val`"),
        ("1 1:1\n0 1:a\n", r"bad\.svm:2: a value must be a finite number.*'a'"),
    ],
)
def test_libsvm_bad_values(tmp_path, text, message):
    file = write(tmp_path / "bad.svm", text)
    with pytest.raises(ValueError, match=message):
        datasets.load_libsvm(file)
    with pytest.raises(ValueError, match=message):
        load("libsvm", file, streaming=True)


def test_non_utf8_bytes_name_the_line(tmp_path):
    svm = write(tmp_path / "bad.svm", b"1 1:1\n0 2:1 # caf\xe9\n")
    for loader in (datasets.load_libsvm, lambda f: load("libsvm", f, streaming=True)):
        with pytest.raises(ValueError, match=r"bad\.svm:2: expected UTF-8 text"):
            loader(svm)
    good = criteo_line(0, [1], ["aa"])
    crit = write(
        tmp_path / "c.txt",
        (good * 3 + criteo_line(1, [2], ["caf\udce9"])).encode("utf-8", "surrogateescape"),
    )
    for loader in (datasets.load_criteo, lambda f: load("criteo", f, streaming=True)):
        with pytest.raises(ValueError, match=r"c\.txt:4: expected UTF-8 text"):
            loader(crit)
    ids = write(  # 8-byte ids, parsed as binary: checked all the same
        tmp_path / "ids.txt",
        (criteo_line(0, [1], ["0000000a"]) * 3 + criteo_line(1, [2], ["caf\udce91234"])).encode(
            "utf-8", "surrogateescape"
        ),
    )
    with pytest.raises(ValueError, match=r"ids\.txt:4: expected UTF-8 text"):
        load("criteo", ids, streaming=True, workers=1)
    ml = write(
        tmp_path / "ml" / "ratings.csv", b"userId,movieId,rating,timestamp\n1,2,3.5,9\n\xff,1,1,1\n"
    )
    with pytest.raises(ValueError, match=r"ratings\.csv:3: expected UTF-8 text"):
        load("movielens", ml, streaming=True)


def test_csv_bad_content_names_the_line(tmp_path):
    good = criteo_line(0, [1], ["aa"])
    cases = {
        "fields": (good * 2 + good.replace("\t", " ", 3), r"fields\.txt:3: expected 40"),
        "label": (
            good + criteo_line("nan", [1], ["aa"]),
            r"label\.txt:2: column 'label' must be an integer.*'nan'",
        ),
        "two": (good * 2 + criteo_line(2, [1], ["aa"]), r"two\.txt:3: label must be 0 or 1"),
        "empty": (
            good + criteo_line("", [1], ["aa"]),
            r"empty\.txt:2: column 'label' must not be empty",
        ),
        "count": (
            good + "\n" + criteo_line(0, ["1e400"], ["aa"]),
            r"count\.txt:3: column 'I1' must be an integer.*'1e400'",
        ),
    }
    for name, (text, message) in cases.items():
        file = write(tmp_path / f"{name}.txt", text)
        with pytest.raises(ValueError, match=message):
            load("criteo", file, streaming=True, chunk_bytes=SMALL_CHUNK)
    ml = write(
        tmp_path / "ml" / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,9\n1,3,nan,10\n"
    )
    with pytest.raises(
        ValueError, match=r"ratings\.csv:3: rating must be a number in \(0, 5\].*nan"
    ):
        load("movielens", ml, streaming=True)
    write(ml, "userId,movieId,rating,timestamp\n1,2,3.5,9\n1,3,inf,10\n")
    with pytest.raises(ValueError, match=r"ratings\.csv:3: rating must be"):
        load("movielens", ml, streaming=True)
    write(ml, "user,movie,rating,timestamp\n1,2,3.5,9\n")
    with pytest.raises(ValueError, match=r"ratings\.csv:1: expected the header"):
        load("movielens", ml, streaming=True)
    av = write(
        tmp_path / "a.csv", AVAZU_HEADER + avazu_rows(range(3)).replace(",1410", ",x1410", 1)
    )
    with pytest.raises(ValueError, match=r"a\.csv:2: column 'hour' must be an integer"):
        load("avazu", av, streaming=True)


def test_bad_arguments(tmp_path):
    file = write(tmp_path / "c.txt", criteo_rows(20))
    for kwargs, match in (
        ({"split": "by_user"}, "split"),
        ({"hash_buckets": 1}, "hash_buckets"),
        ({"chunk_bytes": 10}, "chunk_bytes"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"min_count": 0}, "min_count"),
        ({"workers": 0}, "workers"),
        ({"workers": 1.5}, "workers"),
        ({"workers": True}, "workers"),
    ):
        with pytest.raises(ValueError, match=match):
            load("criteo", file, streaming=True, **kwargs)
    stream = load("criteo", file, streaming=True, min_count=1)
    with pytest.raises(ValueError, match="batch_size"):
        next(stream.epoch("train", 0))
    with pytest.raises(ValueError, match="shuffle_buffer"):
        next(stream.epoch("train", 8, shuffle_buffer=-1))
    with pytest.raises(ValueError, match="split"):
        stream.epoch("valid")
    with pytest.raises(ValueError, match="cannot stream"):
        load("synthetic", streaming=True)
    with pytest.raises(ValueError, match="temporal split is not available"):
        load("libsvm", file, streaming=True, split="temporal")
    with pytest.raises(FileNotFoundError, match="MovieLens ratings not found"):
        load("movielens", tmp_path / "nowhere", streaming=True)


# --- the synthetic log writer ---


def test_write_click_log_layouts(tmp_path):
    log = write_click_log(tmp_path / "log.txt", 5_000, seed=2, chunk_rows=1_500)
    again = write_click_log(tmp_path / "again.txt", 5_000, seed=2, chunk_rows=1_500)
    assert log.read_bytes() == again.read_bytes()
    memory = datasets.load_criteo(log, min_count=1)
    assert memory.n_train + memory.n_test == 5_000 and 0.1 < memory.base_rate < 0.5
    assert memory.categorical["C1"] == 5  # a vocabulary of 4 values + id 0
    ratings = write_click_log(tmp_path / "ratings.csv", 3_000, layout="movielens", seed=2)
    stream = load("movielens", ratings, streaming=True, label="rating")
    assert stream.n_train + stream.n_test == 3_000
    _, y = collect(stream, "train", batch_size=500)
    assert set(np.unique(y * 2).tolist()) <= set(range(1, 11)) and 3.0 < y.mean() < 4.0
    with pytest.raises(ValueError, match="layout"):
        write_click_log(tmp_path / "x", 10, layout="parquet")


# --- real data (skipped without it) ---


def test_real_samples_stream_like_in_memory():
    folder = real_data("criteo-dac-8k")
    memory = datasets.load_criteo(folder, split="temporal")
    stream = load("criteo", folder, streaming=True, split="temporal")
    assert (stream.n_train, stream.n_test) == (memory.n_train, memory.n_test)
    assert same_data(stream.materialize(), memory, memory.features)
    avazu = load("avazu", real_data("avazu-9k"), streaming=True)
    assert avazu.n_train + avazu.n_test == 8_999 and avazu.categorical["hour_of_day"] == 2
    ml = load("movielens-100k", real_data("movielens-100k"), streaming=True, split="temporal")
    assert ml.n_train + ml.n_test == 100_000 and ml.categorical["user_id"] <= 944


def test_in_memory_loaders_need_no_pyarrow(tmp_path):
    file = write(tmp_path / "c.txt", criteo_rows(30))
    code = f"""
        import sys
        sys.modules["pyarrow"] = None  # as if it were not installed
        from keras_smelu import datasets
        print(datasets.load_criteo({str(file)!r}).n_train)
        try:
            datasets.load("criteo", {str(file)!r}, streaming=True)
        except ImportError as e:
            print(e)
    """
    out = run_python(code).stdout
    assert out.splitlines()[0] == "24" and 'pip install "keras-smelu[data]"' in out


def test_counted_vocabulary_of_small_and_large_integers():
    import pyarrow as pa

    from keras_smelu.datasets._vocabulary import CountedVocabulary

    chunks = [[3, 1, 3, None, 7, 3], [1, 7, 7, 2], [2**40, 7, 1, None, 2**40, 5]]
    counter = CountedVocabulary()
    for i, chunk in enumerate(chunks):
        rows = None if i != 1 else np.array([True, True, True, False])  # 2 is a test row
        counter.add(pa.array(chunk, pa.int64()), rows)
    vocabulary = counter.finish(min_count=2)
    # Counts 7:4, 1:3, 3:3, 2**40:2 (5 and the test row's 2 are seen once or not at all);
    # ties by value: 1 before 3.
    assert vocabulary.values.to_pylist() == [7, 1, 3, 2**40]
    ids = vocabulary.encode(pa.array([7, 1, 3, 2**40, 5, 2, None, 0], pa.int64()))
    np.testing.assert_array_equal(ids, [1, 2, 3, 4, 0, 0, 0, 0])
    small = CountedVocabulary()
    small.add(pa.array([4, 4, 9, None], pa.int64()))
    dense = small.finish(min_count=1)
    np.testing.assert_array_equal(
        dense.encode(pa.array([9, 4, 2**30, None, 0], pa.int64())), [2, 1, 0, 0, 0]
    )


def test_key_table_keeps_codes_through_growth():
    from keras_smelu.datasets._key_table import KeyTable

    rng = np.random.default_rng(0)
    table, codes_of = KeyTable(), {}
    for i in range(40):  # batches of new, known and repeated keys; the table doubles
        keys = rng.integers(0, 4000 if i % 2 else 2**63, int(rng.integers(0, 3000)))
        keys = keys.astype(np.uint64)
        keys = np.concatenate([keys, keys[: len(keys) // 3]])  # repeats get one code
        rng.shuffle(keys)
        codes = table.add(keys)
        for key, code in zip(keys.tolist(), codes.tolist(), strict=True):
            assert codes_of.setdefault(key, code) == code  # a known key keeps its code
        np.testing.assert_array_equal(table.lookup(keys), codes)
    assert len(table) == len(codes_of) and sorted(codes_of.values()) == list(range(len(table)))
    np.testing.assert_array_equal(table.keys()[list(codes_of.values())], list(codes_of))
    absent = np.setdiff1d(rng.integers(0, 2**63, 500).astype(np.uint64), list(codes_of))
    assert (table.lookup(absent) == -1).all()


@pytest.mark.parametrize("kind", ["string", "id8", "int"])
def test_a_column_parsed_in_several_chunks_is_coded_as_one(kind):
    # pyarrow parses a block in pieces: a column can come as a chunked array. Its codes and
    # counts must be those of the same values in one array.
    import pyarrow as pa

    from keras_smelu.datasets._vocabulary import CountedVocabulary, dictionary

    rng = np.random.default_rng(1)
    pieces = []
    for size in (0, 300, 1, 0, 700, 50):  # empty pieces too
        raw = rng.integers(0, 40, size).tolist()
        missing = (rng.random(size) < 0.1).tolist()
        if kind == "int":
            values, arrow_type = [v * 1_000_003 for v in raw], pa.int64()
        elif kind == "id8":
            values, arrow_type = [f"{v:08x}".encode() for v in raw], pa.binary(8)
        else:
            values, arrow_type = ["v" * (v % 12) + str(v) for v in raw], pa.string()
        values = [None if m else v for v, m in zip(values, missing, strict=True)]
        pieces.append(pa.array(values, arrow_type))
    chunked = pa.chunked_array(pieces, type=pieces[0].type)
    whole = chunked.combine_chunks()

    distinct, index = dictionary(chunked)
    assert distinct.take(pa.array(index)).equals(whole)
    assert len(distinct) == len(set(whole.to_pylist()))

    one, several = CountedVocabulary("c"), CountedVocabulary("c")
    one.add(whole)
    several.add(chunked)
    a, b = one.finish(1), several.finish(1)
    assert a.values.equals(b.values)
    np.testing.assert_array_equal(a.encode(whole), b.encode(chunked))


def test_counted_vocabulary_refuses_two_values_with_one_key():
    import pyarrow as pa

    from keras_smelu.datasets._vocabulary import CountedVocabulary, keys64

    # A string of 8 bytes is its own key; a longer one is hashed. Find a long string whose hash
    # reads as 8 printable bytes: the two share a key.
    for i in range(100_000):
        long = f"a value longer than 8 bytes {i}"
        key = keys64(pa.array([long]))[0][0]
        short = np.array([key], np.uint64).view(np.uint8)
        if ((short >= 0x20) & (short < 0x7F)).all():
            break
    short = bytes(short).decode("ascii")
    for first, second in ((short, long), (long, short)):  # in either order, in two chunks
        counter = CountedVocabulary("C7")
        counter.add(pa.array([first, "other"]))
        with pytest.raises(ValueError, match="64-bit key; use `hash_buckets` for column 'C7'"):
            counter.add(pa.array([second]))
    with pytest.raises(ValueError, match="share a 64-bit key"):  # or in one chunk
        CountedVocabulary().add(pa.array([short, long]))
    # Trailing NULs are not part of a value, as in the in-memory loaders' NumPy strings.
    counter = CountedVocabulary()
    counter.add(pa.array(["ab", "ab\x00", "ab\x00\x00", "abcdefg\x00", long + "\x00", "\x00"]))
    vocabulary = counter.finish(min_count=1)
    assert vocabulary.values.to_pylist() == ["ab", long, "abcdefg"]  # ties by value
    ids = vocabulary.encode(pa.array([long, "ab", "ab\x00", "abcdefg", None, "", "\x00", "a"]))
    np.testing.assert_array_equal(ids, [2, 1, 1, 3, 0, 0, 0, 0])
    assert datasets._base.build_vocabulary(
        np.asarray(["ab", "ab\x00", "ab\x00\x00", "abcdefg\x00", long + "\x00", "\x00"], str)
    ).tolist() == vocabulary.values.to_pylist()


def test_integer_ids_seen_only_in_test_rows_map_to_0_from_the_cache_too(tmp_path):
    # The latest ratings (the temporal test split) bring users never seen in training: one
    # above every training id, one beyond 2**22 (a hashed key, not an array slot); items mix
    # small ids and ids beyond 2**22. Codes read back from the cache give the ids that looking
    # the values up again gives.
    rng = np.random.default_rng(5)
    lines = []
    for r in range(400):
        user = int(rng.integers(1, 40)) if r < 340 else [500, 2**40, 7][r % 3]
        item = int(rng.integers(1, 60)) if r % 5 else 2**23 + r % 4
        lines.append(f"{user},{item},{rng.integers(1, 11) / 2:.1f},{10**9 + r}\n")
    file = write(
        tmp_path / "ml-20m" / "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(lines)
    )
    kwargs = {"split": "temporal", "chunk_bytes": 1024}
    plain = load("movielens", file, streaming=True, **kwargs)
    cached = load("movielens", file, streaming=True, cache_dir=tmp_path / "cache", **kwargs)
    assert plain.categorical == cached.categorical
    assert plain.n_test == 80 and cached.n_test == 80
    for split in ("train", "test"):
        a, ya = collect(plain, split, batch_size=32)
        b, yb = collect(cached, split, batch_size=32)
        assert all(np.array_equal(a[k], b[k]) for k in a) and np.array_equal(ya, yb)
    x, _ = collect(cached, "test", batch_size=32)
    users = [int(line.split(",")[0]) for line in lines]
    trained = np.isin(users[320:], users[:320])
    assert not trained[np.isin(users[320:], [500, 2**40])].any()
    assert (x["user_id"][~trained] == 0).all() and (x["user_id"][trained] > 0).all()
    assert (x["item_id"] > 0).all()  # every item, small or large, was rated in training
