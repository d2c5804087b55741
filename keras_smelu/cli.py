"""The `keras-smelu` command: run tuning jobs, report on their results, run the demo.

    keras-smelu tune JOB.toml [--trials N] [--storage URL] [--output DIR] [--set S.F=V ...]
                              [--new-study]
    keras-smelu report DIR | MODEL.keras
    keras-smelu export RUN_DIR [--model NAME] [--trial N] [--output PATH] [--serving]
                               [--artifacts DIR] [--storage URL]
    keras-smelu demo [--output DIR] [--trials N]

Each subcommand parses its arguments, calls the library and returns an exit code: 0 done,
2 a bad job or argument, or a resume of another experiment (one line; nothing trained),
1 a failure the run could not get past, such as a full disk (one line; completed trials are
kept in the study), 130 interrupted (completed trials kept).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path


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
        "--new-study",
        action="store_true",
        help="if the stored study ran another experiment (data, model, settings, versions), "
        "run a new study beside it instead of refusing",
    )

    report = sub.add_parser(
        "report",
        help="print the frontier tables of a results folder, or an exported model's evidence",
    )
    report.add_argument(
        "directory", type=Path, help="a folder holding results.json, or an exported .keras file"
    )
    report.add_argument("--plot", action="store_true", help="(re)draw frontier-<model>.png")

    export = sub.add_parser(
        "export", help="train a job's recommended (or chosen) width once and save it as a model"
    )
    export.add_argument("run_dir", type=Path, help="a job's results folder")
    export.add_argument("--model", help="the model to export (needed when the job has several)")
    export.add_argument(
        "--trial", type=int, help="a trial number (0: ReLU); default the recommendation"
    )
    export.add_argument(
        "--output", type=Path, help="the .keras file (default RUN_DIR/models/<model>.keras)"
    )
    export.add_argument(
        "--serving",
        action="store_true",
        help="also model.export a SavedModel that serves without the plug-in",
    )
    export.add_argument(
        "--artifacts",
        type=Path,
        help="upload the model and its evidence to "
        "the study, into this Optuna file-system artifact store",
    )
    export.add_argument("--storage", help="the study's storage (default: the run's)")

    demo = sub.add_parser(
        "demo", help="a tuning job on built-in synthetic data (about 5 minutes of CPU with JAX)"
    )
    _add_run_options(demo)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, help="search trials per model (job: [job] trials)")
    parser.add_argument("--output", type=Path, help="results folder (job: [job] output)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a job field, e.g. --set training.pairs=5 or job.seed=3 (repeatable)",
    )


def _quiet_framework_logs() -> None:
    import warnings

    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    # JAX's compilation cache is a speed-up only: a full disk is reported once, by us.
    warnings.filterwarnings("ignore", message="Error writing persistent compilation cache")
    # Every replica is a new model, so tf.function traces anew by design: not worth a warning.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _fail(message: object, code: int = 2) -> int:
    print(f"keras-smelu: {message}", file=sys.stderr)
    return code


def _disk_full(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a full disk: ENOSPC, or SQLite's "database or
    disk is full" inside a storage error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "disk is full" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _check_run_arguments(job, args) -> None:
    """The checks of the command line that need no training: `--trials`, `--output`,
    `--storage` and a grid's size."""
    from keras_smelu.tuning import JobError
    from keras_smelu.tuning._backends import check_grid_trials

    trials = args.trials if args.trials is not None else job.job.trials
    if args.trials is not None and args.trials < 1:
        raise JobError(f"--trials: expected an integer >= 1, got {args.trials}")
    output = args.output if args.output is not None else job.output_dir()
    if output.exists() and not output.is_dir():
        raise JobError(f"--output: expected a folder, got {str(output)!r}, which is a file")
    storage = getattr(args, "storage", None)
    if storage and job.job.backend == "optuna":
        from keras_smelu.tuning._optuna_backend import check_storage_url

        check_storage_url(storage)
    if job.job.sampler == "grid":
        check_grid_trials(trials)


