"""Many workers on one PostgreSQL study, started the way the `deploy/` recipes start them.

Docker, Kubernetes and Slurm are not run here: their files are checked to run
`deploy/worker.sh` on `deploy/job.toml` with the storage URL from `KERAS_SMELU_STORAGE`, and
that very script is what the multi-worker test starts, three times, on a real server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from keras_smelu import tuning
from keras_smelu.cli import main
from keras_smelu.tuning import JobError, load_job
from keras_smelu.tuning._job import job_from_dict
from keras_smelu.tuning._optuna_backend import make_storage
from tests._postgres import PostgresUnavailable, postgres_url
from tests._subprocess import REPO

DEPLOY = REPO / "deploy"
WORKER = DEPLOY / "worker.sh"
VARIABLE = "KERAS_SMELU_STORAGE"
WORKER_COMMAND = "keras-smelu-worker"  # deploy/worker.sh, as the image installs it
JOB_PATH = "/etc/keras-smelu/job.toml"
N_WORKERS = 3


def _job_table(storage: str) -> dict:
    return {"job": {"name": "w", "storage": storage}, "data": {"dataset": "synthetic"}}


# ---------------------------------------------------------------- storage = "env:NAME"


def test_env_storage_is_read_from_the_variable_it_names():
    job = job_from_dict(_job_table(f"env:{VARIABLE}")).job
    url = "postgresql+psycopg2://u:p@db.example:5432/studies"
    assert job.storage_url({VARIABLE: url}) == url
    assert job.storage_url({VARIABLE: "journal:/tmp/j.log"}) == "journal:/tmp/j.log"
    for environ in ({}, {VARIABLE: ""}):
        with pytest.raises(JobError, match=rf"\[job\] storage: .*{VARIABLE} is not set") as error:
            job.storage_url(environ)
        assert error.value.field == "[job] storage"
    with pytest.raises(JobError, match=rf"{VARIABLE} = 'study\.db'"):
        job.storage_url({VARIABLE: "study.db"})
    # Other forms are returned as written; omitted means the default storage.
    assert job_from_dict(_job_table("sqlite:///s.db")).job.storage_url({}) == "sqlite:///s.db"
    assert job_from_dict(_job_table("")).job.storage_url({}) is None


@pytest.mark.parametrize("storage", ["env:", "env:1ABC", "env:MY-URL"])
def test_a_malformed_env_storage_is_refused_when_the_job_loads(storage):
    with pytest.raises(JobError, match=r"\[job\] storage: expected 'env:<NAME>'"):
        job_from_dict(_job_table(storage))


def test_cli_names_the_unset_variable_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(VARIABLE, raising=False)
    job = tmp_path / "job.toml"
    job.write_text((DEPLOY / "job.toml").read_text())
    output = tmp_path / "out"
    assert main(["tune", str(job), "--output", str(output), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{VARIABLE} is not set" in err and err.count("\n") == 1
    assert not output.exists()


# ---------------------------------------------------------------- the recipes' files


def test_the_recipe_job_file_takes_its_storage_from_the_variable():
    job = load_job(DEPLOY / "job.toml")
    assert job.job.backend == "optuna" and job.job.storage == f"env:{VARIABLE}"
    assert job.data.dataset == "synthetic"  # each worker generates it: nothing to ship


def test_the_image_runs_the_worker_script_on_the_recipe_job():
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    copies = {tuple(line.split()[1:3]) for line in lines if line.startswith("COPY ")}
    assert ("deploy/worker.sh", f"/usr/local/bin/{WORKER_COMMAND}") in copies
    assert ("deploy/job.toml", JOB_PATH) in copies
    assert f'ENTRYPOINT ["{WORKER_COMMAND}"]' in lines
    install = next(line for line in lines if "pip install" in line)
    assert "postgresql" in install and "tuning" in install  # the driver and Optuna
    assert "USER 1000" in lines  # Kubernetes' runAsUser below


def test_compose_runs_workers_against_its_postgres_service():
    from sqlalchemy.engine import make_url

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    postgres, worker = compose["services"]["postgres"], compose["services"]["worker"]
    assert postgres["image"].startswith("postgres:") and "healthcheck" in postgres
    assert worker["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert "command" not in worker and "entrypoint" not in worker  # the image's worker script
    assert worker["deploy"]["replicas"] >= N_WORKERS
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = worker["environment"]
    assert env["KERAS_SMELU_JOB"] == JOB_PATH and f"./job.toml:{JOB_PATH}:ro" in worker["volumes"]

    def substituted(text):  # compose's ${NAME:-default}, with the defaults
        return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)

    url = make_url(substituted(env[VARIABLE]))
    server = {k: substituted(v) for k, v in postgres["environment"].items()}
    assert url.drivername == "postgresql+psycopg2" and url.host == "postgres"
    assert (url.username, url.password, url.database) == (
        server["POSTGRES_USER"],
        server["POSTGRES_PASSWORD"],
        server["POSTGRES_DB"],
    )


def test_kubernetes_indexed_job_runs_the_worker_with_the_url_from_a_secret():
    manifest = yaml.safe_load((DEPLOY / "k8s-job.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= N_WORKERS
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("OnFailure", "Never")
    assert pod["securityContext"]["runAsUser"] == 1000
    (container,) = pod["containers"]
    assert container["command"] == [WORKER_COMMAND]
    env = {e["name"]: e for e in container["env"]}
    assert set(env[VARIABLE]["valueFrom"]) == {"secretKeyRef"}
    assert env["KERAS_SMELU_JOB"]["value"] == JOB_PATH
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["job"] == str(Path(JOB_PATH).parent) and "configMap" in volumes["job"]


def test_slurm_array_runs_the_worker_script_once_per_task():
    text = (DEPLOY / "slurm-array.sh").read_text()
    first, last = re.search(r"^#SBATCH --array=(\d+)-(\d+)$", text, re.M).groups()
    assert int(last) - int(first) + 1 >= N_WORKERS
    assert text.rstrip().splitlines()[-1] == "exec deploy/worker.sh"
    assert 'cd "${SLURM_SUBMIT_DIR' in text  # relative paths are the repository's


@pytest.mark.parametrize("script", ["worker.sh", "slurm-array.sh"])
def test_scripts_are_valid_shell(script):
    path = DEPLOY / script
    assert os.access(path, os.X_OK)
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(path)], check=True)
    if shutil.which("shellcheck"):  # optional here; the scripts are written to pass it
        done = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


# ---------------------------------------------------------------- three workers, one server


@pytest.fixture(scope="module")
def postgres():
    try:
        with postgres_url() as url:
            yield url
    except PostgresUnavailable as why:
        pytest.skip(f"PostgreSQL storage not tested: {why}")


def _tiny_job(directory: Path, name: str, trials: int) -> Path:
    path = directory / "job.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            name = "{name}"
            trials = {trials}
            storage = "env:{VARIABLE}"

            [data]
            dataset = "synthetic"
            n_train = 600
            n_test = 200

            [model]
            hidden = [8]
            embedding_dim = 4

            [training]
            epochs = 1
            pairs = 1
            """
        )
    )
    return path


