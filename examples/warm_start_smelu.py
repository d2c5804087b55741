"""Fine-tune a trained ReLU model with SmeLU, from its saved file, and compare PD before and after.

python examples/warm_start_smelu.py

`keras_smelu.models.warm_start` is the builder a tuning job uses for `[model] warm_start =
"relu.keras"`: every replica starts from the saved weights, with the activation swapped in.
"""

import tempfile
from pathlib import Path

import keras

import keras_smelu
from keras_smelu import datasets, models

data = datasets.load("synthetic", n_train=5000, n_test=2000, seed=0)

# A ReLU model trained and saved (here: two epochs).
keras.utils.set_random_seed(0)
relu_model = models.embedding_mlp(data, "relu", hidden=(64, 32), normalization="layer")
relu_model.fit(*data.train, epochs=2, batch_size=256, verbose=0)
path = Path(tempfile.mkdtemp()) / "relu.keras"
relu_model.save(path)

# Replicas fine-tuned from the saved weights: both of a pair start there and see the data in
# different orders. "Before": ReLU kept; "after": SmeLU swapped in, every weight kept.
build = models.warm_start(path, learning_rate=3e-4)
for name, activation in [("relu (before)", "relu"), ("smelu (after)", keras_smelu.SmeLU(beta=1.0))]:
    result = keras_smelu.train_replicas(
        build, data.train, data.test, activation=activation, pairs=3, epochs=2, verbose=0
    )
    print(
        f"{name:>14}: test loss {result.metrics['loss']:.4f}, relative PD "
        f"{result.pd['relative']:.4f} ± {result.pd_std['relative']:.4f} over 3 pairs"
    )
