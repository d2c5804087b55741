"""The papers' regime: one pass over a time-ordered click log, PD measured along the stream.

Writes a synthetic log in Criteo's layout (`keras_smelu.datasets.write_click_log`, chunk by
chunk) into a temporary folder, then, in a fresh process, streams it with a temporal split
(the last 1/7 of the rows is the later slice where PD is measured) and trains replica pairs of
a LayerNorm embedding MLP with ReLU and two SmeLU widths, each pair once over the training rows
(`epochs=1`) with `eval_every` set for about ten checkpoints, each activation in a process of
its own. It prints each process's peak resident memory (`VmHWM` of /proc/self/status) and its
resident memory at the end of each quarter of the pass, the wall time of each part, and the PD
trajectory: per checkpoint, ReLU's PD and each width's PD ratio to ReLU (geometric mean of the
per-pair ratios with its 90% paired interval; below 3 pairs, no interval).

    nice python benchmarks/one_pass.py [--rows 5000000] [--pairs 2] [--widths 0.5 2.0]

Ids are hashed (`--hash-buckets`, default 2**15) so that the embedding tables stay the same
size whatever the number of rows: memory then depends on the chunk, the shuffle buffer and the
model, not on the log.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_smelu.tuning._paired import paired_pd_ratio

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, math, sys, threading, time

def kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

samples = []  # (seconds, resident MiB) every second: memory along the pass

def sample():
    start = time.perf_counter()
    while True:
        samples.append((time.perf_counter() - start, kib("VmRSS") / 1024))
        time.sleep(1.0)

threading.Thread(target=sample, daemon=True).start()
args = json.loads(sys.argv[1])
import keras
from keras_smelu import SmeLU, datasets, models
from keras_smelu.replicas import StreamSplit, train_replicas

start = time.perf_counter()
stream = datasets.load(
    "criteo", args["path"], streaming=True, split="temporal",
    hash_buckets=args["hash_buckets"],
)
train = StreamSplit(stream, "train", shuffle_buffer=args["shuffle_buffer"])
test = StreamSplit(stream, "test", max_rows=args["eval_rows"])
test.arrays()
load_s = time.perf_counter() - start
train_rows = args["rows"] - math.ceil(args["rows"] / 7)  # about: the last day is held out
batches = -(-train_rows // args["batch_size"])
every = max(1, -(-batches // args["checkpoints"]))

def build(activation):
    return models.embedding_mlp(
        stream, activation, embedding_dim=8, hidden=(64, 32), normalization="layer",
        learning_rate=1e-3,
    )

width = args["width"]
start = time.perf_counter()
report = train_replicas(
    build, train, test, activation="relu" if width is None else SmeLU(beta=width),
    pairs=args["pairs"], epochs=1, batch_size=args["batch_size"], eval_every=every, verbose=0,
)
print(json.dumps({
    "load_seconds": load_s, "eval_every": every, "backend": keras.backend.backend(),
    "seconds": time.perf_counter() - start,
    "program": report.config["program"],
    "steps": [h["steps"] for h in report.history],
    "pd": [h["pd"]["relative"] for h in report.history],
    "pair_pd": [[e["relative"] for e in p["pd"]] for p in report.pair_results],
    "auc": [h["metrics"].get("auc") for h in report.history],
    "peak_mib": kib("VmHWM") / 1024, "rss": samples,
}))
"""


def _rss_along(samples: list, parts: int = 4) -> str:
    """Resident memory at the end of each quarter of the run (MiB)."""
    if not samples:
        return "n/a"
    end = samples[-1][0]
    marks = []
    for q in range(1, parts + 1):
        at = [mib for t, mib in samples if t <= end * q / parts]
        marks.append(f"{max(at):.0f}")
    return " / ".join(marks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the log")
    parser.add_argument("--pairs", type=int, default=2, help="replica pairs per activation")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--checkpoints", type=int, default=10, help="about this many")
    parser.add_argument("--shuffle-buffer", type=int, default=100_000)
    parser.add_argument("--eval-rows", type=int, default=50_000, help="of the later slice")
    parser.add_argument("--hash-buckets", type=int, default=2**15)
    parser.add_argument("--dir", help="folder for the log (default: a temporary one)")
    parser.add_argument(
        "--save", help="JSON file to keep each activation's results in as soon as it ends"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        from keras_smelu.datasets import write_click_log

        path = Path(folder) / "clicks.txt"
        start = time.perf_counter()
        write_click_log(path, args.rows, seed=0)
        write_s = time.perf_counter() - start
        size_mib = path.stat().st_size / 2**20
        print(f"wrote {args.rows:,} rows ({size_mib:.0f} MiB) in {write_s:.0f} s", flush=True)
        child = {
            "path": str(path),
            "rows": args.rows,
            "pairs": args.pairs,
            "widths": args.widths,
            "batch_size": args.batch_size,
            "checkpoints": args.checkpoints,
            "shuffle_buffer": args.shuffle_buffer,
            "eval_rows": args.eval_rows,
            "hash_buckets": args.hash_buckets,
        }
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.setdefault("KERAS_BACKEND", "jax")
        # One process per activation: its peak memory is its own, not the sum of the earlier
        # runs' compiled programs (one process running all three grew by 150-300 MiB per run).
        runs = results = {}
        for label, width in [("relu", None)] + [(f"smelu {w:g}", w) for w in args.widths]:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps({**child, "width": width})],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                check=True,
            )
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
            results[label]["wall"] = time.perf_counter() - start
            print(f"{label}: {results[label]['wall']:.0f} s", flush=True)
            if args.save:  # an hour-long pass should not be lost with a later activation
                Path(args.save).write_text(json.dumps({"args": vars(args), "runs": results}))
    first = next(iter(results.values()))
    print(
        f"\none pass over {args.rows:,} rows ({first['backend']}); load (split boundary, "
        f"test slice) {first['load_seconds']:.0f} s; eval_every {first['eval_every']} steps "
        f"of {args.batch_size}"
    )
    for label, run in runs.items():
        print(
            f"  {label}: {run['seconds']:.0f} s for {args.pairs} pairs ({run['program']}), "
            f"process wall {run['wall']:.0f} s, peak RSS {run['peak_mib']:.0f} MiB, RSS at "
            f"each quarter of the run {_rss_along(run['rss'])} MiB"
        )
    widths = [label for label in runs if label != "relu"]
    header = f"{'step':>7} {'relu PD':>9} {'relu AUC':>9}" + "".join(
        f" {label + ' PD/relu [90% CI]':>28}" for label in widths
    )
    print("\n" + header)
    relu = runs["relu"]
    for i, step in enumerate(relu["steps"]):
        auc = relu["auc"][i]
        line = f"{step:>7} {relu['pd'][i]:>9.4f} {auc if auc is None else f'{auc:.4f}':>9}"
        for label in widths:
            # Pair k against ReLU's pair k at this checkpoint: the tuner's paired interval.
            ratio = paired_pd_ratio(
                [pair[i] for pair in runs[label]["pair_pd"]],
                [pair[i] for pair in relu["pair_pd"]],
                0.9,
            )
            line += f" {ratio.format(3):>28}"
        print(line)


if __name__ == "__main__":
    main()
