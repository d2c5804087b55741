"""Wall time of one fixed tuning job run by 1 and by 3 workers sharing a PostgreSQL study.

Each run starts `deploy/worker.sh` (the command the docker compose file, the Kubernetes Job and
the Slurm array run) N times at once on the same job file, whose `storage = "env:
KERAS_SMELU_STORAGE"` points every worker at one PostgreSQL database, and times it from the
launch until the last worker exits. Each run gets a study of its own (a fresh job name). The
job is fixed: synthetic click log (`--rows` train / `--test-rows` eval rows), `embedding_mlp`
(hidden [16, 8]), `--trials` search trials of `--pairs` replica pairs x `--epochs` epochs, the
random sampler (the same work for any number of workers), plus the ReLU reference.

Printed per run: wall time; start-up (launch to the first search trial's start: imports, data,
study creation, the reference); the summed duration of the search trials; the study's finished,
surplus-pruned and missing trials; trials reported by two workers (duplicates); complete ReLU
references. Then the ratio wall(1 worker) / wall(N workers).

The server: `--storage URL`, else `$KERAS_SMELU_TEST_POSTGRES_URL`, else a throwaway server
started from the machine's PostgreSQL binaries (`tests/_postgres.py`).

    python benchmarks/workers_benchmark.py [--workers 1,3] [--trials 9] [--epochs 2]
        [--pairs 1] [--rows 4000] [--test-rows 1000] [--storage URL]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests._postgres
WORKER = REPO / "deploy" / "worker.sh"
VARIABLE = "KERAS_SMELU_STORAGE"


def write_job(folder: Path, name: str, args) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            name = "{name}"
            sampler = "random"
            trials = {args.trials}
            storage = "env:{VARIABLE}"

            [data]
            dataset = "synthetic"
            n_train = {args.rows}
            n_test = {args.test_rows}

            [model]
            hidden = [16, 8]
            embedding_dim = 4

            [training]
            epochs = {args.epochs}
            pairs = {args.pairs}
            """
        )
    )
    return path


def run_workers(url: str, job: Path, n: int, output: Path) -> tuple[float, list[str]]:
    """Starts `n` copies of deploy/worker.sh on `job`; returns the wall time and outputs."""
    env = dict(
        os.environ,
        KERAS_SMELU_STORAGE=url,
        KERAS_SMELU_JOB=str(job),
        KERAS_SMELU_OUTPUT=str(output),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.setdefault("KERAS_BACKEND", "jax")
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(WORKER)],
            env=dict(env, WORKER_ID=str(i)),
            cwd=job.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    for p, out in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed ({p.returncode}):\n{out[-3000:]}")
    return wall, outputs


def study_figures(url: str, name: str, outputs: list[str], launched: float) -> dict[str, float]:
    """What the study holds after a run; `launched` is the launch time (epoch seconds)."""
    import optuna

    from keras_smelu.tuning._optuna_backend import make_storage

    storage = make_storage(url)
    study = optuna.load_study(study_name=f"{name}/embedding_mlp", storage=storage)
    reference = optuna.load_study(study_name=f"{name}/embedding_mlp/reference", storage=storage)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "FAIL")]
    surplus = [t for t in study.trials if t.user_attrs.get("surplus")]
    reported = [
        int(line.split(" #")[1].split()[0])
        for out in outputs
        for line in out.splitlines()
        if line.startswith("[embedding_mlp]") and " #" in line
    ]
    first_start = min(t.datetime_start.timestamp() for t in finished)
    return {
        "finished": len(finished),
        "surplus": len(surplus),
        "duplicates": len(reported) - len(set(reported)),
        "unreported": len({t.number + 1 for t in finished} - set(reported)),
        "references": sum(t.state.name == "COMPLETE" for t in reference.trials),
        "startup_s": first_start - launched,
        "trial_s": sum((t.datetime_complete - t.datetime_start).total_seconds() for t in finished),
    }


@contextlib.contextmanager
def server(url: str | None):
    if url:
        yield url
        return
    from tests._postgres import postgres_url

    with postgres_url() as started:
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,3")
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--storage", default=os.environ.get("KERAS_SMELU_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    print(
        f"job: synthetic {args.rows}/{args.test_rows} rows, {args.trials} trials x "
        f"{args.pairs} pairs x {args.epochs} epochs (+ ReLU); {os.cpu_count()} CPUs"
    )
    header = (
        f"{'workers':>7} {'wall_s':>7} {'startup_s':>9} {'trials_s':>8} {'finished':>8} "
        f"{'surplus':>7} {'dup':>3} {'lost':>4} {'relu':>4}"
    )
    walls = {}
    with server(args.storage) as url, tempfile.TemporaryDirectory() as tmp:
        print(header)
        for n in counts:
            name = f"bench-{n}w-{uuid.uuid4().hex[:6]}"
            job = write_job(Path(tmp), name, args)
            launched = time.time()
            wall, outputs = run_workers(url, job, n, Path(tmp) / name)
            f = study_figures(url, name, outputs, launched)
            walls[n] = wall
            lost = args.trials - f["finished"] + f["unreported"]
            print(
                f"{n:>7} {wall:>7.1f} {f['startup_s']:>9.1f} {f['trial_s']:>8.1f} "
                f"{f['finished']:>8} {f['surplus']:>7} {f['duplicates']:>3} {lost:>4} "
                f"{f['references']:>4}",
                flush=True,
            )
    base = min(counts)
    for n in counts:
        if n != base:
            print(f"speed-up {base} -> {n} workers: {walls[base] / walls[n]:.2f}x (wall ratio)")


if __name__ == "__main__":
    main()
