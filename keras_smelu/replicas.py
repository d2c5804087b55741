"""Replica training: train pairs of replicas of one model and measure their prediction difference.

Protocol: the two replicas of a pair start from identical weights and differ only in
the order in which they see the training data (a different shuffle every epoch). Initialization
can be varied too, or everything fixed (then the replicas are bit-identical and PD is exactly 0).
Pair `k` draws its seeds from `(seed, k)` only, so every trial of a tuning study (every width
and family) sees the same random numbers for pair `k`: paired comparisons are far less noisy.

Both replicas are evaluated on held-out data after every epoch (loss, compiled metrics, PD), so
a trial keeps its whole trajectory and reports at a declared epoch rule. With `eval_every`,
they are also measured every that many training steps within an epoch: the papers' regime,
one pass over time-ordered logs (`epochs=1`, a `StreamSplit` of a `StreamingDataset` with a
temporal split) with PD measured at checkpoints along the stream.

Reference:
    Shamir, Lin, Coviello, "Smooth Activations and Reproducibility in Deep Networks",
    [arXiv:2010.09931](https://arxiv.org/abs/2010.09931).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import keras

from keras_smelu import prediction_difference as _pd
from keras_smelu._replica_data import StreamSplit, prepare_data
from keras_smelu._replica_models import describe_activation
from keras_smelu._replica_summary import resolve_pd_kind, summarize_pairs
from keras_smelu._replica_training import NonFiniteLossError, PairTrainer, RunState, RunTrainer
from keras_smelu._settings import SettingError, check_choice, check_int

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "REPORT_EPOCH_RULES",
    "TASKS",
    "VARY_OPTIONS",
    "NonFiniteLossError",
    "ReplicaReport",
    "ReplicaSettings",
    "StreamSplit",
    "train_replicas",
]

VARY_OPTIONS = ("data_order", "init", "both", "none")
"""What differs between the two replicas of a pair."""
REPORT_EPOCH_RULES = ("last", "best")
"""Which epoch the headline numbers come from."""
TASKS = ("auto", "binary", "multiclass", "regression")
"""Prediction tasks; they decide which PD measures are recorded."""


@dataclasses.dataclass(frozen=True)
class ReplicaSettings:
    """How the replica pairs of one measurement train: the protocol, checked once here.

    The same object travels from a job file's `[training]` section through the tuner and each
    trial to `train_replicas`.

    Attributes:
        pairs: Number of replica pairs (at least 5 per point, 10 for a claim: PD is
            heavy-tailed across pairs).
        epochs: Training epochs per replica.
        batch_size: Batch size for NumPy data and unbatched datasets.
        vary: `"data_order"` (default), `"init"`, `"both"` or `"none"`: what differs within
            a pair (see `train_replicas`).
        seed: Base seed (integer >= 0). Pair `k` uses seeds derived from `(seed, k)` only:
            common random numbers across trials.
        report_epoch: `"last"`, or `"best"`: the epoch with the lowest evaluation loss
            averaged over all replicas (the earliest on ties).
        task: `"auto"` (default), `"binary"`, `"multiclass"` or `"regression"`. Auto: outputs
            with several columns whose rows are distributions are multiclass; single outputs
            with 0/1 labels are binary (the predictions must then be probabilities); anything
            else is regression.
        fused: Train all `2 * pairs` replicas of the run as one program, each on its own
            batches: one compilation and one step's overhead for all, and the same replicas
            as one after the other (an optimizer that updates each weight from its own
            gradient makes each replica's own step). Possible with NumPy arrays or streamed
            data, one loss, no `loss_weights`, no callbacks, no global-norm clipping or loss
            scaling, one optimizer configuration. Replicas of one architecture (one builder,
            one activation) share one replica's step, a program that does not grow with
            their number, and are measured the same way on in-memory evaluation data: on
            JAX it is vectorized over their stacked variables (`jax.vmap`;
            `config["program"]` is `"vectorized"`), on TensorFlow traced once and run on each
            replica's variables (`"shared step"`). Otherwise (`"stack"`) the replicas sit
            side by side in one model, their own optimizers stay unused (a fresh copy trains
            them) and their training losses leave out regularization terms. `"auto"`
            (default): the shared step where possible, else the stack on JAX (on TensorFlow
            the stack was measured as slow as one replica after the other), else one replica
            after the other. `True`: required (ValueError saying why not); `False`: never.
            NumPy training data is held once per replica (each in its own order) for the
            epoch.
        first_pair: The 0-based index of the first pair: pairs `first_pair ..
            first_pair + pairs - 1` are trained, each with its own seeds, so that more pairs
            can be added to a measurement later without redoing one.
        eval_every: Training steps (batches) between checkpoints within an epoch, or `None`
            (the default): one checkpoint per epoch. At every checkpoint, and at the end of
            every epoch, both replicas are measured on the evaluation data; each checkpoint is
            one entry of the per-epoch lists (`ReplicaReport.history`, `pair_results`,
            `report_epoch`), with the steps taken so far in `"steps"`. `epochs=1` with
            `eval_every` is the one-pass regime: a PD trajectory along the stream.
        ensemble: Models per replica (integer >= 1; default 1). With `k > 1` each replica is
            a `keras_smelu.Ensemble` of k members, built under seeds derived from the
            replica's initialization seed and the member's index (member 0 under that seed:
            the model a single replica would be), trained on the replica's batches, each
            member on its own loss as it would train alone; its predictions, evaluation
            metrics and hence PD are the members' average. PD then compares two independently
            trained k-ensembles, at k times the training and serving compute of one model.
            With `vary="data_order"` the two ensembles' members start identical pairwise.
            The recorded training loss is the sum of the members' losses.

    Raises:
        ValueError: (a `SettingError`) naming the first bad field and what it takes.

    Example:

    >>> ReplicaSettings(pairs=5, epochs=3).pairs
    5
    """

    pairs: int = 1
    epochs: int = 1
    batch_size: int = 256
    vary: Literal["data_order", "init", "both", "none"] = "data_order"
    seed: int = 0
    report_epoch: Literal["last", "best"] = "last"
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    fused: bool | Literal["auto"] = "auto"
    first_pair: int = 0
    eval_every: int | None = None
    ensemble: int = 1

    def __post_init__(self) -> None:
        check_int("pairs", self.pairs, 1)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_choice("vary", self.vary, VARY_OPTIONS)
        check_choice("report_epoch", self.report_epoch, REPORT_EPOCH_RULES)
        check_choice("task", self.task, TASKS)
        check_int("first_pair", self.first_pair, 0)
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every, 1)
        check_int("ensemble", self.ensemble, 1)
        if not (isinstance(self.fused, bool) or self.fused == "auto"):
            raise SettingError("fused", expected="True, False or 'auto'", received=self.fused)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ReplicaReport:
    """Result of `train_replicas`.

    Attributes:
        metrics: Evaluation metrics at `epoch`, mean over all `2 * pairs` replicas: `"loss"`
            plus the compiled metrics (e.g. `"auc"`), named as `model.evaluate` names them.
        metrics_std: Their sample standard deviation over replicas (`ddof=1`).
        pd: PD at `epoch` per measure (names from `prediction_difference.PD_KINDS`), mean over
            pairs. Binary: relative, absolute, relative/absolute shift-corrected (logit space),
            top1. Multiclass: total_variation, top1, absolute, relative. Regression: absolute,
            relative_to_mean and their shift-corrected (identity space) versions.
        pd_std: Sample standard deviation of the PD over pairs (`ddof=1`; 0.0 for one pair).
        pd_value: `pd[pd_kind]`, the headline PD.
        pd_kind: The headline measure. A requested `"relative"` on a regression task resolves
            to `"relative_to_mean"` (regression PD is relative to the mean prediction).
        epoch: The reported epoch, 1-based (with `eval_every`: the reported checkpoint).
        history: Per epoch (with `eval_every`: per checkpoint): `{"epoch", "steps",
            "train_loss", "metrics", "metrics_std", "pd", "pd_std"}` (means and spreads as
            above; `steps`: training steps each replica had taken; `epoch` numbers the entry).
        pair_results: Per pair: `{"pair", "seeds", "initial_weights", "replicas", "pd",
            "steps"}`, where
            `initial_weights` holds a digest of each replica's initial weights, `replicas` the
            per-epoch `train_loss`, `metrics` and `prediction_std` (the spread of the
            evaluation predictions) of replicas a and b, `pd` one dict per epoch (or
            checkpoint) and `steps` the training steps at each.
        seeds: `{"base", "vary", "pairs": [per-pair seeds]}`: what reproduces the run.
        activation: A readable description of the activation.
        task: `"binary"`, `"multiclass"` or `"regression"`.
        config: The run's settings (with `fused`: whether the replicas trained as one
            program, `stacked`: the replicas that program held, 1 when they trained one
            after the other, and `program`: `"vectorized"`, `"shared step"`, `"stack"` or
            `"sequential"`),
            Keras backend and versions.
        train_seconds: Wall time spent in `fit`, `evaluate` and `predict`.
        wall_seconds: Wall time of the whole `train_replicas` call.
        models: The trained replicas `[pair1_a, pair1_b, pair2_a, ...]` when `return_models`,
            else `None`. Not part of `to_dict()`.
    """

    metrics: dict[str, float]
    metrics_std: dict[str, float]
    pd: dict[str, float]
    pd_std: dict[str, float]
    pd_value: float
    pd_kind: str
    epoch: int
    history: list[dict[str, Any]]
    pair_results: list[dict[str, Any]]
    seeds: dict[str, Any]
    activation: str
    task: Literal["binary", "multiclass", "regression"]
    config: dict[str, Any]
    train_seconds: float
    wall_seconds: float
    models: list[keras.Model] | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serializable dict of every field except `models`."""
        return {
            field.name: copy.deepcopy(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name != "models"
        }


# ----------------------------------------------------------------------------------------------
# Training


def train_replicas(
    model: keras.Model | Callable[[Any], keras.Model],
    train_data: tuple[Any, ...] | tf.data.Dataset | StreamSplit | Any,
    eval_data: tuple[Any, ...] | tf.data.Dataset | StreamSplit | Any,
    *,
    activation: str | Callable[..., Any] | keras.layers.Layer | None = "relu",
    settings: ReplicaSettings | None = None,
    pd: str = "relative",
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: Literal["auto", 0, 1, 2] = "auto",
    return_models: bool = False,
    on_epoch: Callable[[int, list[dict[str, Any]]], None] | None = None,
    **overrides: Any,
) -> ReplicaReport:
    """Trains `pairs` pairs of replicas and measures their prediction difference (PD).

    All pairs are built first and advance together, one epoch at a time. Each replica trains
    epoch by epoch (`fit(..., shuffle=False)` on data this function shuffles), and after
    every epoch is evaluated on `eval_data`: loss and compiled metrics
    (`model.evaluate`), and the pair's PD from `model.predict`. The headline numbers are taken
    at `report_epoch`.

    What differs within a pair (`vary`):

    - `"data_order"` (default): identical initial weights (both replicas are built under
      `keras.utils.set_random_seed(init_seed)` and checked equal), a different shuffle of the
      training data every epoch;
    - `"init"`: different initial weights, identical data order;
    - `"both"`: both differ;
    - `"none"`: nothing differs; the replicas are bit-identical and PD is exactly 0.

    Before each epoch of training, `keras.utils.set_random_seed` is called with a seed shared by
    the two replicas of a pair, so stochastic layers (dropout, noise) match; their own seed
    generators are created at build time from the initialization seed. (That call also seeds
    Python's `random`, NumPy's global generator and TensorFlow's global seed; stacked replicas
    train under the first pair's seed, which only a layer drawing from Keras's global seed
    generator would notice.) NumPy data is
    permuted with `np.random.default_rng(order_seed)` (one generator per replica, one
    permutation per epoch). A tf.data.Dataset is shuffled with a seed from that generator:
    example-level and then batched with `batch_size` if unbatched; if already batched, only the
    order of the batches is shuffled (their composition and size are kept, `batch_size` is
    ignored). Streamed data (a `StreamSplit`) is read once per epoch with the dataset's
    bounded shuffle, seeded per replica and epoch from that generator: with
    `vary="data_order"` the replicas read the same rows in different orders (rows move about
    `shuffle_buffer` places), with `shuffle_buffer=0` in file order.

    Checkpoints: without `eval_every`, one per epoch; with it, every `eval_every` steps and
    at each epoch's end. The training seed of stochastic layers is set per checkpoint.

    Args:
        model: A builder `activation -> compiled keras.Model` (called once per replica, under a
            fixed seed; it must build a new model every call), or a compiled `keras.Model`,
            which is cloned with `keras.models.clone_model` and recompiled from its compile
            config: its architecture is used, its weights are re-initialized per replica.
        train_data: `(x, y)` or `(x, y, sample_weight)` with NumPy arrays (x may be a dict or
            list of arrays), a finite tf.data.Dataset of such tuples (batched or not), or a
            `StreamSplit` of a `StreamingDataset` (the dataset itself: its train split).
        eval_data: Held-out data in the same forms (a `StreamingDataset`: its test split,
            read into memory once); PD and metrics are measured on it.
        activation: Passed to the builder; an activation layer is copied from its config for
            every replica (replicas never share a layer or its weights). Must be `None` or
            `"relu"` (the default, ignored) when `model` is a keras.Model.
        settings: A `ReplicaSettings` (pairs, epochs, batch size, what varies, seed, reported
            epoch, task, fusing). The keyword arguments below override its fields; without
            it they fill the defaults.
        pd: The headline PD measure, a name from `prediction_difference.PD_KINDS` recorded
            for the task (see `ReplicaReport.pd`). `"relative"` on a regression task means
            relative to the mean prediction.
        callbacks: Extra Keras callbacks passed to every `fit` call. `fit` runs once per epoch
            (with `initial_epoch`), so callbacks that keep state across epochs through
            `on_train_begin` (e.g. EarlyStopping) see one epoch per call.
        verbose: Keras progress for `fit` (`"auto"`, 0, 1, 2); unless 0, one line per replica
            and epoch is printed as well.
        return_models: Keep the trained replicas in `ReplicaReport.models`.
        on_epoch: Called after every epoch (checkpoint) of all pairs as `on_epoch(epoch,
            pairs)` (epoch 1-based, counting checkpoints; `pairs` as
            `ReplicaReport.pair_results` holds them, up to that epoch). An exception it
            raises stops the run and propagates (a tuner's early stopping).
        **overrides: Fields of `ReplicaSettings` (`pairs`, `epochs`, `batch_size`, `vary`,
            `seed`, `report_epoch`, `task`, `fused`, `first_pair`, `eval_every`, `ensemble`).

    Returns:
        A `ReplicaReport`.

    Raises:
        ValueError: for an invalid argument, naming it and what was expected; if the
            replicas share a variable (a builder that reuses a layer created outside it).
        RuntimeError: if the builder is not deterministic where identical initial weights
            are needed (`vary="data_order"` or `"none"`).
        NonFiniteLossError: if a training loss, evaluation loss or prediction is NaN or inf.

    Example:

    ```python
    def build(activation):
        model = keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation=activation),
            keras.layers.Dense(1, activation="sigmoid"),
        ])
        model.compile("adam", "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
        return model

    report = train_replicas(build, (x, y), (x_val, y_val), activation="smelu", pairs=5)
    report.pd_value, report.metrics["auc"]
    ```

    Reference:
        [arXiv:2010.09931](https://arxiv.org/abs/2010.09931)
    """
    wall_start = time.perf_counter()
    settings = _settings_from(settings, overrides)
    _validate(
        model=model,
        activation=activation,
        eval_data=eval_data,
        pd=pd,
        callbacks=callbacks,
        verbose=verbose,
    )
    is_model = isinstance(model, keras.Model)
    if is_model:
        activation = None
    train = prepare_data(train_data, "train_data", settings.batch_size)
    evaluation = prepare_data(eval_data, "eval_data", settings.batch_size)
    state = RunState()
    if settings.task != "auto":
        state.task = settings.task
        state.pd_kind = resolve_pd_kind(pd, settings.task)
    labels = evaluation.labels() if settings.task == "auto" else None

    pair_trainers = [
        PairTrainer(
            model,
            activation,
            train,
            evaluation,
            settings,
            k,
            state=state,
            pd=pd,
            labels=labels,
            callbacks=callbacks,
            verbose=verbose,
        )
        for k in range(settings.first_pair, settings.first_pair + settings.pairs)
    ]
    run = RunTrainer(pair_trainers, settings, state=state, callbacks=callbacks, verbose=verbose)
    trainers = run.trainers
    # Checkpoint by checkpoint across the pairs (all read the same data, so they reach the
    # same checkpoints), so that `on_epoch` sees every pair at each one.
    checkpoints = 0
    while not run.done:
        run.step()
        checkpoints += 1
        if on_epoch is not None:
            on_epoch(checkpoints, [trainer.result().to_dict() for trainer in trainers])
    results = [trainer.result() for trainer in trainers]
    pairs = [result.to_dict() for result in results]
    train_seconds = sum(result.train_seconds for result in results)
    kept_models = [m for trainer in trainers for m in trainer.replicas] if return_models else []
    del trainers, pair_trainers, run

    history, index = summarize_pairs(pairs, checkpoints, settings.report_epoch)
    for entry, steps in zip(history, pairs[0]["steps"], strict=True):
        entry["steps"] = steps
    chosen = history[index]
    return ReplicaReport(
        metrics=dict(chosen["metrics"]),
        metrics_std=dict(chosen["metrics_std"]),
        pd=dict(chosen["pd"]),
        pd_std=dict(chosen["pd_std"]),
        pd_value=chosen["pd"][state.pd_kind],
        pd_kind=state.pd_kind,
        epoch=index + 1,
        history=history,
        pair_results=pairs,
        seeds={
            "base": int(settings.seed),
            "vary": settings.vary,
            "pairs": [p["seeds"] for p in pairs],
        },
        activation=(
            f"as built in model {model.name!r}" if is_model else describe_activation(activation)
        ),
        task=state.task,
        config={
            **settings.to_dict(),
            "pd": pd,
            "fused": bool(state.fuse),
            "stacked": state.stacked,
            "program": state.program,
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "numpy_version": _numpy_version(),
        },
        train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - wall_start,
        models=kept_models if return_models else None,
    )


def _numpy_version() -> str:
    import numpy as np

    return np.__version__


def _settings_from(settings: ReplicaSettings | None, overrides: dict[str, Any]) -> ReplicaSettings:
    """`settings` (or the defaults) with the keyword overrides applied, checked."""
    names = {f.name for f in dataclasses.fields(ReplicaSettings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(
            f"train_replicas() got unexpected keyword argument(s) {unknown}; the settings "
            f"fields are {sorted(names)}"
        )
    if settings is not None and not isinstance(settings, ReplicaSettings):
        raise ValueError(
            f"`settings` must be a ReplicaSettings; received: {type(settings).__name__}"
        )
    return dataclasses.replace(settings or ReplicaSettings(), **overrides)


def _validate(
    *, model: Any, activation: Any, eval_data: Any, pd: Any, callbacks: Any, verbose: Any
) -> None:
    """Checks the arguments that are not settings (those check themselves)."""
    if isinstance(model, keras.Model):
        if activation not in (None, "relu"):
            raise ValueError(
                "`activation` applies to a model builder; a keras.Model keeps its own "
                f"activations, so pass activation=None; received: activation={activation!r}"
            )
    elif not callable(model):
        raise ValueError(
            "`model` must be a builder `activation -> compiled keras.Model` or a compiled "
            f"keras.Model; received: {type(model).__name__}"
        )
    if eval_data is None:
        raise ValueError(
            "`eval_data` is required: PD and metrics are measured on held-out data; "
            "received: eval_data=None"
        )
    check_choice("pd", pd, sorted(_pd.PD_KINDS))
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; received: verbose={verbose!r}")
    if callbacks is not None and (
        not isinstance(callbacks, (list, tuple))
        or not all(isinstance(c, keras.callbacks.Callback) for c in callbacks)
    ):
        raise ValueError(
            f"`callbacks` must be a list of keras.callbacks.Callback; received: {callbacks!r}"
        )
