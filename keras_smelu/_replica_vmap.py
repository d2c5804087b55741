"""Training and measuring many replicas of one architecture as one vectorized JAX program.

`_replica_stack` puts the replicas side by side in one model: its program holds every
replica's layers, so tracing, compilation and the work per step grow with their number. Here
the replicas' variables are stacked along a leading axis and one replica's pure step (Keras's
`train_step`, `test_step` and `predict_step` on the JAX backend: functions of the state and a
batch) is mapped over that axis with `jax.vmap`: one trace of one replica, whatever their
number, and one call per step for all. Each replica keeps its own weights, optimizer moments,
seed-generator state and data order, so each makes exactly the steps it would make alone.

This needs replicas that are one architecture (the same layers and configurations, variables
of the same shapes), which replicas built by one builder with one activation are.
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


class VmappedReplicas:
    """The replicas of a run as one vectorized program (JAX): `fit` trains each on its own
    segment, `measure` evaluates and predicts all on the evaluation data.

    After `fit`, every replica's variables (weights, optimizer state) hold its trained values,
    as they would after its own `fit`.

    Args:
        replicas: Compiled replicas of one architecture (`why_not_one_program` is None), each with
            its own optimizer (built, with the metrics, from the first training batch).
    """

    def __init__(self, replicas: Sequence[keras.Model]):
        self.replicas = list(replicas)
        self.template = self.replicas[0]
        self._fresh_metrics: list[Any] | None = None  # built with the first batch
        self._weights: tuple[list[Any], list[Any]] | None = None  # stacked, as `fit` left them

    def _build(self, sample: tuple[Any, Any]) -> None:
        import jax

        for replica in self.replicas:
            # The optimizer's and the compiled metrics' variables, built from shapes alone as
            # `fit` builds them before its first step.
            replica._symbolic_build(data_batch=sample)
            replica.reset_metrics()
        self._fresh_metrics = self._stacked("metrics_variables")
        template = self.template
        self._train = jax.jit(jax.vmap(template.train_step), donate_argnums=0)
        self._test = jax.jit(jax.vmap(template.test_step, in_axes=(0, None)))
        self._predict = jax.jit(jax.vmap(template.predict_step, in_axes=(0, None)))

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
        if self._fresh_metrics is None:
            self._build(keras.tree.map_structure(lambda a: a[0], first[:2]))
        state = (
            self._stacked("trainable_variables"),
            self._stacked("non_trainable_variables"),
            _stack([[v.value for v in r.optimizer.variables] for r in self.replicas]),
            [m.copy() for m in self._fresh_metrics],  # the step donates its state
        )
        progress = None
        if verbose:
            progress = keras.utils.Progbar(_steps(parts, streamed), verbose=_progbar_mode(verbose))
        step = 0
        for batch in itertools.chain([first], batches):
            _, state = self._train(state, batch)
            step += 1
            if progress is not None:
                progress.update(step)
        trainable, non_trainable, optimizer, metrics = state
        self._weights = (trainable, non_trainable)
        for i, replica in enumerate(self.replicas):
            _assign(replica.trainable_variables, trainable, i)
            _assign(replica.non_trainable_variables, non_trainable, i)
            _assign(replica.optimizer.variables, optimizer, i)
        losses = [float(self._results(metrics, i)["loss"]) for i in range(len(self.replicas))]
        if progress is not None:
            progress.update(
                step, values=[("mean replica loss", float(np.mean(losses)))], finalize=True
            )
        return losses

    def measure(self, evaluation: ArrayData) -> list[tuple[dict[str, float], np.ndarray]]:
        """Each replica's evaluation metrics (as `evaluate(return_dict=True)`) and predictions
        (as `predict`) at the weights the last `fit` left, in batches of the evaluation's batch
        size."""
        if self._weights is None:
            raise RuntimeError("`measure` needs a `fit` first.")
        trainable, non_trainable = self._weights
        metrics = self._fresh_metrics
        outputs = []
        size = evaluation.batch_size
        x_all, y_all, weight_all = (_floatx(part) for part in evaluation.take(slice(None)))
        for start in range(0, evaluation.n, size):

            def rows(a: np.ndarray, start: int = start) -> np.ndarray:
                return a[start : start + size]

            x, y = keras.tree.map_structure(rows, x_all), keras.tree.map_structure(rows, y_all)
            data = (x, y) if weight_all is None else (x, y, rows(weight_all))
            _, (_, _, metrics) = self._test((trainable, non_trainable, metrics), data)
            out, _ = self._predict((trainable, non_trainable), x)
            if not hasattr(out, "shape"):
                raise ValueError(
                    "train_replicas supports single-output models; `model.predict` returned a "
                    f"{type(out).__name__}."
                )
            outputs.append(np.asarray(out))
        predictions = np.concatenate(outputs, axis=1)
        return [
            ({k: float(v) for k, v in self._results(metrics, i).items()}, predictions[i])
            for i in range(len(self.replicas))
        ]

    def _stacked(self, attribute: str) -> list[Any]:
        """The replicas' values of one model attribute's variables, stacked variable by
        variable along a leading replica axis."""
        return _stack([[v.value for v in getattr(r, attribute)] for r in self.replicas])

    def _results(self, metrics: list[Any], index: int) -> dict[str, Any]:
        """Replica `index`'s metric results, read through the template's metric objects."""
        template = self.template
        mapping = [(v, m[index]) for v, m in zip(template.metrics_variables, metrics, strict=True)]
        with keras.StatelessScope(state_mapping=mapping):
            return template.get_metrics_result()


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


def _stack(per_replica: list[list[Any]]) -> list[Any]:
    import jax.numpy as jnp

    return [jnp.stack(values) for values in zip(*per_replica, strict=True)]


def _assign(variables: Sequence[keras.Variable], stacked: Sequence[Any], index: int) -> None:
    for variable, values in zip(variables, stacked, strict=True):
        variable.assign(values[index])


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
