"""Writes `docs/results.md`: SmeLU against GELU and ReLU ensembles on real data, on one plane.

For each data set (MovieLens 100K and the Criteo sample, from `$KERAS_SMELU_DATA`), runs the
shipped job (`tuning/<name>.toml`) with GELU searched beside SmeLU and ReLU 2- and
4-ensembles as reference points, with at least 5 pairs per point:

    keras-smelu tune tuning/movielens-100k.toml --set search.families=["smelu","gelu"]
        --set search.ensembles=[2,4] --set job.sampler="grid" --set training.pairs=5 --trials N

and writes one section per data set: the decision in words, a table (ReLU, the recommended
SmeLU or the closest, the best GELU, ReLU x2 and x4) with the PD ratio to ReLU and the accuracy
cost, each with its paired interval, and the compute each costs relative to one model, then the
frontier plot. The page ends with the run time and the exact command.

    KERAS_BACKEND=jax KERAS_SMELU_DATA=../shared/datasets python benchmarks/results_page.py
        [--trials 8] [--pairs 5] [--jobs movielens-100k criteo-sample] [--page docs/results.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO_ROOT = Path(__file__).resolve().parents[1]


def job_overrides(pairs: int) -> list[str]:
    """The overrides that put GELU and the ReLU ensembles on the job's plane. The grid sampler
    gives both families the same widths (a sampler choosing the family could miss one)."""
    return [
        'search.families=["smelu", "gelu"]',
        "search.ensembles=[2, 4]",
        'job.sampler="grid"',
        f"training.pairs={pairs}",
    ]


def _cell(interval) -> str:
    return "-" if interval is None else interval.format(3)


def _row(result, trial, role: str) -> str:
    comparison = result.comparison(trial) if not trial.is_reference else None
    ratio = "1 (reference)" if trial.is_reference else _cell(comparison and comparison.pd_ratio)
    cost = "0 (reference)" if trial.is_reference else _cell(comparison and comparison.accuracy_cost)
    compute = f"{trial.ensemble}x"
    return (
        f"| {role} | {trial.label} | {trial.accuracy:.4f} | {trial.pd:.4f} | {ratio} | {cost} "
        f"| {compute} | {len(trial.pairs)} |"
    )


def _best(result, family: str):
    """The family's point with the lowest PD ratio to ReLU (None if it has none)."""
    scored = []
    for trial in result.candidates:
        if trial.family != family:
            continue
        comparison = result.comparison(trial)
        if comparison is not None and comparison.pd_ratio.estimate is not None:
            scored.append((comparison.pd_ratio.estimate, trial.number, trial))
    return min(scored)[2] if scored else None


def section(title: str, result, plot: str, seconds: float) -> str:
    """The page's section of one data set's result."""
    decision = result.decision
    lines = [f"## {title}", ""]
    if decision is not None:
        lines += [f"**Decision.** {decision.summary}", ""]
    from keras_smelu.tuning._ensembles import ensemble_words

    lines += [f"- {line}" for line in ensemble_words(result, result.ensemble_comparisons)]
    lines += [
        "",
        f"Accuracy is `{result.objective_label(0)}`, PD is `{result.objective_label(1)}`; "
        f"intervals are paired {result.level:.0%} intervals against ReLU over the pairs each "
        f"point shares with it. Run time {seconds / 60:.1f} minutes.",
        "",
        "| role | point | accuracy | PD | PD ratio to ReLU | accuracy cost | compute | pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reference = result.reference
    if reference is not None:
        lines.append(_row(result, reference, "reference"))
    recommended = result.recommended
    if recommended is not None:
        lines.append(_row(result, recommended, "recommended"))
    else:
        smelu = _best(result, "smelu")
        if smelu is not None:
            lines.append(_row(result, smelu, "SmeLU, lowest PD (not recommended)"))
    gelu = _best(result, "gelu")
    if gelu is not None:
        lines.append(_row(result, gelu, "GELU, lowest PD"))
    for trial in result.ensembles:
        lines.append(_row(result, trial, f"ReLU {trial.ensemble}-ensemble"))
    lines += ["", f"![{title}: accuracy/PD plane and width response]({plot})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", nargs="+", default=["movielens-100k", "criteo-sample"])
    parser.add_argument(
        "--trials", type=int, default=8, help="search trials per job (half per family)"
    )
    parser.add_argument("--pairs", type=int, default=5, help="pairs per point (at least 5)")
    parser.add_argument("--page", type=Path, default=REPO_ROOT / "docs" / "results.md")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="another override of every job (e.g. training.epochs=3), shown on the page",
    )
    args = parser.parse_args()
    if args.pairs < 5:
        parser.error("--pairs: the page compares points with at least 5 pairs")
    if not os.environ.get("KERAS_SMELU_DATA"):
        parser.error("set KERAS_SMELU_DATA to the folder holding the real data sets")

    import keras

    from keras_smelu.tuning import load_job, tune_job

    images = args.page.parent / "results"
    images.mkdir(parents=True, exist_ok=True)
    sections, total = [], 0.0
    root = Path(tempfile.mkdtemp(prefix="results-page-"))
    try:
        for name in args.jobs:
            path = REPO_ROOT / "tuning" / f"{name}.toml"
            job = load_job(path, overrides=job_overrides(args.pairs) + args.overrides)
            start = time.perf_counter()
            report = tune_job(job, trials=args.trials, output=root / name, verbose=1)
            seconds = time.perf_counter() - start
            total += seconds
            for model, result in report.results.items():
                plot = images / f"{name}-{model}.png"
                result.plot(plot)
                title = f"{job.data.dataset} ({model})"
                sections.append(section(title, result, f"results/{plot.name}", seconds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    shown, skip = [], False  # the command as run, without where the page was written
    for arg in sys.argv[1:]:
        if not skip and not arg.startswith("--page"):
            shown.append(arg)
        skip = arg == "--page"
    command = " ".join(
        ["KERAS_BACKEND=" + keras.backend.backend(), "python", "benchmarks/results_page.py"]
        + [shlex.quote(a) for a in shown]
    )
    header = [
        "# Results: SmeLU, GELU and ReLU ensembles on real data",
        "",
        "Generated by `benchmarks/results_page.py`; do not edit by hand. Each job is the shipped",
        "job file with GELU searched beside SmeLU and ReLU 2- and 4-ensembles as reference points",
        f"(`--set` {', '.join(f'`{o}`' for o in job_overrides(args.pairs) + args.overrides)}), "
        f"{args.trials} search trials.",
        "An ensemble averages k ReLU models: k times the training and serving compute of one.",
        "",
    ]
    footer = [
        "## How this page was made",
        "",
        f"    {command}",
        "",
        f"Total run time {total / 60:.1f} minutes on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), Keras {keras.__version__} on "
        f"{keras.backend.backend()}; the data sets are read from `$KERAS_SMELU_DATA`.",
        "",
    ]
    args.page.write_text("\n".join(header + sections + footer), encoding="utf-8")
    print(f"Wrote {args.page} and {images}/")


if __name__ == "__main__":
    main()
