"""Streaming loaders vs pandas `read_csv`: rows per second and peak memory, 1M and 10M rows.

Generates click logs in the Criteo layout (`label I1..I13 C1..C26`, TAB-separated) and rating
files in MovieLens 20M's layout (`ratings.csv`) into a temporary folder with
`keras_smelu.datasets.write_click_log`, then loads each file in a fresh process:

- `stream`: `load(name, path, streaming=True)` (the counting pass that builds the vocabularies
  and the split sizes), then the first training epoch in batches of 4096 rows, ids encoded:
  two passes over the file, all it takes to train one epoch;
- `stream-cached`: the same with `cache_dir` (in the benchmark's folder): the counting pass
  also writes the parsed chunks, and the epoch reads them instead of parsing the text again;
- `stream-hashed`: the same with `hash_buckets=2**20`: no counting pass, one pass;
- `pandas`: `pandas.read_csv` of the same file (raw columns, nothing encoded), 1M rows only.

Each process reports the time of the load itself (imports excluded), the file's rows per
second, the time of one more training epoch (what every later epoch costs), and its peak
resident memory (`VmHWM` of /proc/self/status), in total and above its
resident memory after the imports (pyarrow is imported before that in both; the streaming
process also imports Keras with the package, pandas does not).

    nice python benchmarks/loader_speed.py [--rows 1000000 10000000] [--dir /tmp/x] [--keep]
        [--layouts criteo movielens] [--rounds 3]

Each file is read `--rounds` times by every reader, in turn; a ratio is taken within a round
(runs moments apart) and printed as the median and range over the rounds.

With `--keep` the files stay in `--dir` and a later run reads them instead of writing them
again (the generator writes the same bytes for the same rows and seed).

Targets: on 1M rows, the streaming load within 3x of pandas' time and at most its peak memory;
the peak memory on 10M rows no more than 1.3x that on 1M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time

def rss_kb(field="VmRSS"):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

args = json.loads(sys.argv[1])
import pyarrow, pyarrow.csv, pyarrow.compute  # both readers' dependency, imported before `base`
if args["reader"] == "pandas":
    import pandas as pd
    base = rss_kb()
    start = time.perf_counter()
    if args["layout"] == "criteo":
        frame = pd.read_csv(args["path"], sep="\t", header=None)
    else:
        frame = pd.read_csv(args["path"])
    rows, first_pass = len(frame), None
else:
    from keras_smelu.datasets import load
    base = rss_kb()
    start = time.perf_counter()
    name = "criteo" if args["layout"] == "criteo" else "movielens"
    stream = load(name, args["path"], streaming=True, hash_buckets=args["hash_buckets"],
                  cache_dir=args["cache_dir"])
    first_pass = time.perf_counter() - start
    trained = sum(len(y) for _, y in stream.epoch("train", 4096))
    assert stream.n_train in (None, trained)
    rows = args["rows"]  # a training epoch parses the whole file, test rows included
seconds = time.perf_counter() - start
if args["reader"] == "stream":
    again = time.perf_counter()
    assert sum(len(y) for _, y in stream.epoch("train", 4096)) == trained
    next_epoch = time.perf_counter() - again
else:
    next_epoch = None
peak = rss_kb("VmHWM")  # this process's peak (getrusage's ru_maxrss starts at the parent's)
print(json.dumps({"rows": rows, "seconds": seconds, "first_pass": first_pass,
                  "next_epoch": next_epoch,
                  "peak_mb": peak / 1024, "load_mb": (peak - base) / 1024}))
"""


