"""The `keras-smelu` command: run tuning jobs, report on their results, run the demo.

    keras-smelu tune JOB.toml [--trials N] [--storage URL] [--output DIR] [--set S.F=V ...]
    keras-smelu report DIR
    keras-smelu demo [--output DIR] [--trials N]

Each subcommand parses its arguments, calls the library and returns an exit code: 0 done,
2 a bad job or argument (nothing trained), 130 interrupted (completed trials kept).
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

DEMO_JOB = "demo.toml"  # package data of keras_smelu.tuning; tuning/synthetic-demo.toml


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-smelu",
        description="Tune the smoothness of SmeLU for accuracy and prediction difference.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    tune = sub.add_parser("tune", help="run (or resume) a declarative tuning job")
    tune.add_argument("job", type=Path, help="a job file, e.g. tuning/movielens-100k.toml")
    _add_run_options(tune)
    tune.add_argument("--storage", help="Optuna storage URL (sqlite:///..., journal:FILE, ...)")
    tune.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a job field, e.g. --set training.pairs=5 (repeatable)",
    )

    report = sub.add_parser("report", help="print the frontier tables of a results folder")
    report.add_argument("directory", type=Path, help="a folder holding results.json")
    report.add_argument("--plot", action="store_true", help="(re)draw frontier-<model>.png")

    demo = sub.add_parser("demo", help="a small job on built-in synthetic data (minutes)")
    _add_run_options(demo)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, help="search trials per model (job: [job] trials)")
    parser.add_argument("--output", type=Path, help="results folder (job: [job] output)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")


def _quiet_framework_logs() -> None:
    import warnings

    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    # Every replica is a new model, so tf.function traces anew by design: not worth a warning.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _run_job(job_path, args, overrides=()) -> int:
    from keras_smelu.tuning import JobError, load_job, tune_job

    try:
        job = load_job(job_path, overrides=list(overrides))
        if args.trials is not None and args.trials < 1:
            raise JobError(f"--trials: expected an integer >= 1, got {args.trials}")
    except (JobError, FileNotFoundError) as error:
        print(f"keras-smelu: {error}", file=sys.stderr)
        return 2
    try:
        tune_job(
            job,
            trials=args.trials,
            storage=getattr(args, "storage", None),
            output=args.output,
            verbose=0 if args.quiet else 1,
        )
    except KeyboardInterrupt:
        return 130
    return 0


def _report(args) -> int:
    from keras_smelu.tuning import TuningReport

    try:
        report = TuningReport.load(args.directory)
    except (FileNotFoundError, ValueError) as error:
        print(f"keras-smelu: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.plot:
        for path in report.plot(args.directory):
            print(f"Wrote: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-smelu` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    _quiet_framework_logs()
    if args.command == "report":
        return _report(args)
    if args.command == "demo":
        with resources.as_file(resources.files("keras_smelu.tuning") / DEMO_JOB) as job:
            return _run_job(job, args)
    return _run_job(args.job, args, args.overrides)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
