"""The Optuna backend end to end: real studies, real training, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import keras
import numpy as np
import optuna
import pytest

from keras_smelu import tuning
from keras_smelu.tuning import _optuna_backend, pareto_front_indices
from keras_smelu.tuning._optuna_backend import make_storage
from keras_smelu.tuning._record import TrialRecord
from tests._postgres import PostgresUnavailable, postgres_url
from tests._subprocess import REPO
from tests._tuning_fixtures import tiny_builder, tiny_dataset, write_job


def _study(storage, name):
    return optuna.load_study(study_name=name, storage=make_storage(storage))


def test_tune_end_to_end_and_frontier_matches_best_trials(tmp_path, capsys):
    dataset = tiny_dataset()
    kwargs = dict(trials=3, pairs=1, epochs=1, study_name="e2e", output=tmp_path)
    report = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs)
    result = report.results["mlp"]
    assert result.reference is not None and len(result.candidates) == 3
    for trial in result.complete_trials:
        assert np.isfinite(trial.accuracy) and trial.pd >= 0 and trial.seeds
        assert trial.system["keras_backend"] == keras.backend.backend()
    # Common random numbers: every trial trains pair 1 with the same seed.
    assert len({t.seeds for t in result.complete_trials}) == 1

    # The search trials' frontier is Optuna's own Pareto front of the study.
    study = _study(f"sqlite:///{tmp_path / 'study.db'}", "e2e/mlp")
    candidates = result.candidates
    on_front = pareto_front_indices([t.values for t in candidates], result.directions)
    assert {candidates[i].trial_id for i in on_front} == {t._trial_id for t in study.best_trials}
    # The ReLU reference lives in a study of its own, so the samplers see one search space.
    reference = _study(f"sqlite:///{tmp_path / 'study.db'}", "e2e/mlp/reference")
    assert [t._trial_id for t in reference.trials] == [result.reference.trial_id]
    assert optuna.search_space.intersection_search_space(study.trials) != {}
    # One pair per trial gives no interval: the decision keeps ReLU and says why.
    assert result.recommended is None
    assert "no interval" in " ".join(result.decision.reasons)
    for name in ("results.json", "trials.csv", "frontier-mlp.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "[mlp] reference" in out and "[mlp] trial 3/3" in out

    # Rerunning the finished study trains nothing and returns the same trials.
    again = tuning.tune({"mlp": tiny_builder(dataset)}, dataset, verbose=0, **kwargs)
    assert again.results["mlp"].trials == result.trials


def test_diverging_trials_are_recorded_as_failed_and_the_study_goes_on(tmp_path):
    dataset = tiny_dataset()
    build = tiny_builder(dataset)

    def build_nan_unless_relu(activation):
        model = build(activation)
        if not isinstance(activation, keras.layers.ReLU):  # a loss that is NaN from the start
            model.compile(optimizer="adam", loss=lambda y, p: keras.ops.log(p - 2.0))
        return model

    report = tuning.tune(
        {"mlp": build_nan_unless_relu},
        dataset,
        trials=2,
        pairs=1,
        epochs=1,
        output=tmp_path,
        verbose=0,
    )
    result = report.results["mlp"]
    assert result.reference is not None
    assert len(result.failed_trials) == 2
    assert all("nan" in t.fail_reason.lower() for t in result.failed_trials)


def test_invalid_arguments_fail_before_training(tmp_path):
    dataset = tiny_dataset()
    with pytest.raises(ValueError, match="width_low"):
        tuning.tune(tiny_builder(dataset), dataset, width_range=(1.0, 0.5), output=tmp_path)
    with pytest.raises(ValueError, match="direction"):
        tuning.tune(tiny_builder(dataset), dataset, accuracy="my_metric", output=tmp_path)
    with pytest.raises(ValueError, match="backend"):
        tuning.tune(tiny_builder(dataset), dataset, backend="hyperopt", output=tmp_path)
    with pytest.raises(ValueError, match="pairs"):
        tuning.tune(tiny_builder(dataset), dataset, pairs=0, output=tmp_path)
    with pytest.raises(ValueError, match="vary"):
        tuning.tune(tiny_builder(dataset), dataset, vary="everything", output=tmp_path)
    assert not (tmp_path / "study.db").exists()


def test_an_unmeasured_accuracy_metric_stops_the_study(tmp_path):
    # The model compiles no "precision": a setup error, not a failed width; nothing goes on.
    dataset = tiny_dataset()
    with pytest.raises(ValueError, match="precision"):
        tuning.tune(
            tiny_builder(dataset),
            dataset,
            accuracy="precision",
            trials=3,
            pairs=1,
            epochs=1,
            output=tmp_path,
            verbose=0,
        )


def _interruptible() -> None:
    # A test run started in the background of a shell inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the CLI the disposition a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, "-m", "keras_smelu.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_interruptible,
        **kwargs,
    )


def _finished(study):
    return {t._trial_id: t.values for t in study.get_trials() if t.state.name == "COMPLETE"}


def _wait_for_complete_trials(proc, storage_file, study_name, count, timeout=300):
    """Polls the study until it holds `count` complete trials; returns them."""
    deadline = time.time() + timeout
    found = {}
    while time.time() < deadline and proc.poll() is None:
        time.sleep(1)
        if not storage_file.exists():
            continue
        try:
            found = _finished(_study(f"sqlite:///{storage_file}", study_name))
        except KeyError:  # the study does not exist yet
            continue
        if len(found) >= count:
            break
    if proc.poll() is not None:
        raise AssertionError(f"the job ended before it could be interrupted:\n{proc.stdout.read()}")
    return found


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_keeping_completed_trials(tmp_path):
    job = write_job(tmp_path, trials=4)
    storage_file = tmp_path / "out" / "study.db"
    proc = _cli("tune", str(job))
    _wait_for_complete_trials(proc, storage_file, "tiny/embedding_mlp", 1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "Interrupted" in out and "resume" in out
    kept = _finished(_study(f"sqlite:///{storage_file}", "tiny/embedding_mlp"))
    assert len(kept) >= 1
    # What was completed is also in the results written on the way out.
    report = tuning.TuningReport.load(tmp_path / "out")
    assert {t.trial_id for t in report.results["embedding_mlp"].candidates} == set(kept)


@pytest.mark.slow
def test_resume_after_sigkill_keeps_every_completed_trial(tmp_path):
    job = write_job(tmp_path, trials=4)
    storage = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    proc = _cli("tune", str(job))
    _wait_for_complete_trials(proc, tmp_path / "out" / "study.db", "tiny/embedding_mlp", 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _finished(_study(storage, "tiny/embedding_mlp"))
    assert len(before) >= 2

    resumed = _cli("tune", str(job))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    after = _finished(_study(storage, "tiny/embedding_mlp"))
    for number, values in before.items():
        assert after[number] == values  # kept, not redone
    assert len(after) == 4
    reference = _study(storage, "tiny/embedding_mlp/reference")
    assert len(_finished(reference)) == 1
    report = tuning.TuningReport.load(tmp_path / "out")
    assert len(report.results["embedding_mlp"].complete_trials) == 5


# A worker killed after the storage created its trial and before the objective's first line:
# at `ask` (no heartbeat yet) or inside `optimize` (a heartbeat, no worker recorded).
_KILLED_BEFORE_THE_OBJECTIVE = """
import os, signal, sys
import optuna
from keras_smelu.tuning._optuna_backend import make_storage

