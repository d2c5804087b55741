"""keras-smelu: Smooth reLU for Keras 3, prediction-difference measurement and tuning.

Import it before building or loading a model that uses SmeLU:

    import keras, keras_smelu
    keras.layers.Dense(64, activation="smelu")
    keras.layers.Dense(64, activation=keras_smelu.SmeLU(beta=0.5))
"""

from keras_smelu import activations
from keras_smelu._registry import register_activations
from keras_smelu.activations import (
    DEFAULT_BETA,
    generalized_smelu,
    smelu,
    smooth_gelu,
    smooth_softplus,
    smooth_swish,
)
from keras_smelu.layers import GeneralizedSmeLU, SmeLU

__version__ = "0.1.0"

register_activations()

__all__ = [
    "DEFAULT_BETA",
    "GeneralizedSmeLU",
    "SmeLU",
    "activations",
    "generalized_smelu",
    "register_activations",
    "smelu",
    "smooth_gelu",
    "smooth_softplus",
    "smooth_swish",
]
