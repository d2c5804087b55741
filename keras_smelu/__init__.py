"""keras-smelu: Smooth reLU for Keras 3, prediction-difference measurement and tuning.

Import it before building or loading a model that uses SmeLU:

    import keras, keras_smelu
    keras.layers.Dense(64, activation="smelu")
    keras.layers.Dense(64, activation=keras_smelu.SmeLU(beta=0.5))
"""

from keras_smelu import activations, datasets, models, prediction_difference
from keras_smelu._registry import register_activations
from keras_smelu.activations import (
    DEFAULT_BETA,
    generalized_smelu,
    smelu,
    smooth_gelu,
    smooth_softplus,
    smooth_swish,
)
from keras_smelu.compilation_cache import enable_compilation_cache
from keras_smelu.layers import GeneralizedSmeLU, ScaledActivation, SmeLU
from keras_smelu.prediction_difference import (
    absolute_pd,
    pairwise_pd,
    relative_pd,
    shift_corrected_pd,
    top1_disagreement,
    total_variation_pd,
)
from keras_smelu.replicas import NonFiniteLossError, ReplicaReport, train_replicas

__version__ = "0.1.0"

register_activations()

__all__ = [
    "DEFAULT_BETA",
    "GeneralizedSmeLU",
    "NonFiniteLossError",
    "ReplicaReport",
    "ScaledActivation",
    "SmeLU",
    "absolute_pd",
    "activations",
    "datasets",
    "enable_compilation_cache",
    "generalized_smelu",
    "models",
    "pairwise_pd",
    "prediction_difference",
    "register_activations",
    "relative_pd",
    "shift_corrected_pd",
    "smelu",
    "smooth_gelu",
    "smooth_softplus",
    "smooth_swish",
    "top1_disagreement",
    "total_variation_pd",
    "train_replicas",
]