storage, name, at = sys.argv[1:]
study = optuna.load_study(study_name=name, storage=make_storage(storage))
if at == "ask":
    study.ask()
    os.kill(os.getpid(), signal.SIGKILL)
study.optimize(lambda trial: os.kill(os.getpid(), signal.SIGKILL), n_trials=1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind, killed_at", [("sqlite", "optimize"), ("journal", "ask")])
def test_a_trial_killed_before_its_objective_ran_is_failed_and_replaced(tmp_path, kind, killed_at):
    storage = {
        "sqlite": f"sqlite:///{tmp_path / 'study.db'}",
        "journal": f"journal:{tmp_path / 'journal.log'}",
    }[kind]
    name = "tiny/embedding_mlp"
    job = write_job(tmp_path, trials=3)
    first = _cli("tune", str(job), "--storage", storage, "--trials", "2")
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_THE_OBJECTIVE, storage, name, killed_at],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (orphan,) = [t for t in _study(storage, name).trials if t.state.name == "RUNNING"]
    assert orphan.user_attrs == {}  # nothing tells which process ran it

    # Resumed at once, usually before the orphan is old enough to be judged dead: the run then
    # counts it as running, waits, fails it as interrupted, and runs the trial it left missing.
    resumed = _cli("tune", str(job), "--storage", storage)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    trials = {t.number: t for t in _study(storage, name).trials}
    assert trials[orphan.number].state.name == "FAIL"
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 3
    result = tuning.TuningReport.load(tmp_path / "out").results["embedding_mlp"]
    (interrupted,) = result.failed_trials
    assert interrupted.number == orphan.number + 1
    assert interrupted.fail_reason == _optuna_backend.INTERRUPTED_REASON
    assert len(result.complete_trials) == 4  # the reference and 3 search trials


