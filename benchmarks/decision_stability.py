"""Does the tuner give the same answer across job seeds, and what do confirmation and early
stopping cost and save?

Runs a job (the embedded demo by default) once per job seed, as `keras-smelu tune JOB --set
job.seed=N` would, each in a fresh output folder, and prints per seed: the decision
(recommended width or "keep ReLU"), the recommended point's PD ratio and accuracy cost with
their intervals, ReLU's AUC beside the generator's oracle, the wall time, and the replica-epochs
spent (every replica of every pair of every trial, the reference, pruned trials up to the epoch
they stopped, and the confirmation pairs).

The summary gives:

- agreement: how many seeds reach the majority decision (a significant reduction within the
  budget, or keep ReLU), and the ratio of the largest to the smallest recommended width;
- cost: replica-epochs spent against a fixed design that gives every trial the pairs that the
  confirmation stage gave the decisive points (the same interval width on those points), and
  how many replica-epochs early stopping saved;
- with `--compare-pruning`, each seed also runs with `prune` off, and the table shows whether the
  decision, the frontier and its hypervolume changed.

    KERAS_BACKEND=jax python benchmarks/decision_stability.py [--job FILE] [--seeds 0 1 2 3 4]
        [--trials N] [--prune | --no-prune] [--compare-pruning] [--set section.field=value ...]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

_STACK = contextlib.ExitStack()  # holds the demo job file open while main runs
_ROOT = tempfile.mkdtemp(prefix="decision-stability-")


def replica_epochs(result) -> int:
    """Replica-epochs a result holds: 2 per pair per epoch recorded."""
    return sum(2 * len(pair["pd"]) for trial in result.trials for pair in trial.pairs)


def fixed_design(result, epochs: int) -> int:
    """Replica-epochs of a design giving every trial as many pairs as the most-confirmed point."""
    most = max((len(t.pairs) for t in result.trials), default=0)
    return 2 * epochs * most * sum(1 for t in result.trials if t.pairs)


def run(job_path: Path, seed: int, overrides: list[str], trials: int | None, prune: bool | None):
    from keras_smelu.tuning import load_job, tune_job

    sets = [f"job.seed={seed}", *overrides]
    if prune is not None:
        sets.append(f"objective.prune={'true' if prune else 'false'}")
    job = load_job(job_path, overrides=sets)
    out = tempfile.mkdtemp(dir=_ROOT)  # one root for all runs: JAX's cache lives in the first
    start = time.perf_counter()
    report = tune_job(job, trials=trials, output=out, verbose=0)
    seconds = time.perf_counter() - start
    (result,) = report.results.values()
    return job, result, seconds


def describe(job, result, seconds: float) -> dict:
    decision = result.decision
    recommended = result.recommended
    reference = result.reference
    row = {
        "decision": "reduce" if recommended is not None else "keep ReLU",
        "width": None if recommended is None else recommended.width,
        "pd_ratio": "",
        "cost": "",
        "auc": None if reference is None else reference.metrics.get("val_auc"),
        "seconds": seconds,
        "replica_epochs": replica_epochs(result),
        "fixed": fixed_design(result, job.training.epochs),
        "pruned": len(result.pruned_trials),
        "confirmed": sum(1 for t in result.trials if len(t.pairs) > job.training.pairs),
        "frontier": sorted(round(t.width, 4) for t in result.frontier),
        "hypervolume": result.hypervolume(),
        "summary": "" if decision is None else decision.summary,
    }
    if recommended is not None:
        comparison = result.comparison(recommended)
        row["pd_ratio"] = comparison.pd_ratio.format(3)
        row["cost"] = comparison.accuracy_cost.format(3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, help="job file (default: the embedded demo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, help="override [job] trials")
    parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--compare-pruning", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    import keras_smelu  # noqa: F401  (registers the activations)
    from keras_smelu import datasets
    from keras_smelu.tuning import load_job
    from keras_smelu.tuning._job import demo_job_path

    job_path = args.job or _STACK.enter_context(demo_job_path())
    probe = load_job(job_path, overrides=args.overrides)
    kwargs = probe.dataset_kwargs()
    oracle = None
    if probe.data.dataset == "synthetic":
        data = datasets.load(kwargs.pop("name"), kwargs.pop("path"), **kwargs)
        oracle = datasets.oracle_auc(data)
    print(
        f"job {probe.name}: {args.trials or probe.job.trials} trials x "
        f"{probe.training.pairs} pairs x {probe.training.epochs} epochs, budget "
        f"{probe.objective.max_accuracy_cost!r}, confirm_pairs {probe.objective.confirm_pairs}"
        + ("" if oracle is None else f"; oracle AUC {oracle:.3f}"),
        flush=True,
    )
    variants = [args.prune] if not args.compare_pruning else [True, False]
    rows = {}
    for seed in args.seeds:
        for prune in variants:
            job, result, seconds = run(job_path, seed, args.overrides, args.trials, prune)
            row = describe(job, result, seconds)
            rows[seed, prune] = row
            auc = "-" if row["auc"] is None else f"{row['auc']:.3f}"
            label = "" if prune is None else (" prune" if prune else " no-prune")
            print(
                f"seed {seed}{label}: {row['decision']}"
                + ("" if row["width"] is None else f" w={row['width']:.3g}")
                + f"  PD x{row['pd_ratio'] or '-'}  cost {row['cost'] or '-'}  ReLU AUC {auc}"
                + f"  {row['seconds']:.0f}s  replica-epochs {row['replica_epochs']}"
                + f" (fixed design {row['fixed']}), confirmed points {row['confirmed']},"
                + f" pruned {row['pruned']}",
                flush=True,
            )
            print(f"    {row['summary']}", flush=True)
    main_rows = [r for (s, p), r in rows.items() if p == variants[0]]
    decisions = Counter(r["decision"] for r in main_rows)
    majority, count = decisions.most_common(1)[0]
    widths = [r["width"] for r in main_rows if r["width"] is not None]
    print(f"\nagreement: {count}/{len(main_rows)} seeds decide {majority!r}", end="")
    if len(widths) > 1:
        print(
            f"; recommended widths {min(widths):.3g}-{max(widths):.3g} "
            f"(ratio {max(widths) / min(widths):.2f})"
        )
    else:
        print()
    spent = [r["replica_epochs"] for r in main_rows]
    fixed = [r["fixed"] for r in main_rows]
    print(
        f"cost: {statistics.mean(spent):.0f} replica-epochs per run (median "
        f"{statistics.median(spent):.0f}) vs {statistics.mean(fixed):.0f} for the fixed design "
        f"(x{statistics.mean(fixed) / statistics.mean(spent):.2f} more)"
    )
    if args.compare_pruning:
        for seed in args.seeds:
            on, off = rows[seed, True], rows[seed, False]
            same = on["decision"] == off["decision"] and on["width"] == off["width"]
            print(
                f"seed {seed}: pruning saved {off['replica_epochs'] - on['replica_epochs']} "
                f"replica-epochs; decision {'unchanged' if same else 'CHANGED'}; frontier "
                f"{on['frontier']} vs {off['frontier']}; hypervolume "
                f"{on['hypervolume']:.3g} vs {off['hypervolume']:.3g}"
            )


if __name__ == "__main__":
    try:
        main()
    finally:
        _STACK.close()
        shutil.rmtree(_ROOT, ignore_errors=True)
