"""Training and measuring many replicas of one architecture as one vectorized JAX program.

`_replica_stack` puts the replicas side by side in one model: its program holds every
replica's layers, so tracing, compilation and the work per step grow with their number. Here
the replicas' variables are stacked along a leading axis and one replica's pure step (Keras's
`train_step`, `test_step` and `predict_step` on the JAX backend: functions of the state and a
batch) is mapped over that axis with `jax.vmap`: one trace of one replica, whatever their
number, and one call per step for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_smelu._replica_one_step import OneStepReplicas, single_output


class VmappedReplicas(OneStepReplicas):
    """The replicas of a run as one vectorized program (JAX); see `OneStepReplicas`."""

    def _build(self, first: tuple[Any, ...]) -> None:
        import jax

        for replica in self.replicas:
            replica.reset_metrics()
        self._fresh_metrics = self._stacked("metrics_variables")
        template = self.template
        self._train = jax.jit(jax.vmap(template.train_step), donate_argnums=0)
        self._test = jax.jit(jax.vmap(template.test_step, in_axes=(0, None)))
        self._predict = jax.jit(jax.vmap(template.predict_step, in_axes=(0, None)))

    def _begin_fit(self) -> None:
        self._state = (
            self._stacked("trainable_variables"),
            self._stacked("non_trainable_variables"),
            _stack([[v.value for v in r.optimizer.variables] for r in self.replicas]),
            [m.copy() for m in self._fresh_metrics],  # the step donates its state
        )

    def _train_batch(self, batch: tuple[Any, ...]) -> None:
        _, self._state = self._train(self._state, batch)

    def _end_fit(self) -> list[float]:
        trainable, non_trainable, optimizer, metrics = self._state
        self._state = None
        # Measured at these: the stacked weights as `fit` left them, not stacked again.
        self._weights = (trainable, non_trainable)
        for i, replica in enumerate(self.replicas):
            _assign(replica.trainable_variables, trainable, i)
            _assign(replica.non_trainable_variables, non_trainable, i)
            _assign(replica.optimizer.variables, optimizer, i)
        return [float(self._results(metrics, i)["loss"]) for i in range(len(self.replicas))]

    def _begin_measure(self) -> None:
        self._metrics = self._fresh_metrics

    def _measure_batch(self, x: Any, data: tuple[Any, ...]) -> Any:
        trainable, non_trainable = self._weights
        _, (_, _, self._metrics) = self._test((trainable, non_trainable, self._metrics), data)
        out, _ = self._predict((trainable, non_trainable), x)
        return single_output(out)

    def _metric_results(self, index: int) -> dict[str, Any]:
        return self._results(self._metrics, index)

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


def _stack(per_replica: list[list[Any]]) -> list[Any]:
    import jax.numpy as jnp

    return [jnp.stack(values) for values in zip(*per_replica, strict=True)]


def _assign(variables: Sequence[keras.Variable], stacked: Sequence[Any], index: int) -> None:
    for variable, values in zip(variables, stacked, strict=True):
        variable.assign(values[index])
