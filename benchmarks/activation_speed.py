"""SmeLU vs ReLU vs exact GELU: forward and forward+backward time ratios.

Runs each backend in its own process (Keras fixes its backend per process) and prints one
table: TensorFlow eager, `tf.function` (Keras's default on a CPU), `tf.function` with XLA,
and `jax.jit`, on one float32 tensor of `--size` elements. Calls are timed in interleaved
rounds (ReLU, SmeLU, GELU, ReLU, ...) after warm-up, so that the machine's drift hits all
alike; a ratio is the median of the per-round ratios, with its interquartile range as spread.

    python benchmarks/activation_speed.py [--size 4194304] [--repeats 30]

Targets: SmeLU within 1.25x of ReLU under XLA and `jax.jit`; no slower than exact
GELU in every mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _interleaved_times(calls: dict, repeats: int) -> dict:
    """Times every call once per round, round after round, so that the machine's drift (other
    processes, thread wake-ups, frequency) hits all of them alike; returns the times per key,
    aligned by round."""
    for call in calls.values():
        for _ in range(3):
            call()
    times = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return times


def _activations():
    import keras

    import keras_smelu

    return {
        "relu": keras.activations.relu,
        "smelu": lambda x: keras_smelu.smelu(x, 0.5),
        "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    }


def _measure_tensorflow(size: int, repeats: int) -> dict:
    import tensorflow as tf

    x = tf.random.normal([size], seed=0)
    dy = tf.random.normal([size], seed=1)
    calls = {}
    for name, fn in _activations().items():

        def forward(fn=fn):
            return fn(x)

        def forward_backward(fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            return tape.gradient(y, x, output_gradients=dy)

        modes = {
            "tf eager": (forward, forward_backward),
            "tf.function": (tf.function(forward), tf.function(forward_backward)),
            "tf XLA": (
                tf.function(forward, jit_compile=True),
                tf.function(forward_backward, jit_compile=True),
            ),
        }
        for mode, (fwd, fwd_bwd) in modes.items():
            calls[(mode, name, "forward")] = lambda f=fwd: f().numpy()
            calls[(mode, name, "forward+backward")] = lambda f=fwd_bwd: f().numpy()
    return _interleaved_times(calls, repeats)


def _measure_jax(size: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    x = jax.random.normal(jax.random.PRNGKey(0), (size,))
    dy = jax.random.normal(jax.random.PRNGKey(1), (size,))
    calls = {}
    for name, fn in _activations().items():
        fwd = jax.jit(fn)
        fwd_bwd = jax.jit(jax.grad(lambda v, fn=fn: jnp.sum(fn(v) * dy)))
        calls[("jax.jit", name, "forward")] = lambda f=fwd: f(x).block_until_ready()
        calls[("jax.jit", name, "forward+backward")] = lambda f=fwd_bwd: f(x).block_until_ready()
    return _interleaved_times(calls, repeats)


def _child(backend: str, size: int, repeats: int) -> None:
    measure = _measure_tensorflow if backend == "tensorflow" else _measure_jax
    rows = [[*key, seconds] for key, seconds in measure(size, repeats).items()]  # per round
    print(json.dumps(rows))


def _ratio(a, b) -> str:
    r = a / b
    low, mid, high = np.percentile(r, [25, 50, 75])
    return f"{mid:.2f} [{low:.2f}-{high:.2f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 22)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--child", choices=["tensorflow", "jax"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.size, args.repeats)
        return 0

    times = {}
    for backend in ("tensorflow", "jax"):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                backend,
                "--size",
                str(args.size),
                "--repeats",
                str(args.repeats),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for mode, name, kind, seconds in json.loads(out.strip().splitlines()[-1]):
            times[(mode, name, kind)] = seconds

    print(
        f"float32 tensor of {args.size:,} elements; {args.repeats} interleaved rounds; times are "
        "medians, ratios are medians of per-round ratios [25th-75th percentile]"
    )
    header = f"{'mode':<12} {'pass':<17} {'ReLU ms':>8} {'SmeLU ms':>9} {'GELU ms':>8}"
    header += f" {'SmeLU/ReLU':>18} {'SmeLU/GELU':>18}"
    print(header)
    print("-" * len(header))
    for mode in ("tf eager", "tf.function", "tf XLA", "jax.jit"):
        for kind in ("forward", "forward+backward"):
            relu, smelu, gelu = (
                np.array(times[(mode, n, kind)]) for n in ("relu", "smelu", "gelu")
            )
            ms = "".join(
                f" {np.median(t) * 1e3:{w}.2f}" for t, w in ((relu, 8), (smelu, 9), (gelu, 8))
            )
            print(f"{mode:<12} {kind:<17}{ms} {_ratio(smelu, relu):>18} {_ratio(smelu, gelu):>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
