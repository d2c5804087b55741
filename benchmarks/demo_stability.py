"""Is the embedded demo's answer stable? ReLU vs SmeLU widths on its synthetic log, per job seed.

For each job seed, the demo's data (`keras_smelu/tuning/demo.toml`: its `[data]`, `[model]` and
`[training]` settings) is generated with that seed, and `keras_smelu.train_replicas` trains ReLU
and SmeLU at each `--widths` value with the job's pairs, epochs and batch size. Pair k of every
activation uses the same seeds (common random numbers), so each width gets per-pair ratios
`PD_width[k] / PD_relu[k]` and per-pair differences `loss_width[k] - loss_relu[k]` (the loss of a
pair: the mean of its two replicas at the reported epoch). Per seed the table prints:

- ReLU's validation AUC and loss, and the generator's oracle AUC on the same rows;
- per width: the geometric mean PD ratio with a 90% t-interval on the log ratios, the loss
  difference with a 90% t-interval, AUC, and a verdict: `PD-` where the whole PD interval lies
  below 1 (a significant reduction), `PD+` above 1, `loss+` / `loss-` where the loss interval
  excludes 0.

The last block sums up across seeds: per width, how many seeds reduce PD significantly and how
many worsen the loss. `--timing` lines give the wall and CPU seconds of each `train_replicas`
call (one is a tuning trial's cost; the first call of a width also compiles it) and project
the demo's time: `(trials + 1)` calls at the mean cost of a width's first call.

    KERAS_BACKEND=jax python benchmarks/demo_stability.py [--seeds 0 1 2 3 4]
        [--widths 0.1 0.3 1 3] [--pairs N] [--epochs N] [--job FILE]

JAX's persistent compilation cache is on (a temporary folder unless `--jax-cache DIR`), as in
the tuner: identical programs (same width, same shapes) compile once. Progress goes to stderr,
the table to stdout.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_JOB = REPO_ROOT / "keras_smelu" / "tuning" / "demo.toml"

# Two-sided 90% Student t quantiles t_{0.95, df} for df = 1..30 (beyond: the normal's 1.645).
T95 = (
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
    1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
    1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
)  # fmt: skip


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 90% t-interval `(mean, low, high)`; the interval is NaN for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    df = len(values) - 1
    half = (T95[df - 1] if df <= len(T95) else 1.645) * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return mean, mean - half, mean + half


def read_job(path: Path) -> dict:
    """The job file's tables as plain dicts (only `[job]`, `[data]`, `[model]`, `[training]`)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        job = tomllib.load(f)
    return {section: dict(job.get(section, {})) for section in ("job", "data", "model", "training")}


