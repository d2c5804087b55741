"""Keras layers of keras-smelu."""

from keras_smelu.layers.generalized_smelu import GeneralizedSmeLU
from keras_smelu.layers.scaled_activation import ScaledActivation
from keras_smelu.layers.smelu import SmeLU

__all__ = ["GeneralizedSmeLU", "ScaledActivation", "SmeLU"]
