"""Makes `activation="smelu"` work: the one module that touches Keras internals.

Keras 3 resolves activation strings (`Dense(activation="relu")`, `keras.activations.get`,
`Activation("relu")`, and the deserialization of a bare name) only through its own table,
`keras.src.activations.ALL_OBJECTS_DICT`; there is no public hook. `register_activations()`
adds our names to that table. It is called on `import keras_smelu`, is idempotent, and fails
loudly (rather than silently doing nothing) if a Keras release moves the table;
`tests/test_registry.py` pins the internals it relies on.

Saved models do not depend on this table: a registered function serializes under its
registered name (`keras_smelu>smelu`), which `keras.saving` resolves once `keras_smelu` is
imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras

from keras_smelu import activations

if TYPE_CHECKING:
    import types

PACKAGE = "keras_smelu"

ACTIVATION_NAMES: dict[str, Callable[..., Any]] = {
    "smelu": activations.smelu,
    "generalized_smelu": activations.generalized_smelu,
}


def _register_serializable() -> None:
    for name, fn in ACTIVATION_NAMES.items():
        keras.saving.register_keras_serializable(package=PACKAGE, name=name)(fn)


def _keras_activation_table(module: types.ModuleType | None = None) -> dict[str, Any]:
    if module is None:
        from keras.src import activations as module
    table = getattr(module, "ALL_OBJECTS_DICT", None)
    if not isinstance(table, dict):
        raise RuntimeError(
            "keras_smelu cannot register activation names: this Keras version "
            f"({keras.__version__}) has no dict `keras.src.activations.ALL_OBJECTS_DICT`. "
            "Pass the objects instead of strings (activation=keras_smelu.activations.smelu or "
            "keras_smelu.SmeLU()) and report the Keras version to keras-smelu."
        )
    return table


def register_activations(module: types.ModuleType | None = None) -> None:
    """Registers "smelu" and "generalized_smelu" as Keras activation names.

    After this, `keras.activations.get("smelu")`, `keras.layers.Dense(8, activation="smelu")`,
    `keras.layers.Activation("smelu")` and keras-tuner's `hp.Choice("activation", ["relu",
    "smelu"])` resolve to `keras_smelu.activations.smelu` with its default width. Runs on
    `import keras_smelu`; calling it again changes nothing.

    Args:
        module: The module that holds Keras's activation table; `None` for Keras's own.
            (A parameter so the guard can be tested.)

    Raises:
        RuntimeError: if Keras no longer keeps its activation table where this expects it,
            or another object already owns one of our names.
    """
    table = _keras_activation_table(module)
    for name, fn in ACTIVATION_NAMES.items():
        current = table.get(name)
        if current is not None and current is not fn:
            raise RuntimeError(
                f"keras_smelu cannot register activation {name!r}: Keras already maps it to "
                f"{current!r}."
            )
        table[name] = fn


_register_serializable()
