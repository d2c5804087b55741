"""No silent wrong results: mixed experiments, degenerate models, races, kills, bad inputs, a
full disk. Races and kills use real processes; the full disk is a real (tiny) tmpfs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from keras_smelu import cli, models, tuning
from keras_smelu.tuning import _optuna_backend
from keras_smelu.tuning._fingerprint import data_fingerprint, experiment_fingerprint
from keras_smelu.tuning._optuna_backend import INTERRUPTED_REASON, make_storage
from keras_smelu.tuning._results import TuningReport
from tests._subprocess import REPO
from tests._tuning_fixtures import tiny_builder, tiny_dataset, write_job

# One search trial, no reference: the cheapest study that trains anything.
ONE = dict(trials=1, pairs=1, epochs=1, reference=False, verbose=0, compilation_cache=False)
NO_REFERENCE = ["--set", "search.reference=false"]


def _study(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=make_storage(storage))


def _env():
    return dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )


def _cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_smelu.cli", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _one_line_error(capsys) -> str:
    """The CLI's stderr: exactly one line, `keras-smelu: ...`, no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("keras-smelu:")]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------- mixed experiments


def test_the_fingerprint_tells_data_and_models_apart_and_is_stable():
    dataset = tiny_dataset()
    build = tiny_builder(dataset)
    first = experiment_fingerprint(build, dataset.train, dataset.test)
    # The same experiment built again in the same process (Keras numbers layer names anew).
    assert experiment_fingerprint(build, dataset.train, dataset.test) == first
    x, y = dataset.train
    changed = np.array(y, copy=True)
    changed[0] = 1 - changed[0]  # one label differs: another data set
    assert data_fingerprint((x, changed)) != first["data.train"]
    assert data_fingerprint((x, y)) == first["data.train"]

    def faster(activation):
        return models.embedding_mlp(
            dataset, activation=activation, hidden=(8,), embedding_dim=4, learning_rate=0.1
        )

    other = experiment_fingerprint(faster, dataset.train, dataset.test)
    assert other["model.learning_rate"] == pytest.approx(0.1)
    assert other["model.config_sha256"] != first["model.config_sha256"]
    for key in ("version.keras", "version.numpy", "version.backend", "version.keras_smelu"):
        assert first[key]
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.zeros((5, 2)), np.zeros(5))).batch(2)
    assert "cardinality 3" in data_fingerprint(ds)


def test_a_resume_of_another_experiment_is_refused_naming_what_changed(tmp_path):
    dataset = tiny_dataset()
    kwargs = dict(study_name="exp", output=tmp_path, **ONE)
    tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs)

    smaller = ({k: v[:300] for k, v in dataset.train[0].items()}, dataset.train[1][:300])
    with pytest.raises(ValueError, match=r"data\.train: '600 rows.*' -> '300 rows"):
        tuning.tune({"mlp": tiny_builder(dataset)}, (smaller, dataset.test), **kwargs)

    def faster(activation):
        return models.embedding_mlp(
            dataset, activation=activation, hidden=(8,), embedding_dim=4, learning_rate=0.5
        )

    with pytest.raises(ValueError, match=r"model\.learning_rate: 0\.00\d+ -> 0\.5") as refused:
        tuning.tune({"mlp": faster}, dataset, **kwargs)
    assert "new_study" in str(refused.value)  # the way out is named

    # On request, the other experiment runs in a study of its own; the first one is untouched.
    report = tuning.tune({"mlp": faster}, dataset, on_mismatch="new_study", **kwargs)
    assert report.results["mlp"].study_name == "exp/mlp.2"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert len(_study(storage, "exp/mlp").trials) == 1
    assert len(_study(storage, "exp/mlp.2").trials) == 1
    with pytest.raises(ValueError, match="on_mismatch"):
        tuning.tune({"mlp": faster}, dataset, on_mismatch="ignore", **kwargs)


