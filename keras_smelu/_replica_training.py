"""Training one pair of replicas, checkpoint by checkpoint, and measuring it at each one.

A checkpoint is the end of an epoch, or with `eval_every` every that many training steps
within an epoch as well (the papers' one-pass regime measures PD along the stream).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_smelu._replica_data import ArrayData, DatasetData, Segment, StreamData, segments
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
    """One trained pair: its seeds, each replica's per-checkpoint record and PD.

    A checkpoint is an epoch's end, or every `eval_every` steps with that setting; the lists
    hold one entry per checkpoint.

    Attributes:
        pair: 1-based pair index (pair k uses the same seeds in every run with one base seed).
        seeds: `{"pair", "init": [a, b], "order": [a, b], "train"}`.
        initial_weights: A digest of each replica's initial weights.
        replicas: Per replica: `{"replica": "a"|"b", "train_loss": [...], "metrics": [...],
            "prediction_std": [...]}` (one entry per epoch; `prediction_std` is the standard
            deviation of its evaluation predictions: 0 for a model that predicts a constant).
        pd: Per checkpoint, every PD kind recorded for the task.
        steps: Per checkpoint, the training steps (batches) each replica had taken.
        train_seconds: Wall time spent in `fit`, `evaluate` and `predict`.
    """

    pair: int
    seeds: dict[str, Any]
    initial_weights: list[str]
    replicas: list[dict[str, Any]]
    pd: list[dict[str, float]]
    steps: list[int]
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The pair as `ReplicaReport.pair_results` holds it (JSON-serializable)."""
        return {
            "pair": self.pair,
            "seeds": self.seeds,
            "initial_weights": self.initial_weights,
            "replicas": self.replicas,
            "pd": self.pd,
            "steps": self.steps,
        }


