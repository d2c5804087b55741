"""Ensembles: k models whose averaged prediction is served, each trained as it would be alone.

What a team does instead of smoothing the activation is averaging k independently trained
models: the average's prediction difference between two retrainings is lower, at k times the
training and serving compute. An `Ensemble` is one `keras.Model` holding its members, so that
replica training measures an ensemble exactly as it measures one model:

- inference (`predict`, `evaluate`, `call(training=False)`): the mean of the members' outputs,
  so metrics, the evaluation loss and PD are the averaged prediction's;
- training (`fit`, `call(training=True)`): the members' outputs stacked on a new leading axis,
  and the loss (`EnsembleLoss`) the *sum* of each member's own loss. The gradient of that sum
  with respect to a member's weights is the gradient of its own loss, and optimizers that update
  each weight from its own gradient (SGD, Adam, RMSprop, ...) make each member's own step:
  members come out as if trained separately on the same batches, not as a jointly trained
  average.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_smelu._settings import check_int

__all__ = ["Ensemble", "EnsembleLoss", "ensemble_of", "member_seed"]


def member_seed(seed: int, member: int) -> int:
    """The build seed of member `member` (0-based) of an ensemble whose replica seed is `seed`.

    Member 0 is built under `seed` itself, so a k-ensemble's first member is the model a single
    replica with that seed would be; the others draw from `(seed, member)` only, so two
    replicas with one initialization seed hold identical members pairwise.
    """
    import numpy as np

    if member == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(member)]).generate_state(1)[0])


def _align_ranks(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Labels and predictions of ranks that differ by a trailing axis of size 1 made equal,
    as Keras does for a loss function given by name (`(batch,)` labels, `(batch, 1)` outputs)."""
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    if pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        if true_rank == 1:
            y_true = ops.expand_dims(y_true, axis=-1)
        else:
            y_pred = ops.squeeze(y_pred, axis=-1)
    elif true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        if pred_rank == 1:
            y_pred = ops.expand_dims(y_pred, axis=-1)
        else:
            y_true = ops.squeeze(y_true, axis=-1)
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="keras_smelu")
class EnsembleLoss(keras.losses.Loss):
    """A member loss applied to an ensemble's output: summed over members in training.

    `loss(y, stacked) = sum_m member_loss(y, stacked[m])` per example when `y_pred` carries the
    members on a leading axis (rank `output_rank + 1`, the training output of `Ensemble`), and
    `member_loss(y, y_pred)` for the averaged prediction (rank `output_rank`, inference). The
    reduction (and sample weighting) is the member loss's, so the training loss is the sum of
    the members' own losses.

    Args:
        loss: The member loss: a name (`"binary_crossentropy"`), a function `(y_true, y_pred)
            -> per-example losses`, or a `keras.losses.Loss`.
        output_rank: The rank of one member's output, batch axis included (2 for `(batch, 1)`).
        name: The loss's name.

    Example:

    >>> loss = EnsembleLoss("mean_squared_error", output_rank=2)
    >>> y = np.zeros((3, 1), "float32")
    >>> float(loss(y, np.stack([y + 1.0, y + 2.0])))  # 1 + 4: the members' losses, summed
    5.0
    """

    def __init__(self, loss: Any, output_rank: int, name: str = "ensemble_loss", **kwargs: Any):
        check_int("output_rank", output_rank, 1)
        member = keras.losses.get(loss)
        if isinstance(member, type):
            member = member()
        if member is None or not callable(member):
            raise ValueError(
                "`loss` must be a loss name, function or keras.losses.Loss; received: "
                f"loss={loss!r}"
            )
        self._is_loss_object = isinstance(member, keras.losses.Loss)
        if self._is_loss_object:
            kwargs.setdefault("reduction", member.reduction)
            kwargs.setdefault("dtype", member.dtype)
        super().__init__(name=name, **kwargs)
        self.loss = loss
        self.member = member
        self.output_rank = int(output_rank)

    def _member_losses(self, y_true: Any, y_pred: Any) -> Any:
        if self._is_loss_object:
            return self.member.call(y_true, y_pred)
        return self.member(*_align_ranks(y_true, y_pred))

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if len(y_pred.shape) != self.output_rank + 1:  # the averaged prediction
            return self._member_losses(y_true, y_pred)
        total = None
        for m in range(y_pred.shape[0]):
            # A plain sum: its gradient passes each member's own gradient through unchanged.
            losses = self._member_losses(y_true, y_pred[m])
            total = losses if total is None else total + losses
        return total

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "loss": keras.saving.serialize_keras_object(self.loss),
                "output_rank": self.output_rank,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EnsembleLoss:
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_smelu")
class Ensemble(keras.Model):
    """k models as one: the mean of their outputs at inference, each trained on its own loss.

    `Ensemble(members)(x) = mean_m members[m](x)`; in training (`call(training=True)`) the
    outputs are stacked, `(k, batch, ...)`, and the compiled loss (an `EnsembleLoss` of the loss
    given to `compile`) sums the members' own losses, so each member makes the step it would
    make alone. Compile it as one member would be compiled (the loss of one member); its
    training loss is then the sum of the members' losses, its evaluation loss and metrics those
    of the averaged prediction. Members see the same batches: with a shared data order they
    differ by their initialization only.

    Args:
        members: At least one single-output `keras.Model`, each its own object.
        output_rank: The rank of a member's output, batch axis included; default: read from
            the first member's `outputs` (functional models), else required.
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    members = [build(activation="relu") for _ in range(4)]  # four compiled models
    ensemble = ensemble_of(members)  # compiled as they are
    ensemble.fit(x, y, epochs=2)     # each member trains on its own loss
    ensemble.predict(x_val)          # the average of the four
    ```
    """

    def __init__(
        self, members: Sequence[keras.Model], output_rank: int | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(
                f"`members` must be a non-empty list of keras.Model; received: members={members!r}"
            )
        for member in members:
            if not isinstance(member, keras.Model):
                raise ValueError(
                    "`members` must hold keras.Model objects; received an element of type "
                    f"{type(member).__name__}"
                )
        if len({id(m) for m in members}) != len(members):
            raise ValueError(
                "`members` must be distinct models (the same object twice would train twice "
                f"per step); received {len(members)} entries of {len({id(m) for m in members})} "
                "models"
            )
        if output_rank is None:
            outputs = getattr(members[0], "outputs", None)
            if not outputs or len(outputs) != 1:
                raise ValueError(
                    "`output_rank` is needed: the first member has no single symbolic output "
                    "to read it from (a subclassed model); pass the rank of its output, batch "
                    "axis included; received: output_rank=None"
                )
            output_rank = len(outputs[0].shape)
        check_int("output_rank", output_rank, 1)
        self.members = list(members)
        self.output_rank = int(output_rank)
        self._member_loss: Any = None

    @property
    def size(self) -> int:
        """The number of members (the ensemble's training and serving cost in models)."""
        return len(self.members)

    def call(self, inputs: Any, training: bool = False) -> Any:
        stacked = ops.stack([m(inputs, training=training) for m in self.members], axis=0)
        return stacked if training else ops.mean(stacked, axis=0)

    def _is_stacked(self, y_pred: Any) -> bool:
        return len(y_pred.shape) == self.output_rank + 1

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Training metrics, like evaluation ones, are the averaged prediction's.
        if self._is_stacked(y_pred):
            y_pred = ops.mean(y_pred, axis=0)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, **kwargs: Any) -> None:
        """`keras.Model.compile` with the loss of one member (`EnsembleLoss` wraps it)."""
        wrapped = None if loss is None else EnsembleLoss(loss, self.output_rank)
        super().compile(optimizer=optimizer, loss=wrapped, **kwargs)
        self._member_loss = loss

    def get_compile_config(self) -> dict[str, Any]:
        """As `compile` was called: with the member loss (what a member's config would say)."""
        config = super().get_compile_config()
        if config and "loss" in config:
            config["loss"] = keras.saving.serialize_keras_object(self._member_loss)
        return config

    def compile_from_config(self, config: dict[str, Any]) -> None:
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "members": [_architecture(m) for m in self.members],
                "output_rank": self.output_rank,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Ensemble:
        config = dict(config)
        members = [
            keras.saving.deserialize_keras_object(m, custom_objects=custom_objects)
            for m in config.pop("members")
        ]
        return cls(members, **config)


