"""Loss, AUC and prediction difference (PD) of ReLU, SmeLU at several widths, GELU, swish and
softplus on real recommender data, as one table (mean ± std over replica pairs).

For each dataset, every activation trains the same embedding MLP (`keras_smelu.models.
embedding_mlp`) with `keras_smelu.train_replicas`: `--pairs` pairs of replicas that start from
identical weights and differ only in data order, with the same seed for every row,
so pair k sees the same random numbers in every row (common random numbers, docs/findings.md). Loss,
AUC and PD are measured on the held-out split at the last epoch. Each dataset gets one block of
rows per `--normalization` choice: none, and LayerNorm before each hidden activation (which
puts the pre-activations on a unit scale, where SmeLU widths near 1 mean something).

    KERAS_BACKEND=jax python benchmarks/pd_table.py [--data DIR] [--pairs 3] [--epochs 3]
        [--widths 0.1 0.5 1 2] [--normalization none layer] [--csv out.csv]

Columns: test log loss and AUC (mean ± std over the 2 * pairs replicas); relative and absolute
PD (mean ± std over pairs); shift-corrected relative PD (after removing one global logit offset
between the replicas of a pair); the ratio of the row's relative PD to ReLU's, with
its 90% paired interval (pair k against ReLU's pair k, same normalization); wall seconds.

Every replica is a new model, so with JAX each one traces and compiles its train, evaluate and
predict functions (~10 s on 2 CPU cores, most of a row's time). The script turns on JAX's
persistent compilation cache (a temporary directory unless `--jax-cache DIR`), so identical
programs compile once; the numbers are identical with `--no-jax-cache`, only slower.

The comparators (GELU, swish, softplus) use their standard scale 1 unless `--comparator-beta B`
maps them to the scale with SmeLU(beta=B)'s curvature at 0; the header prints the SmeLU width
each comparator's scale corresponds to.

Data is read from `--data`, else `$KERAS_SMELU_DATA`, else `../shared/datasets` next to the
repository. Progress goes to stderr, the table to stdout. Three pairs are enough for a first look,
not for a claim: PD is heavy-tailed across pairs (use 5 per point, 10 for a claim).
"""

from __future__ import annotations

import argparse
import atexit
import csv
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("movielens-100k", "criteo")
COMPARATORS = (("gelu", "gelu"), ("swish", "swish"), ("softplus", "softplus"))


def _default_data_dir() -> str | None:
    env = os.environ.get("KERAS_SMELU_DATA")
    if env:
        return env
    shared = REPO_ROOT.parent / "shared" / "datasets"
    return str(shared) if shared.is_dir() else None


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--data",
        default=_default_data_dir(),
        help="directory holding movielens-100k/ and criteo-dac-8k/ (default: $KERAS_SMELU_DATA, "
        "else ../shared/datasets next to the repository)",
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--pairs", type=int, default=3, help="replica pairs per row (default 3)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument(
        "--widths",
        type=float,
        nargs="+",
        default=[0.1, 0.5, 1.0, 2.0],
        help="SmeLU widths beta (default 0.1 0.5 1 2)",
    )
    parser.add_argument(
        "--normalization",
        nargs="+",
        choices=("none", "layer"),
        default=["none", "layer"],
        help="one block of rows per choice; 'layer': LayerNorm before each hidden activation "
        "(default: none layer)",
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128, 64])
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--rows", type=int, default=None, help="use the first N training rows (default: all)"
    )
    parser.add_argument(
        "--test-rows", type=int, default=None, help="use the first N test rows (default: all)"
    )
    parser.add_argument(
        "--comparator-beta",
        type=float,
        default=None,
        help="scale GELU/swish/softplus to SmeLU(beta)'s curvature at 0 (default: scale 1)",
    )
    parser.add_argument(
        "--activations",
        nargs="+",
        default=None,
        help="only these rows, by label (e.g. relu smelu-0.5 gelu); default: all",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed, shared by all rows")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    parser.add_argument(
        "--jax-cache",
        default=None,
        help="JAX persistent compilation cache directory (default: a temporary one, removed at "
        "exit); every replica is a new model, so without it each one recompiles (~10 s)",
    )
    parser.add_argument(
        "--no-jax-cache", action="store_true", help="disable the JAX compilation cache"
    )
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("no data directory: pass --data or set KERAS_SMELU_DATA")
    if args.pairs < 1 or args.epochs < 1:
        parser.error("--pairs and --epochs must be >= 1")
    return args