def test_a_keras_tuner_resume_of_another_experiment_is_refused(tmp_path):
    dataset = tiny_dataset()
    kwargs = dict(backend="keras_tuner", study_name="kt", output=tmp_path, **ONE)
    tuning.tune({"mlp": tiny_builder(dataset)}, dataset, **kwargs)
    stored = json.loads((tmp_path / "keras_tuner" / "mlp" / "keras_smelu.json").read_text())
    assert stored["data.train"].startswith("600 rows")
    other_eval = ({k: v[:100] for k, v in dataset.test[0].items()}, dataset.test[1][:100])
    with pytest.raises(ValueError, match=r"data\.eval: '200 rows.*' -> '100 rows"):
        tuning.tune({"mlp": tiny_builder(dataset)}, (dataset.train, other_eval), **kwargs)
    report = tuning.tune(
        {"mlp": tiny_builder(dataset)},
        (dataset.train, other_eval),
        on_mismatch="new_study",
        **kwargs,
    )
    assert report.results["mlp"].study_name == "mlp.2"
    assert (tmp_path / "keras_tuner" / "mlp.2" / "keras_smelu.json").exists()


def test_a_job_resumed_with_other_data_rows_is_refused_by_the_cli(tmp_path, capsys):
    job = write_job(tmp_path, trials=1)
    assert cli.main(["tune", str(job), "--quiet", *NO_REFERENCE]) == 0
    capsys.readouterr()
    changed = ["--set", "data.n_train=300"]
    assert cli.main(["tune", str(job), "--quiet", *NO_REFERENCE, *changed]) == 2
    line = _one_line_error(capsys)
    assert "job.data.n_train: 600 -> 300" in line and "data.train: '600 rows" in line
    assert "--new-study" in line
    assert cli.main(["tune", str(job), "--quiet", *NO_REFERENCE, *changed, "--new-study"]) == 0
    storage = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    new = _study(storage, "tiny/embedding_mlp.2")
    assert [t.state.name for t in new.trials] == ["COMPLETE"]
    assert len(_study(storage, "tiny/embedding_mlp").trials) == 1


# --------------------------------------------------------------------------- degenerate models


def test_a_model_whose_predictions_saturate_fails_its_trial_with_the_reason(tmp_path):
    dataset = tiny_dataset()

    def diverging(activation):  # Keras clips the loss: nothing turns NaN, outputs saturate
        return models.embedding_mlp(
            dataset, activation=activation, hidden=(8,), embedding_dim=4, learning_rate=1e3
        )

    report = tuning.tune({"mlp": diverging}, dataset, output=tmp_path, **ONE)
    result = report.results["mlp"]
    assert result.complete_trials == [] and len(result.failed_trials) == 1
    reason = result.failed_trials[0].fail_reason
    assert "degenerate" in reason and "do not spread" in reason
    assert "no better than the constant base-rate model" in reason
    assert result.frontier == []  # nothing sits at the low-PD end


# --------------------------------------------------------------------------- races and lost results

_WRITER = """
import sys
from keras_smelu.tuning._record import TrialRecord
from keras_smelu.tuning._results import TuningReport, TuningResult
worker, out = int(sys.argv[1]), sys.argv[2]
for i in range(25):
    trials = tuple(
        TrialRecord(k, "m", "smelu", 0.1 * (k + 1), accuracy=0.5, pd=0.1, fail_reason=None)
        for k in range(1 + (i * 37 + worker * 11) % 60)  # files of varying length
    )
    report = TuningReport.from_results(
        [TuningResult("m", trials)], {"study_name": "race", "writer": worker, "round": i}
    )
    report.save(out, plots=False)
"""

_READER = """
import json, sys, time
from pathlib import Path
path = Path(sys.argv[1]) / "results.json"
stop = Path(sys.argv[2])
deadline = time.time() + 600
reads = 0
while not stop.exists() and time.time() < deadline:
    try:
        text = path.read_text()
    except FileNotFoundError:
        continue
    json.loads(text)  # raises on a partial file
    reads += 1
print(reads)
"""


@pytest.mark.slow
def test_concurrent_writers_never_show_readers_a_partial_results_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = [sys.executable, "-c"]
    kwargs = dict(cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([*run, _READER, str(out), str(stop)], **kwargs) for _ in range(2)]
    writers = [subprocess.Popen([*run, _WRITER, str(w), str(out)], **kwargs) for w in range(3)]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    stop.touch()
    for proc in readers:
        stdout, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]  # a partial file would raise in json.loads
        assert int(stdout) > 0  # it did read while the writers wrote
    report = TuningReport.load(out)
    assert report.metadata["round"] == 24  # a complete file from one writer's last round
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_an_output_folder_of_another_job_is_refused_naming_it(tmp_path, capsys):
    out = tmp_path / "out"
    TuningReport.from_results([], {"study_name": "other-job"}).save(out, plots=False)
    before = (out / "results.json").read_text()
    dataset = tiny_dataset()
    with pytest.raises(ValueError, match="another job, 'other-job'"):
        tuning.tune({"mlp": tiny_builder(dataset)}, dataset, study_name="mine", output=out, **ONE)
    assert not (out / "study.db").exists()  # nothing trained
    job = write_job(tmp_path, trials=1)
    assert cli.main(["tune", str(job), "--quiet"]) == 2
    assert "other-job" in _one_line_error(capsys)
    assert (out / "results.json").read_text() == before


