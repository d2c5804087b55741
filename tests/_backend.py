"""Backend-neutral test helpers: gradients through the active Keras backend, weights."""

from __future__ import annotations

import keras
import numpy as np


def grads(fn, *args):
    """Gradients of `sum(fn(*args))` with respect to every argument, as numpy arrays."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        argnums = tuple(range(len(args)))
        out = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=argnums)(*map(jnp.asarray, args))
        return [np.asarray(g) for g in out]
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            total = tf.reduce_sum(fn(*tensors))
        return [g.numpy() for g in tape.gradient(total, tensors)]
    if backend == "torch":
        import torch

        tensors = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
        fn(*tensors).sum().backward()
        return [t.grad.detach().cpu().numpy() for t in tensors]
    raise NotImplementedError(backend)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def weights_equal(a, b) -> bool:
    """Whether two Keras models hold bit-identical weights."""
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
