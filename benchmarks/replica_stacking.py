"""Replica stacking: what a trial of 1-5 pairs costs against one training run, JAX and TensorFlow.

A trial of `pairs` pairs trains `2 * pairs` replicas. `train_replicas(fused=True)` trains them
all as one program (each replica on its own batches: one replica's step vectorized over all on
JAX, traced once and shared on TensorFlow; the program that ran is printed); `fused=False`
trains one replica after the other. Both are timed against one training run of the same model
doing the same work (build, then per epoch: fit on a shuffled copy of the data, evaluate,
predict), in interleaved rounds (one run, stacked 1 pair, sequential 1 pair, stacked 2 pairs,
...) so that the machine's drift hits all alike. Every round builds new models, so compilation
counts, as it does in a tuning trial. A ratio is the median of the per-round ratios, with its
range over rounds as spread. Each backend runs in its own process (`KERAS_BACKEND`).

    python benchmarks/replica_stacking.py [--backends jax,tensorflow] [--device auto]
        [--pairs 1,2,3,4,5] [--rows 4000] [--epochs 2] [--rounds 3] [--hidden 64,32]
        [--batch-size 256] [--compilation-cache DIR]

`--device gpu` runs on the machine's GPU (the run fails if the backend sees none), `cpu` hides
any GPU, `auto` (default) takes what the backend finds; the device used is printed. On a GPU
machine, run `python benchmarks/replica_stacking.py --device gpu`: an accelerator is where
stacked replicas pay most (one program fills it, where one small replica leaves it idle).

With `--compilation-cache DIR`, JAX's persistent compilation cache is on, as the tuner runs
trials (the warm-up round fills it): programs identical to one already compiled (the same
replica architecture, the same stack) load instead of compiling, and what remains is tracing
and running. Without it every program compiles, in every round.

Targets on a 2-core CPU: a trial of 5 pairs at most 4x one training run on JAX, a pair at most
1.5x on TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

_RESULT = "RESULT "


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,tensorflow")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--pairs", default="1,2,3,4,5", help="pairs per trial, comma-separated")
    parser.add_argument("--rows", type=int, default=4_000, help="training rows")
    parser.add_argument("--test-rows", type=int, default=1_000, help="evaluation rows")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", default="64,32", help="MLP layer sizes")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--compilation-cache", default=None, help="JAX's cache folder, or none")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(_RESULT + json.dumps(_measure(args)), flush=True)
        return
    results = [_run_backend(backend, args, argv) for backend in args.backends.split(",")]
    print(
        f"\nembedding_mlp ({args.hidden}) + LayerNorm, SmeLU 1.0, {args.rows} rows, "
        f"{args.epochs} epochs, batch {args.batch_size}, {args.rounds} interleaved rounds; "
        "median [min-max] of per-round ratios to one training run; JAX compilation cache "
        + ("on" if args.compilation_cache else "off")
    )
    for result in results:
        print(
            f"\n{result['backend']} on {result['device']}: one training run "
            f"{result['single_median']:.2f}s (median); stacked replicas as one "
            f"{result['program']} program"
        )
        print("pairs | stacked | sequential | stacked / sequential")
        for row in result["rows"]:
            print(
                f"{row['pairs']:5d} | {_spread(row['stacked'])} | {_spread(row['sequential'])}"
                f" | {row['saving']:.2f}"
            )


def _spread(ratios: list[float]) -> str:
    import numpy as np

    return f"{np.median(ratios):5.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def _run_backend(backend: str, args: argparse.Namespace, argv: list[str] | None) -> dict:
    """Runs the measurement in a fresh process for `backend`; streams its progress."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if args.device == "cpu":  # hide any GPU from both frameworks
        env.update(JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="-1")
    command = [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv), "--child"]
    result = None
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(_RESULT):
                result = json.loads(line[len(_RESULT) :])
            else:
                print(f"[{backend}] {line}", end="", flush=True)
    if child.returncode != 0 or result is None:
        raise SystemExit(f"The {backend} measurement failed (exit status {child.returncode}).")
    return result


def _device(args: argparse.Namespace) -> str:
    """The device the backend computes on; raises when a GPU is asked for and none is seen."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        name = f"{device.platform} ({device.device_kind})"
        gpu = device.platform == "gpu"
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        gpu = bool(gpus)
        name = f"gpu ({len(gpus)} visible)" if gpu else "cpu"
    if args.device == "gpu" and not gpu:
        raise SystemExit(f"--device gpu, but {keras.backend.backend()} sees no GPU.")
    return name


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    import keras
    import numpy as np

    import keras_smelu
    from keras_smelu import datasets, models

    device = _device(args)
    if args.compilation_cache:
        keras_smelu.enable_compilation_cache(args.compilation_cache)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    pair_counts = [int(p) for p in args.pairs.split(",")]
    data = datasets.load("synthetic", n_train=args.rows, n_test=args.test_rows, seed=0)
    x, y = data.train
    activation = keras_smelu.SmeLU(beta=1.0)

    def build(activation: Any) -> keras.Model:
        return models.embedding_mlp(
            data, activation=activation, hidden=hidden, normalization="layer"
        )

    def single() -> None:
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

    def trial(pairs: int, fused: bool) -> Any:
        def run() -> None:
            report = keras_smelu.train_replicas(
                build,
                data.train,
                data.test,
                activation=activation,
                pairs=pairs,
                epochs=args.epochs,
                batch_size=args.batch_size,
                verbose=0,
                fused=fused,
            )
            expected = 2 * pairs if fused else 1
            if report.config["stacked"] != expected:
                raise RuntimeError(f"expected {expected} replicas per program: {report.config}")
            if fused:
                programs.add(report.config["program"])

        return run

    programs: set[str] = set()  # "vectorized" (JAX), "shared step" (TF) or "stack"
    calls = {"single": single}
    for pairs in pair_counts:
        calls[f"stacked {pairs}"] = trial(pairs, True)
        calls[f"sequential {pairs}"] = trial(pairs, False)
    single()  # warm-up: first imports and thread pools
    if args.compilation_cache:  # fill the cache: every round then finds its programs there
        for key, call in calls.items():
            if key.startswith("stacked"):
                call()
    times: dict[str, list[float]] = {key: [] for key in calls}
    for i in range(args.rounds):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
        print(
            f"round {i + 1}/{args.rounds}: "
            + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()),
            flush=True,
        )
    one = np.array(times["single"])
    rows = []
    for pairs in pair_counts:
        stacked = np.array(times[f"stacked {pairs}"])
        sequential = np.array(times[f"sequential {pairs}"])
        rows.append(
            {
                "pairs": pairs,
                "stacked": (stacked / one).tolist(),
                "sequential": (sequential / one).tolist(),
                "saving": float(np.median(stacked / sequential)),
            }
        )
    return {
        "backend": keras.backend.backend(),
        "device": device,
        "program": " and ".join(sorted(programs)),
        "single_median": float(np.median(one)),
        "rows": rows,
    }


if __name__ == "__main__":
    main()