def start_worker(url: str, job: Path, output: Path, worker_id: str) -> subprocess.Popen:
    """`deploy/worker.sh` as a recipe runs it: the variables set, `keras-smelu` on PATH."""
    env = dict(
        os.environ,
        KERAS_SMELU_STORAGE=url,
        KERAS_SMELU_JOB=str(job),
        KERAS_SMELU_OUTPUT=str(output),
        WORKER_ID=worker_id,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.setdefault("KERAS_BACKEND", "jax")
    return subprocess.Popen(
        [str(WORKER)],
        cwd=job.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _reported_numbers(output: str) -> list[int]:
    """The record numbers of the trials a worker ran ("[model] ... #N width: ..." lines)."""
    return [
        int(line.split(" #")[1].split()[0])
        for line in output.splitlines()
        if line.startswith("[embedding_mlp]") and " #" in line
    ]


@pytest.mark.slow
def test_three_workers_fill_one_postgres_study_exactly_once(tmp_path, postgres):
    trials = 6
    name = f"workers-{uuid.uuid4().hex[:8]}"  # an external server may hold earlier runs
    job = _tiny_job(tmp_path, name, trials)
    runs = tmp_path / "runs"
    workers = [start_worker(postgres, job, runs, str(i)) for i in range(N_WORKERS)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * N_WORKERS, outputs

    storage = make_storage(postgres)
    study = optuna.load_study(study_name=f"{name}/embedding_mlp", storage=storage)
    states = [t.state.name for t in study.trials]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    # Exactly the trials asked for; nothing left running or lost to a dead worker; a trial a
    # worker opened past the cap was pruned as surplus, untrained.
    assert len(complete) == trials, states
    for t in study.trials:
        assert t.state.name == "COMPLETE" or t.user_attrs.get("surplus"), (t.number, t.state)
    assert len({t.params["width"] for t in complete}) == trials  # samplers seeded apart
    # ReLU: one complete reference for all workers (a simultaneous start is pruned).
    reference = optuna.load_study(study_name=f"{name}/embedding_mlp/reference", storage=storage)
    ref_states = sorted(t.state.name for t in reference.trials)
    assert ref_states.count("COMPLETE") == 1 and set(ref_states) <= {"COMPLETE", "PRUNED"}
    # Every stored trial was run by exactly one worker: no duplicate, no gap.
    reported = [n for out in outputs for n in _reported_numbers(out)]
    assert sorted(reported) == [0] + sorted(t.number + 1 for t in complete), outputs
    ran = {i for i, out in enumerate(outputs) if any(n > 0 for n in _reported_numbers(out))}
    assert len(ran) >= 2, outputs  # the trials were shared, not run by one worker
    pids = {t.user_attrs["worker"]["pid"] for t in complete}
    assert len(pids) == len(ran)
    for i in range(N_WORKERS):
        result = tuning.TuningReport.load(runs / f"worker-{i}").results["embedding_mlp"]
        assert result.reference is not None
        assert {t.trial_id for t in result.candidates} <= {t._trial_id for t in complete}

    # The same command once more, after the workers: it trains nothing and reports the study.
    last = start_worker(postgres, job, runs, "report")
    out = last.communicate(timeout=600)[0]
    assert last.returncode == 0, out
    assert _reported_numbers(out) == []
    result = tuning.TuningReport.load(runs / "worker-report").results["embedding_mlp"]
    assert {t.trial_id for t in result.candidates} == {t._trial_id for t in complete}
    assert result.reference is not None and result.reference.is_complete
