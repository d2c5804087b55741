"""Prediction difference of ReLU vs SmeLU replicas that differ only in data order.

python examples/measure_pd.py
"""

import keras_smelu
from keras_smelu import datasets, models

data = datasets.load("synthetic", n_train=5000, n_test=2000, seed=0)


def build(activation):
    return models.embedding_mlp(data, activation=activation, hidden=(64, 32), normalization="layer")


for name, activation in [("relu", "relu"), ("smelu 1.0", keras_smelu.SmeLU(beta=1.0))]:
    report = keras_smelu.train_replicas(
        build, data.train, data.test, activation=activation, pairs=3, epochs=3, verbose=0
    )
    print(
        f"{name:>10}: test loss {report.metrics['loss']:.4f}, "
        f"relative PD {report.pd['relative']:.4f} ± {report.pd_std['relative']:.4f}, "
        f"absolute PD {report.pd['absolute']:.4f}"
    )
