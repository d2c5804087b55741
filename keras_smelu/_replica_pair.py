"""Training the two replicas of a pair as one program.

A pair trained one replica after the other costs two training runs: two compilations and, for
the small models of recommenders, two runs of per-step overhead that leave the cores idle. Here
both replicas are submodels of one `keras.Model` whose step takes a batch for each (each in its
own data order) and minimises the sum of their losses. The gradient of that sum with respect
to a replica's weights is the gradient of its own loss, and optimizers that update each weight
from its own gradient alone (SGD, Adam, RMSprop, ...) then make exactly the step each replica
would make alone: the replicas come out as they would sequentially (bit for bit on JAX and
TensorFlow in the tests), at about the cost of one training run.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras

# The replicas of a pair, as reports and the pair model name them.
REPLICA_NAMES = ("a", "b")


class ReplicaPair(keras.Model):
    """Both replicas of a pair in one model: `{"a": x_a, "b": x_b} -> {"a": y_a, "b": y_b}`."""

    def __init__(self, first: keras.Model, second: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.first = first
        self.second = second

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, Any]:
        return {
            "a": self.first(inputs["a"], training=training),
            "b": self.second(inputs["b"], training=training),
        }


def why_not_fused(replica: keras.Model, *, arrays: bool, callbacks: Any) -> str | None:
    """Why a pair of these replicas cannot train as one program, or None when it can.

    One program is exact only where nothing couples the replicas: per-weight optimizer updates
    (no global gradient clipping, no dynamic loss scale shared by both), one loss, no
    callbacks (they would see the pair, not a replica).
    """
    if not arrays:
        return "the training data is a tf.data.Dataset (NumPy arrays are needed)"
    if callbacks:
        return "callbacks are given (they would see the pair model, not a replica)"
    with warnings.catch_warnings():  # serializing a lambda loss warns; only reading here
        warnings.filterwarnings("ignore", message="The object being serialized includes")
        config = replica.get_compile_config() or {}
    optimizer = replica.optimizer
    if isinstance(config.get("loss"), (list, tuple, dict)):
        return "the model is compiled with several losses"
    if config.get("loss_weights") is not None:
        return "the model is compiled with loss_weights"
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return "the optimizer scales the loss (one loss scale would be shared by both replicas)"
    if getattr(optimizer, "global_clipnorm", None) is not None:
        return "the optimizer clips by global norm (the norm would span both replicas)"
    return None


def compile_pair(first: keras.Model, second: keras.Model) -> ReplicaPair:
    """The pair model, compiled with a fresh copy of the replicas' optimizer and their loss."""
    pair = ReplicaPair(first, second, name="replica_pair")
    optimizer = type(first.optimizer).from_config(first.optimizer.get_config())
    pair.compile(
        optimizer=optimizer,
        loss={name: first.loss for name in REPLICA_NAMES},
        run_eagerly=first.run_eagerly,
        jit_compile=first.jit_compile,
    )
    return pair


def fit_pair_epoch(
    pair: ReplicaPair, epochs: tuple[dict[str, Any], dict[str, Any]], epoch: int, verbose: Any
) -> tuple[float, float]:
    """Trains one epoch of both replicas, each on its own `epoch` fit arguments (`x`, `y`,
    `sample_weight`, `batch_size`, as `_ArrayData.epoch` gives them).

    Returns:
        The epoch's mean training loss of each replica (regularization terms not included).
    """
    first, second = epochs
    sample_weight = None
    if first["sample_weight"] is not None:
        sample_weight = {"a": first["sample_weight"], "b": second["sample_weight"]}
    history = pair.fit(
        x={"a": first["x"], "b": second["x"]},
        y={"a": first["y"], "b": second["y"]},
        sample_weight=sample_weight,
        batch_size=first["batch_size"],
        epochs=epoch + 1,
        initial_epoch=epoch,
        shuffle=False,
        verbose=verbose,
    )
    return tuple(float(history.history[f"{name}_loss"][-1]) for name in REPLICA_NAMES)
