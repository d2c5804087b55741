"""Job files (keras_smelu.tuning._job) and the search space (keras_smelu.tuning._space)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keras_smelu.activations import beta_to_scale, scale_to_beta
from keras_smelu.tuning import (
    FAMILIES,
    Job,
    JobError,
    SearchPoint,
    SearchSpace,
    load_job,
    make_activation,
    parse_override,
)
from tests._data import data_root

REPO = Path(__file__).resolve().parents[1]
JOB_FILES = sorted((REPO / "tuning").glob("*.toml"))
MINIMAL = """
[job]
name = "t"

[data]
dataset = "synthetic"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- shipped files


def test_the_shipped_job_files_are_there():
    names = {p.name for p in JOB_FILES}
    assert {
        "synthetic-demo.toml",
        "movielens-100k.toml",
        "criteo-sample.toml",
        "avazu-sample.toml",
    } <= names


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_shipped_job_files_parse_and_validate(path):
    job = load_job(path, check_paths=False)
    assert isinstance(job, Job)
    assert job.name == path.stem
    assert job.directions[1] == "minimize"
    assert set(job.model.names) <= {"embedding_mlp", "deep_cross"}
    job.search_space().validate()
    if job.data.dataset == "synthetic":
        assert load_job(path).data.resolve_path() is None
        return
    root = data_root()
    if root is None:
        pytest.skip("no shared datasets folder and KERAS_SMELU_DATA is not set")
    checked = load_job(path, environ={"KERAS_SMELU_DATA": str(root)})
    assert checked.data.resolve_path(environ={"KERAS_SMELU_DATA": str(root)}).is_dir()


def test_every_field_of_the_shipped_files_is_commented_and_documented():
    readme = (REPO / "tuning" / "README.md").read_text()
    for path in JOB_FILES:
        job = load_job(path, check_paths=False)
        for section, table in job.to_dict().items():
            for name in table:
                assert f"`{name}`" in readme, (section, name)
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if "=" in stripped and not stripped.startswith("#"):
                assert "#" in stripped, f"{path.name}: uncommented field line {line!r}"


def test_demo_job_is_small_but_decides_with_intervals():
    job = load_job(REPO / "tuning" / "synthetic-demo.toml")
    assert job.data.dataset == "synthetic"
    # Enough pairs for paired intervals (3 at least), few and small enough for minutes.
    assert 3 <= job.training.pairs <= 6 and job.objective.confirm_pairs <= 10
    # The search's work (trials x pairs x epochs) within that of 12 trials x 6 pairs x 4 epochs.
    assert job.job.trials <= 12 and job.training.epochs <= 8
    assert job.job.trials * job.training.pairs * job.training.epochs <= 12 * 6 * 4
    assert job.data.n_train <= 20000 and max(job.model.hidden) <= 64


# --------------------------------------------------------------------------- defaults, helpers


def test_minimal_job_gets_documented_defaults(tmp_path):
    job = load_job(write(tmp_path, MINIMAL))
    assert job.job.backend == "optuna" and job.job.sampler == "tpe"
    assert job.training.vary == "data_order" and job.training.report_epoch == "last"
    assert job.search_space() == SearchSpace()
    assert job.objective.names == ("val_loss", "pd_relative")
    assert job.directions == ("minimize", "minimize")
    assert job.output_dir() == Path("keras-smelu-runs") / "t"
    assert job.source == str(tmp_path / "job.toml")


def test_kwargs_helpers(tmp_path):
    text = MINIMAL.replace('name = "t"', 'name = "t"\nseed = 7') + textwrap.dedent(
        """
        n_train = 100

        [data.options]
        click_rate = 0.2

        [model]
        name = ["embedding_mlp", "deep_cross"]
        normalization = "none"
        low_rank = 4

        [objective]
        accuracy = "auc"
        pd = "absolute"
        """
    )
    job = load_job(write(tmp_path, text))
    assert job.dataset_kwargs() == {
        "name": "synthetic",
        "path": None,
        "seed": 7,
        "n_train": 100,
        "click_rate": 0.2,
    }
    assert job.model_kwargs("embedding_mlp")["normalization"] is None
    assert job.model_kwargs("deep_cross")["low_rank"] == 4
    assert "low_rank" not in job.model_kwargs("embedding_mlp")
    with pytest.raises(ValueError, match="not in this job"):
        job.model_kwargs("resnet")
    assert job.directions == ("maximize", "minimize")
    assert job.objective_names == ("val_auc", "pd_absolute")