@pytest.mark.slow
def test_workers_with_one_seed_share_a_study_without_repeats_or_extra_trials(tmp_path):
    # Two workers with the same job (same seed) on one SQLite study and one output folder.
    job = write_job(tmp_path, trials=3)
    workers = [_cli("tune", str(job)) for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[-3000:] for o in outputs]
    study = _study(f"sqlite:///{tmp_path / 'out' / 'study.db'}", "tiny/embedding_mlp")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3  # a hard cap across workers
    widths = [t.params["width"] for t in complete]
    assert len(set(widths)) == 3  # each worker drew its own widths
    assert not any("trial 4/3" in out for out in outputs)
    surplus = [t for t in study.trials if t.state.name == "PRUNED"]
    assert all(t.user_attrs.get("surplus") for t in surplus)


def _wait_for(study_file: Path, name: str, condition, proc, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first:\n{proc.stdout.read()[-3000:]}")
        if study_file.exists():
            try:
                trials = _study(f"sqlite:///{study_file}", name).trials
            except KeyError:
                trials = []
            if condition(trials):
                return trials
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_a_killed_trial_is_reported_as_interrupted_and_failed_on_resume(tmp_path):
    job = write_job(tmp_path, trials=2)
    study_file = tmp_path / "out" / "study.db"
    storage = f"sqlite:///{study_file}"
    proc = _cli("tune", str(job), *NO_REFERENCE)

    def one_done_one_running(trials):
        states = [t.state.name for t in trials]
        running = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
        return states.count("COMPLETE") == 1 and len(running) == 1

    _wait_for(study_file, "tiny/embedding_mlp", one_done_one_running, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Before any resume (well within the heartbeat's grace period) it reads as interrupted.
    assert _study(storage, "tiny/embedding_mlp").trials[1].state.name == "RUNNING"
    settings = tuning.TrialSettings()
    result = _optuna_backend.load_result(storage, "tiny/embedding_mlp", "embedding_mlp", settings)
    (failed,) = result.failed_trials
    assert failed.fail_reason == INTERRUPTED_REASON and len(result.complete_trials) == 1

    resumed = _cli("tune", str(job), *NO_REFERENCE)
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    states = [t.state.name for t in _study(storage, "tiny/embedding_mlp").trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    report = TuningReport.load(tmp_path / "out").results["embedding_mlp"]
    assert [t.fail_reason for t in report.failed_trials] == [INTERRUPTED_REASON]
    assert len(report.complete_trials) == 2


# --------------------------------------------------------------------------- bad inputs


def _bad_job_cases(tmp_path):
    job = write_job(tmp_path, trials=1)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return job, [
        ("--output naming a file", ["tune", str(job), "--output", str(a_file)], "a file"),
        ("unknown storage scheme", ["tune", str(job), "--storage", "nosuch://db"], "scheme"),
        (
            "journal inside a file",
            ["tune", str(job), "--storage", f"journal:{a_file}/journal.log"],
            "is a file",
        ),
        (
            "sqlite inside a file",
            ["tune", str(job), "--storage", f"sqlite:///{a_file}/study.db"],
            "is a file",
        ),
        (
            "wrong type in data.options",
            ["tune", str(job), "--set", 'data.options={n_users="many"}'],
            "[data] options",
        ),
        (
            "absurd grid",
            ["tune", str(job), "--set", "job.sampler=grid", "--trials", "1000000000000"],
            "grid",
        ),
        ("job path is a folder", ["tune", str(tmp_path)], "folder"),
        ("no trials", ["tune", str(job), "--trials", "0"], "--trials"),
    ]


def test_bad_command_lines_end_in_one_line_and_exit_code_2(tmp_path, capsys):
    job, cases = _bad_job_cases(tmp_path)
    for label, argv, expected in cases:
        assert cli.main(argv) == 2, label
        line = _one_line_error(capsys)
        assert expected in line, (label, line)
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc["results"]["m"]["trials"][0].update(number=None),
        lambda doc: doc["results"]["m"]["trials"][0].update(width="wide"),
        lambda doc: doc["results"]["m"].update(trials=[None]),
        lambda doc: doc["results"].update(m=None),
        lambda doc: doc.update(results=[1, 2]),
        lambda doc: doc["results"]["m"].update(directions=["up", "down"]),
    ],
)
def test_report_on_a_malformed_results_file_is_one_line(tmp_path, capsys, change):
    from keras_smelu.tuning._record import TrialRecord
    from keras_smelu.tuning._results import TuningResult

    trial = TrialRecord(1, "m", "smelu", 0.5, accuracy=0.4, pd=0.1)
    TuningReport.from_results([TuningResult("m", (trial,))], {"study_name": "x"}).save(
        tmp_path, plots=False
    )
    assert cli.main(["report", str(tmp_path)]) == 0  # the intact file reads
    capsys.readouterr()
    path = tmp_path / "results.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "results" in _one_line_error(capsys)


def test_report_on_truncated_json_is_one_line(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"format": "keras-smelu-tuning", "resu')
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "JSON" in _one_line_error(capsys)


# --------------------------------------------------------------------------- a full disk

_FULL_DISK = """
set -eu
M="$1"; OUT="$2"; JOB="$3"; KEEP="$4"; PYTHON="$5"
mount -t tmpfs -o size=1m tmpfs "$M"
cp -a "$OUT" "$M/out"
dd if=/dev/zero of="$M/filler" bs=4k 2>/dev/null || true
sed "s#$OUT#$M/out#" "$JOB" > "$M/../job-full.toml"
set +e
"$PYTHON" -m keras_smelu.cli tune "$M/../job-full.toml" --trials 2 --quiet \
    --set search.reference=false > "$KEEP/stdout" 2> "$KEEP/stderr"
echo $? > "$KEEP/rc"
ls -a "$M/out" > "$KEEP/files"
cp "$M/out/study.db" "$KEEP/study.db"
"""


def _can_mount_tmpfs(tmp_path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.mark.slow
def test_a_full_disk_says_so_in_one_line_and_keeps_the_study(tmp_path):
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("a small tmpfs cannot be mounted here (needs unshare -m and mount rights)")
    job = write_job(tmp_path, trials=1)
    first = _cli("tune", str(job), "--quiet", *NO_REFERENCE)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    mount, keep = tmp_path / "mnt" / "m", tmp_path / "keep"
    mount.mkdir(parents=True)
    keep.mkdir()
    script = tmp_path / "full.sh"
    script.write_text(textwrap.dedent(_FULL_DISK))
    subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            str(script),
            str(mount),
            str(tmp_path / "out"),
            str(job),
            str(keep),
            sys.executable,  # this interpreter: `python` on the PATH may lack the packages
        ],
        cwd=REPO,
        env=_env(),
        check=True,
        timeout=600,
    )
    assert (keep / "rc").read_text().strip() == "1"
    err = (keep / "stderr").read_text()
    ours = [line for line in err.splitlines() if line.startswith("keras-smelu:")]
    assert len(ours) == 1 and "disk full" in ours[0] and "Traceback" not in err, err[-3000:]
    files = (keep / "files").read_text().split()
    assert not [f for f in files if f.endswith(".tmp")]  # nothing partial left behind
    study = _study(f"sqlite:///{keep / 'study.db'}", "tiny/embedding_mlp")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]  # intact


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://bob:s3cr%40t@db:5432/study", "postgresql://bob:***@db:5432/study"),
        (
            "postgresql+psycopg2://u:p@h/d?sslmode=require",
            "postgresql+psycopg2://u:***@h/d?sslmode=require",
        ),
        ("postgresql://bob@db/study", "postgresql://bob@db/study"),
        ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
        ("journal:/tmp/j.log", "journal:/tmp/j.log"),
    ],
)
def test_results_never_record_a_database_password(url, shown):
    from keras_smelu.tuning._tuner import redact_password

    assert redact_password(url) == shown