def pair_values(report, kind: str) -> tuple[list[float], list[float], list[float]]:
    """Per pair at the reported epoch: PD, and the mean loss and AUC of its two replicas."""
    e = report.epoch - 1
    pds, losses, aucs = [], [], []
    for pair in report.pair_results:
        pds.append(float(pair["pd"][e][kind]))
        metrics = [replica["metrics"][e] for replica in pair["replicas"]]
        losses.append(statistics.fmean(float(m["loss"]) for m in metrics))
        aucs.append(statistics.fmean(float(m["auc"]) for m in metrics))
    return pds, losses, aucs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", type=Path, default=DEMO_JOB, help="a synthetic job file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--pairs", type=int, help="default: the job's [training] pairs")
    parser.add_argument("--epochs", type=int, help="default: the job's [training] epochs")
    parser.add_argument("--pd", default="relative", help="PD measure: relative | absolute")
    parser.add_argument("--jax-cache", help="JAX compilation cache folder (default: temporary)")
    args = parser.parse_args(argv)

    import keras_smelu
    from keras_smelu import models
    from keras_smelu.datasets import make_synthetic_click_log

    job = read_job(args.job)
    data, model, training = job["data"], job["model"], job["training"]
    if data.get("dataset") != "synthetic":
        parser.error(f"--job must use the synthetic dataset; {args.job} uses {data.get('dataset')}")
    cache = args.jax_cache
    if cache is None:
        cache = tempfile.mkdtemp(prefix="demo-stability-jax-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    keras_smelu.enable_compilation_cache(cache)

    pairs = args.pairs or training.get("pairs", 5)
    epochs = args.epochs or training.get("epochs", 3)
    build_kwargs = {
        "embedding_dim": model.get("embedding_dim", 8),
        "hidden": tuple(model.get("hidden", (256, 128, 64))),
        "normalization": None
        if model.get("normalization", "none") == "none"
        else model["normalization"],
        "dropout": model.get("dropout", 0.0),
        "optimizer": model.get("optimizer", "adam"),
        "learning_rate": model.get("learning_rate", 1e-3),
    }
    trials = job["job"].get("trials", 20)
    print(
        f"Job {args.job.name}: {data.get('n_train')} train / {data.get('n_test')} eval rows, "
        f"options {data.get('options', {})}; {model.get('name', 'embedding_mlp')} "
        f"{build_kwargs}; {pairs} pairs x {epochs} epochs, batch {training.get('batch_size')}, "
        f"report epoch {training.get('report_epoch', 'last')}; {args.pd} PD"
    )
    builder = getattr(models, model.get("name", "embedding_mlp"))
    activations = [("relu", "relu")] + [(f"{w:g}", keras_smelu.SmeLU(beta=w)) for w in args.widths]
    first_call: dict[str, tuple[float, float]] = {}
    later_calls: list[tuple[float, float]] = []
    summary = {label: {"PD-": 0, "PD+": 0, "loss+": 0, "loss-": 0} for label, _ in activations[1:]}
    for seed in args.seeds:
        ds = make_synthetic_click_log(
            data.get("n_train", 20_000),
            data.get("n_test", 5_000),
            seed=data.get("seed", seed),
            **data.get("options", {}),
        )
        per_activation = {}
        for label, activation in activations:
            start, cpu = time.perf_counter(), time.process_time()
            report = keras_smelu.train_replicas(
                lambda a, ds=ds: builder(ds, a, **build_kwargs),
                ds.train,
                ds.test,
                activation=activation,
                pairs=pairs,
                epochs=epochs,
                batch_size=training.get("batch_size", 256),
                vary=training.get("vary", "data_order"),
                seed=seed,
                pd=args.pd,
                report_epoch=training.get("report_epoch", "last"),
                verbose=0,
            )
            cost = (time.perf_counter() - start, time.process_time() - cpu)
            if label in first_call:
                later_calls.append(cost)
            else:
                first_call[label] = cost
            per_activation[label] = pair_values(report, report.pd_kind)
            print(
                f"seed {seed} {label}: {cost[0]:.1f} s wall, {cost[1]:.1f} s CPU, epoch "
                f"{report.epoch}",
                file=sys.stderr,
                flush=True,
            )
        relu_pd, relu_loss, relu_auc = per_activation["relu"]
        print(
            f"\nseed {seed}: ReLU AUC {statistics.fmean(relu_auc):.4f} (oracle "
            f"{ds.info['oracle_auc_test']:.4f}), loss {statistics.fmean(relu_loss):.4f}, "
            f"PD {statistics.fmean(relu_pd):.4f} (pairs {min(relu_pd):.4f}-{max(relu_pd):.4f})"
        )
        print(
            f"  {'width':>6}  {'AUC':>6}  {'PD ratio':>8}  {'90% interval':>15}  "
            f"{'loss diff':>9}  {'90% interval':>19}  verdict"
        )
        for label, _ in activations[1:]:
            pd, loss, auc = per_activation[label]
            log_ratio = [math.log(a / b) for a, b in zip(pd, relu_pd, strict=True)]
            ratio, low, high = (math.exp(v) for v in t_interval(log_ratio))
            diff, diff_low, diff_high = t_interval(
                [a - b for a, b in zip(loss, relu_loss, strict=True)]
            )
            verdict = []
            if high < 1.0:
                verdict.append("PD-")
            elif low > 1.0:
                verdict.append("PD+")
            if diff_low > 0.0:
                verdict.append("loss+")
            elif diff_high < 0.0:
                verdict.append("loss-")
            for word in verdict:
                summary[label][word] += 1
            print(
                f"  {label:>6}  {statistics.fmean(auc):6.4f}  {ratio:8.3f}  "
                f"[{low:5.3f}, {high:5.3f}]  {diff:+9.4f}  [{diff_low:+.4f}, {diff_high:+.4f}]  "
                f"{' '.join(verdict) or '-'}"
            )
    print(f"\nAcross {len(args.seeds)} seeds (count of seeds with each verdict):")
    for label, counts in summary.items():
        print(f"  width {label:>6}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    first = list(first_call.values())
    new_width = statistics.fmean(c[0] for c in first[1:]) if len(first) > 1 else math.nan
    new_cpu = statistics.fmean(c[1] for c in first[1:]) if len(first) > 1 else math.nan
    print(
        f"\nTiming (one trial = one train_replicas call of {pairs} pairs): a width's first call "
        f"(compiles) {new_width:.1f} s wall / {new_cpu:.1f} s CPU; later calls (cached programs) "
        + (
            f"{statistics.fmean(c[0] for c in later_calls):.1f} s wall / "
            f"{statistics.fmean(c[1] for c in later_calls):.1f} s CPU"
            if later_calls
            else "n/a"
        )
        + f". Projected demo ({trials} trials + ReLU, every trial a new width): "
        f"{(trials + 1) * new_width:.0f} s wall / {(trials + 1) * new_cpu:.0f} s CPU."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