def test_overrides(tmp_path):
    path = write(tmp_path, MINIMAL)
    job = load_job(path, overrides={"training.pairs": 1, "job.sampler": "random"})
    assert job.training.pairs == 1 and job.job.sampler == "random"
    job = load_job(path, overrides=["job.trials=3", "search.families=['smelu', 'gelu']"])
    assert job.job.trials == 3 and job.search.families == ("smelu", "gelu")
    assert parse_override("job.sampler=nsga2") == ("job.sampler", "nsga2")
    assert parse_override("search.log=false") == ("search.log", False)
    with pytest.raises(JobError, match=r"\[training\] pairs: expected an integer >= 1, got 0"):
        load_job(path, overrides=["training.pairs=0"])
    with pytest.raises(JobError, match=r"\[nope\]"):
        load_job(path, overrides=["nope.x=1"])
    with pytest.raises(JobError, match="section.field=value"):
        parse_override("trials")


def test_to_dict_round_trip(tmp_path):
    job = load_job(REPO / "tuning" / "criteo-sample.toml", check_paths=False)
    from keras_smelu.tuning import job_from_dict

    again = job_from_dict(job.to_dict(), source=job.source, check_paths=False)
    assert again == job


# --------------------------------------------------------------------------- malformations


CASES = [
    # (TOML appended to / replacing the minimal job, the field the message must name)
    ("[jobs]\nname = 'x'", r"\[jobs\]: unknown section.*did you mean \[job\]"),
    ("[model]\nhiden = [8]", r"\[model\] hiden: unknown field.*did you mean 'hidden'"),
    ("[training]\nepochs = '3'", r"\[training\] epochs: expected an integer, got '3'"),
    ("[training]\nepochs = 2.5", r"\[training\] epochs: expected an integer"),
    ("[training]\npairs = true", r"\[training\] pairs: expected an integer, got True"),
    ("[training]\nbatch_size = 0", r"\[training\] batch_size: expected an integer >= 1"),
    ("[training]\nvary = 'order'", r"\[training\] vary: expected one of .*data_order"),
    ("[training]\nreport_epoch = 'first'", r"\[training\] report_epoch: expected one of"),
    (
        "[search]\nwidth_low = 20.0",
        r"\[search\] width_low: expected a positive number below width_high \(10.0\), got 20.0",
    ),
    ("[search]\nwidth_low = 1.0\nwidth_high = 1.0", r"\[search\] width_low: .*below width_high"),
    ("[search]\nwidth_low = 0.0", r"\[search\] width_low: expected a positive number"),
    ("[search]\nwidth_low = -1.0\nlog = false", r"\[search\] width_low: expected a positive"),
    ("[search]\nfamilies = []", r"\[search\] families: expected at least one"),
    ("[search]\nfamilies = 'smelu'", r"\[search\] families: expected a list"),
    ("[search]\nfamilies = ['smelu', 'elu']", r"\[search\] families: expected one of"),
    ("[search]\nfamilies = ['relu']", r"\[search\] families: .*'relu'"),
    ("[search]\nlog = 'yes'", r"\[search\] log: expected true or false"),
    ("[search]\nslope_left_high = 1.5", r"\[search\] slope_left_high: expected 0 <="),
    ("[model]\nname = 'resnet'", r"\[model\] name: expected one of"),
    ("[model]\nname = []", r"\[model\] name: expected a model name"),
    ("[model]\nhidden = [8, 0]", r"\[model\] hidden: expected positive integers"),
    ("[model]\nhidden = []", r"\[model\] hidden: expected a non-empty list"),
    ("[model]\nnormalization = 'group'", r"\[model\] normalization: expected one of"),
    ("[model]\ndropout = 1.0", r"\[model\] dropout: expected a number in \[0.0, 1.0\)"),
    ("[model]\nlearning_rate = 0", r"\[model\] learning_rate: expected a number in \(0.0"),
    ("[model]\nlearning_rate = nan", r"\[model\] learning_rate: expected a finite number"),
    ("[model]\nlow_rank = 0", r"\[model\] low_rank: expected an integer >= 1"),
    ("[objective]\naccuracy = 'auc'\ndirection = 'minimize'", r"\[objective\] direction: "),
    ("[objective]\naccuracy = 'ndcg'", r"\[objective\] direction: metric 'ndcg' is not"),
    ("[objective]\npd = 'l2'", r"\[objective\] pd: expected one of"),
]
JOB_CASES = [
    ("name = 'a b'", r"\[job\] name: expected letters"),
    ("backend = 'ray'", r"\[job\] backend: expected one of"),
    ("sampler = 'tpee'", r"\[job\] sampler: .*did you mean 'tpe'"),
    ("backend = 'keras_tuner'", r"\[job\] sampler: 'tpe' needs backend = \"optuna\""),
    ("trials = 0", r"\[job\] trials: expected an integer >= 1, got 0"),
    ("seed = -1", r"\[job\] seed: expected an integer >= 0"),
    ("storage = 'study.db'", r"\[job\] storage: expected an RDB URL"),
    ("timeout_s = -5", r"\[job\] timeout_s: expected a number in \(0.0"),
]


