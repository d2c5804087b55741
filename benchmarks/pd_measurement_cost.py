"""What a PD measurement costs: one replica pair, fused or one after the other, vs one training run.

A PD measurement trains two replicas. `train_replicas(fused=True)` trains them as one program
(each on its own batches); `fused=False` trains one after the other. Both are timed against one
training run of the same model doing the same work (build, then per epoch: fit on a shuffled
copy of the data, evaluate, predict), in interleaved rounds (single, sequential pair, fused pair,
single, ...) so that the machine's drift hits all three alike. Each round builds new models, so
compilation counts, as it does in a tuning trial. A ratio is the median of the per-round ratios,
with its interquartile range as spread.

    python benchmarks/pd_measurement_cost.py [--rows 20000] [--epochs 2] [--rounds 5]
        [--hidden 256,128,64] [--batch-size 256]

Target (stretch): a PD measurement costs at most 1.5x one training run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_smelu  # noqa: E402
from keras_smelu import datasets, models  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--test-rows", type=int, default=4_000, help="evaluation rows")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", default="256,128,64", help="MLP layer sizes")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))

    data = datasets.load("synthetic", n_train=args.rows, n_test=args.test_rows, seed=0)
    x, y = data.train

    def build(activation):
        return models.embedding_mlp(
            data, activation=activation, hidden=hidden, normalization="layer"
        )

    activation = keras_smelu.SmeLU(beta=1.0)

    def single():
        model = build(activation)
        rng = np.random.default_rng(0)
        for epoch in range(args.epochs):
            order = rng.permutation(len(y))
            model.fit(
                {k: v[order] for k, v in x.items()},
                y[order],
                batch_size=args.batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
            )
            model.evaluate(*data.test, batch_size=args.batch_size, verbose=0)
            model.predict(data.test[0], batch_size=args.batch_size, verbose=0)

    def pair(fused):
        def run():
            keras_smelu.train_replicas(
                build,
                data.train,
                data.test,
                activation=activation,
                epochs=args.epochs,
                batch_size=args.batch_size,
                verbose=0,
                fused=fused,
            )

        return run

    calls = {"single": single, "sequential": pair(False), "fused": pair(True)}
    calls["single"]()  # warm-up: first imports and thread pools
    times = {key: [] for key in calls}
    for i in range(args.rounds):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
        print(
            f"round {i + 1}/{args.rounds}: "
            + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
            flush=True,
        )

    print(
        f"\nembedding_mlp {hidden} + LayerNorm, SmeLU 1.0, {args.rows} rows, {args.epochs} "
        f"epochs, batch {args.batch_size}, backend {keras.backend.backend()}, "
        f"{args.rounds} rounds"
    )
    single_times = np.array(times["single"])
    print(f"one training run: median {np.median(single_times):.2f}s")
    for key in ("sequential", "fused"):
        ratios = np.array(times[key]) / single_times
        q1, q3 = np.percentile(ratios, [25, 75])
        print(
            f"PD measurement ({key} pair) / one training run: {np.median(ratios):.2f}x "
            f"[{q1:.2f}-{q3:.2f}]"
        )


if __name__ == "__main__":
    main()
