"""Tuner overhead per trial, and the hypervolume of 16 tuned trials vs a 48-point grid.

Both tuning targets, measured in one run on one tiny, deterministic job: synthetic
click log (`--rows` train / `--test-rows` eval rows), an `embedding_mlp` with LayerNorm, family
`smelu`, widths 0.01..10 on a log scale, `--pairs` replica pairs of `--epochs` epochs, accuracy
objective = evaluation loss (minimised), PD = relative PD (minimised), seed `--seed`. Every study
goes through the public `keras_smelu.tuning.tune()` with its own fresh storage, so each one is
a real Optuna study (ReLU reference trial included, as users get it):

    grid48        sampler="grid",  trials=--grid    (SQLite)
    tpe16         sampler="tpe",   trials=--trials  (SQLite)
    tpe16-journal sampler="tpe",   trials=--trials  (journal file, the storage several
                                                     workers share: its sampler seed is mixed
                                                     with the process id, so other widths)
    nsga2-16, random-16 (SQLite; `--compare`, optional)

1. Overhead (target: a trial costs no more than its replica trainings + 5%).
   `keras_smelu.replicas.train_replicas` is wrapped (from the outside, unchanged) to log, per
   call, its start/end time, `ReplicaReport.wall_seconds` ("replica training": the whole call,
   model building included) and `ReplicaReport.train_seconds` (fit/evaluate/predict only). The
   per-model `optimize()` call is timed the same way. Then, per study:

   - study overhead = (wall time of `optimize()` - sum of `wall_seconds`) / sum of
     `wall_seconds`. This is everything the tuner adds around replica training: study creation,
     sampler suggestions, SQLite/journal writes (trial creation, params, the record as a user
     attribute, tell), heartbeat/stale-trial checks, `TrialRecord` building, the callbacks'
     study reads, progress printing, `gc_after_trial`, reading the result back.
   - tune() overhead: the same with the whole `tune()` wall time, which adds writing
     `results.json`, `trials.csv` and the frontier plot (once per study, not per trial).
   - per trial: the cycle of trial i runs from the start of its `train_replicas` call to the
     start of the next one (trial 0 starts at `optimize()`'s start, the last one ends at its
     return, so the cycles sum to the `optimize()` wall time); overhead_i = cycle_i -
     wall_seconds_i, and the median of overhead_i / wall_seconds_i is printed.
   - the same two ratios against `train_seconds` instead (model building then counts as
     overhead, which it is not, strictly: it is part of a replica training).
   Where the time goes: the tuner's and Optuna's entry points (`Study.ask`,
   `Trial.suggest_float`, `Trial.set_user_attr`, `_tell_with_warning`, `fail_stale_trials`,
   `gc.collect`, `run_trial`, the callbacks' helpers, `print_progress`, `TuningReport.save`, ...)
   are wrapped with exclusive timers (a wrapped call nested in another is subtracted from its
   parent), so the breakdown sums to the `tune()` wall time with "other" as the remainder.
   A timer costs about a microsecond per call: negligible next to what it measures.

2. Hypervolume (target: the tuner's frontier after 16 trials reaches >= 95% of the
   hypervolume of a 48-point grid's frontier). Each study's frontier is its complete non-ReLU
   trials (`TuningResult.hypervolume(reference_point)`, i.e. `hypervolume_2d` on
   (val_loss, PD), both minimised). The reference point is common to all studies: the worst
   value of each objective over every complete trial of every study (ReLU included), pushed
   out by 10% of that objective's range over those trials (so that the worst points still add
   area). The ratio HV(study) / HV(grid48) is printed. For information, the hypervolume relative
   to the ReLU point (the library's default reference: the area of improvement over ReLU) is
   printed too.

Determinism: pair k uses the same seeds in every trial (common random numbers), so a (width,
seed) gives the same objectives in every study; the ReLU reference is trained once per study
and once more as a warm-up, and the spread of its objectives across studies is printed as a
check.

    python benchmarks/tuner_benchmark.py [--trials 16] [--grid 48] [--pairs 1] [--epochs 2]
        [--rows 2000] [--test-rows 1000] [--seed 0] [--compare nsga2,random] [--output DIR]

Progress lines (one per trial) go to stderr; the tables to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")


# --------------------------------------------------------------------------- timers


class Timers:
    """Exclusive wall time per bucket; nested timed calls are subtracted from their parent."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[float]] = []  # per active call: [children seconds]
        self.replicas: list[dict[str, float]] = []  # one per train_replicas call
        self.optimize: list[tuple[float, float]] = []  # (start, end) per optimize call

    def wrap(self, owner, name: str, bucket: str, kind: str | None = None) -> None:
        original = getattr(owner, name)
        timers = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            timers._stack.append([0.0])
            start = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                end = time.perf_counter()
                elapsed = end - start
                children = timers._stack.pop()[0]
                timers.seconds[bucket] = timers.seconds.get(bucket, 0.0) + elapsed - children
                timers.calls[bucket] = timers.calls.get(bucket, 0) + 1
                if timers._stack:
                    timers._stack[-1][0] += elapsed
                if kind == "optimize":
                    timers.optimize.append((start, end))
            if kind == "replicas":
                timers.replicas.append(
                    {
                        "start": start,
                        "end": end,
                        "wall_seconds": float(result.wall_seconds),
                        "train_seconds": float(result.train_seconds),
                    }
                )
            return result

        setattr(owner, name, timed)


