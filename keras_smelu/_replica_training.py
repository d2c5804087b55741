"""Training the pairs of replicas of a run, checkpoint by checkpoint, and measuring them at each.

A checkpoint is the end of an epoch, or with `eval_every` every that many training steps
within an epoch as well (the papers' one-pass regime measures PD along the stream). All
replicas of a run train to each checkpoint as one program where that is exact (see
`_replica_stack`), else one after the other; each pair is then measured on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Iterator, Sequence
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
from keras_smelu._replica_one_step import why_not_one_program
from keras_smelu._replica_shared_step import SharedStepReplicas, UnsharedVariableError
from keras_smelu._replica_stack import compile_stack, fit_stack, why_not_fused
from keras_smelu._replica_summary import infer_task, pair_pd, resolve_pd_kind
from keras_smelu._replica_vmap import VmappedReplicas

if TYPE_CHECKING:
    from keras_smelu.replicas import ReplicaSettings

# The replicas of a pair, as reports name them.
REPLICA_NAMES = ("a", "b")


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
    """What is decided once for all pairs of a run: the task and headline PD kind (from the
    first predictions, unless given), whether the replicas train as one program (`fuse`), how
    many replicas that program holds (`stacked`; 1 when they train one after the other) and
    which program it is (`program`: "vectorized", "shared step", "stack" or "sequential")."""

    task: str | None = None
    pd_kind: str | None = None
    fuse: bool | None = None
    stacked: int = 1
    program: str = "sequential"


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
    """One pair of replicas, built now and trained one checkpoint at a time, so that a run can
    advance all its pairs together and look at every pair at each checkpoint.

    A checkpoint goes `begin()` (the pair's data up to it), training (`fit_alone`, or the run's
    stacked program), then `end()` (the measurement).

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

    def train_seed(self) -> int:
        """The global seed set before training to the next checkpoint (shared by both
        replicas, so that stochastic layers draw alike, stacked or not)."""
        return epoch_seed(self.seeds["train"], self.epochs_done)

    def begin(self) -> tuple[Segment, Segment]:
        """Each replica's training data up to the next checkpoint (read it before `end`)."""
        if self.done:
            raise RuntimeError("Every epoch of this pair has been trained.")
        if self._next is None:  # a new epoch: each replica's order from its own generator
            every = self.settings.eval_every
            self._segments = zip(
                *(segments(self.train, rng, every) for rng in self.order_rngs), strict=True
            )
            self._epoch += 1
            self._next = next(self._segments)
        parts, self._next = self._next, None
        return parts

    def fit_alone(self, parts: tuple[Segment, Segment]) -> list[float]:
        """Trains the replicas one after the other on their segments; returns their losses."""
        e, seed = self.epochs_done, self.train_seed()
        train_losses = []
        for r, replica in enumerate(self.replicas):
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            with _quiet_stream_ends(self.train):
                history = replica.fit(
                    **parts[r].fit_kwargs,
                    epochs=e + 1,
                    initial_epoch=e,
                    shuffle=False,
                    callbacks=list(self.callbacks) if self.callbacks else None,
                    verbose=self.verbose,
                )
            self.seconds += time.perf_counter() - start
            train_losses.append(float(history.history.get("loss", [math.nan])[-1]))
        return train_losses

    def end(
        self,
        parts: tuple[Segment, Segment],
        train_losses: Sequence[float],
        measured: Sequence[tuple[dict[str, float], np.ndarray]] | None = None,
    ) -> None:
        """Records the checkpoint the replicas were trained to: steps, losses, and the
        metrics, predictions and PD on the evaluation data (`measured` when the run's program
        measured them already: each replica's metrics and predictions)."""
        e, settings, verbose = self.epochs_done, self.settings, self.verbose
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
            if measured is None:
                metrics, preds = _measure(replica, self.evaluation, train_losses[r], where)
            else:
                metrics, preds = _check_finite(*measured[r], train_losses[r], where)
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


