"""What the one-program replica paths share: which replicas can share one replica's step, the
training and measuring loop around that step, and the batches it takes.

Replicas of one architecture (the same layers and configurations, variables of the same shapes:
those one builder makes with one activation) can all be trained and measured by one replica's
Keras steps (`train_step`, `test_step`, `predict_step`), traced once whatever their number: JAX
maps them over the replicas' stacked variables (`_replica_vmap`), TensorFlow traces them once
and runs them on each replica's own variables (`_replica_shared_step`). Each replica keeps its
own weights, optimizer and metric state, seed-generator state and data order, so each makes
exactly the steps it would make alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np

from keras_smelu._replica_data import ArrayData, Segment


def why_not_one_program(replicas: Sequence[keras.Model]) -> str | None:
    """Why `replicas` cannot share one replica's step (None when they can): JAX maps it over
    their stacked variables (`VmappedReplicas`), TensorFlow traces it once and runs it on each
    replica's variables (`SharedStepReplicas`). They must share one architecture, loss and
    metrics, layer by layer (names aside)."""
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        return f"one replica's step is shared on JAX and TensorFlow, not on {backend}"
    # Keras internals this relies on (present in Keras 3.x): without them, the stack.
    if not all(hasattr(keras.Model, a) for a in ("_symbolic_build", "_flatten_layers")):
        return "this Keras version lacks the model internals a shared step uses"
    if replicas[0].run_eagerly:
        return "the model is compiled to run eagerly (the shared step is compiled)"
    if backend == "jax" and not replicas[0].jit_compile:
        return "the model is compiled without XLA (the vectorized program is compiled)"
    if backend == "tensorflow" and not all(hasattr(v, "_value") for v in replicas[0].variables):
        return "this Keras version's variables lack the value a shared step swaps"
    first = _signature(replicas[0])
    if first is None:
        return "a layer of the model has no configuration to compare"
    for replica in replicas[1:]:
        if _signature(replica) != first:
            return "the replicas differ in architecture, loss or metrics"
    return None


def _signature(model: keras.Model) -> Any:
    """What must be equal for one replica's step to be every replica's: layer types and
    configurations (names aside), variable shapes and dtypes, the compiled loss and metrics."""
    try:
        layers = [
            (type(layer).__name__, _without_names(layer.get_config()))
            for layer in model._flatten_layers(include_self=False)
        ]
        compiled = _without_names(model.get_compile_config() or {})
    except (NotImplementedError, TypeError):
        return None
    compiled.pop("optimizer", None)  # compared by `why_not_fused`
    variables = [(tuple(v.shape), str(v.dtype), v.trainable) for v in model.variables]
    return repr((layers, compiled, variables))


def _without_names(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


class OneStepReplicas:
    """The replicas of a run trained (`fit`, each on its own segment) and measured (`measure`,
    all on the evaluation data) by one replica's steps; a backend's subclass runs the steps.

    After `fit`, every replica's variables (weights, optimizer state) hold its trained values,
    as they would after its own `fit`.

    Args:
        replicas: Compiled replicas of one architecture (`why_not_one_program` is None), each
            with its own optimizer (built, with the metrics, from the first training batch).
    """

    def __init__(self, replicas: Sequence[keras.Model]):
        self.replicas = list(replicas)
        self.template = self.replicas[0]
        self._built = self._fitted = False

    def fit(self, parts: Sequence[Segment], *, streamed: bool, verbose: Any = 0) -> list[float]:
        """Trains replica `i` on `parts[i]` (NumPy `fit` arguments, or a stream of batches).

        With `verbose` (as `fit` takes it), a Keras progress bar counts the steps and ends
        with the replicas' mean training loss.

        Returns:
            Each replica's mean training loss over its segment, as `fit`'s history gives it.
        """
        batches = _streamed_batches(parts) if streamed else _array_batches(parts)
        first = next(batches, None)
        if first is None:
            raise ValueError("A training segment holds no batch.")
        if not self._built:
            for replica in self.replicas:
                # The optimizer's and the compiled metrics' variables, built from shapes alone
                # as `fit` builds them before its first step.
                replica._symbolic_build(data_batch=replica_batch(first[:2], 0))
            self._build(first)
            self._built = True
        self._begin_fit()
        progress = None
        if verbose:
            progress = keras.utils.Progbar(_steps(parts, streamed), verbose=_progbar_mode(verbose))
        step = 0
        for batch in itertools.chain([first], batches):
            self._train_batch(batch)
            step += 1
            if progress is not None:
                progress.update(step)
        losses = self._end_fit()
        self._fitted = True
        if progress is not None:
            progress.update(
                step, values=[("mean replica loss", float(np.mean(losses)))], finalize=True
            )
        return losses

    def measure(self, evaluation: ArrayData) -> list[tuple[dict[str, float], np.ndarray]]:
        """Each replica's evaluation metrics (as `evaluate(return_dict=True)`) and predictions
        (as `predict`) at the weights the last `fit` left, in batches of the evaluation's batch
        size."""
        if not self._fitted:
            raise RuntimeError("`measure` needs a `fit` first.")
        self._begin_measure()
        outputs = []
        size = evaluation.batch_size
        x_all, y_all, weight_all = (_floatx(part) for part in evaluation.take(slice(None)))
        for start in range(0, evaluation.n, size):

            def rows(a: np.ndarray, start: int = start) -> np.ndarray:
                return a[start : start + size]

            x, y = keras.tree.map_structure(rows, x_all), keras.tree.map_structure(rows, y_all)
            data = (x, y) if weight_all is None else (x, y, rows(weight_all))
            outputs.append(self._measure_batch(x, data))
        predictions = np.concatenate(outputs, axis=1)
        return [
            ({k: float(v) for k, v in self._metric_results(i).items()}, predictions[i])
            for i in range(len(self.replicas))
        ]

    # --- what a backend's subclass runs ---

    def _build(self, first: tuple[Any, ...]) -> None:
        """Makes the steps, given the first stacked training batch."""
        raise NotImplementedError

    def _begin_fit(self) -> None:
        """Before a segment's first step (metrics start afresh, as in each epoch of `fit`)."""
        raise NotImplementedError

    def _train_batch(self, batch: tuple[Any, ...]) -> None:
        """One training step of every replica on its batch (stacked along a leading axis)."""
        raise NotImplementedError

    def _end_fit(self) -> list[float]:
        """After a segment: each replica's mean training loss."""
        raise NotImplementedError

    def _begin_measure(self) -> None:
        """Before the evaluation (metrics start afresh, as in `evaluate`)."""
        raise NotImplementedError

    def _measure_batch(self, x: Any, data: tuple[Any, ...]) -> np.ndarray:
        """Every replica's evaluation step and predictions on one evaluation batch, stacked
        along a leading replica axis."""
        raise NotImplementedError

    def _metric_results(self, index: int) -> dict[str, Any]:
        """Replica `index`'s metric results after the evaluation."""
        raise NotImplementedError


