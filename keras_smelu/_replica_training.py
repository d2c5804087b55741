"""Training one pair of replicas, epoch by epoch, and measuring it after every epoch."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_smelu._replica_data import ArrayData, DatasetData
from keras_smelu._replica_models import (
    build_replica,
    check_identical,
    check_unshared,
    epoch_seed,
    pair_seeds,
    predict,
    weights_digest,
)
from keras_smelu._replica_pair import REPLICA_NAMES, compile_pair, fit_pair_epoch, why_not_fused
from keras_smelu._replica_summary import infer_task, pair_pd, resolve_pd_kind

if TYPE_CHECKING:
    from keras_smelu.replicas import ReplicaSettings


class NonFiniteLossError(ArithmeticError):
    """A replica's training loss, evaluation loss or predictions became NaN or infinite.

    A tuner records the trial as failed. Attributes: `pair` and `epoch` (1-based), `replica`
    (`"a"` or `"b"`), `quantity` (what was non-finite) and `value`.
    """

    def __init__(self, *, pair: int, replica: str, epoch: int, quantity: str, value: float):
        self.pair = pair
        self.replica = replica
        self.epoch = epoch
        self.quantity = quantity
        self.value = value
        super().__init__(
            f"Non-finite {quantity} ({value!r}) in pair {pair}, replica {replica}, epoch {epoch}: "
            "training diverged (learning rate too high, or a loss that produces NaN)."
        )


@dataclasses.dataclass
class RunState:
    """What the first pair of a run decides for the others: the task and headline PD kind
    (from the first predictions, unless given) and whether pairs train fused."""

    task: str | None = None
    pd_kind: str | None = None
    fuse: bool | None = None


@dataclasses.dataclass(frozen=True)
class PairResult:
    """One trained pair: its seeds, each replica's per-epoch record and the per-epoch PD.

    Attributes:
        pair: 1-based pair index (pair k uses the same seeds in every run with one base seed).
        seeds: `{"pair", "init": [a, b], "order": [a, b], "train"}`.
        initial_weights: A digest of each replica's initial weights.
        replicas: Per replica: `{"replica": "a"|"b", "train_loss": [...], "metrics": [...],
            "prediction_std": [...]}` (one entry per epoch; `prediction_std` is the standard
            deviation of its evaluation predictions: 0 for a model that predicts a constant).
        pd: Per epoch, every PD kind recorded for the task.
        train_seconds: Wall time spent in `fit`, `evaluate` and `predict`.
    """

    pair: int
    seeds: dict[str, Any]
    initial_weights: list[str]
    replicas: list[dict[str, Any]]
    pd: list[dict[str, float]]
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The pair as `ReplicaReport.pair_results` holds it (JSON-serializable)."""
        return {
            "pair": self.pair,
            "seeds": self.seeds,
            "initial_weights": self.initial_weights,
            "replicas": self.replicas,
            "pd": self.pd,
        }


