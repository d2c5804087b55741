"""Replica training on streamed data and at checkpoints within an epoch (the one-pass regime):
real Keras training of tiny models on tiny generated logs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from keras_smelu import datasets, models  # noqa: E402
from keras_smelu._replica_data import StreamData, StreamSplit, segments  # noqa: E402
from keras_smelu._replica_models import pair_seeds  # noqa: E402
from keras_smelu.replicas import ReplicaSettings, train_replicas  # noqa: E402
from tests._backend import weights_equal  # noqa: E402
from tests._streams import BATCH, ROWS, small_click_stream  # noqa: E402


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return small_click_stream(tmp_path_factory.mktemp("log"))


def build(stream, activation="relu"):
    return models.embedding_mlp(
        stream, activation, embedding_dim=2, hidden=(8,), normalization="layer"
    )


@pytest.mark.backend
def test_stream_in_file_order_trains_as_the_same_rows_in_memory(stream):
    # Training losses too: a segment of unknown length once made TensorFlow average each
    # replica's loss over one more, empty, step (k/(k+1) of the mean; the weights were equal).
    test = StreamSplit(stream, "test")
    x, y = StreamSplit(stream, "train", in_memory=True).arrays()
    # In memory, the replicas' order generator permutes the rows: lay them out so that its
    # permutation gives back the file order, which the stream reads with shuffle_buffer=0.
    order_seed = pair_seeds(0, 0, "none")["order"][0]
    permutation = np.random.default_rng(order_seed).permutation(len(y))
    inverse = np.argsort(permutation)
    in_memory = ({k: v[inverse] for k, v in x.items()}, y[inverse])
    settings = ReplicaSettings(vary="none", batch_size=BATCH, eval_every=4)
    streamed = train_replicas(
        lambda a: build(stream, a),
        StreamSplit(stream, "train", shuffle_buffer=0),
        test,
        settings=settings,
        verbose=0,
        return_models=True,
    )
    memory = train_replicas(
        lambda a: build(stream, a),
        in_memory,
        test,
        settings=settings,
        verbose=0,
        return_models=True,
    )
    assert streamed.pair_results[0]["steps"] == memory.pair_results[0]["steps"]
    for a, b in zip(streamed.history, memory.history, strict=True):
        np.testing.assert_allclose(a["metrics"]["loss"], b["metrics"]["loss"], rtol=1e-6)
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-6)
    for a, b in zip(streamed.models, memory.models, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert streamed.pd_value == 0.0  # nothing differs within a pair


def test_checkpoints_every_k_steps(stream):
    n_train = stream.n_train
    batches = -(-n_train // BATCH)
    k = 3
    report = train_replicas(
        lambda a: build(stream, a),
        stream,  # the dataset itself: its train split streamed, its test split in memory
        stream,
        epochs=2,
        batch_size=BATCH,
        eval_every=k,
        verbose=0,
    )
    per_epoch = list(range(k, batches, k)) + [batches]
    expected = per_epoch + [batches + s for s in per_epoch]
    assert report.pair_results[0]["steps"] == expected
    assert [h["steps"] for h in report.history] == expected
    assert len(report.pair_results[0]["pd"]) == len(expected) == len(report.history)
    assert len(report.pair_results[0]["replicas"][0]["metrics"]) == len(expected)
    assert report.epoch == len(expected)  # report_epoch="last": the last checkpoint


def test_checkpoints_in_memory_change_nothing_but_the_trajectory():
    rng = np.random.default_rng(0)
    x = {"f": rng.integers(1, 20, size=300).astype("int32")}
    y = (x["f"] % 3 == 0).astype("float32")
    spec = ({"f": 20}, (), "binary")

    def build_small(activation):
        return models.embedding_mlp(spec, activation, embedding_dim=2, hidden=(4,))

    common = dict(batch_size=32, verbose=0, return_models=True, fused=False)
    plain = train_replicas(build_small, (x, y), (x, y), **common)
    cut = train_replicas(build_small, (x, y), (x, y), eval_every=4, **common)
    assert cut.pair_results[0]["steps"] == [4, 8, 10]
    assert plain.pair_results[0]["steps"] == [10]
    for a, b in zip(plain.models, cut.models, strict=True):
        assert weights_equal(a, b)  # the same steps, in the same order
    assert cut.history[-1]["pd"] == plain.history[-1]["pd"]


def test_data_order_is_per_replica_and_reproducible(stream):
    data = StreamData(StreamSplit(stream, "train", shuffle_buffer=128), "train_data", BATCH)

    def labels_in_order(seed):
        rng = np.random.default_rng(seed)
        out = []
        for segment in segments(data, rng, 5):
            out.extend(np.concatenate([y for _, y in segment.fit_kwargs["x"]]).tolist())
        return np.array(out)

    seeds = pair_seeds(0, 0, "data_order")["order"]
    a, b, a_again = labels_in_order(seeds[0]), labels_in_order(seeds[1]), labels_in_order(seeds[0])
    assert len(a) == len(b) == stream.n_train
    assert not np.array_equal(a, b)  # different orders ...
    assert sorted(a) == sorted(b)  # ... of the same rows
    np.testing.assert_array_equal(a, a_again)

    train = StreamSplit(stream, "train", shuffle_buffer=128)
    runs = [
        train_replicas(
            lambda a: build(stream, a),
            train,
            stream,
            batch_size=BATCH,
            eval_every=5,
            verbose=0,
            return_models=True,
        )
        for _ in range(2)
    ]
    first, second = runs
    assert first.pd_value > 0.0
    assert not weights_equal(*first.models)
    assert [h["pd"] for h in first.history] == [h["pd"] for h in second.history]
    assert all(weights_equal(m, n) for m, n in zip(first.models, second.models, strict=True))


def test_bad_stream_arguments(stream):
    with pytest.raises(ValueError, match="shuffle_buffer"):
        StreamSplit(stream, "train", shuffle_buffer=-1)
    with pytest.raises(ValueError, match="split"):
        StreamSplit(stream, "valid")
    with pytest.raises(ValueError, match="StreamingDataset"):
        StreamSplit(np.zeros(3), "train")
    with pytest.raises(ValueError, match="eval_every"):
        ReplicaSettings(eval_every=0)


def test_one_pass_job_runs_end_to_end(tmp_path):
    from keras_smelu.tuning import load_job, tune_job

    log = datasets.write_click_log(tmp_path / "clicks.txt", ROWS, seed=4)
    job_file = tmp_path / "one-pass.toml"
    job_file.write_text(
        f"""