def _run_job(job_path, args, overrides=()) -> int:
    from keras_smelu.tuning import load_job, tune_job

    try:
        job = load_job(job_path, overrides=list(overrides))
        _check_run_arguments(job, args)
    except ValueError as error:  # JobError included
        return _fail(error)
    except IsADirectoryError:
        return _fail(f"{job_path}: expected a job file, got a folder")
    except OSError as error:  # missing or unreadable job file
        return _fail(f"{job_path}: {error.strerror or error}")
    try:
        tune_job(
            job,
            trials=args.trials,
            storage=getattr(args, "storage", None),
            output=args.output,
            verbose=0 if args.quiet else 1,
            on_mismatch="new_study" if getattr(args, "new_study", False) else "error",
        )
    except KeyboardInterrupt:
        return 130
    except ValueError as error:  # a bad setting found once the data and models are known
        return _fail(error)
    except Exception as error:
        if _disk_full(error):
            return _fail(
                "disk full: the run stopped; completed trials are kept in the study and no "
                "partial result file was left. Free some space and run the same command to "
                "resume.",
                code=1,
            )
        raise
    return 0


def _report(args) -> int:
    from keras_smelu.tuning import TuningReport

    try:
        report = TuningReport.load(args.directory)
        summary = report.summary()
    except FileNotFoundError as error:
        return _fail(error)
    except IsADirectoryError:
        return _fail(f"{args.directory}: its results.json is a folder, not a results file")
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # malformed fields
        return _fail(
            f"{args.directory}: not a readable results file ({type(error).__name__}: {error})"
        )
    print(summary)
    if args.plot:
        for path in report.plot(args.directory):
            print(f"Wrote: {path}")
    return 0


def _report_model(path: Path) -> int:
    from keras_smelu.tuning import model_card, read_evidence

    try:
        evidence = read_evidence(path)
    except FileNotFoundError as error:
        return _fail(error)
    except (ValueError, OSError) as error:  # a damaged sidecar or model file
        return _fail(f"{path}: {error}")
    print(model_card(evidence))
    if not evidence.get("matches_model", True):
        print(
            f"Warning: the weights of {path} are not the ones this evidence describes (the "
            "model was trained again or replaced after its export).",
            file=sys.stderr,
        )
        return 1
    return 0


def _export(args) -> int:
    from keras_smelu.tuning import export_run

    try:
        exported = export_run(
            args.run_dir,
            model=args.model,
            trial=args.trial,
            output=args.output,
            serving=args.serving,
            artifacts=args.artifacts,
            storage=args.storage,
        )
    except FileNotFoundError as error:
        return _fail(error)
    except ValueError as error:  # JobError included
        return _fail(error)
    evidence = exported.evidence
    print(
        f"Exported {evidence['model']} trial {evidence['trial']} "
        f"({evidence['activation']['label']}) to {exported.model_path}"
    )
    written = [exported.evidence_path, exported.card_path, exported.plot_path]
    written.append(exported.serving_path)
    print("Wrote: " + ", ".join(str(p) for p in written if p is not None))
    if exported.artifacts:
        print(f"Artifacts of study {evidence['study']['name']!r}: {dict(exported.artifacts)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-smelu` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    _quiet_framework_logs()
    if args.command == "report":
        if args.directory.suffix == ".keras" or args.directory.is_file():
            return _report_model(args.directory)
        return _report(args)
    if args.command == "export":
        return _export(args)
    if args.command == "demo":
        from keras_smelu.tuning._job import demo_job_path

        with demo_job_path() as job:
            return _run_job(job, args, args.overrides)
    return _run_job(args.job, args, args.overrides)


def console() -> None:
    """The `keras-smelu` console script: ends the process with `main`'s exit code.

    After Ctrl-C (130) every completed trial and result file is saved and the summary printed,
    so the process ends at once, its output flushed, without the interpreter's teardown: an
    XLA compilation that the interrupt cut short can crash that teardown (exit status -11, a
    segmentation fault, instead of 130).
    """
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