def single_output(out: Any) -> np.ndarray:
    """A prediction step's output as an array; models with several outputs are refused."""
    if not hasattr(out, "shape"):
        raise ValueError(
            "train_replicas supports single-output models; `model.predict` returned a "
            f"{type(out).__name__}."
        )
    return np.asarray(out)


def replica_batch(batch: tuple[Any, ...], index: int) -> tuple[Any, ...]:
    """Replica `index`'s batch out of a batch stacked along a leading replica axis."""
    return keras.tree.map_structure(lambda a: a[index], batch)


def _steps(parts: Sequence[Segment], streamed: bool) -> int | None:
    """The steps of a segment, when known before reading it."""
    kwargs = parts[0].fit_kwargs
    if streamed:
        return kwargs.get("steps_per_epoch")
    rows = int(keras.tree.flatten(kwargs["y"])[0].shape[0])
    return -(-rows // kwargs["batch_size"])


def _progbar_mode(verbose: Any) -> int:
    """`fit`'s `verbose` as `Progbar` takes it: 1 a bar, 2 one line per segment."""
    return 1 if verbose in (1, "auto") else 2


def _floatx(tree: Any) -> Any:
    """NumPy floats cast to Keras's float type, as Keras's data adapters cast them (None
    stays None)."""

    def cast(a: Any) -> Any:
        if a is None:
            return None
        a = np.asarray(a)
        if a.dtype.kind == "f" and a.dtype != keras.config.floatx():
            return a.astype(keras.config.floatx())
        return a

    return keras.tree.map_structure(cast, tree)


def _array_batches(parts: Sequence[Segment]) -> Iterator[tuple[Any, ...]]:
    """Step by step, the replicas' batches stacked along a leading replica axis."""
    kwargs = [part.fit_kwargs for part in parts]
    # Stacked and cast once for the segment; each step takes a slice.
    x = _floatx(keras.tree.map_structure(lambda *a: np.stack(a), *[k["x"] for k in kwargs]))
    y = _floatx(keras.tree.map_structure(lambda *a: np.stack(a), *[k["y"] for k in kwargs]))
    weight = None
    if kwargs[0]["sample_weight"] is not None:
        weight = _floatx(np.stack([k["sample_weight"] for k in kwargs]))
    n = int(keras.tree.flatten(y)[0].shape[1])
    size = kwargs[0]["batch_size"]
    for start in range(0, n, size):

        def rows(a: np.ndarray, start: int = start) -> np.ndarray:
            return a[:, start : start + size]

        batch = (keras.tree.map_structure(rows, x), keras.tree.map_structure(rows, y))
        yield batch if weight is None else (*batch, rows(weight))


def _streamed_batches(parts: Sequence[Segment]) -> Iterator[tuple[Any, Any]]:
    streams = [part.fit_kwargs["x"] for part in parts]
    for batches in zip(*streams, strict=True):
        x = keras.tree.map_structure(lambda *a: np.stack(a), *[b[0] for b in batches])
        y = np.stack([b[1] for b in batches])
        yield _floatx(x), _floatx(y)