def _enable_jax_cache(args) -> str | None:
    """Turns on JAX's persistent compilation cache; returns its directory (None if off).

    Each replica is a freshly built model whose train/eval/predict functions are traced and
    compiled anew; the compiled executables of identical programs (same architecture and
    activation) are then reused from the cache. This changes only the speed: the executable is
    the one XLA compiled for the same program.
    """
    from keras_smelu import enable_compilation_cache

    if args.no_jax_cache:
        return None
    directory = args.jax_cache
    if directory is None:
        directory = tempfile.mkdtemp(prefix="pd_table_jax_cache_")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return str(directory) if enable_compilation_cache(directory) else None


def _activation_rows(args):
    """(label, activation, note) for every row, ReLU first (the reference of the ratios)."""
    import keras_smelu
    from keras_smelu.activations import beta_to_scale, scale_to_beta

    rows = [("relu", "relu", "")]
    for beta in args.widths:
        rows.append((f"smelu-{beta:g}", keras_smelu.SmeLU(beta=beta), f"beta={beta:g}"))
    for label, family in COMPARATORS:
        if args.comparator_beta is None:
            scale = 1.0
        else:
            scale = beta_to_scale(family, args.comparator_beta)
        note = f"scale={scale:.3g} (~SmeLU beta={scale_to_beta(family, scale):.3g})"
        rows.append((label, keras_smelu.ScaledActivation(family, scale), note))
    if args.activations:
        wanted = set(args.activations)
        unknown = wanted - {label for label, _, _ in rows}
        if unknown:
            raise SystemExit(
                f"Unknown --activations {sorted(unknown)}; rows are {[r[0] for r in rows]}"
            )
        rows = [row for row in rows if row[0] in wanted]
    return rows


def _per_pair(report, kind: str) -> list[float]:
    index = report.epoch - 1
    return [float(result["pd"][index][kind]) for result in report.pair_results]


def _pm(mean: float, std: float, digits: int = 4) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _load(name: str, args):
    from keras_smelu import datasets

    dataset = datasets.load(name)
    if args.rows is not None or args.test_rows is not None:
        dataset = dataset.subset(args.rows, args.test_rows)
    print(
        f"# {name}: {dataset.n_train} train rows, {dataset.n_test} test rows, "
        f"base rate {dataset.base_rate:.3f}",
        file=sys.stderr,
        flush=True,
    )
    return dataset