@pytest.mark.parametrize(("extra", "message"), CASES)
def test_malformed_field_is_named(tmp_path, extra, message):
    with pytest.raises(JobError, match=message) as info:
        load_job(write(tmp_path, MINIMAL + "\n" + extra + "\n"))
    assert info.value.field is not None and info.value.field.startswith("[")


@pytest.mark.parametrize(("line", "message"), JOB_CASES)
def test_malformed_job_section_field_is_named(tmp_path, line, message):
    text = MINIMAL.replace('name = "t"', 'name = "t"\n' + line)
    if "name = " in line:
        text = MINIMAL.replace('name = "t"', line)
    with pytest.raises(JobError, match=message):
        load_job(write(tmp_path, text))


def test_missing_required_parts(tmp_path):
    with pytest.raises(JobError, match=r"\[data\]: this section is required"):
        load_job(write(tmp_path, "[job]\nname = 't'\n"))
    with pytest.raises(JobError, match=r"\[job\] name: this field is required"):
        load_job(write(tmp_path, "[job]\ntrials = 3\n[data]\ndataset = 'synthetic'\n"))
    with pytest.raises(JobError, match=r"\[data\] dataset: this field is required"):
        load_job(write(tmp_path, "[job]\nname = 't'\n[data]\nn_train = 3\n"))
    with pytest.raises(JobError, match=r"\[training\]: expected a table"):
        load_job(write(tmp_path, MINIMAL.replace("[job]", "training = 3\n[job]")))


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[job\nname = 't'\n")
    with pytest.raises(JobError, match="not valid TOML"):
        load_job(path)
    with pytest.raises(FileNotFoundError):
        load_job(tmp_path / "missing.toml")


def test_real_dataset_without_files_is_rejected_before_training(tmp_path):
    text = MINIMAL.replace('"synthetic"', '"movielens-100k"')
    path = write(tmp_path, text)
    with pytest.raises(JobError, match=r"\[data\] path: .*KERAS_SMELU_DATA") as info:
        load_job(path, environ={})
    assert info.value.field == "[data] path"
    with pytest.raises(JobError, match=r"\[data\] path: no such file or folder"):
        load_job(path, environ={"KERAS_SMELU_DATA": str(tmp_path / "nowhere")})
    with pytest.raises(JobError, match=r"\[data\] path: no such file or folder"):
        load_job(path, overrides={"data.path": str(tmp_path / "nowhere")}, environ={})
    (tmp_path / "movielens-100k").mkdir()
    job = load_job(path, environ={"KERAS_SMELU_DATA": str(tmp_path)})
    assert job.data.resolve_path({"KERAS_SMELU_DATA": str(tmp_path)}) == (
        tmp_path / "movielens-100k"
    )
    # libsvm has no default folder; synthetic takes no path.
    libsvm = write(tmp_path, MINIMAL.replace('"synthetic"', '"libsvm"'))
    with pytest.raises(JobError, match=r"\[data\] path: .*LIBSVM"):
        load_job(libsvm, environ={"KERAS_SMELU_DATA": str(tmp_path)})
    with pytest.raises(JobError, match=r"\[data\] path: the synthetic dataset reads no files"):
        load_job(write(tmp_path, MINIMAL + "path = 'x'\n"))


@pytest.mark.parametrize(
    ("dataset", "folder"), [("criteo", "criteo"), ("movielens-100k", "ml-100k")]
)
def test_second_folder_name_is_found_as_the_loader_finds_it(tmp_path, dataset, folder):
    (tmp_path / folder).mkdir()
    path = write(tmp_path, MINIMAL.replace('"synthetic"', f'"{dataset}"'))
    job = load_job(path, environ={"KERAS_SMELU_DATA": str(tmp_path)})
    assert job.data.resolve_path({"KERAS_SMELU_DATA": str(tmp_path)}) == tmp_path / folder


# --------------------------------------------------------------------------- search space


def test_search_space_validate_names_the_field():
    SearchSpace().validate()
    with pytest.raises(ValueError, match=r"^families: expected at least one"):
        SearchSpace(families=()).validate()
    with pytest.raises(ValueError, match=r"^families: unknown family 'elu'"):
        SearchSpace(families=("elu",)).validate()
    with pytest.raises(ValueError, match=r"^width_low: expected a positive number on a log"):
        SearchSpace(width_low=0.0).validate()
    with pytest.raises(ValueError, match=r"^width_low: .*below width_high \(1.0\), got 2.0"):
        SearchSpace(width_low=2.0, width_high=1.0).validate()
    with pytest.raises(ValueError, match=r"^width_high: expected a finite number"):
        SearchSpace(width_high=math.inf).validate()


def test_search_space_grid_widths_cover_every_family():
    space = SearchSpace(families=("smelu", "generalized_smelu"), width_low=0.01, width_high=1.0)
    np.testing.assert_allclose(space.grid_widths(6), [0.01, 0.1, 1.0])  # 3 per family
    assert len(space.grid_widths(7)) == 4
    np.testing.assert_allclose(SearchSpace(log=False, width_low=1, width_high=3).widths(1), [2])
    np.testing.assert_allclose(SearchSpace(width_low=1, width_high=100).widths(1), [10])


def test_width_scale_mapping_matches_curvature():
    # SmeLU's curvature in its band is 1 / (2 width); the comparators' at 0 (see _space).
    curvature_per_scale = {"softplus": 0.25, "swish": 0.5, "gelu": math.sqrt(2 / math.pi)}
    for family, k in curvature_per_scale.items():
        for width in (0.01, 0.5, 3.0):
            scale = beta_to_scale(family, width)
            assert k * scale == pytest.approx(1.0 / (2.0 * width))
            assert scale_to_beta(family, scale) == pytest.approx(width)
    with pytest.raises(ValueError):
        beta_to_scale("smelu", 1.0)
    with pytest.raises(ValueError, match="> 0"):
        beta_to_scale("gelu", -1.0)


def _activations_available() -> bool:
    try:
        from keras_smelu import GeneralizedSmeLU, SmeLU, activations  # noqa: F401
    except ImportError:
        return False
    return all(hasattr(activations, f"smooth_{f}") for f in ("gelu", "swish", "softplus"))


needs_activations = pytest.mark.skipif(
    not _activations_available(), reason="keras_smelu activations/layers not available"
)


@needs_activations
def test_make_activation_builds_the_right_layers():
    import keras

    import keras_smelu
    from keras_smelu import activations

    x = np.linspace(-3.0, 3.0, 13, dtype="float32")
    assert isinstance(make_activation("relu"), keras.layers.ReLU)
    layer = make_activation("smelu", 0.5)
    assert isinstance(layer, keras_smelu.SmeLU)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)),
        keras.ops.convert_to_numpy(activations.smelu(x, 0.5)),
        rtol=1e-6,
    )
    g = make_activation("generalized_smelu", 0.5, slope_left=0.1)
    assert isinstance(g, keras_smelu.GeneralizedSmeLU)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(g(x)),
        keras.ops.convert_to_numpy(activations.generalized_smelu(x, 0.5, 0.5, 0.1, 1.0)),
        rtol=1e-6,
    )
    for family in ("gelu", "swish", "softplus"):
        layer = make_activation(family, 0.5)
        expected = getattr(activations, f"smooth_{family}")(x, scale=beta_to_scale(family, 0.5))
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(expected), rtol=1e-6
        )
        clone = layer.__class__.from_config(layer.get_config())  # what the model builders do
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(layer(x))
        )
    point = SearchPoint("smelu", 0.25)
    assert isinstance(point.make_activation(), keras_smelu.SmeLU)


