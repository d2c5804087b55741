"""The `keras-smelu` command, called in-process through `main(argv)`."""

from __future__ import annotations

import pytest

from keras_smelu import cli
from keras_smelu.tuning import TuningReport
from tests._tuning_fixtures import write_job


@pytest.mark.parametrize(
    "section,line,field",
    [
        ("training", "epoch = 2", "epoch"),  # unknown field (a typo of "epochs")
        ("search", "width_low = 20.0", "width_low"),  # empty range
        ("objective", "pd = 3", "pd"),  # wrong type
        ("data.options", "bogus = 1", "bogus"),  # not an argument of the loader
    ],
)
def test_a_malformed_job_fails_before_training_naming_the_field(
    tmp_path, capsys, section, line, field
):
    job = write_job(tmp_path)
    text = job.read_text()
    if f"[{section}]" in text:
        text = text.replace(f"[{section}]", f"[{section}]\n{line}", 1)
    else:
        text += f"\n[{section}]\n{line}\n"
    job.write_text(text)
    assert cli.main(["tune", str(job)]) == 2
    err = capsys.readouterr().err
    assert f"[{section}] {field}" in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_missing_real_data_is_reported_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KERAS_SMELU_DATA", raising=False)
    job = write_job(tmp_path)
    job.write_text(
        job.read_text().replace('dataset = "synthetic"', 'dataset = "criteo"\npath = "nowhere"')
    )
    assert cli.main(["tune", str(job)]) == 2
    assert "path" in capsys.readouterr().err


def test_tune_then_report(tmp_path, capsys):
    job = write_job(tmp_path, trials=1)
    assert cli.main(["tune", str(job), "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "[embedding_mlp] reference" in out and "trial 1/1" in out and "Wrote:" in out
    report = TuningReport.load(tmp_path / "run")
    assert len(report.results["embedding_mlp"].complete_trials) == 2

    assert cli.main(["report", str(tmp_path / "run")]) == 0
    assert "embedding_mlp" in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path / "nothing-here")]) == 2


@pytest.mark.slow
def test_demo_runs_on_the_embedded_job(tmp_path, capsys):
    # The embedded job, made smaller: one trial of 3 one-epoch pairs on fewer rows.
    smaller = ["training.pairs=3", "training.epochs=1", "data.n_train=2048"]
    smaller += ["data.n_test=1024", "objective.confirm_pairs=0"]
    args = ["demo", "--trials", "1", "--output", str(tmp_path), "--quiet"]
    assert cli.main(args + [f"--set={s}" for s in smaller]) == 0
    report = TuningReport.load(tmp_path)
    (result,) = report.results.values()
    assert result.reference is not None and len(result.candidates) == 1
    assert (tmp_path / "frontier-embedding_mlp.png").exists()
