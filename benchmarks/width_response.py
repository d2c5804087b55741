"""The width response of a job, per job seed: PD ratio and accuracy cost against ReLU at fixed
widths, with the tuner's paired intervals.

Runs a job (the embedded demo by default) once per job seed with the grid sampler (`--points`
widths spread over `[search]`'s range, log-spaced when `log = true`), no confirmation stage and
the job's pairs, as `keras-smelu tune JOB --set job.sampler=grid ...` would, and prints per
seed ReLU's AUC (beside the generator's oracle AUC for the synthetic log) and per width the PD
ratio and the accuracy cost with their paired intervals (`TuningResult.comparison`: the
geometric mean of per-pair PD ratios and the mean per-pair loss difference, t intervals at the
job's `level`), and the tuner's decision over these widths. The last block counts, per width,
the seeds whose PD interval lies below 1 and those whose cost interval lies above 0.

This is the curve the decision is read from: where the PD ratio falls while the cost stays
within the budget, the answer is stable; where both are flat, it hovers.

    KERAS_BACKEND=jax python benchmarks/width_response.py [--job FILE] [--seeds 0 1 2 3 4]
        [--points 4] [--set section.field=value ...]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

_STACK = contextlib.ExitStack()  # holds the demo job file open while main runs
_ROOT = tempfile.mkdtemp(prefix="width-response-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, help="job file (default: the embedded demo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--points", type=int, default=4, help="widths on the grid")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    import keras_smelu  # noqa: F401  (registers the activations)
    from keras_smelu import datasets
    from keras_smelu.tuning import load_job, tune_job
    from keras_smelu.tuning._job import demo_job_path

    job_path = args.job or _STACK.enter_context(demo_job_path())
    grid = ["job.sampler=grid", f"job.trials={args.points}", "objective.confirm_pairs=0"]
    counts: dict[tuple[str, float], dict[str, int]] = defaultdict(lambda: {"PD-": 0, "cost+": 0})
    for seed in args.seeds:
        job = load_job(job_path, overrides=[*args.overrides, *grid, f"job.seed={seed}"])
        oracle = ""
        if job.data.dataset == "synthetic":
            kwargs = job.dataset_kwargs()
            data = datasets.load(kwargs.pop("name"), kwargs.pop("path"), **kwargs)
            oracle = f" (oracle {datasets.oracle_auc(data):.3f})"
        start = time.perf_counter()
        report = tune_job(job, output=tempfile.mkdtemp(dir=_ROOT), verbose=0)
        seconds = time.perf_counter() - start
        for model, result in report.results.items():
            auc = result.reference.metrics.get("val_auc")
            auc = "-" if auc is None else f"{auc:.3f}"
            print(
                f"seed {seed} {model}: ReLU AUC {auc}{oracle}, {job.training.pairs} pairs, "
                f"{seconds:.0f} s",
                flush=True,
            )
            for trial in sorted(result.candidates, key=lambda t: t.width):
                comparison = result.comparison(trial)
                if comparison is None:
                    continue
                ratio, cost = comparison.pd_ratio, comparison.accuracy_cost
                verdict = []
                if ratio.high is not None and ratio.high < 1.0:
                    verdict.append("PD-")
                if cost.low is not None and cost.low > 0.0:
                    verdict.append("cost+")
                for word in verdict:
                    counts[trial.family, round(trial.width, 4)][word] += 1
                print(
                    f"  {trial.family} {trial.width:<7.4g} PD x{ratio.format(3):<24} "
                    f"cost {cost.format(4):<28} {' '.join(verdict)}",
                    flush=True,
                )
            decision = result.decision
            print(f"  decision: {'-' if decision is None else decision.summary}", flush=True)
    print(
        f"\nover {len(args.seeds)} seeds (PD-: PD interval below 1; cost+: cost interval above 0):"
    )
    for (family, width), count in sorted(counts.items()):
        print(f"  {family} {width:<7.4g} PD- {count['PD-']}  cost+ {count['cost+']}")


if __name__ == "__main__":
    try:
        main()
    finally:
        _STACK.close()
        shutil.rmtree(_ROOT, ignore_errors=True)