def _architecture(member: keras.Model) -> dict[str, Any]:
    """A member's serialized config without its compile config: the ensemble's optimizer trains
    it, its own stays unused (and unbuilt) and is not restored."""
    config = keras.saving.serialize_keras_object(member)
    config.pop("compile_config", None)
    return config


def why_coupled(model: keras.Model) -> str | None:
    """Why members compiled as `model` is would not train as they would alone, or None.

    A global gradient norm or a dynamic loss scale spans every member's gradients; one joint
    loss over several outputs is not a member's loss.
    """
    with warnings.catch_warnings():  # serializing a lambda loss warns; only reading here
        warnings.filterwarnings("ignore", message="The object being serialized includes")
        config = model.get_compile_config() or {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return "the model is not compiled"
    if isinstance(config.get("loss"), (list, tuple)) or (
        isinstance(config.get("loss"), dict) and "class_name" not in config["loss"]
    ):
        return "the model is compiled with several losses"
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return "the optimizer scales the loss (one loss scale would be shared by all members)"
    if getattr(optimizer, "global_clipnorm", None) is not None:
        return "the optimizer clips by global norm (the norm would span all members)"
    return None


def ensemble_of(members: Sequence[keras.Model], output_rank: int | None = None) -> Ensemble:
    """An `Ensemble` of compiled `members`, compiled as the first one is: a fresh copy of its
    optimizer, its loss (summed over members in training), metrics and compile options.

    Args:
        members: Compiled single-output models, each its own object (built the same way,
            under different seeds, for an ensemble of independent models).
        output_rank: As in `Ensemble`.

    Returns:
        The compiled `Ensemble`.

    Raises:
        ValueError: if the members would not train as they would alone (global-norm clipping,
            loss scaling, several losses), naming why; or if the first member's metrics
            cannot be rebuilt from its compile config.
    """
    if not isinstance(members, (list, tuple)) or not members:
        raise ValueError(
            f"`members` must be a non-empty list of keras.Model; received: members={members!r}"
        )
    first = members[0]
    reason = why_coupled(first)
    if reason is not None:
        raise ValueError(
            f"`members` cannot form an ensemble of independently trained models: {reason}; "
            f"received: {first.name!r}"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The object being serialized includes")
        config = dict(first.get_compile_config())
    config.pop("optimizer", None)
    config.pop("loss", None)
    try:
        options = keras.saving.deserialize_keras_object(config)
    except Exception as error:
        raise ValueError(
            f"Could not rebuild the metrics of {first.name!r} for its ensemble "
            f"({type(error).__name__}: {error}); compile it with registered metrics."
        ) from error
    ensemble = Ensemble(members, output_rank=output_rank, name=f"ensemble_of_{len(members)}")
    optimizer = type(first.optimizer).from_config(first.optimizer.get_config())
    ensemble.compile(optimizer=optimizer, loss=first.loss, **options)
    return ensemble