def measure(
    reader: str, layout: str, path: Path, rows: int, hash_buckets: int | None, cache_dir
) -> dict:
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    spec = {"reader": reader, "layout": layout, "path": str(path), "hash_buckets": hash_buckets}
    spec["cache_dir"] = None if cache_dir is None else str(cache_dir)
    spec["rows"] = rows
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{reader} on {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    """`median [min, max]` of a few ratios, one per round."""
    values = sorted(values)
    return f"{statistics.median(values):.2f}x [{values[0]:.2f}, {values[-1]:.2f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--layouts", nargs="+", default=["criteo", "movielens"])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per file")
    args = parser.parse_args(argv)

    from keras_smelu.datasets import write_click_log

    folder = args.dir or Path(tempfile.mkdtemp(prefix="loader_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    smallest = min(args.rows)
    results = []  # one per reader, file and round
    try:
        for layout in args.layouts:
            for rows in sorted(args.rows):
                path = folder / f"{layout}_{rows}.{'txt' if layout == 'criteo' else 'csv'}"
                start = time.perf_counter()
                if not (args.keep and path.exists()):  # a kept file: the same seed, same bytes
                    write_click_log(path, rows, layout=layout, seed=0)
                written = time.perf_counter() - start
                size_mb = path.stat().st_size / 2**20
                print(f"wrote {path.name}: {size_mb:.0f} MiB in {written:.0f} s", flush=True)
                cache = folder / "cache"
                readers = [
                    ("stream", None, None),
                    ("stream-cached", None, cache),
                    ("stream-hashed", 1 << 20, None),
                ]
                if rows == smallest:
                    readers.append(("pandas", None, None))
                # Each round runs every reader once, so a ratio compares runs made moments
                # apart: the machine's background load moves both.
                for round_ in range(args.rounds):
                    for reader, buckets, cache_dir in readers:
                        out = measure(reader.split("-")[0], layout, path, rows, buckets, cache_dir)
                        out.update(layout=layout, n=rows, reader=reader, mib=size_mb, round=round_)
                        results.append(out)
                        print(json.dumps(out), flush=True)
                if not args.keep:
                    path.unlink()
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    print("Medians over the rounds:")
    print(f"{'layout':10} {'rows':>11} {'reader':14} {'seconds':>8} {'rows/s':>10} "
          f"{'next epoch':>10} {'peak MiB':>9} {'load MiB':>9}")  # fmt: skip
    runs: dict[tuple, list[dict]] = {}
    for r in results:
        runs.setdefault((r["layout"], r["n"], r["reader"]), []).append(r)

    def median(key, field):
        values = [r[field] for r in runs[key] if r[field] is not None]
        return statistics.median(values) if values else None

    for key in runs:
        layout, n, reader = key
        seconds, again = median(key, "seconds"), median(key, "next_epoch")
        print(
            f"{layout:10} {n:>11,} {reader:14} {seconds:>8.2f} {n / seconds:>10,.0f} "
            f"{'' if again is None else f'{again:.2f}':>10} {median(key, 'peak_mb'):>9.0f} "
            f"{median(key, 'load_mb'):>9.0f}"
        )
    print()
    largest = max(args.rows)
    for layout in args.layouts:
        pandas = runs.get((layout, smallest, "pandas"))
        if pandas:
            for reader in ("stream", "stream-cached", "stream-hashed"):
                pairs = list(zip(runs[(layout, smallest, reader)], pandas, strict=True))
                time_ratio = [r["seconds"] / p["seconds"] for r, p in pairs]
                memory = [r["peak_mb"] / p["peak_mb"] for r, p in pairs]
                print(
                    f"{layout} {smallest:,} rows, {reader}: time {spread(time_ratio)} pandas', "
                    f"peak memory {spread(memory)}"
                )
        if largest != smallest:
            for reader in ("stream", "stream-cached", "stream-hashed"):
                big_and_small = (runs[(layout, largest, reader)], runs[(layout, smallest, reader)])
                pairs = zip(*big_and_small, strict=True)
                memory = [big["peak_mb"] / small["peak_mb"] for big, small in pairs]
                print(
                    f"{layout} {reader}, peak memory {largest:,} / {smallest:,} rows: "
                    f"{spread(memory)}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
