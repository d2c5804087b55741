"""keras-smelu: Smooth reLU for Keras 3, prediction-difference measurement and tuning.

Import it before building or loading a model that uses SmeLU:

    import keras, keras_smelu
    keras.layers.Dense(64, activation="smelu")
    keras.layers.Dense(64, activation=keras_smelu.SmeLU(beta=0.5))
"""

from keras_smelu import (
    activations,
    churn,
    datasets,
    diagnostics,
    models,
    prediction_difference,
    surgery,
)
from keras_smelu._ensemble import Ensemble, EnsembleLoss, ensemble_of
from keras_smelu._registry import register_activations
from keras_smelu.activations import (
    DEFAULT_BETA,
    generalized_smelu,
    smelu,
    smooth_gelu,
    smooth_softplus,
    smooth_swish,
)
from keras_smelu.churn import churn_stats, rank_biased_overlap, topk_overlap
from keras_smelu.compilation_cache import enable_compilation_cache
from keras_smelu.diagnostics import auto_width_range, inspect_activations
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
from keras_smelu.surgery import replace_activations

__version__ = "0.1.0"

register_activations()

__all__ = [
    "DEFAULT_BETA",
    "Ensemble",
    "EnsembleLoss",
    "GeneralizedSmeLU",
    "NonFiniteLossError",
    "ReplicaReport",
    "ScaledActivation",
    "SmeLU",
    "absolute_pd",
    "activations",
    "auto_width_range",
    "churn",
    "churn_stats",
    "datasets",
    "diagnostics",
    "enable_compilation_cache",
    "ensemble_of",
    "generalized_smelu",
    "inspect_activations",
    "models",
    "pairwise_pd",
    "prediction_difference",
    "rank_biased_overlap",
    "register_activations",
    "relative_pd",
    "replace_activations",
    "shift_corrected_pd",
    "smelu",
    "smooth_gelu",
    "smooth_softplus",
    "smooth_swish",
    "surgery",
    "top1_disagreement",
    "topk_overlap",
    "total_variation_pd",
    "train_replicas",
]
