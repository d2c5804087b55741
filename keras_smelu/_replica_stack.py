"""Training many replicas as one program: all replicas of all pairs of a run.

Replicas trained one after the other cost one training run each: a compilation each and, for
the small models of recommenders, per-step overhead that leaves the cores idle. Here the
replicas are submodels of one `keras.Model` (a stack) whose step takes a batch for each (each
in its own data order) and minimises the sum of their losses. The gradient of that sum with
respect to a replica's weights is the gradient of its own loss, and optimizers that update
each weight from its own gradient alone (SGD, Adam, RMSprop, ...) then make exactly the step
each replica would make alone: the replicas come out as they would one after the other (bit for
bit on JAX and TensorFlow in the tests), with one compilation and one step's overhead for all.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import keras

from keras_smelu._replica_data import Segment


def stack_key(index: int) -> str:
    """The name of replica `index` (0-based) in a stack's inputs, outputs and losses."""
    return f"r{index}"


class ReplicaStack(keras.Model):
    """N replicas in one model: `{"r0": x_0, "r1": x_1, ...} -> {"r0": y_0, "r1": y_1, ...}`."""

    def __init__(self, members: Sequence[keras.Model], **kwargs: Any):
        super().__init__(**kwargs)
        self.members = list(members)

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, Any]:
        return {
            stack_key(i): member(inputs[stack_key(i)], training=training)
            for i, member in enumerate(self.members)
        }


def why_not_fused(replicas: Sequence[keras.Model], *, arrays: bool, callbacks: Any) -> str | None:
    """Why these replicas cannot train as one program, or None when they can.

    One program is exact only where nothing couples the replicas: per-weight optimizer updates
    (no global gradient clipping, no dynamic loss scale shared by all), one loss, one optimizer
    configuration for all (one optimizer trains them), no callbacks (they would see the stack,
    not a replica).
    """
    if not arrays:
        return "the training data is a tf.data.Dataset (NumPy arrays or a stream are needed)"
    if callbacks:
        return "callbacks are given (they would see the stacked model, not a replica)"
    first = replicas[0]
    with warnings.catch_warnings():  # serializing a lambda loss warns; only reading here
        warnings.filterwarnings("ignore", message="The object being serialized includes")
        config = first.get_compile_config() or {}
    optimizer = first.optimizer
    if isinstance(config.get("loss"), (list, tuple, dict)):
        return "the model is compiled with several losses"
    if config.get("loss_weights") is not None:
        return "the model is compiled with loss_weights"
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return "the optimizer scales the loss (one loss scale would be shared by all replicas)"
    if getattr(optimizer, "global_clipnorm", None) is not None:
        return "the optimizer clips by global norm (the norm would span all replicas)"
    settings = _optimizer_settings(first)
    for replica in replicas[1:]:
        if type(replica.optimizer) is not type(optimizer) or (
            _optimizer_settings(replica) != settings
        ):
            return "the replicas' optimizers differ (one optimizer would train them all)"
    return None


def _optimizer_settings(replica: keras.Model) -> dict[str, Any]:
    config = dict(replica.optimizer.get_config())
    config.pop("name", None)
    return config


def compile_stack(replicas: Sequence[keras.Model]) -> ReplicaStack:
    """The stack of `replicas`, compiled with a fresh copy of their optimizer and each one's
    loss (the replicas' own optimizers stay unused)."""
    first = replicas[0]
    stack = ReplicaStack(replicas, name="replica_stack")
    optimizer = type(first.optimizer).from_config(first.optimizer.get_config())
    stack.compile(
        optimizer=optimizer,
        loss={stack_key(i): replica.loss for i, replica in enumerate(replicas)},
        run_eagerly=first.run_eagerly,
        jit_compile=first.jit_compile,
    )
    return stack


def fit_stack(
    stack: ReplicaStack, parts: Sequence[Segment], epoch: int, *, streamed: bool, verbose: Any
) -> list[float]:
    """Trains every replica of `stack` to the next checkpoint, each on its own segment.

    Args:
        stack: A compiled `ReplicaStack`.
        parts: One segment per replica, in the stack's order: NumPy `fit` arguments (`x`, `y`,
            `sample_weight`, `batch_size`) or, `streamed`, an iterator of `(x, y)` batches.
        epoch: The 0-based epoch (Keras's `initial_epoch`).
        streamed: Whether the segments are streams, zipped batch by batch.
        verbose: Passed to `fit`.

    Returns:
        Each replica's mean training loss over the segment (regularization terms not included).
    """
    keys = [stack_key(i) for i in range(len(parts))]
    if streamed:
        streams = [part.fit_kwargs["x"] for part in parts]

        def zipped() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
            for batches in zip(*streams, strict=True):
                yield (
                    {key: x for key, (x, _) in zip(keys, batches, strict=True)},
                    {key: y for key, (_, y) in zip(keys, batches, strict=True)},
                )

        history = stack.fit(
            zipped(),
            steps_per_epoch=parts[0].fit_kwargs.get("steps_per_epoch"),  # no step past the end
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=verbose,
        )
    else:
        kwargs = [part.fit_kwargs for part in parts]
        sample_weight = None
        if kwargs[0]["sample_weight"] is not None:
            sample_weight = {key: k["sample_weight"] for key, k in zip(keys, kwargs, strict=True)}
        history = stack.fit(
            x={key: k["x"] for key, k in zip(keys, kwargs, strict=True)},
            y={key: k["y"] for key, k in zip(keys, kwargs, strict=True)},
            sample_weight=sample_weight,
            batch_size=kwargs[0]["batch_size"],
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=verbose,
        )
    return [float(history.history[f"{key}_loss"][-1]) for key in keys]
