"""The replicas of a pair: their seeds, how each is built, and checks on what was built.

Pair `k` draws its seeds from `(seed, k)` only, so every trial of a tuning study (every width
and family) sees the same random numbers for pair `k`: paired comparisons are far less noisy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_smelu._ensemble import ensemble_of, member_seed
from keras_smelu._replica_data import ArrayData, DatasetData


def pair_seeds(seed: int, pair_index: int, vary: str) -> dict[str, Any]:
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


def epoch_seed(train_seed: int, epoch_index: int) -> int:
    return int(np.random.SeedSequence([train_seed, epoch_index]).generate_state(1)[0])


def describe_activation(activation: Any) -> str:
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


def build_replica(
    model: Any,
    activation: Any,
    sample_x: Callable[[], Any],
    *,
    ensemble: int = 1,
    seed: int | None = None,
) -> keras.Model:
    """One replica: the model built (or cloned) once, or with `ensemble=k > 1` an `Ensemble`
    of k members, member m built under `keras.utils.set_random_seed(member_seed(seed, m))`
    (member 0 under `seed`: the single model of that seed)."""
    if ensemble == 1:
        return _build_one(model, activation, sample_x)[0]
    if seed is None:
        raise ValueError(
            "An ensemble replica needs the replica's initialization seed to derive its "
            f"members' seeds; received: seed=None with ensemble={ensemble}"
        )
    members, ranks = [], set()
    for m in range(ensemble):
        keras.utils.set_random_seed(member_seed(seed, m))
        member, rank = _build_one(model, activation, sample_x)
        members.append(member)
        ranks.add(rank)
    if any(members[0] is m for m in members[1:]):
        raise ValueError(
            "The model builder returned the same model object twice; it must build a new "
            "model on every call."
        )
    replica = ensemble_of(members, output_rank=ranks.pop())
    replica(sample_x(), training=False)  # builds the ensemble itself
    return replica


def _build_one(model: Any, activation: Any, sample_x: Callable[[], Any]) -> tuple[keras.Model, int]:
    """One model and the rank of its output."""
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
        replica = model(fresh_activation(activation))
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
    # One forward pass builds the layers that build on first call (e.g. a learnable activation
    # inside a Dense): their weights must exist before replicas are compared and checked.
    output = replica(sample_x(), training=False)
    return replica, len(getattr(output, "shape", ()))


def weights_digest(weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()[:16]


def check_identical(a: keras.Model, wa: list, wb: list, init_seed: int) -> None:
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


def predict(model: keras.Model, data: ArrayData | DatasetData) -> np.ndarray:
    out = model.predict(**data.predict_kwargs(), verbose=0)
    if not isinstance(out, np.ndarray):
        raise ValueError(
            "train_replicas supports single-output models; `model.predict` returned a "
            f"{type(out).__name__}."
        )
    return out


def fresh_activation(activation: Any) -> Any:
    """A copy of an activation *layer* (from its config), so that no two replicas share one
    layer and its weights (a learnable width); names and functions are returned as they are."""
    if isinstance(activation, keras.layers.Layer):
        return type(activation).from_config(activation.get_config())
    return activation


def check_unshared(a: keras.Model, b: keras.Model) -> None:
    """Raises unless the two replicas of a pair own disjoint variables.

    A builder that closes over a layer (an activation layer, a pre-trained embedding) puts the
    same variable into every replica: the replicas would train it together and the measured PD
    would be meaningless.
    """
    owned = {id(v): v for v in a.weights}
    shared = [v for v in b.weights if id(v) in owned]
    if shared:
        names = ", ".join(repr(v.path) for v in shared[:5])
        raise ValueError(
            f"The replicas share {len(shared)} variable(s) ({names}): the model builder reuses "
            "a layer or variable created outside it (e.g. a layer it closes over). Every "
            "replica must own its weights: create every layer inside the builder, and load "
            "pre-trained values with `set_weights` instead of sharing the layer."
        )