def _run_block(dataset, norm: str, args, activation_rows) -> list[dict]:
    """The rows of one dataset and one normalization; ratios are against this block's ReLU."""
    import keras_smelu
    from keras_smelu import models

    name = dataset.name
    normalization = None if norm == "none" else norm

    def build(activation):
        return models.embedding_mlp(
            dataset,
            activation=activation,
            hidden=tuple(args.hidden),
            embedding_dim=args.embedding_dim,
            normalization=normalization,
            learning_rate=args.learning_rate,
        )

    results = []
    relu_pairs = None
    for i, (label, activation, note) in enumerate(activation_rows, 1):
        where = f"[{name} norm={norm} {i}/{len(activation_rows)}] {label} {note}".rstrip()
        row = {"dataset": name, "norm": norm, "activation": label, "note": note}
        try:
            report = keras_smelu.train_replicas(
                build,
                dataset.train,
                dataset.test,
                activation=activation,
                pairs=args.pairs,
                epochs=args.epochs,
                batch_size=args.batch_size,
                vary="data_order",
                seed=args.seed,
                pd="relative",
                report_epoch="last",
                verbose=0,
            )
        except keras_smelu.NonFiniteLossError as e:
            print(f"{where}: FAILED: {e}", file=sys.stderr, flush=True)
            row["error"] = str(e)
            results.append(row)
            continue
        relative = _per_pair(report, "relative")
        row.update(
            loss=report.metrics["loss"],
            loss_std=report.metrics_std["loss"],
            auc=report.metrics["auc"],
            auc_std=report.metrics_std["auc"],
            pd_rel=report.pd["relative"],
            pd_rel_std=report.pd_std["relative"],
            pd_abs=report.pd["absolute"],
            pd_abs_std=report.pd_std["absolute"],
            pd_rel_shift=report.pd["relative_shift_corrected"],
            pd_rel_shift_std=report.pd_std["relative_shift_corrected"],
            wall_s=report.wall_seconds,
            per_pair_rel=relative,
        )
        if label == "relu":
            relu_pairs = relative
        if relu_pairs is not None:
            # Pair k against ReLU's pair k (common random numbers): the tuner's paired interval.
            from keras_smelu.tuning._paired import paired_pd_ratio

            interval = paired_pd_ratio(relative, relu_pairs, 0.9)
            row["ratio"] = interval.estimate
            row["ratio_low"], row["ratio_high"] = interval.low, interval.high
            row["ratio_text"] = interval.format(3)
        print(
            f"{where}: loss {row['loss']:.4f}  auc {row['auc']:.4f}  relPD {row['pd_rel']:.4f}"
            f"  ({report.wall_seconds:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
        results.append(row)
    return results


COLUMNS = (
    "dataset",
    "norm",
    "activation",
    "log loss",
    "AUC",
    "relative PD",
    "absolute PD",
    "rel PD shift-corr",
    "rel PD / ReLU",
    "wall s",
)


def _format_row(row: dict) -> list[str]:
    if "error" in row:
        return [row["dataset"], row["norm"], row["activation"], "diverged", *[""] * 6]
    return [
        row["dataset"],
        row["norm"],
        row["activation"],
        _pm(row["loss"], row["loss_std"]),
        _pm(row["auc"], row["auc_std"]),
        _pm(row["pd_rel"], row["pd_rel_std"]),
        _pm(row["pd_abs"], row["pd_abs_std"]),
        f"{row['pd_rel_shift']:.4f}",
        row.get("ratio_text", "-"),
        f"{row['wall_s']:.0f}",
    ]


def _print_table(rows: list[dict]) -> None:
    header = list(COLUMNS)
    body = [_format_row(row) for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells):
        padded = [
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded)

    print(line(header))
    print("  ".join("-" * w for w in widths))
    previous = None
    for row, cells in zip(rows, body, strict=True):
        block = (row["dataset"], row["norm"])
        if previous is not None and block != previous:
            print()
        previous = block
        print(line(cells))


def _write_csv(path: str, rows: list[dict], settings: dict) -> None:
    fields = [
        "dataset",
        "norm",
        "activation",
        "note",
        "loss",
        "loss_std",
        "auc",
        "auc_std",
        "pd_rel",
        "pd_rel_std",
        "pd_abs",
        "pd_abs_std",
        "pd_rel_shift",
        "pd_rel_shift_std",
        "ratio",
        "ratio_low",
        "ratio_high",
        "wall_s",
        "per_pair_rel",
        "error",
        *settings,
    ]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            out = {**settings, **row}
            if "per_pair_rel" in out:
                out["per_pair_rel"] = " ".join(f"{v:.6g}" for v in out["per_pair_rel"])
            writer.writerow(out)


def main(argv=None) -> int:
    args = _parse_args(argv)
    os.environ["KERAS_SMELU_DATA"] = str(args.data)

    import keras

    jax_cache = _enable_jax_cache(args)
    activation_rows = _activation_rows(args)
    settings = {
        "pairs": args.pairs,
        "epochs": args.epochs,
        "rows": args.rows if args.rows is not None else "all",
        "test_rows": args.test_rows if args.test_rows is not None else "all",
        "normalization": "+".join(args.normalization),
        "hidden": "-".join(str(h) for h in args.hidden),
        "embedding_dim": args.embedding_dim,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "vary": "data_order",
        "seed": args.seed,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "jax_cache": "off" if jax_cache is None else "on",
    }
    header = ", ".join(f"{k}={v}" for k, v in settings.items())
    families = {label for label, _ in COMPARATORS}
    comparators = "; ".join(f"{lab}: {note}" for lab, _, note in activation_rows if lab in families)
    print(f"# pd_table: {header}", flush=True)
    print(f"# data={args.data}" + (f"; comparators {comparators}" if comparators else ""))
    print(
        "# loss/AUC: mean ± std over replicas; PD: mean ± std over pairs; "
        "rel PD / ReLU: geometric mean of per-pair ratios [90% t interval] (common random numbers)",
        flush=True,
    )

    start = time.perf_counter()
    rows = []
    for name in args.datasets:
        dataset = _load(name, args)
        for norm in args.normalization:
            rows.extend(_run_block(dataset, norm, args, activation_rows))
    elapsed = time.perf_counter() - start

    print()
    _print_table(rows)
    print(f"\n# total wall time {elapsed:.0f} s", flush=True)
    if args.csv:
        _write_csv(args.csv, rows, settings)
        print(f"# wrote {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
