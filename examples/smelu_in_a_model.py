"""SmeLU in a Keras model three ways, trained, saved and reloaded.

python examples/smelu_in_a_model.py
"""

import tempfile
from pathlib import Path

import keras
import numpy as np

import keras_smelu  # registers activation="smelu"

data = keras_smelu.datasets.make_synthetic_click_log(n_train=4000, n_test=1000, seed=0)
x = np.stack([data.x_train[name] for name in data.numeric], axis=1)

model = keras.Sequential(
    [
        keras.Input((x.shape[1],)),
        keras.layers.Dense(32, activation="smelu"),  # the default width, 0.5
        keras.layers.Dense(32, activation=keras_smelu.SmeLU(beta=0.25)),  # a configured width
        keras.layers.Dense(16),
        keras_smelu.SmeLU(beta=1.0, learnable=True, per_unit=True),  # one learned width per unit
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["auc"])
model.fit(x, data.y_train, epochs=3, batch_size=256, verbose=2)

learned = keras.ops.convert_to_numpy(model.layers[3].parameter_values()["beta"])
print("learned widths:", np.round(learned, 3))

path = Path(tempfile.mkdtemp()) / "model.keras"
model.save(path)
reloaded = keras.saving.load_model(path, safe_mode=True)  # needs `import keras_smelu` first
assert np.array_equal(reloaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))
print(f"saved and reloaded {path}: identical predictions")