class RunTrainer:
    """All pairs of a run, trained together one checkpoint at a time (`step`).

    Where that is exact (`why_not_fused`) and `settings.fused` allows, every replica of every
    pair trains in one stacked program; otherwise one replica after the other. Either way each
    pair is measured on its own at every checkpoint, and the replicas come out the same.

    Args:
        trainers: The run's pairs, built.
        settings: The run's `ReplicaSettings`.
        state: Decisions shared by the pairs; `fuse` and `stacked` are set here.
        callbacks, verbose: As given to `train_replicas`.

    Raises:
        ValueError: with `fused=True` where one program would not be exact (saying why), or
            when replicas of different pairs share a variable.
    """

    def __init__(
        self,
        trainers: Sequence[PairTrainer],
        settings: ReplicaSettings,
        *,
        state: RunState,
        callbacks: list[keras.callbacks.Callback] | None,
        verbose: str | int,
    ) -> None:
        self.trainers = list(trainers)
        self.verbose = verbose
        replicas = [m for trainer in self.trainers for m in trainer.replicas]
        _check_unshared_across(replicas)
        train = self.trainers[0].train
        self.streamed = isinstance(train, StreamData)
        blocker = why_not_fused(
            replicas, arrays=isinstance(train, (ArrayData, StreamData)), callbacks=callbacks
        )
        if settings.fused is True and blocker is not None:
            raise ValueError(f"`fused=True`, but the replicas cannot train as one: {blocker}")
        # One replica's step shared by all (one architecture): mapped over their stacked
        # variables on JAX, traced once and run on each replica's variables on TensorFlow; a
        # program that does not grow with the replicas. Else the replicas side by side in one
        # model, which "auto" takes only on JAX: on TensorFlow its graph traced as slowly as
        # one replica after the other (replica_stacking.py).
        shared = settings.fused is not False and why_not_one_program(replicas) is None
        wanted = settings.fused is True or (
            settings.fused == "auto" and (shared or keras.backend.backend() == "jax")
        )
        state.fuse = wanted and blocker is None
        state.stacked = len(replicas) if state.fuse else 1
        self.state, self.auto = state, settings.fused == "auto"
        self.program = self.stack = None
        if state.fuse and shared and keras.backend.backend() == "jax":
            self.program, state.program = VmappedReplicas(replicas), "vectorized"
        elif state.fuse and shared:
            self.program, state.program = SharedStepReplicas(replicas), "shared step"
        elif state.fuse:
            self.stack, state.program = compile_stack(replicas), "stack"

    @property
    def done(self) -> bool:
        """Whether every epoch of every pair has been trained."""
        return self.trainers[0].done

    def step(self) -> None:
        """Trains every replica to the next checkpoint and measures every pair there."""
        parts = [trainer.begin() for trainer in self.trainers]
        measured: list[Any] = [None] * len(self.trainers)
        if self.program is not None:
            try:
                losses, measured = self._fit_one_program(parts)
            except UnsharedVariableError:
                if not self.auto:  # refused before any step ran: "auto" trains them apart
                    raise
                self.program, self.state.fuse, self.state.stacked = None, False, 1
                self.state.program = "sequential"
                losses = [t.fit_alone(p) for t, p in zip(self.trainers, parts, strict=True)]
        elif self.stack is not None:
            losses = self._fit_stacked(parts)
        else:
            losses = [trainer.fit_alone(p) for trainer, p in zip(self.trainers, parts, strict=True)]
        for trainer, p, pair_losses, pair_measured in zip(
            self.trainers, parts, losses, measured, strict=True
        ):
            trainer.end(p, pair_losses, pair_measured)

    def _fit_one_program(self, parts: list[tuple[Segment, Segment]]) -> tuple[list, list]:
        """One replica's shared step trains every replica and, on in-memory evaluation data,
        measures them; returns each pair's training losses and measurements (None: each
        replica is measured on its own)."""
        first = self.trainers[0]
        keras.utils.set_random_seed(first.train_seed())  # as `_fit_stacked` and `fit` see it
        start = time.perf_counter()
        with _quiet_stream_ends(first.train):
            flat = self.program.fit(
                [segment for pair in parts for segment in pair],
                streamed=self.streamed,
                verbose=self.verbose,
            )
        results: list[Any] = [None] * len(flat)
        if isinstance(first.evaluation, ArrayData) and all(map(math.isfinite, flat)):
            results = self.program.measure(first.evaluation)
        share = (time.perf_counter() - start) / len(self.trainers)
        for trainer in self.trainers:
            trainer.seconds += share
        pairs = range(len(self.trainers))
        return [flat[2 * k : 2 * k + 2] for k in pairs], [
            None if results[0] is None else results[2 * k : 2 * k + 2] for k in pairs
        ]

    def _fit_stacked(self, parts: list[tuple[Segment, Segment]]) -> list[list[float]]:
        """One `fit` of the stack; returns each pair's two training losses."""
        first = self.trainers[0]
        # Stochastic layers draw from their own seed generators (created when the replica was
        # built); the global seed is the first pair's, as it would be when training it alone.
        keras.utils.set_random_seed(first.train_seed())
        start = time.perf_counter()
        with _quiet_stream_ends(first.train):
            flat = fit_stack(
                self.stack,
                [segment for pair in parts for segment in pair],
                first.epochs_done,
                streamed=self.streamed,
                verbose=self.verbose,
            )
        share = (time.perf_counter() - start) / len(self.trainers)
        for trainer in self.trainers:
            trainer.seconds += share
        return [flat[2 * k : 2 * k + 2] for k in range(len(self.trainers))]


@contextlib.contextmanager
def _quiet_stream_ends(train: Any) -> Iterator[None]:
    """Silences Keras's warning that a stream ran out of data: a segment ends where the stream
    or the checkpoint says, as expected."""
    with warnings.catch_warnings():
        if isinstance(train, StreamData):
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


def _check_unshared_across(replicas: Sequence[keras.Model]) -> None:
    """Raises unless every replica of the run owns its variables (pairs checked apart)."""
    owners: dict[int, keras.Model] = {}
    for replica in replicas:
        for variable in replica.weights:
            owner = owners.setdefault(id(variable), replica)
            if owner is not replica:
                check_unshared(owner, replica)


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
    return _check_finite(metrics, predict(replica, evaluation), train_loss, where)


def _check_finite(
    metrics: dict[str, Any], preds: np.ndarray, train_loss: float, where: dict[str, Any]
) -> tuple[dict[str, float], np.ndarray]:
    """`(metrics, predictions)` as floats; raises `NonFiniteLossError` on anything non-finite."""
    if not math.isfinite(train_loss):
        raise NonFiniteLossError(**where, quantity="training loss", value=train_loss)
    metrics = {key: float(value) for key, value in metrics.items()}
    for key, value in metrics.items():
        if not math.isfinite(value):
            quantity = "eval loss" if key == "loss" else f"eval {key!r}"
            raise NonFiniteLossError(**where, quantity=quantity, value=value)
    if not np.isfinite(preds).all():
        value = float(preds[~np.isfinite(preds)].flat[0])
        raise NonFiniteLossError(**where, quantity="prediction", value=value)
    return metrics, preds
