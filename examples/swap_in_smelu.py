"""Adopt SmeLU in a trained ReLU model: inspect, swap, fine-tune, compare PD and churn.

python examples/swap_in_smelu.py
"""

import keras

import keras_smelu
from keras_smelu import datasets, models

data = datasets.load("synthetic", n_train=5000, n_test=2000, seed=0)

# A model already trained with ReLU (here: two epochs).
keras.utils.set_random_seed(0)
relu_model = models.embedding_mlp(data, "relu", hidden=(64, 32), normalization="layer")
relu_model.fit(*data.train, epochs=2, batch_size=256, verbose=0)

# How its pre-activations compare with SmeLU widths, and the widths worth trying.
report = keras_smelu.inspect_activations(relu_model, data.x_test)
print(report)
low, high = keras_smelu.auto_width_range(report)
# A width that puts half of the widest hidden layer's pre-activations inside the band.
hidden = [s for s in report if s.activation == "relu"]
beta = round(max(s.abs_quantiles[0.5] for s in hidden), 2)
print(f"width range for a search: {low:.3g}-{high:.3g}; fine-tuning with SmeLU(beta={beta})\n")


def fine_tune(activation):
    """The trained model with `activation` in place of ReLU, compiled for fine-tuning."""
    model, _ = keras_smelu.replace_activations(relu_model, activation)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-4),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


# Both replicas of a pair start from the trained weights and see the data in different orders.
for name, activation in [("relu (kept)", "relu"), (f"smelu {beta}", keras_smelu.SmeLU(beta=beta))]:
    result = keras_smelu.train_replicas(
        fine_tune,
        data.train,
        data.test,
        activation=activation,
        pairs=2,
        epochs=2,
        verbose=0,
        return_models=True,
    )
    a, b = (m.predict(data.x_test, verbose=0) for m in result.models[:2])
    # Decisions at the training click rate; item rankings within each category.
    churn = keras_smelu.churn_stats(a, b, data.y_test, threshold=float(data.y_train.mean()))
    overlap = keras_smelu.topk_overlap(a, b, data.x_test["category"], k=20)
    print(
        f"{name:>12}: test loss {result.metrics['loss']:.4f}, "
        f"relative PD {result.pd['relative']:.4f} ± {result.pd_std['relative']:.4f}; "
        f"pair 1: churn {churn.churn:.4f} (win/loss {churn.win_loss:.2f}), "
        f"top-20 overlap per category {overlap:.3f}"
    )
