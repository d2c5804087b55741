"""Trial records, per-model results, reports, tables and plots (keras_smelu.tuning._results)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from keras_smelu.tuning import TrialRecord, TuningReport, TuningResult, system_info
from keras_smelu.tuning._plot import pareto_plot_info as _pareto_plot_info
from keras_smelu.tuning._results import CSV_COLUMNS, plot_filename

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SYSTEM = {"python": "3.11.7", "keras": "3.15.1", "keras_backend": "jax"}


def record(number, family, width, loss, pd, **kwargs):
    defaults = dict(
        model="embedding_mlp",
        accuracy_std=0.001 * (number + 1),
        pd_std=0.01,
        epoch=2,
        seeds=(100, 101),
        duration_s=1.25 + number,
        metrics={"pd_absolute": pd / 10, "pd_relative_shift_corrected": pd / 2},
        history={"accuracy": (loss + 0.1, loss), "pd": (pd / 2, pd)},
        system=SYSTEM,
        trial_id=number + 1,
    )
    defaults.update(kwargs)
    return TrialRecord(number, family=family, width=width, accuracy=loss, pd=pd, **defaults)


def make_result(model="embedding_mlp") -> TuningResult:
    trials = [
        record(0, "relu", 0.0, 0.560, 0.190),
        record(1, "smelu", 0.01, 0.561, 0.185),  # dominated by trial 0? no: lower PD
        record(2, "smelu", 0.1, 0.558, 0.150),  # better than ReLU on both: recommended
        record(3, "smelu", 1.0, 0.565, 0.120),
        record(4, "smelu", 10.0, 0.572, 0.100),
        record(5, "gelu", 0.5, 0.570, 0.160),  # dominated by trial 3
        record(6, "generalized_smelu", 0.3, 0.563, 0.140, params={"slope_left": 0.1}),
        TrialRecord(
            7,
            model="embedding_mlp",
            family="smelu",
            width=0.05,
            state="failed",
            fail_reason="loss became NaN at epoch 2",
            seeds=(100, 101),
            system=SYSTEM,
        ),
    ]
    trials = [
        TrialRecord(**{**t.to_dict(), "model": model, "seeds": tuple(t.seeds)}) for t in trials
    ]
    return TuningResult(
        model=model,
        trials=tuple(trials),
        directions=("minimize", "minimize"),
        objective_names=("val_loss", "pd_relative"),
        study_name=f"job/{model}",
    )


# --------------------------------------------------------------------------- semantics


def test_frontier_reference_and_recommendation():
    result = make_result()
    assert result.reference.number == 0
    assert [t.number for t in result.frontier] == [2, 6, 3, 4]
    assert result.recommended.number == 2
    assert [t.number for t in result.failed_trials] == [7]
    assert {t.number for t in result.candidates} == {1, 2, 3, 4, 5, 6}
    # Improvement area over ReLU: only trial 2 beats ReLU on loss; boxes from each candidate
    # to the ReLU point (0.560, 0.190), union over the candidates.
    assert result.hypervolume() == pytest.approx((0.560 - 0.558) * (0.190 - 0.150))
    assert result.hypervolume((0.6, 0.2)) > result.hypervolume()


def test_recommendation_falls_back_to_knee_when_nothing_matches_relu():
    trials = [
        record(0, "relu", 0.0, 0.50, 0.20),
        record(1, "smelu", 0.1, 0.52, 0.15),
        record(2, "smelu", 1.0, 0.53, 0.05),
        record(3, "smelu", 5.0, 0.60, 0.04),
    ]
    result = TuningResult("embedding_mlp", trials)
    assert result.recommended.number == 2


def test_no_reference_and_no_candidates():
    only_relu = TuningResult("m", [record(0, "relu", 0.0, 0.5, 0.2, model="m")])
    assert only_relu.recommended is None
    assert only_relu.frontier[0].number == 0
    no_relu = TuningResult("m", [record(0, "smelu", 1.0, 0.5, 0.2, model="m")])
    assert no_relu.reference is None and no_relu.recommended.number == 0
    assert no_relu.hypervolume() == 0.0
    assert "no complete ReLU reference" in no_relu.frontier_table()


def test_invalid_records_and_results():
    with pytest.raises(ValueError, match="state must be one of"):
        TrialRecord(0, "m", "smelu", 1.0, accuracy=1.0, pd=1.0, state="running")
    with pytest.raises(ValueError, match="record it as failed"):
        TrialRecord(0, "m", "smelu", 1.0, accuracy=math.nan, pd=0.1)
    with pytest.raises(ValueError, match="record it as failed"):
        TrialRecord(0, "m", "smelu", 1.0, accuracy=0.5)
    with pytest.raises(ValueError, match="PD is minimised"):
        TuningResult("m", directions=("minimize", "maximize"))
    with pytest.raises(ValueError, match="directions"):
        TuningResult("m", directions=("min", "minimize"))
    with pytest.raises(ValueError, match="holds model"):
        TuningReport({"a": TuningResult("b")})


# --------------------------------------------------------------------------- round trips


def test_json_round_trip_is_exact(tmp_path):
    result = make_result()
    path = result.to_json(tmp_path / "r.json")
    assert TuningResult.from_json(path) == result
    document = json.loads(path.read_text())  # strict JSON
    assert document["format"] == "keras-smelu-tuning" and document["version"] == 1


def test_csv_round_trip_is_exact(tmp_path):
    result = make_result()
    path = result.to_csv(tmp_path / "trials.csv")
    again = TuningResult.from_csv(path)
    assert again == result
    header = path.read_text().splitlines()[0].split(",")
    assert header == CSV_COLUMNS


def test_round_trips_keep_awkward_floats(tmp_path):
    tricky = [0.1 + 0.2, 1e-300, 123456789.123456789, 2.0**-1074]
    trials = [
        record(i, "smelu", w, 0.5 + w, 0.1 + w, metrics={"x": w}) for i, w in enumerate(tricky)
    ]
    nan_metrics = record(9, "smelu", 0.5, 0.5, 0.1, metrics={"nan": math.nan, "inf": math.inf})
    result = TuningResult("embedding_mlp", trials + [nan_metrics])
    for again in (
        TuningResult.from_json(result.to_json(tmp_path / "r.json")),
        TuningResult.from_csv(result.to_csv(tmp_path / "r.csv")),
    ):
        assert again.trials[:-1] == result.trials[:-1]
        assert [t.width for t in again.trials[:-1]] == tricky
        last = again.trials[-1]
        assert math.isnan(last.metrics["nan"]) and last.metrics["inf"] == math.inf
    assert "NaN" not in (tmp_path / "r.json").read_text()
    # Records compare NaN-aware: a missing spread (NaN) survives the round trip as equal.
    nan_std = TuningResult("m", [record(0, "smelu", 1.0, 0.5, 0.1, model="m", pd_std=math.nan)])
    assert TuningResult.from_json(nan_std.to_json(tmp_path / "n.json")) == nan_std
    assert TuningResult.from_csv(nan_std.to_csv(tmp_path / "n.csv")) == nan_std
    assert nan_std.trials[0] != record(0, "smelu", 1.0, 0.5, 0.1, model="m", pd_std=0.0)


def test_report_save_and_load(tmp_path):
    report = TuningReport.from_results(
        [make_result("embedding_mlp"), make_result("deep_cross")],
        metadata={"job": {"job": {"name": "demo"}}, "created": "2025-01-01T00:00:00"},
    )
    written = report.save(tmp_path / "out", plots=True)
    names = sorted(p.name for p in written)
    assert names == [
        "frontier-deep_cross.png",
        "frontier-embedding_mlp.png",
        "results.json",
        "trials.csv",
    ]
    assert TuningReport.load(tmp_path / "out") == report
    from_csv = TuningReport.from_csv(tmp_path / "out" / "trials.csv")
    assert from_csv.results == report.results and from_csv.metadata == {}
    assert "embedding_mlp" in report.summary() and "deep_cross" in report.summary()
    with pytest.raises(FileNotFoundError, match="results.json"):
        TuningReport.load(tmp_path)
    with pytest.raises(ValueError, match="one model"):
        TuningResult.from_csv(tmp_path / "out" / "trials.csv")


def test_corrupt_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TuningResult.from_json(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a keras-smelu tuning results file"):
        TuningResult.from_json(bad)
    bad.write_text(json.dumps({"format": "keras-smelu-tuning", "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        TuningReport.from_json(bad)
    csv_path = make_result().to_csv(tmp_path / "t.csv")
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([lines[0], lines[1].replace(",complete,", ",running,")]))
    with pytest.raises(ValueError, match="line 2: state must be one of"):
        TuningResult.from_csv(csv_path)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        TuningResult.from_csv(tmp_path / "x.csv")


# --------------------------------------------------------------------------- table, plot


def test_frontier_table_text():
    table = make_result().frontier_table()
    lines = table.splitlines()
    assert lines[0].startswith(
        "embedding_mlp: 4 frontier point(s) of 7 complete trial(s), 1 failed"
    )
    assert "val_loss (lower is better)" in lines[0]
    assert "val_loss" in lines[1] and "pd_relative" in lines[1]
    body = "\n".join(lines[3:])
    assert "ref" in body and "relu" in body  # the reference, though not on the frontier
    assert "smelu w=0.1" in body and "PD x0.789" in body
    assert "generalized_smelu w=0.3, slope_left=0.1" in body
    assert "gelu" not in body  # dominated
    assert lines[-1] == "* recommended: smelu w=0.1 (trial 2)"
    star = [line for line in lines if line.startswith("*  ")]
    assert len(star) == 1 and " 2 " in star[0]


def test_plot_info_contents():
    info = _pareto_plot_info(make_result())
    assert info.x_label == "val_loss (lower is better)"
    assert info.y_label == "pd_relative (lower is better)"
    assert info.families == ("relu", "smelu", "gelu", "generalized_smelu")
    assert [p[0] for p in info.points] == [0, 1, 2, 3, 4, 5, 6]
    assert info.points[2] == (2, "smelu", 0.558, 0.150, 0.003, 0.01)
    assert info.front_numbers == (2, 6, 3, 4)  # drawing order: x ascending
    assert info.front_labels[0] == "smelu w=0.1" and len(info.front_labels) == 4
    xs = [x for x, _ in info.front]
    assert xs == sorted(xs)
    assert info.reference == (0.560, 0.190)
    assert info.recommended == (0.558, 0.150)
    assert info.recommended_label == "smelu w=0.1"
    assert info.n_failed == 1
    auc = TuningResult(
        "m",
        [record(0, "relu", 0.0, 0.7, 0.2, model="m")],
        directions=("maximize", "minimize"),
        objective_names=("val_auc", "pd_absolute"),
    )
    assert _pareto_plot_info(auc).x_label == "val_auc (higher is better)"


def test_plot_writes_a_real_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = make_result().plot(tmp_path / "sub" / "frontier.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000
    # An empty result still draws (a labelled, empty plot).
    empty = TuningResult("m").plot(tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == PNG_SIGNATURE


def test_missing_spreads_are_drawn_and_printed_without_error_bars(tmp_path):
    pytest.importorskip("matplotlib")
    trials = [
        record(0, "relu", 0.0, 0.5, 0.2, accuracy_std=math.nan, pd_std=None),
        record(1, "smelu", 1.0, 0.49, 0.1, accuracy_std=math.nan, pd_std=math.nan),
    ]
    result = TuningResult("embedding_mlp", trials)
    assert "nan" not in result.frontier_table() and "±" not in result.frontier_table()
    assert result.plot(tmp_path / "f.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_does_not_touch_pyplot_state(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    backend = matplotlib.get_backend()
    make_result().plot(tmp_path / "f.png")
    assert matplotlib.get_backend() == backend


def test_helpers():
    assert plot_filename("deep/cross v2") == "frontier-deep_cross_v2.png"
    info = system_info()
    assert info["keras"] and info["numpy"] == np.__version__ and "python" in info
    assert info["keras_backend"] in ("jax", "tensorflow", "torch", "numpy")
    trial = make_result().trials[6]
    assert trial.label == "generalized_smelu w=0.3, slope_left=0.1"
    assert trial.values == (0.563, 0.140)
    assert make_result().trials[7].values[0] != make_result().trials[7].values[0]  # NaN


def test_result_files_are_readable_as_open_would_make_them(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        written = TuningReport.from_results([make_result()]).save(tmp_path, plots=False)
    finally:
        os.umask(mask)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
