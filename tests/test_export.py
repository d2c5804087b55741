"""Exporting a tuned width: a trained `.keras` model with its evidence, card and artifacts."""

from __future__ import annotations

import json
import re
import uuid

import keras
import numpy as np
import pytest

import keras_smelu
from keras_smelu import tuning
from keras_smelu.cli import main
from keras_smelu.tuning import (
    TuningReport,
    fetch_model,
    job_from_dict,
    load_job,
    read_evidence,
    tune_job,
)
from keras_smelu.tuning._fingerprint import job_fingerprint
from keras_smelu.tuning._tuner import job_dataset
from tests._postgres import PostgresUnavailable, postgres_url
from tests._subprocess import run_python
from tests._tuning_fixtures import write_job

MODEL = "embedding_mlp"


def _tiny_job(directory, *, pairs=3, trials=1, extra=""):
    path = write_job(directory, trials=trials, extra=extra)
    return load_job(path, overrides=[f"training.pairs={pairs}"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny job's results folder: ReLU and one width, 3 pairs (so intervals exist)."""
    directory = tmp_path_factory.mktemp("export-run")
    job = _tiny_job(directory)
    tune_job(job, verbose=0)
    return directory / "out"


def _cli_in_fresh_process(*args: str):
    return run_python(
        f"""
        from keras_smelu.cli import main
        raise SystemExit(main({list(args)!r}))
        """,
        check=False,
    )


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def _smelu_widths(config) -> list[float]:
    """The `beta` of every SmeLU in a (nested) Keras config."""
    if isinstance(config, dict):
        found = [config["config"]["beta"]] if config.get("class_name") == "SmeLU" else []
        return found + [w for value in config.values() for w in _smelu_widths(value)]
    if isinstance(config, list):
        return [w for value in config for w in _smelu_widths(value)]
    return []


def test_results_of_a_job_record_the_job(run):
    report = TuningReport.load(run)
    assert report.metadata["job"]["job"]["name"] == "tiny"
    assert report.metadata["job"]["training"]["pairs"] == 3


def test_export_in_a_fresh_process_reloads_and_carries_its_evidence(run, tmp_path):
    output = tmp_path / "shared" / "mlp.keras"
    artifacts = tmp_path / "artifacts"
    done = _cli_in_fresh_process(
        "export",
        str(run),
        "--trial",
        "1",
        "--output",
        str(output),
        "--serving",
        "--artifacts",
        str(artifacts),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"to {output}" in done.stdout
    for path in (
        output,
        output.with_name("mlp.keras.evidence.json"),
        output.with_suffix(".md"),
        output.with_suffix(".frontier.png"),
    ):
        assert path.is_file(), path
    assert (output.with_suffix(".serving") / "saved_model.pb").is_file()

    # The model reloads with safe_mode and is the study's pair-1 replica a, retrained.
    document = json.loads((run / "results.json").read_text())
    trial = next(t for t in document["results"][MODEL]["trials"] if t["number"] == 1)
    model = keras.saving.load_model(output, safe_mode=True)
    widths = _smelu_widths(model.get_config())
    assert widths and widths == pytest.approx([trial["width"]] * len(widths))
    dataset = job_dataset(job_from_dict(document["metadata"]["job"]))
    x, y = dataset.test
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    recorded = trial["pairs"][0]["replicas"][0]["metrics"][trial["epoch"] - 1]["loss"]
    assert loss == pytest.approx(recorded, rel=1e-5)

    # The card's numbers are the results file's.
    card = output.with_suffix(".md").read_text()
    comparison = document["results"][MODEL]["comparisons"]["1"]
    ratio_line = next(line for line in card.splitlines() if line.startswith("- PD x ReLU"))
    ratio = comparison["pd_ratio"]
    assert _numbers(ratio_line)[:3] == pytest.approx(
        [ratio["estimate"], ratio["low"], ratio["high"]], rel=5e-4
    )
    cost_line = next(line for line in card.splitlines() if "cost vs ReLU" in line)
    cost = comparison["accuracy_cost"]
    assert _numbers(cost_line)[:3] == pytest.approx(
        [cost["estimate"], cost["low"], cost["high"]], rel=5e-4, abs=1e-9
    )
    row = next(line for line in card.splitlines() if line.startswith("| this model's point"))
    assert _numbers(row) == pytest.approx([trial["accuracy"], trial["pd"]], rel=5e-4)
    assert "![accuracy/PD plane of the study](mlp.frontier.png)" in card

    # The evidence reads back from Python and from `keras-smelu report`.
    evidence = read_evidence(output)
    assert evidence["matches_model"] is True
    assert evidence["study"]["name"] == f"tiny/{MODEL}"
    assert evidence["fingerprint"]["data.train"].startswith("600 rows")
    layer = keras.saving.deserialize_keras_object(evidence["activation"]["config"])
    assert isinstance(layer, keras_smelu.SmeLU)
    assert layer.get_config()["beta"] == pytest.approx(trial["width"])

    # A load and a re-save keep the weights, so the evidence still describes the file.
    keras.saving.load_model(output, safe_mode=True).save(output)
    assert read_evidence(output)["matches_model"] is True

    # Another machine fetches the model and its evidence from the study.
    fetched = fetch_model(
        document["metadata"]["storage"], f"tiny/{MODEL}", artifacts, tmp_path / "b" / "m.keras"
    )
    assert read_evidence(fetched)["trial"] == 1
    assert read_evidence(fetched)["weights_sha256"] == evidence["weights_sha256"]

    # The SavedModel serves without the plug-in and predicts what the .keras model does.
    np.savez(tmp_path / "x.npz", **{k: np.asarray(v) for k, v in x.items()})
    np.save(tmp_path / "want.npy", model.predict(x, verbose=0))
    run_python(
        f"""
        import sys
        sys.modules["keras_smelu"] = None  # the plug-in cannot be imported here
        import numpy as np, tensorflow as tf
        served = tf.saved_model.load({str(output.with_suffix(".serving"))!r})
        serve = served.signatures["serving_default"]
        specs = serve.structured_input_signature[1]
        x = np.load({str(tmp_path / "x.npz")!r})
        inputs = {{k: tf.cast(tf.reshape(x[k], (-1, 1)), s.dtype) for k, s in specs.items()}}
        got = next(iter(serve(**inputs).values())).numpy()
        want = np.load({str(tmp_path / "want.npy")!r})
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-6)
        """
    )


def test_report_prints_the_evidence_and_flags_a_replaced_model(run, tmp_path, capsys):
    output = tmp_path / "relu.keras"
    exported = TuningReport.load(run).results[MODEL]
    assert main(["export", str(run), "--trial", "0", "--output", str(output)]) == 0
    capsys.readouterr()
    assert main(["report", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"# {MODEL}: relu")
    reference = exported.reference
    row = next(line for line in printed.splitlines() if line.startswith("| ReLU reference"))
    assert _numbers(row) == pytest.approx([reference.accuracy, reference.pd], rel=5e-4)

    # Weights trained again (another seed) are not the ones the evidence describes.
    model = keras.saving.load_model(output, safe_mode=True)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    model.save(output)
    assert main(["report", str(output)]) == 1
    assert "not the ones this evidence describes" in capsys.readouterr().err

    (tmp_path / "bare.keras").write_bytes(output.read_bytes())
    assert main(["report", str(tmp_path / "bare.keras")]) == 2
    assert "no evidence file" in capsys.readouterr().err


def test_default_export_is_the_recommendation_or_says_how_to_choose(run, tmp_path, capsys):
    result = TuningReport.load(run).results[MODEL]
    code = main(["export", str(run), "--output", str(tmp_path / "m.keras")])
    if result.recommended is None:  # 3 pairs rarely resolve: ReLU is kept
        assert code == 2
        assert "--trial" in capsys.readouterr().err
        assert not (tmp_path / "m.keras").exists()
    else:
        assert code == 0
        assert read_evidence(tmp_path / "m.keras")["trial"] == result.recommended.number


def test_recommended_activation_and_its_config(run):
    result = TuningReport.load(run).results[MODEL]
    smooth = result.recommended_activation(trial=1)
    width = next(t.width for t in result.trials if t.number == 1)
    assert isinstance(smooth, keras_smelu.SmeLU)
    assert smooth.get_config()["beta"] == pytest.approx(width)
    assert isinstance(result.recommended_activation(trial=0), keras.layers.ReLU)
    config = result.activation_config(trial=1)
    json.dumps(config)  # plain data
    again = keras.saving.deserialize_keras_object(config)
    assert isinstance(again, keras_smelu.SmeLU)
    assert again.get_config()["beta"] == pytest.approx(width)
    with pytest.raises(ValueError, match="`trial`.*expected one of \\[0, 1\\].*received: 7"):
        result.activation_config(trial=7)
    if result.recommended is None:
        with pytest.raises(ValueError, match="no recommended width"):
            result.recommended_activation()


def test_python_export_refuses_other_data_and_bad_paths(run, tmp_path):
    from keras_smelu import datasets
    from tests._tuning_fixtures import tiny_builder

    report = TuningReport.load(run)
    result = report.results[MODEL]
    other = datasets.load("synthetic", n_train=600, n_test=200, seed=1)
    job = job_from_dict(report.metadata["job"])
    settings = report.metadata["settings"]
    with pytest.raises(ValueError, match="`output`.*'.keras'.*received: .*m.h5"):
        result.export(tiny_builder(other), other, tmp_path / "m.h5", settings=settings, trial=1)
    with pytest.raises(ValueError, match="differ from the study's.*data.train"):
        result.export(
            tiny_builder(other),
            other,
            tmp_path / "m.keras",
            settings=settings,
            trial=1,
            storage=report.metadata["storage"],
            fingerprint=job_fingerprint(job),
        )
    assert not (tmp_path / "m.keras").exists()


def test_a_results_folder_without_its_job_cannot_be_exported_from_the_cli(run, tmp_path, capsys):
    report = TuningReport.load(run)
    metadata = {k: v for k, v in report.metadata.items() if k != "job"}
    TuningReport(report.results, metadata).save(tmp_path / "py", plots=False)
    assert main(["export", str(tmp_path / "py"), "--trial", "1"]) == 2
    assert "TuningResult.export(builder, data" in capsys.readouterr().err
    assert main(["export", str(run), "--model", "nope"]) == 2
    assert "expected one of ['embedding_mlp']" in capsys.readouterr().err


@pytest.mark.slow
def test_artifacts_on_a_postgresql_study(tmp_path):
    try:
        server = postgres_url()
        url = server.__enter__()
    except PostgresUnavailable as why:
        pytest.skip(f"PostgreSQL storage not tested: {why}")
    try:
        name = f"tiny-{uuid.uuid4().hex[:8]}"  # an external server may hold earlier runs
        path = write_job(tmp_path, trials=1, name=name, extra=f'storage = "{url}"')
        tune_job(load_job(path, overrides=["training.pairs=1"]), verbose=0)
        exported = tuning.export_run(
            tmp_path / "out", trial=1, output=tmp_path / "a.keras", artifacts=tmp_path / "store"
        )
        assert set(exported.artifacts) == {"model", "evidence"}
        fetched = fetch_model(url, f"{name}/{MODEL}", tmp_path / "store", tmp_path / "b.keras")
        assert fetched.read_bytes() == exported.model_path.read_bytes()
        evidence = read_evidence(fetched)
        assert evidence["matches_model"] is True
        # The evidence names the model's artifact (its own id is known only once uploaded).
        assert evidence["artifacts"]["model"] == exported.artifacts["model"]
        with pytest.raises(ValueError, match="no exported trial.*expected one of \\[1\\]"):
            fetch_model(url, f"{name}/{MODEL}", tmp_path / "store", tmp_path / "c.keras", trial=0)
    finally:
        server.__exit__(None, None, None)
