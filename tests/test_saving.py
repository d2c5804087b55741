"""Saved `.keras` models reload in a fresh process; exported SavedModels serve without us."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_smelu
from tests._subprocess import run_python


def _models():
    """One model per way of using SmeLU, the learnable ones trained a few steps."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")

    def make(hidden_activation, extra=None):
        layers = [keras.Input((6,)), keras.layers.Dense(8, activation=hidden_activation)]
        if extra is not None:
            layers.append(extra)
        layers.append(keras.layers.Dense(1))
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        return model

    return x, {
        "string": make("smelu"),
        "configured": make(keras_smelu.SmeLU(beta=0.25)),
        "learnable": make(None, keras_smelu.SmeLU(beta=0.7, learnable=True, per_unit=True)),
        "generalized": make(
            keras_smelu.GeneralizedSmeLU(0.3, 0.6, 0.05, 1.0, learnable=True),
        ),
    }


def _learned_widths(model):
    """Activation parameters by position among the model's weights (names vary by process)."""
    return {
        f"w{i}": keras.ops.convert_to_numpy(w)
        for i, w in enumerate(model.weights)
        if w.path.split("/")[-1].startswith(("log_", "slope_"))
    }


@pytest.mark.backend
def test_keras_round_trip_in_a_fresh_process(tmp_path):
    x, models = _models()
    np.save(tmp_path / "x.npy", x)
    for name, model in models.items():
        model.save(tmp_path / f"{name}.keras")
    widths = {n: _learned_widths(m) for n, m in models.items()}
    assert widths["learnable"] and widths["generalized"]  # the trained widths are weights
    run_python(
        f"""
        import numpy as np, keras, keras_smelu
        x = np.load({str(tmp_path / "x.npy")!r})
        for name in {list(models)!r}:
            m = keras.saving.load_model({str(tmp_path)!r} + f"/{{name}}.keras", safe_mode=True)
            np.save({str(tmp_path)!r} + f"/{{name}}.pred.npy", m.predict(x, verbose=0))
            w = {{f"w{{i}}": keras.ops.convert_to_numpy(v) for i, v in enumerate(m.weights)}}
            np.savez({str(tmp_path)!r} + f"/{{name}}.weights.npz", **w)
        """
    )
    for name, model in models.items():
        np.testing.assert_array_equal(
            np.load(tmp_path / f"{name}.pred.npy"), model.predict(x, verbose=0)
        )
        reloaded = np.load(tmp_path / f"{name}.weights.npz")
        for path, value in widths[name].items():
            np.testing.assert_array_equal(reloaded[path], value)


def test_loading_without_the_plugin_names_the_missing_object(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="smelu")])
    model.save(tmp_path / "m.keras")
    layer_model = keras.Sequential([keras.Input((3,)), keras_smelu.SmeLU(beta=0.3)])
    layer_model.save(tmp_path / "layer.keras")
    for path, name in [("m.keras", "keras_smelu>smelu"), ("layer.keras", "keras_smelu>SmeLU")]:
        proc = run_python(
            f"""
            import keras
            keras.saving.load_model({str(tmp_path / path)!r}, safe_mode=True)
            """,
            check=False,
        )
        assert proc.returncode != 0
        assert name in proc.stderr, proc.stderr[-2000:]


def test_corrupt_model_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises((ValueError, OSError)):
        keras.saving.load_model(path)


@pytest.mark.slow
def test_export_serves_without_the_plugin_and_converts_to_tflite(tmp_path):
    # Built and exported on the TensorFlow backend; served by plain TensorFlow in a process
    # where `import keras_smelu` fails.
    run_python(
        f"""
        import numpy as np, keras, keras_smelu, tensorflow as tf
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 6)).astype("float32")
        model = keras.Sequential([
            keras.Input((6,)),
            keras.layers.Dense(8, activation="smelu"),
            keras.layers.Dense(8, activation=keras_smelu.SmeLU(beta=0.2)),
            keras_smelu.SmeLU(beta=0.5, learnable=True, per_unit=True),
            keras_smelu.GeneralizedSmeLU(0.3, 0.6, 0.1, 1.0, learnable=True),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, rng.normal(size=(32, 1)), epochs=2, verbose=0)
        model.export({str(tmp_path / "serving")!r}, verbose=False)
        np.save({str(tmp_path / "x.npy")!r}, x)
        np.save({str(tmp_path / "want.npy")!r}, model.predict(x, verbose=0))
        converter = tf.lite.TFLiteConverter.from_saved_model({str(tmp_path / "serving")!r})
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        open({str(tmp_path / "model.tflite")!r}, "wb").write(converter.convert())
        """,
        backend="tensorflow",
    )
    run_python(
        f"""
        import sys
        sys.modules["keras_smelu"] = None  # the plug-in cannot be imported here
        try:
            import keras_smelu
        except ImportError:
            pass
        else:
            raise SystemExit("keras_smelu was importable")
        import numpy as np, tensorflow as tf
        x = np.load({str(tmp_path / "x.npy")!r})
        served = tf.saved_model.load({str(tmp_path / "serving")!r})
        np.save({str(tmp_path / "served.npy")!r}, served.serve(tf.constant(x)).numpy())
        interpreter = tf.lite.Interpreter(model_path={str(tmp_path / "model.tflite")!r})
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        out = interpreter.get_output_details()[0]
        np.save({str(tmp_path / "lite.npy")!r}, interpreter.get_tensor(out["index"]))
        """,
        backend="tensorflow",
    )
    want = np.load(tmp_path / "want.npy")
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "lite.npy"), want, rtol=1e-5, atol=1e-5)
