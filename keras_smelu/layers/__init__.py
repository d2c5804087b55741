"""Keras layers of keras-smelu."""

from keras_smelu.layers.generalized_smelu import GeneralizedSmeLU
from keras_smelu.layers.smelu import SmeLU

__all__ = ["GeneralizedSmeLU", "SmeLU"]
