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

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_smelu._replica_one_step import OneStepReplicas, replica_batch, single_output


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


class SharedStepReplicas(OneStepReplicas):
    """The replicas of a run trained and measured by one traced TensorFlow step each for
    training, evaluation and prediction; see `OneStepReplicas`."""

    def _build(self, first: tuple[Any, ...]) -> None:
        import tensorflow as tf

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
        _check_no_captured_variables(self._train, self._variables[0], replica_batch(first, 0))

    def _begin_fit(self) -> None:
        for replica in self.replicas:
            replica.reset_metrics()

    def _train_batch(self, batch: tuple[Any, ...]) -> None:
        for i, variables in enumerate(self._variables):
            self._train(variables, replica_batch(batch, i))

    def _end_fit(self) -> list[float]:
        return [float(r.get_metrics_result()["loss"]) for r in self.replicas]

    def _begin_measure(self) -> None:
        for replica in self.replicas:
            replica.reset_metrics()

    def _measure_batch(self, x: Any, data: tuple[Any, ...]) -> np.ndarray:
        outputs = []
        for variables in self._variables:
            self._test(variables, data)
            outputs.append(single_output(self._predict(variables, (x,))))
        return np.stack(outputs)

    def _metric_results(self, index: int) -> dict[str, Any]:
        return self.replicas[index].get_metrics_result()


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