def train_pair(
    model: Any,
    activation: Any,
    train: ArrayData | DatasetData,
    evaluation: ArrayData | DatasetData,
    settings: ReplicaSettings,
    index: int,
    *,
    state: RunState,
    pd: str,
    labels: np.ndarray | None,
    callbacks: list[keras.callbacks.Callback] | None,
    verbose: str | int,
) -> tuple[PairResult, list[keras.Model]]:
    """Builds, trains and measures pair `index` (0-based); returns it and its two replicas."""
    seeds = pair_seeds(int(settings.seed), index, settings.vary)
    replicas = []
    for r in range(2):
        keras.utils.set_random_seed(seeds["init"][r])
        replicas.append(build_replica(model, activation, train.sample_x))
    if replicas[0] is replicas[1]:
        raise ValueError(
            "The model builder returned the same model object twice; it must build a new "
            "model on every call."
        )
    check_unshared(*replicas)
    initial = [m.get_weights() for m in replicas]
    if seeds["init"][0] == seeds["init"][1]:
        check_identical(replicas[0], *initial, seeds["init"][0])
    if state.fuse is None:
        blocker = why_not_fused(
            replicas[0], arrays=isinstance(train, ArrayData), callbacks=callbacks
        )
        if settings.fused is True and blocker is not None:
            raise ValueError(f"`fused=True`, but the replicas cannot train as one: {blocker}")
        state.fuse = settings.fused is not False and blocker is None

    pair_model = compile_pair(*replicas) if state.fuse else None
    order_rngs = [np.random.default_rng(seeds["order"][r]) for r in range(2)]
    records: list[dict[str, Any]] = [
        {"replica": name, "train_loss": [], "metrics": [], "prediction_std": []}
        for name in REPLICA_NAMES
    ]
    predictions: list[list[np.ndarray]] = [[], []]
    seconds = 0.0
    say = verbose != 0
    for e in range(settings.epochs):
        fit_kwargs = [train.epoch(rng) for rng in order_rngs]
        # Stochastic layers see the same global seed in both replicas, fused or not.
        seed = epoch_seed(seeds["train"], e)
        start = time.perf_counter()
        if pair_model is not None:
            keras.utils.set_random_seed(seed)
            train_losses = fit_pair_epoch(pair_model, tuple(fit_kwargs), e, verbose)
        else:
            train_losses = []
            for r, replica in enumerate(replicas):
                keras.utils.set_random_seed(seed)
                history = replica.fit(
                    **fit_kwargs[r],
                    epochs=e + 1,
                    initial_epoch=e,
                    shuffle=False,
                    callbacks=list(callbacks) if callbacks else None,
                    verbose=verbose,
                )
                train_losses.append(float(history.history.get("loss", [math.nan])[-1]))
        seconds += time.perf_counter() - start
        for r, replica in enumerate(replicas):
            where = {"pair": index + 1, "replica": REPLICA_NAMES[r], "epoch": e + 1}
            start = time.perf_counter()
            metrics, preds = _measure(replica, evaluation, train_losses[r], where)
            seconds += time.perf_counter() - start
            if state.pd_kind is None:
                state.task = infer_task(preds, labels)
                state.pd_kind = resolve_pd_kind(pd, state.task)
            records[r]["train_loss"].append(train_losses[r])
            records[r]["metrics"].append(metrics)
            records[r]["prediction_std"].append(float(np.std(preds)))
            predictions[r].append(preds)
            if say:
                shown = ", ".join(f"{key}={value:.4g}" for key, value in metrics.items())
                print(
                    f"pair {index + 1}/{settings.pairs} replica {REPLICA_NAMES[r]}: epoch "
                    f"{e + 1}/{settings.epochs} train_loss={train_losses[r]:.4g}, eval {shown}",
                    flush=True,
                )
    pd_per_epoch = [
        pair_pd(predictions[0][e], predictions[1][e], state.task) for e in range(settings.epochs)
    ]
    if say:
        print(
            f"pair {index + 1}/{settings.pairs}: {state.pd_kind} PD "
            f"{pd_per_epoch[-1][state.pd_kind]:.4g} at epoch {settings.epochs}",
            flush=True,
        )
    result = PairResult(
        pair=index + 1,
        seeds=seeds,
        initial_weights=[weights_digest(w) for w in initial],
        replicas=records,
        pd=pd_per_epoch,
        train_seconds=seconds,
    )
    return result, replicas


def _measure(
    replica: keras.Model,
    evaluation: ArrayData | DatasetData,
    train_loss: float,
    where: dict[str, Any],
) -> tuple[dict[str, float], np.ndarray]:
    """Evaluation metrics and predictions of one replica; raises on anything non-finite."""
    if not math.isfinite(train_loss):
        raise NonFiniteLossError(**where, quantity="training loss", value=train_loss)
    metrics = replica.evaluate(**evaluation.evaluate_kwargs(), verbose=0, return_dict=True)
    metrics = {key: float(value) for key, value in metrics.items()}
    for key, value in metrics.items():
        if not math.isfinite(value):
            quantity = "eval loss" if key == "loss" else f"eval {key!r}"
            raise NonFiniteLossError(**where, quantity=quantity, value=value)
    preds = predict(replica, evaluation)
    if not np.isfinite(preds).all():
        value = float(preds[~np.isfinite(preds)].flat[0])
        raise NonFiniteLossError(**where, quantity="prediction", value=value)
    return metrics, preds
