"""Training and measuring many replicas of one architecture with one traced TensorFlow step.

On TensorFlow, Keras's `train_step`, `test_step` and `predict_step` read and write the model's
variables, and each model traces its own `tf.function`s: tracing is most of what a small model's
training costs there, and a stack of replicas in one model traces all of their layers. Here each
step is traced once, from one replica (the template), as a `tf.function` whose variables are its
arguments: while it is traced, the template's variables stand for the function's variable
arguments. Each call then runs the same graph on the variables of the replica it is given, which
it updates in place. Every replica keeps its own weights, optimizer and metric state,
seed-generator state and data order, and makes exactly the steps of its own `fit`: the steps
are Keras's own.

A step that read a variable the swap does not cover (not the model's, its optimizer's or its
metrics') would share it between replicas; the traced graph is checked for such captures and
refused before it runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_smelu._replica_data import ArrayData, Segment
from keras_smelu._replica_vmap import (
    _array_batches,
    _floatx,
    _progbar_mode,
    _steps,
    _streamed_batches,
)


def state_variables(model: keras.Model) -> list[keras.Variable]:
    """Every variable a step of `model` reads or writes, each once, in a fixed order: the
    model's (weights, seed-generator states), its optimizer's and its metrics'."""
    seen: set[int] = set()
    out = []
    for variable in [*model.variables, *model.optimizer.variables, *model.metrics_variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            out.append(variable)
    return out


class SharedStepReplicas:
    """The replicas of a run as one traced TensorFlow step each for training, evaluation and
    prediction: `fit` trains each replica on its own segment, `measure` evaluates and predicts
    all on the evaluation data.

    Args:
        replicas: Compiled replicas of one architecture (`why_not_one_program` is None), each
            with its own optimizer (built, with the metrics, from the first training batch).
    """

    def __init__(self, replicas: Sequence[keras.Model]):
        self.replicas = list(replicas)
        self.template = self.replicas[0]
        self._variables: list[list[Any]] | None = None  # per replica, its tf.Variables

    def _build(self, sample: tuple[Any, Any], first: tuple[Any, ...]) -> None:
        import tensorflow as tf

        for replica in self.replicas:
            # The optimizer's and the compiled metrics' variables, built from shapes alone as
            # `fit` builds them before its first step.
            replica._symbolic_build(data_batch=sample)
        self._variables = [[v._value for v in state_variables(r)] for r in self.replicas]
        template = self.template

        def traced(step: Callable[[Any], Any]) -> Any:
            return tf.function(
                _on_variables(state_variables(template), step),
                reduce_retracing=True,
                jit_compile=bool(template.jit_compile),
                autograph=False,
            )

        self._train = traced(template.train_step)
        self._test = traced(template.test_step)
        self._predict = traced(template.predict_step)
        # Trace (without running) and refuse a graph that holds a variable of its own: the
        # replicas would share it.
        _check_no_captured_variables(self._train, self._variables[0], _replica_batch(first, 0))

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
        if self._variables is None:
            self._build(_replica_batch(first[:2], 0), first)
        for replica in self.replicas:
            replica.reset_metrics()  # as `fit` does at the start of each epoch
        progress = None
        if verbose:
            progress = keras.utils.Progbar(_steps(parts, streamed), verbose=_progbar_mode(verbose))
        step = 0
        for batch in itertools.chain([first], batches):
            for i, variables in enumerate(self._variables):
                self._train(variables, _replica_batch(batch, i))
            step += 1
            if progress is not None:
                progress.update(step)
        losses = [float(r.get_metrics_result()["loss"]) for r in self.replicas]
        if progress is not None:
            progress.update(
                step, values=[("mean replica loss", float(np.mean(losses)))], finalize=True
            )
        return losses

    def measure(self, evaluation: ArrayData) -> list[tuple[dict[str, float], np.ndarray]]:
        """Each replica's evaluation metrics (as `evaluate(return_dict=True)`) and predictions
        (as `predict`) at its current weights, in batches of the evaluation's batch size."""
        if self._variables is None:
            raise RuntimeError("`measure` needs a `fit` first.")
        for replica in self.replicas:
            replica.reset_metrics()  # as `evaluate` does
        outputs: list[list[np.ndarray]] = [[] for _ in self.replicas]
        size = evaluation.batch_size
        x_all, y_all, weight_all = (_floatx(part) for part in evaluation.take(slice(None)))
        for start in range(0, evaluation.n, size):

            def rows(a: np.ndarray, start: int = start) -> np.ndarray:
                return a[start : start + size]

            x, y = keras.tree.map_structure(rows, x_all), keras.tree.map_structure(rows, y_all)
            data = (x, y) if weight_all is None else (x, y, rows(weight_all))
            for i, variables in enumerate(self._variables):
                self._test(variables, data)
                out = self._predict(variables, (x,))
                if not hasattr(out, "shape"):
                    raise ValueError(
                        "train_replicas supports single-output models; `model.predict` "
                        f"returned a {type(out).__name__}."
                    )
                outputs[i].append(np.asarray(out))
        return [
            (
                {k: float(v) for k, v in replica.get_metrics_result().items()},
                np.concatenate(outputs[i]),
            )
            for i, replica in enumerate(self.replicas)
        ]


def _on_variables(variables: Sequence[keras.Variable], step: Callable[[Any], Any]) -> Callable:
    """`step(data)` as a function of `(values, data)`: while it runs (is traced), each of
    `variables` stands for the matching entry of `values` (a replica's tf.Variables)."""

    def run(values: Sequence[Any], data: Any) -> Any:
        saved = [v._value for v in variables]
        for variable, value in zip(variables, values, strict=True):
            variable._value = value
        try:
            return step(data)
        finally:
            for variable, value in zip(variables, saved, strict=True):
                variable._value = value

    return run


def _replica_batch(batch: tuple[Any, ...], index: int) -> tuple[Any, ...]:
    """Replica `index`'s batch out of a batch stacked along a leading replica axis."""
    return keras.tree.map_structure(lambda a: a[index], batch)


class UnsharedVariableError(ValueError):
    """The traced step reads a variable the replicas do not each have: refused before any
    step runs."""


def _check_no_captured_variables(function: Any, variables: list[Any], data: Any) -> None:
    import tensorflow as tf

    concrete = function.get_concrete_function(variables, data)
    captured = [t for t in concrete.captured_inputs if t.dtype == tf.resource]
    if captured:
        raise UnsharedVariableError(
            f"The model's training step reads {len(captured)} variable(s) that are not the "
            "model's, its optimizer's or its metrics' (for example a raw `tf.Variable` in a "
            "custom layer); the replicas would share them in one program. Track them as Keras "
            "variables (`self.add_weight`), or pass `fused=False`."
        )