@pytest.fixture(scope="module")
def postgres():
    try:
        with postgres_url() as url:
            yield url
    except PostgresUnavailable as why:
        pytest.skip(f"PostgreSQL storage not tested: {why}")


@pytest.fixture(params=["journal", "postgresql"])
def shared_storage(request, tmp_path):
    """A storage several worker processes share: a journal file (one machine), a PostgreSQL
    database (many machines)."""
    if request.param == "journal":
        return f"journal:{tmp_path / 'journal.log'}"
    return request.getfixturevalue("postgres")


@pytest.mark.slow
def test_two_workers_share_a_study(tmp_path, shared_storage):
    job_name = f"tiny-{uuid.uuid4().hex[:8]}"  # an external server may hold earlier runs
    job = write_job(tmp_path, trials=4, name=job_name)
    workers = [
        _cli(
            "tune",
            str(job),
            "--storage",
            shared_storage,
            "--output",
            str(tmp_path / f"out{i}"),
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    study = _study(shared_storage, f"{job_name}/embedding_mlp")
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    # Each worker stops once the study holds 4 search trials; one may finish a last one.
    assert 4 <= len(complete) <= 5
    # The workers drew different widths (their samplers are seeded apart).
    widths = [t.params["width"] for t in complete]
    assert len(set(widths)) == len(widths)
    # ReLU was evaluated once: on a journal file the workers took turns under a file lock; on
    # a server, a worker that started it at the same time was pruned as a duplicate.
    reference = _study(shared_storage, f"{job_name}/embedding_mlp/reference")
    states = sorted(t.state.name for t in reference.trials)
    assert states.count("COMPLETE") == 1 and set(states) <= {"COMPLETE", "PRUNED"}, states
    if shared_storage.startswith("journal:"):
        assert len(reference.trials) == 1
    # Every trial a worker reported is in the shared study, each reported by one worker only
    # (records are numbered: 0 the reference, k + 1 search trial k).
    reported = [
        int(line.split(" #")[1].split()[0])
        for out in outputs
        for line in out.splitlines()
        if line.startswith("[embedding_mlp]") and " #" in line
    ]
    assert sorted(reported) == [0] + sorted(t.number + 1 for t in complete)
    # Each worker's results hold the one reference and the study's trials done by its end.
    for i in range(2):
        result = tuning.TuningReport.load(tmp_path / f"out{i}").results["embedding_mlp"]
        assert result.reference is not None
        ids = {t.trial_id for t in result.candidates}
        assert len(ids) >= 4 and ids <= {t._trial_id for t in complete}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the other worker's ask()
def test_reference_on_a_server_waits_for_a_live_worker_and_redoes_a_dead_ones(
    postgres, monkeypatch
):
    # No file lock spans the machines of a server: heartbeats tell a live worker from a dead one.
    monkeypatch.setattr(_optuna_backend, "_HEARTBEAT_S", 1)  # a 2 s grace period
    storage = make_storage(postgres)
    ref_study = optuna.create_study(
        study_name=f"ref-{uuid.uuid4().hex[:8]}",
        storage=storage,
        directions=["minimize", "minimize"],
    )
    evaluated = []

    def run(point, number):
        evaluated.append(point)
        return TrialRecord(number, "m", point.family, point.width, accuracy=0.5, pd=0.1)

    elsewhere = ref_study.ask()  # another machine's worker evaluating the reference
    storage.record_heartbeat(elsewhere._trial_id)
    assert _optuna_backend._evaluate_reference(ref_study, postgres, run, "m") is None
    assert evaluated == []

    time.sleep(3)  # that worker died: its heartbeat is older than the grace period
    record = _optuna_backend._evaluate_reference(ref_study, postgres, run, "m")
    assert record is not None and record.family == "relu" and len(evaluated) == 1
    states = [t.state.name for t in ref_study.get_trials()]
    assert states == ["FAIL", "COMPLETE"]
    # The reference is done: nobody evaluates it again.
    assert _optuna_backend._evaluate_reference(ref_study, postgres, run, "m") is None
    assert len(evaluated) == 1


def test_resume_with_other_settings_is_refused(tmp_path):
    dataset = tiny_dataset()
    kwargs = dict(trials=1, epochs=1, study_name="setup", output=tmp_path, verbose=0)
    tuning.tune({"mlp": tiny_builder(dataset)}, dataset, pairs=1, **kwargs)
    with pytest.raises(ValueError, match=r"other settings \(settings\.pairs: 1 -> 2\)"):
        tuning.tune({"mlp": tiny_builder(dataset)}, dataset, pairs=2, **kwargs)