@needs_activations
def test_comparator_layer_survives_save_and_load_in_a_model(tmp_path):
    import keras

    inputs = keras.Input((4,))
    outputs = make_activation("swish", 0.3)(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.ones((2, 4), dtype="float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_make_activation_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown activation family 'elu'"):
        make_activation("elu", 1.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        make_activation("smelu", 1.0, slope_left=0.1)
    for bad in (0.0, -1.0, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="`width` must be"):
            make_activation("smelu", bad)
    assert set(FAMILIES) == {"smelu", "generalized_smelu", "gelu", "swish", "softplus"}


def test_tuning_imports_without_optional_dependencies(tmp_path):
    """`keras_smelu.tuning` imports with optuna, keras_tuner and matplotlib unavailable, and
    plotting then says how to install them."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("optuna", "keras_tuner", "matplotlib"):
                    raise ImportError(f"blocked {name}")
                return None
        sys.meta_path.insert(0, Block())
        import keras_smelu.tuning as t
        r = t.TuningResult("m", [t.TrialRecord(0, "m", "relu", 0.0, accuracy=1.0, pd=0.1)])
        try:
            r.plot("x.png")
        except ImportError as e:
            assert 'pip install "keras-smelu[tuning]"' in str(e), e
        else:
            raise AssertionError("plot did not raise")
        from keras_smelu.tuning._imports import import_optional
        try:
            import_optional("optuna", "The Optuna backend")
        except ImportError as e:
            assert "keras-smelu[tuning]" in str(e) and "optuna" in str(e), e
        else:
            raise AssertionError("import_optional did not raise")
        print("ok")
        """
    )
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
