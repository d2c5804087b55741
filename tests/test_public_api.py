"""The package imports with Keras alone, and every public name is documented."""

from __future__ import annotations

import inspect

import pytest

import keras_smelu
from tests._subprocess import run_python

MODULES = ["keras_smelu", "keras_smelu.activations", "keras_smelu.layers"]


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name):
    module = __import__(module_name, fromlist=["_"])
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj) or ""
            assert len(doc) > 40, f"{module_name}.{name} needs a docstring"
            if inspect.isfunction(obj) and name not in {"register_activations"}:
                assert "Args:" in doc and "Returns:" in doc, f"{module_name}.{name}"


def test_core_imports_without_the_tuning_extras():
    # Optuna, keras-tuner and matplotlib are optional: importing the plug-in must not need them.
    run_python(
        """
        import sys
        for name in ("optuna", "keras_tuner", "matplotlib"):
            sys.modules[name] = None
        import keras, keras_smelu, keras_smelu.tuning
        keras.layers.Dense(2, activation="smelu")
        """
    )


def test_version():
    assert keras_smelu.__version__.count(".") == 2
