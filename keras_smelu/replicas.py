"""Replica training: train pairs of replicas of one model and measure their prediction difference.

Protocol: the two replicas of a pair start from identical weights and differ only in
the order in which they see the training data (a different shuffle every epoch). Initialization
can be varied too, or everything fixed (then the replicas are bit-identical and PD is exactly 0).
Pair `k` draws its seeds from `(seed, k)` only, so every trial of a tuning study (every width
and family) sees the same random numbers for pair `k`: paired comparisons are far less noisy.

Both replicas are evaluated on held-out data after every epoch (loss, compiled metrics, PD), so
a trial keeps its whole trajectory and reports at a declared epoch rule.

Reference:
    Shamir, Lin, Coviello, "Smooth Activations and Reproducibility in Deep Networks",
    [arXiv:2010.09931](https://arxiv.org/abs/2010.09931).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_smelu import prediction_difference as _pd
from keras_smelu._replica_pair import REPLICA_NAMES, compile_pair, fit_pair_epoch, why_not_fused

__all__ = [
    "REPORT_EPOCH_RULES",
    "TASKS",
    "VARY_OPTIONS",
    "NonFiniteLossError",
    "ReplicaReport",
    "train_replicas",
]

VARY_OPTIONS = ("data_order", "init", "both", "none")
"""What differs between the two replicas of a pair."""
REPORT_EPOCH_RULES = ("last", "best")
"""Which epoch the headline numbers come from."""
TASKS = ("auto", "binary", "multiclass", "regression")
"""Prediction tasks; they decide which PD measures are recorded."""

# PD measures recorded per task (names from `prediction_difference.PD_KINDS`).
_TASK_PD_KINDS = {
    "binary": (
        "relative",
        "absolute",
        "relative_shift_corrected",
        "absolute_shift_corrected",
        "top1",
    ),
    "multiclass": ("total_variation", "top1", "absolute", "relative"),
    "regression": (
        "absolute",
        "relative_to_mean",
        "absolute_shift_corrected_identity",
        "relative_to_mean_shift_corrected",
    ),
}
# Shuffle buffer for a tf.data.Dataset of unknown cardinality.
_UNKNOWN_CARDINALITY_BUFFER = 10_000


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
        epoch: The reported epoch, 1-based.
        history: Per epoch: `{"epoch", "train_loss", "metrics", "metrics_std", "pd", "pd_std"}`
            (means and spreads as above).
        pair_results: Per pair: `{"pair", "seeds", "initial_weights", "replicas", "pd"}`, where
            `initial_weights` holds a digest of each replica's initial weights, `replicas` the
            per-epoch `train_loss` and `metrics` of replicas a and b, and `pd` one dict per epoch.
        seeds: `{"base", "vary", "pairs": [per-pair seeds]}`: what reproduces the run.
        activation: A readable description of the activation.
        task: `"binary"`, `"multiclass"` or `"regression"`.
        config: The run's settings (with `fused`: whether the pairs trained as one program),
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
    task: str
    config: dict[str, Any]
    train_seconds: float
    wall_seconds: float
    models: list[Any] | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serializable dict of every field except `models`."""
        return {
            field.name: copy.deepcopy(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name != "models"
        }


# ----------------------------------------------------------------------------------------------
# Seeds


def _pair_seeds(seed: int, pair_index: int, vary: str) -> dict[str, Any]:
    """Seeds of pair `pair_index` (0-based), derived from `(seed, pair_index)` only."""
    state = [int(s) for s in np.random.SeedSequence([seed, pair_index]).generate_state(5)]
    same_init = vary in ("data_order", "none")
    same_order = vary in ("init", "none")
    return {
        "pair": pair_index + 1,
        "init": [state[0], state[0] if same_init else state[1]],
        "order": [state[2], state[2] if same_order else state[3]],
        "train": state[4],
    }


def _epoch_seed(train_seed: int, epoch_index: int) -> int:
    return int(np.random.SeedSequence([train_seed, epoch_index]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------------
# Data


def _is_tf_dataset(data: Any) -> bool:
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def _is_batched(dataset: Any) -> bool:
    """Whether a tf.data pipeline is batched.

    A batching transformation (`batch`, `padded_batch`, `rebatch`, ...) in the pipeline, not
    undone by a later `unbatch`, counts; failing that, a dataset whose every component has an
    unknown leading dimension counts as batched (e.g. `from_generator` yielding batches).
    """
    node, seen = dataset, 0
    while node is not None and seen < 1000:
        name = type(node).__name__.lower()
        if "unbatch" in name:
            return False
        if "batch" in name:
            return True
        node, seen = getattr(node, "_input_dataset", None), seen + 1
    import tensorflow as tf

    specs = [s for s in tf.nest.flatten(dataset.element_spec) if hasattr(s, "shape")]
    return bool(specs) and all(
        s.shape.rank is not None and s.shape.rank >= 1 and s.shape[0] is None for s in specs
    )


class _ArrayData:
    """`(x, y)` or `(x, y, sample_weight)` with NumPy arrays (x may be a dict or list)."""

    def __init__(self, data: Any, name: str, batch_size: int):
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(
                f"`{name}` must be an `(x, y)` or `(x, y, sample_weight)` tuple of NumPy arrays "
                f"(x may be a dict of arrays), or a tf.data.Dataset; received: "
                f"{type(data).__name__}"
                + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
            )
        x, y = data[0], data[1]
        sample_weight = data[2] if len(data) == 3 else None
        if x is None or y is None:
            raise ValueError(f"`{name}` needs both inputs and labels; received x={x!r}, y={y!r}")
        self.x = keras.tree.map_structure(np.asarray, x)
        self.y = keras.tree.map_structure(np.asarray, y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        leaves = keras.tree.flatten((self.x, self.y)) + (
            [] if self.sample_weight is None else [self.sample_weight]
        )
        lengths = {int(a.shape[0]) if a.ndim else -1 for a in leaves}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError(
                f"All arrays of `{name}` must have the same number of rows; got shapes "
                f"{[a.shape for a in leaves]}"
            )
        self.n = lengths.pop()
        if self.n == 0:
            raise ValueError(f"`{name}` is empty (0 rows).")
        self.batch_size = batch_size

    def _take(self, index: np.ndarray | slice) -> tuple[Any, Any, Any]:
        def take(a: np.ndarray) -> np.ndarray:
            return a[index]

        sample_weight = None if self.sample_weight is None else self.sample_weight[index]
        return (
            keras.tree.map_structure(take, self.x),
            keras.tree.map_structure(take, self.y),
            sample_weight,
        )

    def epoch(self, rng: np.random.Generator) -> dict[str, Any]:
        x, y, sample_weight = self._take(rng.permutation(self.n))
        return {"x": x, "y": y, "sample_weight": sample_weight, "batch_size": self.batch_size}

    def evaluate_kwargs(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "sample_weight": self.sample_weight,
            "batch_size": self.batch_size,
        }

    def predict_kwargs(self) -> dict[str, Any]:
        return {"x": self.x, "batch_size": self.batch_size}

    def sample_x(self) -> Any:
        return self._take(slice(0, min(self.n, self.batch_size)))[0]

    def labels(self) -> np.ndarray | None:
        return self.y if isinstance(self.y, np.ndarray) else None


class _DatasetData:
    """A finite tf.data.Dataset of `(x, y)` or `(x, y, sample_weight)`, batched or not.

    Unbatched: each epoch is `shuffle(cardinality, seed=s).batch(batch_size)`, a full shuffle
    of the examples with a seed drawn from the replica's order generator. Already batched: the
    batches keep their composition and size (`batch_size` is ignored) and only their order is
    shuffled; pass an unbatched dataset for an example-level shuffle.
    """

    def __init__(self, dataset: Any, name: str, batch_size: int):
        import tensorflow as tf

        cardinality = int(dataset.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(
                f"`{name}` is an infinite tf.data.Dataset (e.g. `.repeat()` without a count); "
                "pass a finite dataset (one epoch of data)."
            )
        if cardinality == 0:
            raise ValueError(f"`{name}` is an empty tf.data.Dataset.")
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                f"`{name}` must yield `(x, y)` or `(x, y, sample_weight)` tuples; element_spec "
                f"is {spec!r}"
            )
        self.dataset = dataset
        self.batched = _is_batched(dataset)
        self.batch_size = batch_size
        self.buffer_size = cardinality if cardinality > 0 else _UNKNOWN_CARDINALITY_BUFFER

    def _batched(self, dataset: Any) -> Any:
        return dataset if self.batched else dataset.batch(self.batch_size)

    def epoch(self, rng: np.random.Generator) -> dict[str, Any]:
        seed = int(rng.integers(2**31 - 1))
        shuffled = self.dataset.shuffle(self.buffer_size, seed=seed, reshuffle_each_iteration=False)
        return {"x": self._batched(shuffled)}

    def evaluate_kwargs(self) -> dict[str, Any]:
        return {"x": self._batched(self.dataset)}

    predict_kwargs = evaluate_kwargs

    def sample_x(self) -> Any:
        for element in self._batched(self.dataset).take(1).as_numpy_iterator():
            return element[0]
        raise ValueError("The dataset is empty.")

    def labels(self) -> np.ndarray | None:
        parts = [element[1] for element in self._batched(self.dataset).as_numpy_iterator()]
        if not parts or not all(isinstance(p, np.ndarray) for p in parts):
            return None
        return np.concatenate(parts, axis=0)


def _prepare_data(data: Any, name: str, batch_size: int) -> _ArrayData | _DatasetData:
    if data is None:
        raise ValueError(
            f"`{name}` is required: an `(x, y)` tuple or a tf.data.Dataset; received: None"
        )
    if _is_tf_dataset(data):
        return _DatasetData(data, name, batch_size)
    return _ArrayData(data, name, batch_size)


# ----------------------------------------------------------------------------------------------
# Models


def _describe_activation(activation: Any) -> str:
    if activation is None or isinstance(activation, str):
        return str(activation)
    if hasattr(activation, "get_config"):
        try:
            config = activation.get_config()
        except Exception:  # a partial get_config: fall back to the class name
            config = {}
        skip = {"name", "trainable", "dtype"}
        items = ", ".join(
            f"{k}={v!r}"
            for k, v in config.items()
            if k not in skip and isinstance(v, (int, float, str, bool, type(None)))
        )
        return f"{type(activation).__name__}({items})"
    return getattr(activation, "__name__", None) or repr(activation)


def _build_replica(model: Any, activation: Any, sample_x: Callable[[], Any]) -> keras.Model:
    if isinstance(model, keras.Model):
        try:
            replica = keras.models.clone_model(model)
            replica.compile_from_config(model.get_compile_config())
        except Exception as e:
            raise ValueError(
                f"Could not clone and recompile the model {model.name!r} "
                f"({type(e).__name__}: {e}). Pass a builder `activation -> compiled model` "
                "instead."
            ) from e
    else:
        replica = model(activation)
        if not isinstance(replica, keras.Model):
            raise TypeError(
                "The model builder must return a compiled keras.Model; received: "
                f"{type(replica).__name__}"
            )
        if not getattr(replica, "compiled", False):
            raise ValueError(
                f"The model builder returned an uncompiled model ({replica.name!r}); call "
                "`model.compile(optimizer=..., loss=..., metrics=...)` in the builder."
            )
    if not replica.built:
        replica(sample_x(), training=False)
    return replica


def _weights_digest(weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()[:16]


def _check_identical(a: keras.Model, wa: list, wb: list, init_seed: int) -> None:
    """Raises unless the weights `wa` of replica `a` and `wb` of its twin are equal."""
    names = [w.path for w in a.weights]
    if len(wa) != len(wb):
        raise RuntimeError(
            "The model builder is not deterministic: two builds under "
            f"keras.utils.set_random_seed({init_seed}) gave {len(wa)} and {len(wb)} weights."
        )
    for name, x, y in zip(names, wa, wb, strict=True):
        if x.shape != y.shape or not np.array_equal(x, y):
            raise RuntimeError(
                "The model builder is not deterministic: two builds under "
                f"keras.utils.set_random_seed({init_seed}) gave different initial weights "
                f"(first difference in {name!r}). vary='data_order' and vary='none' need "
                "identical initial weights: let initializers draw from Keras's global seed "
                "(seed=None) or fixed seeds, and use no unseeded random source."
            )


def _predict(model: keras.Model, data: _ArrayData | _DatasetData) -> np.ndarray:
    out = model.predict(**data.predict_kwargs(), verbose=0)
    if not isinstance(out, np.ndarray):
        raise ValueError(
            "train_replicas supports single-output models; `model.predict` returned a "
            f"{type(out).__name__}."
        )
    return out


# ----------------------------------------------------------------------------------------------
# Tasks and PD


def _infer_task(predictions: np.ndarray, labels: np.ndarray | None) -> str:
    p = _pd._squeeze_trailing_one(np.asarray(predictions, dtype=np.float64))
    if p.ndim >= 2:  # the rule the multiclass PD kinds check
        return "multiclass" if _pd._is_distribution(p) else "regression"
    in_unit = _pd._in_unit_interval(p)
    if labels is None:
        return "binary" if in_unit else "regression"
    binary_labels = bool(np.isin(np.asarray(labels), (0, 1)).all())
    if binary_labels and not in_unit:
        raise ValueError(
            "The evaluation labels are 0/1 but the predictions range over "
            f"[{p.min():.4g}, {p.max():.4g}]: the model seems to output logits. Add a sigmoid "
            "output (PD is measured on probabilities), or pass task='regression'."
        )
    return "binary" if binary_labels else "regression"


def _resolve_pd_kind(pd: str, task: str) -> str:
    kind = "relative_to_mean" if (pd == "relative" and task == "regression") else pd
    if kind not in _TASK_PD_KINDS[task]:
        raise ValueError(
            f"pd={pd!r} is not measured for a {task} task; expected one of "
            f"{list(_TASK_PD_KINDS[task])}."
        )
    return kind


def _pair_pd(p1: np.ndarray, p2: np.ndarray, task: str) -> dict[str, float]:
    return {kind: _pd.compute_pd(kind, p1, p2) for kind in _TASK_PD_KINDS[task]}


def _aggregate(dicts: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    means, stds = {}, {}
    for key in dicts[0]:
        means[key], stds[key] = _pd._mean_std([d[key] for d in dicts])
    return means, stds


# ----------------------------------------------------------------------------------------------
# Validation


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received: {name}={value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; received: {name}={value!r}")


def _validate(
    *,
    model: Any,
    activation: Any,
    eval_data: Any,
    pairs: Any,
    epochs: Any,
    batch_size: Any,
    vary: Any,
    seed: Any,
    pd: Any,
    report_epoch: Any,
    callbacks: Any,
    verbose: Any,
    task: Any,
    fused: Any,
) -> None:
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
    _check_int("pairs", pairs, 1)
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    _check_choice("vary", vary, VARY_OPTIONS)
    _check_choice("report_epoch", report_epoch, REPORT_EPOCH_RULES)
    _check_choice("task", task, TASKS)
    if not (isinstance(fused, bool) or fused == "auto"):
        raise ValueError(f"`fused` must be True, False or 'auto'; received: fused={fused!r}")
    if not isinstance(pd, str) or pd not in _pd.PD_KINDS:
        raise ValueError(f"`pd` must be one of {sorted(_pd.PD_KINDS)}; received: pd={pd!r}")
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; received: verbose={verbose!r}")
    if callbacks is not None and (
        not isinstance(callbacks, (list, tuple))
        or not all(isinstance(c, keras.callbacks.Callback) for c in callbacks)
    ):
        raise ValueError(
            f"`callbacks` must be a list of keras.callbacks.Callback; received: {callbacks!r}"
        )


# ----------------------------------------------------------------------------------------------
# Training


def train_replicas(
    model: Any,
    train_data: Any,
    eval_data: Any,
    *,
    activation: Any = "relu",
    pairs: int = 1,
    epochs: int = 1,
    batch_size: int = 256,
    vary: str = "data_order",
    seed: int = 0,
    pd: str = "relative",
    report_epoch: str = "last",
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
    return_models: bool = False,
    task: str = "auto",
    fused: bool | str = "auto",
) -> ReplicaReport:
    """Trains `pairs` pairs of replicas and measures their prediction difference (PD).

    Each replica trains epoch by epoch (`fit(..., shuffle=False)` on data this function
    shuffles), and after every epoch is evaluated on `eval_data`: loss and compiled metrics
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
    Python's `random`, NumPy's global generator and TensorFlow's global seed.) NumPy data is
    permuted with `np.random.default_rng(order_seed)` (one generator per replica, one
    permutation per epoch). A tf.data.Dataset is shuffled with a seed from that generator:
    example-level and then batched with `batch_size` if unbatched; if already batched, only the
    order of the batches is shuffled (their composition and size are kept, `batch_size` is
    ignored).

    Args:
        model: A builder `activation -> compiled keras.Model` (called once per replica, under a
            fixed seed; it must build a new model every call), or a compiled `keras.Model`,
            which is cloned with `keras.models.clone_model` and recompiled from its compile
            config: its architecture is used, its weights are re-initialized per replica.
        train_data: `(x, y)` or `(x, y, sample_weight)` with NumPy arrays (x may be a dict or
            list of arrays), or a finite tf.data.Dataset of such tuples (batched or not).
        eval_data: Held-out data in the same forms; PD and metrics are measured on it.
        activation: Passed to the builder. Must be `None` or `"relu"` (the default, ignored)
            when `model` is a keras.Model.
        pairs: Number of replica pairs (at least 5 per point, 10 for a claim: PD is
            heavy-tailed across pairs).
        epochs: Training epochs per replica.
        batch_size: Batch size for NumPy data and unbatched datasets.
        vary: `"data_order"`, `"init"`, `"both"` or `"none"` (above).
        seed: Base seed (integer >= 0). Pair `k` uses seeds derived from `(seed, k)` only:
            common random numbers across trials.
        pd: The headline PD measure, a name from `prediction_difference.PD_KINDS` recorded
            for the task (see `ReplicaReport.pd`). `"relative"` on a regression task means
            relative to the mean prediction.
        report_epoch: `"last"`, or `"best"`: the epoch with the lowest evaluation loss
            averaged over all replicas (the earliest on ties).
        callbacks: Extra Keras callbacks passed to every `fit` call. `fit` runs once per epoch
            (with `initial_epoch`), so callbacks that keep state across epochs through
            `on_train_begin` (e.g. EarlyStopping) see one epoch per call.
        verbose: Keras progress for `fit` (`"auto"`, 0, 1, 2); unless 0, one line per replica
            and epoch is printed as well.
        return_models: Keep the trained replicas in `ReplicaReport.models`.
        task: `"auto"` (default), `"binary"`, `"multiclass"` or `"regression"`. Auto: outputs
            with several columns whose rows are distributions are multiclass; single outputs
            with 0/1 labels are binary (the predictions must then be probabilities); anything
            else is regression.
        fused: Train the two replicas of a pair as one program, each on its own batches: about
            the cost of one training run instead of two, and the same replicas (an optimizer
            that updates each weight from its own gradient makes each replica's own step).
            `"auto"` (default): when possible, i.e. NumPy data, one loss, no `loss_weights`,
            no callbacks, no global-norm clipping or loss scaling; otherwise one replica after
            the other. `True`: required (ValueError saying why not); `False`: never. Fused
            replicas' own optimizers stay unused (a fresh copy trains them), and their
            training losses leave out regularization terms.

    Returns:
        A `ReplicaReport`.

    Raises:
        ValueError: for an invalid argument, naming it and what was expected.
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
    _validate(
        model=model,
        activation=activation,
        eval_data=eval_data,
        pairs=pairs,
        epochs=epochs,
        batch_size=batch_size,
        vary=vary,
        seed=seed,
        pd=pd,
        report_epoch=report_epoch,
        callbacks=callbacks,
        verbose=verbose,
        task=task,
        fused=fused,
    )
    is_model = isinstance(model, keras.Model)
    if is_model:
        activation = None
    train = _prepare_data(train_data, "train_data", batch_size)
    evaluation = _prepare_data(eval_data, "eval_data", batch_size)
    labels = evaluation.labels() if task == "auto" else None
    pd_kind = None if task == "auto" else _resolve_pd_kind(pd, task)
    fit_callbacks = list(callbacks) if callbacks else None
    say = verbose != 0

    train_seconds = 0.0
    pair_results: list[dict[str, Any]] = []
    all_seeds: list[dict[str, Any]] = []
    kept_models: list[keras.Model] = []
    fuse = None  # decided on the first pair's replicas

    for k in range(pairs):
        seeds = _pair_seeds(int(seed), k, vary)
        all_seeds.append(seeds)
        replicas = []
        for r in range(2):
            keras.utils.set_random_seed(seeds["init"][r])
            replicas.append(_build_replica(model, activation, train.sample_x))
        if replicas[0] is replicas[1]:
            raise ValueError(
                "The model builder returned the same model object twice; it must build a new "
                "model on every call."
            )
        initial = [m.get_weights() for m in replicas]
        if seeds["init"][0] == seeds["init"][1]:
            _check_identical(replicas[0], *initial, seeds["init"][0])
        digests = [_weights_digest(w) for w in initial]
        if fuse is None:
            blocker = why_not_fused(
                replicas[0], arrays=isinstance(train, _ArrayData), callbacks=callbacks
            )
            if fused is True and blocker is not None:
                raise ValueError(f"`fused=True`, but the replicas cannot train as one: {blocker}")
            fuse = fused is not False and blocker is None

        pair_model = compile_pair(*replicas) if fuse else None
        order_rngs = [np.random.default_rng(seeds["order"][r]) for r in range(2)]
        replica_records: list[dict[str, Any]] = [
            {"replica": name, "train_loss": [], "metrics": []} for name in REPLICA_NAMES
        ]
        predictions: list[list[np.ndarray]] = [[], []]
        for e in range(epochs):
            fit_kwargs = [train.epoch(rng) for rng in order_rngs]
            # Stochastic layers see the same global seed in both replicas, fused or not.
            epoch_seed = _epoch_seed(seeds["train"], e)
            start = time.perf_counter()
            if pair_model is not None:
                keras.utils.set_random_seed(epoch_seed)
                train_losses = fit_pair_epoch(pair_model, tuple(fit_kwargs), e, verbose)
            else:
                train_losses = []
                for r, replica in enumerate(replicas):
                    keras.utils.set_random_seed(epoch_seed)
                    history = replica.fit(
                        **fit_kwargs[r],
                        epochs=e + 1,
                        initial_epoch=e,
                        shuffle=False,
                        callbacks=fit_callbacks,
                        verbose=verbose,
                    )
                    train_losses.append(float(history.history.get("loss", [math.nan])[-1]))
            train_seconds += time.perf_counter() - start
            for r, replica in enumerate(replicas):
                name, train_loss = REPLICA_NAMES[r], train_losses[r]
                where = {"pair": k + 1, "replica": name, "epoch": e + 1}
                if not math.isfinite(train_loss):
                    raise NonFiniteLossError(**where, quantity="training loss", value=train_loss)
                start = time.perf_counter()
                metrics = replica.evaluate(
                    **evaluation.evaluate_kwargs(), verbose=0, return_dict=True
                )
                preds = _predict(replica, evaluation)
                train_seconds += time.perf_counter() - start
                metrics = {key: float(value) for key, value in metrics.items()}
                for key, value in metrics.items():
                    if not math.isfinite(value):
                        quantity = "eval loss" if key == "loss" else f"eval {key!r}"
                        raise NonFiniteLossError(**where, quantity=quantity, value=value)
                if not np.isfinite(preds).all():
                    value = float(preds[~np.isfinite(preds)].flat[0])
                    raise NonFiniteLossError(**where, quantity="prediction", value=value)
                if pd_kind is None:
                    task = _infer_task(preds, labels)
                    pd_kind = _resolve_pd_kind(pd, task)
                replica_records[r]["train_loss"].append(train_loss)
                replica_records[r]["metrics"].append(metrics)
                predictions[r].append(preds)
                if say:
                    shown = ", ".join(f"{key}={value:.4g}" for key, value in metrics.items())
                    print(
                        f"pair {k + 1}/{pairs} replica {name}: epoch {e + 1}/{epochs} "
                        f"train_loss={train_loss:.4g}, eval {shown}",
                        flush=True,
                    )

        pd_per_epoch = [_pair_pd(predictions[0][e], predictions[1][e], task) for e in range(epochs)]
        if say:
            print(
                f"pair {k + 1}/{pairs}: {pd_kind} PD {pd_per_epoch[-1][pd_kind]:.4g} "
                f"at epoch {epochs}",
                flush=True,
            )
        pair_results.append(
            {
                "pair": k + 1,
                "seeds": seeds,
                "initial_weights": digests,
                "replicas": replica_records,
                "pd": pd_per_epoch,
            }
        )
        if return_models:
            kept_models.extend(replicas)
        del replicas, predictions

    history = []
    for e in range(epochs):
        replica_metrics = [
            rec["metrics"][e] for result in pair_results for rec in result["replicas"]
        ]
        metrics_mean, metrics_std = _aggregate(replica_metrics)
        pd_mean, pd_std = _aggregate([result["pd"][e] for result in pair_results])
        train_loss = [rec["train_loss"][e] for res in pair_results for rec in res["replicas"]]
        history.append(
            {
                "epoch": e + 1,
                "train_loss": _pd._mean_std(train_loss)[0],
                "metrics": metrics_mean,
                "metrics_std": metrics_std,
                "pd": pd_mean,
                "pd_std": pd_std,
            }
        )
    if report_epoch == "best":
        index = int(np.argmin([h["metrics"]["loss"] for h in history]))
    else:
        index = epochs - 1
    chosen = history[index]

    return ReplicaReport(
        metrics=dict(chosen["metrics"]),
        metrics_std=dict(chosen["metrics_std"]),
        pd=dict(chosen["pd"]),
        pd_std=dict(chosen["pd_std"]),
        pd_value=chosen["pd"][pd_kind],
        pd_kind=pd_kind,
        epoch=index + 1,
        history=history,
        pair_results=pair_results,
        seeds={"base": int(seed), "vary": vary, "pairs": all_seeds},
        activation=(
            f"as built in model {model.name!r}" if is_model else _describe_activation(activation)
        ),
        task=task,
        config={
            "pairs": int(pairs),
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "vary": vary,
            "report_epoch": report_epoch,
            "pd": pd,
            "fused": bool(fuse),
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "numpy_version": np.__version__,
        },
        train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - wall_start,
        models=kept_models if return_models else None,
    )