def install_timers() -> Timers:
    import gc

    import optuna
    import optuna.study._optimize as optuna_optimize

    import keras_smelu.replicas as replicas
    from keras_smelu.tuning import _optuna_backend as backend
    from keras_smelu.tuning import _results, _tuner

    timers = Timers()
    # What the tuner adds around replica training, bucket by bucket.
    timers.wrap(replicas, "train_replicas", "replica training (train_replicas)", "replicas")
    timers.wrap(backend, "run_trial", "TrialRecord building (run_trial - train_replicas)")
    timers.wrap(optuna.trial.Trial, "suggest_float", "sampler: suggest_float")
    timers.wrap(optuna.study.Study, "ask", "Optuna ask (sampler.before_trial, create trial)")
    timers.wrap(optuna.trial.Trial, "set_user_attr", "storage: set_user_attr (family, record)")
    timers.wrap(optuna_optimize, "_tell_with_warning", "Optuna tell (write values, state)")
    timers.wrap(optuna.storages, "fail_stale_trials", "heartbeat: fail_stale_trials")
    timers.wrap(gc, "collect", "gc_after_trial (gc.collect)")
    for helper in ("_done", "_record_of"):
        timers.wrap(backend, helper, "callbacks: study reads")
    timers.wrap(backend, "_evaluate_reference", "reference study (lock, ask, tell)")
    for helper in ("_check_same_setup", "_sampler_seed"):
        timers.wrap(backend, helper, "study setup (storage, create_study)")
    timers.wrap(_tuner, "print_progress", "progress line")
    timers.wrap(backend, "make_storage", "study setup (storage, create_study)")
    timers.wrap(optuna, "create_study", "study setup (storage, create_study)")
    timers.wrap(backend, "study_result", "study_result (read all trials back)")
    timers.wrap(_results.TuningReport, "save", "save results.json, trials.csv, plot")
    timers.wrap(backend, "optimize", "optimize() other (Optuna loop, logging)", "optimize")
    return timers


# --------------------------------------------------------------------------- runs


def make_job(args):
    from keras_smelu import datasets, models

    dataset = datasets.load("synthetic", n_train=args.rows, n_test=args.test_rows, seed=args.seed)

    def mlp(activation):
        return models.embedding_mlp(
            dataset, activation=activation, hidden=(32, 16), embedding_dim=4, normalization="layer"
        )

    return dataset, mlp


def run_study(name, args, dataset, builder, timers, *, sampler, trials, storage_kind):
    from keras_smelu.tuning import tune

    folder = Path(args.output) / name
    if storage_kind == "journal":
        storage = f"journal:{folder / 'journal.log'}"
    else:
        storage = f"sqlite:///{(folder / 'study.db').resolve()}"
    timers.reset()
    print(f"--- {name}: sampler={sampler}, trials={trials}, storage={storage}", file=sys.stderr)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        report = tune(
            {"mlp": builder},
            dataset,
            families=("smelu",),
            width_range=(0.01, 10.0),
            trials=trials,
            pairs=args.pairs,
            epochs=args.epochs,
            sampler=sampler,
            storage=storage,
            study_name="bench",
            output=folder,
            seed=args.seed,
            verbose=1,
        )
    tune_wall = time.perf_counter() - start
    result = report.results["mlp"]
    return {
        "name": name,
        "sampler": sampler,
        "storage": storage_kind,
        "result": result,
        "tune_wall": tune_wall,
        "timers": {
            "seconds": dict(timers.seconds),
            "calls": dict(timers.calls),
            "replicas": list(timers.replicas),
            "optimize": list(timers.optimize),
        },
    }