[job]
name = "one-pass"
trials = 1
sampler = "random"
output = "{tmp_path / "out"}"

[data]
dataset = "criteo"
path = "{log}"
streaming = true
shuffle_buffer = 100
n_test = 80

[data.options]
split = "temporal"
chunk_bytes = 16384
workers = 3
cache_dir = "{tmp_path / "cache"}"

[model]
hidden = [4]
embedding_dim = 2
normalization = "layer"

[training]
epochs = 1
pairs = 1
batch_size = {BATCH}
eval_every = 4
""",
        encoding="utf-8",
    )
    job = load_job(job_file)
    assert job.data.streaming and job.training.eval_every == 4
    assert job.data.options["cache_dir"] == str(tmp_path / "cache")  # parse the log once
    assert job.data.options["workers"] == 3
    report = tune_job(job, verbose=0)
    result = next(iter(report.results.values()))
    trials = [result.reference, *result.trials]
    n_train = datasets.load("criteo", log, streaming=True, split="temporal").n_train
    batches = -(-n_train // BATCH)
    expected = list(range(4, batches, 4)) + [batches]
    for trial in trials:
        assert trial.pairs[0]["steps"] == expected
        assert len(trial.history["pd"]) == len(expected)
        assert trial.epoch == len(expected)


def test_job_refuses_shuffle_buffer_without_streaming(tmp_path):
    from keras_smelu.tuning import JobError, job_from_dict

    data = {"job": {"name": "x"}, "data": {"dataset": "synthetic", "shuffle_buffer": 10}}
    with pytest.raises(JobError, match="shuffle_buffer"):
        job_from_dict(data)
    data["data"] = {"dataset": "synthetic", "streaming": True}
    with pytest.raises(JobError, match="streaming"):
        job_from_dict(data)