class PairTrainer:
    """One pair of replicas, built now and trained one checkpoint at a time (`step`), so that
    a run can advance all its pairs together and look at every pair at each checkpoint.

    Args:
        model, activation: The builder (or compiled model) and the activation it gets.
        train, evaluation: The data adapters.
        settings: The run's `ReplicaSettings`.
        index: The 0-based pair index (its seeds come from `(settings.seed, index)`).
        state: Decisions shared by the pairs of one run (task, PD kind, fusing).
        pd: The requested headline PD kind.
        labels: Evaluation labels for task inference, or `None`.
        callbacks, verbose: Passed to `fit`.
    """

    def __init__(
        self,
        model: Any,
        activation: Any,
        train: ArrayData | DatasetData | StreamData,
        evaluation: ArrayData | DatasetData | StreamData,
        settings: ReplicaSettings,
        index: int,
        *,
        state: RunState,
        pd: str,
        labels: np.ndarray | None,
        callbacks: list[keras.callbacks.Callback] | None,
        verbose: str | int,
    ) -> None:
        self.train, self.evaluation = train, evaluation
        self.settings, self.index, self.state = settings, index, state
        self.pd, self.labels = pd, labels
        self.callbacks, self.verbose = callbacks, verbose
        self.seeds = pair_seeds(int(settings.seed), index, settings.vary)
        self.replicas = []
        for r in range(2):
            keras.utils.set_random_seed(self.seeds["init"][r])
            self.replicas.append(
                build_replica(
                    model,
                    activation,
                    train.sample_x,
                    ensemble=settings.ensemble,
                    seed=self.seeds["init"][r],
                )
            )
        if self.replicas[0] is self.replicas[1]:
            raise ValueError(
                "The model builder returned the same model object twice; it must build a new "
                "model on every call."
            )
        check_unshared(*self.replicas)
        initial = [m.get_weights() for m in self.replicas]
        if self.seeds["init"][0] == self.seeds["init"][1]:
            check_identical(self.replicas[0], *initial, self.seeds["init"][0])
        self.digests = [weights_digest(w) for w in initial]
        if state.fuse is None:
            blocker = why_not_fused(
                self.replicas[0],
                arrays=isinstance(train, (ArrayData, StreamData)),
                callbacks=callbacks,
            )
            if settings.fused is True and blocker is not None:
                raise ValueError(f"`fused=True`, but the replicas cannot train as one: {blocker}")
            state.fuse = settings.fused is not False and blocker is None
        self.pair_model = compile_pair(*self.replicas) if state.fuse else None
        self.order_rngs = [np.random.default_rng(self.seeds["order"][r]) for r in range(2)]
        self.records: list[dict[str, Any]] = [
            {"replica": name, "train_loss": [], "metrics": [], "prediction_std": []}
            for name in REPLICA_NAMES
        ]
        self.pd_per_epoch: list[dict[str, float]] = []
        self.steps: list[int] = []
        self.seconds = 0.0
        self._epoch = 0  # epochs begun
        self._segments: Any = None  # the current epoch's segments, one per replica
        self._next: tuple[Segment, Segment] | None = None  # the next checkpoint's data

    @property
    def epochs_done(self) -> int:
        """Checkpoints measured so far (epochs, without `eval_every`)."""
        return len(self.pd_per_epoch)

    @property
    def done(self) -> bool:
        """Whether every epoch has been trained to its end."""
        return self._epoch >= self.settings.epochs and self._next is None

    def step(self) -> None:
        """Trains both replicas to the next checkpoint and measures them on the evaluation
        data."""
        if self.done:
            raise RuntimeError("Every epoch of this pair has been trained.")
        e, settings, verbose = self.epochs_done, self.settings, self.verbose
        if self._next is None:  # a new epoch: each replica's order from its own generator
            every = settings.eval_every
            self._segments = zip(
                *(segments(self.train, rng, every) for rng in self.order_rngs), strict=True
            )
            self._epoch += 1
            self._next = next(self._segments)
        parts, self._next = self._next, None
        # Stochastic layers see the same global seed in both replicas, fused or not.
        seed = epoch_seed(self.seeds["train"], e)
        start = time.perf_counter()
        streamed = isinstance(self.train, StreamData)
        with warnings.catch_warnings():
            if streamed:  # a segment ends where the stream or the checkpoint says: expected
                warnings.filterwarnings("ignore", message="Your input ran out of data")
            train_losses = self._fit(parts, e, seed)
        self.seconds += time.perf_counter() - start
        if parts[0].steps != parts[1].steps:  # the streams of one split hold the same rows
            raise RuntimeError(
                f"The replicas of pair {self.index + 1} trained {parts[0].steps} and "
                f"{parts[1].steps} steps to one checkpoint; they must see the same data."
            )
        self.steps.append((self.steps[-1] if self.steps else 0) + parts[0].steps)
        # Look ahead (a stream reads its next batch) to know whether the epoch has ended.
        self._next = next(self._segments, None)
        predictions = []
        for r, replica in enumerate(self.replicas):
            where = {"pair": self.index + 1, "replica": REPLICA_NAMES[r], "epoch": e + 1}
            start = time.perf_counter()
            metrics, preds = _measure(replica, self.evaluation, train_losses[r], where)
            self.seconds += time.perf_counter() - start
            if self.state.pd_kind is None:
                self.state.task = infer_task(preds, self.labels)
                self.state.pd_kind = resolve_pd_kind(self.pd, self.state.task)
            self.records[r]["train_loss"].append(train_losses[r])
            self.records[r]["metrics"].append(metrics)
            self.records[r]["prediction_std"].append(float(np.std(preds)))
            predictions.append(preds)
            if verbose != 0:
                shown = ", ".join(f"{key}={value:.4g}" for key, value in metrics.items())
                print(
                    f"pair {self.index + 1}/{settings.first_pair + settings.pairs} replica "
                    f"{REPLICA_NAMES[r]}: {self._where()} "
                    f"train_loss={train_losses[r]:.4g}, eval {shown}",
                    flush=True,
                )
        self.pd_per_epoch.append(pair_pd(*predictions, self.state.task))
        if verbose != 0:
            print(
                f"pair {self.index + 1}/{settings.first_pair + settings.pairs}: "
                f"{self.state.pd_kind} PD "
                f"{self.pd_per_epoch[-1][self.state.pd_kind]:.4g} at {self._where()}",
                flush=True,
            )

    def _fit(self, parts: tuple[Segment, Segment], e: int, seed: int) -> list[float]:
        """Trains both replicas on their segments; returns their training losses."""
        verbose = self.verbose
        if self.pair_model is not None:
            keras.utils.set_random_seed(seed)
            if isinstance(self.train, StreamData):
                train_losses = _fit_pair_stream(self.pair_model, parts, e, verbose)
            else:
                fit_kwargs = tuple(part.fit_kwargs for part in parts)
                train_losses = fit_pair_epoch(self.pair_model, fit_kwargs, e, verbose)
        else:
            train_losses = []
            for r, replica in enumerate(self.replicas):
                keras.utils.set_random_seed(seed)
                history = replica.fit(
                    **parts[r].fit_kwargs,
                    epochs=e + 1,
                    initial_epoch=e,
                    shuffle=False,
                    callbacks=list(self.callbacks) if self.callbacks else None,
                    verbose=verbose,
                )
                train_losses.append(float(history.history.get("loss", [math.nan])[-1]))
        return train_losses

    def _where(self) -> str:
        text = f"epoch {self._epoch}/{self.settings.epochs}"
        if self.settings.eval_every is not None:
            text += f", step {self.steps[-1]}"
        return text

    def result(self) -> PairResult:
        """The pair's record so far."""
        return PairResult(
            pair=self.index + 1,
            seeds=self.seeds,
            initial_weights=list(self.digests),
            replicas=[
                {k: list(v) if isinstance(v, list) else v for k, v in rec.items()}
                for rec in self.records
            ],
            pd=list(self.pd_per_epoch),
            steps=list(self.steps),
            train_seconds=self.seconds,
        )


def _fit_pair_stream(
    pair: keras.Model, parts: tuple[Segment, Segment], index: int, verbose: Any
) -> tuple[float, float]:
    """Trains the pair model on both replicas' streamed batches, zipped step by step.

    Returns:
        Each replica's mean training loss over the segment (regularization terms not included).
    """
    first, second = (part.fit_kwargs["x"] for part in parts)

    def zipped() -> Any:
        for (x_a, y_a), (x_b, y_b) in zip(first, second, strict=True):
            yield {"a": x_a, "b": x_b}, {"a": y_a, "b": y_b}

    history = pair.fit(
        zipped(), epochs=index + 1, initial_epoch=index, shuffle=False, verbose=verbose
    )
    return tuple(float(history.history[f"{name}_loss"][-1]) for name in REPLICA_NAMES)


def _measure(
    replica: keras.Model,
    evaluation: ArrayData | DatasetData | StreamData,
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