def overhead(run) -> dict[str, float]:
    t = run["timers"]
    reps = t["replicas"]
    (opt_start, opt_end) = t["optimize"][0]
    opt_wall = opt_end - opt_start
    wall = [r["wall_seconds"] for r in reps]
    fit = [r["train_seconds"] for r in reps]
    starts = [opt_start] + [r["start"] for r in reps[1:]] + [opt_end]
    cycles = [b - a for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return {
        "trials": len(reps),
        "replica_wall": sum(wall),
        "fit_eval_predict": sum(fit),
        "optimize_wall": opt_wall,
        "tune_wall": run["tune_wall"],
        "study_ratio": (opt_wall - sum(wall)) / sum(wall),
        "tune_ratio": (run["tune_wall"] - sum(wall)) / sum(wall),
        "per_trial_s": (opt_wall - sum(wall)) / len(reps),
        "median_ratio": statistics.median((c - w) / w for c, w in zip(cycles, wall, strict=True)),
        "max_ratio": max((c - w) / w for c, w in zip(cycles, wall, strict=True)),
        "study_ratio_fit": (opt_wall - sum(fit)) / sum(fit),
        "median_ratio_fit": statistics.median(
            (c - f) / f for c, f in zip(cycles, fit, strict=True)
        ),
    }


def common_reference(runs) -> tuple[float, float]:
    import numpy as np

    from keras_smelu.tuning._pareto import normalize

    directions = runs[0]["result"].directions
    values = np.array([t.values for run in runs for t in run["result"].complete_trials])
    loss = normalize(values, directions)  # lower is better
    worst, best = loss.max(axis=0), loss.min(axis=0)
    ref = worst + 0.10 * np.where(worst > best, worst - best, np.abs(worst) + 1e-12)
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return tuple(float(v) for v in ref * signs)


def determinism(runs, warmup) -> float:
    """Largest spread of the ReLU objectives across studies (and the warm-up)."""
    relu = [run["result"].reference.values for run in runs if run["result"].reference]
    relu.append(warmup)
    return max(max(v[i] for v in relu) - min(v[i] for v in relu) for i in range(2))


# --------------------------------------------------------------------------- report


def print_report(args, runs, warmup, total_wall) -> None:
    grid = next(r for r in runs if r["sampler"] == "grid")
    ref = common_reference(runs)
    print()
    print(
        f"Job: synthetic {args.rows} train / {args.test_rows} eval rows, embedding_mlp "
        f"(32, 16) + LayerNorm, smelu width 0.01..10 (log), {args.pairs} pair(s) x "
        f"{args.epochs} epochs, seed {args.seed}, backend {os.environ['KERAS_BACKEND']}"
    )
    print()
    print("1. Tuner overhead beyond replica training (target <= 5%)")
    print("   replica = sum of ReplicaReport.wall_seconds (whole train_replicas call);")
    print("   study = optimize() wall; tune = tune() wall (adds results.json/csv/plot);")
    print("   per-trial = cycle between train_replicas starts minus that trial's replica time")
    header = (
        f"   {'study':<14}{'storage':<9}{'trials':>6}{'replica s':>10}{'optimize s':>11}"
        f"{'tune s':>8}{'study':>8}{'tune':>8}{'s/trial':>8}{'median':>8}{'max':>8}"
        f"{'| vs fit':>9}{'median':>8}"
    )
    print(header)
    for run in runs:
        o = overhead(run)
        print(
            f"   {run['name']:<14}{run['storage']:<9}{o['trials']:>6}{o['replica_wall']:>10.1f}"
            f"{o['optimize_wall']:>11.1f}{o['tune_wall']:>8.1f}{o['study_ratio']:>8.2%}"
            f"{o['tune_ratio']:>8.2%}{o['per_trial_s']:>8.3f}{o['median_ratio']:>8.2%}"
            f"{o['max_ratio']:>8.2%}{o['study_ratio_fit']:>9.2%}{o['median_ratio_fit']:>8.2%}"
        )
    print("   ('vs fit': the same ratios against fit/evaluate/predict time only, model building")
    print("   counted as overhead; trials include the ReLU reference)")
    print()
    print("   Where the tuner's time goes (exclusive seconds per trial, per study):")
    buckets = sorted(
        {b for run in runs for b in run["timers"]["seconds"]},
        key=lambda b: -sum(run["timers"]["seconds"].get(b, 0.0) for run in runs),
    )
    names = [run["name"] for run in runs]
    print(f"   {'':<52}" + "".join(f"{n:>14}" for n in names))
    for bucket in buckets + ["other (tune() itself, untimed)"]:
        cells = []
        for run in runs:
            n = len(run["timers"]["replicas"])
            if bucket.startswith("other (tune"):
                seconds = run["tune_wall"] - sum(run["timers"]["seconds"].values())
            else:
                seconds = run["timers"]["seconds"].get(bucket, 0.0)
            cells.append(f"{seconds / n:>14.4f}")
        print(f"   {bucket:<52}" + "".join(cells))
    print()
    print("2. Hypervolume of the frontier (target: tuner after 16 trials >= 95% of the grid)")
    print(
        f"   common reference point (val_loss, pd_relative) = ({ref[0]:.6f}, {ref[1]:.6f}): "
        "worst value of each objective over every complete trial of every study, pushed out "
        "by 10% of its range"
    )
    hv_grid = grid["result"].hypervolume(ref)
    relu_grid = grid["result"].hypervolume()
    print(
        f"   {'study':<14}{'trials':>7}{'frontier':>9}{'HV':>12}{'HV/grid':>9}"
        f"{'HV vs ReLU':>12}{'/grid':>8}{'tune s':>8}"
    )
    for run in runs:
        result = run["result"]
        hv = result.hypervolume(ref)
        relu_hv = result.hypervolume()
        frontier = [t for t in result.frontier if not t.is_reference]
        relu_ratio = relu_hv / relu_grid if relu_grid > 0 else math.nan
        print(
            f"   {run['name']:<14}{len(result.candidates):>7}{len(frontier):>9}{hv:>12.4e}"
            f"{hv / hv_grid:>9.2%}{relu_hv:>12.4e}{relu_ratio:>8.2%}{run['tune_wall']:>8.1f}"
        )
    reference = grid["result"].reference
    if reference is not None:
        print(
            f"   ReLU point (val_loss, PD) = ({reference.values[0]:.6f}, {reference.values[1]:.6f})"
        )
    widths = sorted({round(t.width, 12) for t in grid["result"].candidates})
    print(f"   grid widths evaluated: {len(widths)} distinct, {widths[0]:.3g}..{widths[-1]:.3g}")
    for run in runs:
        front = [f"{t.width:.3g}" for t in run["result"].frontier if not t.is_reference]
        print(f"   frontier widths {run['name']:<14} {', '.join(front)}")
    print()
    print(f"Determinism: ReLU objectives spread across studies {determinism(runs, warmup):.2e}")
    print(f"Total wall time {total_wall:.0f} s; results under {args.output}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="tuner trials (default 16)")
    parser.add_argument("--grid", type=int, default=48, help="grid points (default 48)")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2000, help="training rows")
    parser.add_argument("--test-rows", type=int, default=1000, help="evaluation rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare",
        default="nsga2,random",
        help="other samplers run with --trials for comparison, comma-separated ('' for none)",
    )
    parser.add_argument("--output", default=None, help="folder for the studies (default: temp)")
    args = parser.parse_args(argv)
    args.output = args.output or tempfile.mkdtemp(prefix="keras-smelu-tuner-bench-")
    compare = [s for s in args.compare.split(",") if s]

    total_start = time.perf_counter()
    import keras_smelu  # noqa: F401  (registers the activations)

    timers = install_timers()
    dataset, builder = make_job(args)

    # Warm-up outside any study (imports, first compilations), also a determinism check.
    from keras_smelu.replicas import train_replicas

    with contextlib.redirect_stdout(sys.stderr):
        warm = train_replicas(
            builder,
            dataset.train,
            dataset.test,
            activation="relu",
            pairs=args.pairs,
            epochs=args.epochs,
            seed=args.seed,
            verbose=0,
        )
    warmup = (float(warm.metrics["loss"]), float(warm.pd_value))

    plan = [
        (f"grid{args.grid}", "grid", args.grid, "sqlite"),
        (f"tpe{args.trials}", "tpe", args.trials, "sqlite"),
        (f"tpe{args.trials}-journal", "tpe", args.trials, "journal"),
    ] + [(f"{s}-{args.trials}", s, args.trials, "sqlite") for s in compare]
    runs = []
    for name, sampler, trials, storage_kind in plan:
        runs.append(
            run_study(
                name,
                args,
                dataset,
                builder,
                timers,
                sampler=sampler,
                trials=trials,
                storage_kind=storage_kind,
            )
        )
    print_report(args, runs, warmup, time.perf_counter() - total_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
