"""Export a SmeLU model as a TF SavedModel and a TFLite model that need no plug-in to serve.

KERAS_BACKEND=tensorflow python examples/export_for_serving.py
"""

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import keras_smelu

x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
model = keras.Sequential(
    [
        keras.Input((8,)),
        keras.layers.Dense(16, activation=keras_smelu.SmeLU(beta=0.5)),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse")
model.fit(x, x.sum(axis=1), epochs=2, verbose=0)

out = Path(tempfile.mkdtemp())
model.export(out / "serving")  # plain TensorFlow ops: tf.saved_model.load serves it
converter = tf.lite.TFLiteConverter.from_saved_model(str(out / "serving"))
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
(out / "model.tflite").write_bytes(converter.convert())
print(f"wrote {out / 'serving'} and {out / 'model.tflite'}")
