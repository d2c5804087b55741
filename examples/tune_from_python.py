"""The accuracy/PD frontier of a model's SmeLU width, from Python.

python examples/tune_from_python.py
"""

import keras_smelu
from keras_smelu import datasets, models, tuning

data = datasets.load("synthetic", n_train=2000, n_test=1000, seed=0)


def build(activation):
    return models.embedding_mlp(data, activation=activation, hidden=(32, 16), normalization="layer")


report = tuning.tune(
    {"mlp": build},
    data,
    families=["smelu"],
    width_range=(0.01, 10.0),
    trials=6,
    pairs=1,
    epochs=2,
    study_name="example",
    output="keras-smelu-runs/example",
)
result = report.results["mlp"]
print("recommended:", result.recommended.label if result.recommended else None)
assert keras_smelu  # `import keras_smelu` registers the plug-in
