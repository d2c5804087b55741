"""Fused replicas on streamed data equal replicas trained one after the other (its own file:
the slowest streaming test runs beside the others under `--dist loadfile`)."""

from __future__ import annotations

import pytest

pytest.importorskip("pyarrow")

from keras_smelu import models  # noqa: E402
from keras_smelu._replica_data import StreamSplit  # noqa: E402
from keras_smelu.replicas import train_replicas  # noqa: E402
from tests._backend import weights_equal  # noqa: E402
from tests._streams import BATCH, small_click_stream  # noqa: E402


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return small_click_stream(tmp_path_factory.mktemp("log"))


@pytest.mark.backend
def test_stacked_streamed_replicas_equal_sequential_ones(stream):
    # 3 pairs (6 replicas, 6 streams zipped batch by batch), dropout, checkpoints in an epoch.
    def build_dropout(activation):
        return models.embedding_mlp(
            stream, activation, embedding_dim=2, hidden=(8,), normalization="layer", dropout=0.3
        )

    common = dict(pairs=3, epochs=2, batch_size=BATCH, eval_every=5, verbose=0, return_models=True)
    train = StreamSplit(stream, "train", shuffle_buffer=128)
    stacked = train_replicas(build_dropout, train, stream, fused=True, **common)
    sequential = train_replicas(build_dropout, train, stream, fused=False, **common)
    assert stacked.config["stacked"] == 6 and sequential.config["stacked"] == 1
    for one, other in zip(stacked.models, sequential.models, strict=True):
        assert weights_equal(one, other)
    assert not weights_equal(stacked.models[0], stacked.models[1])  # orders differ
    assert stacked.pd_value > 0.0
    for one, other in zip(stacked.pair_results, sequential.pair_results, strict=True):
        assert one["steps"] == other["steps"] and one["pd"] == other["pd"]
        for a, b in zip(one["replicas"], other["replicas"], strict=True):
            assert a["metrics"] == b["metrics"]
