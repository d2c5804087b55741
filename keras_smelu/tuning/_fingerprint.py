"""What defines an experiment, so that a resumed study never mixes two of them.

A study's trials are comparable only if they trained the same model on the same data with the
same package versions. The fingerprint is a flat, JSON-shaped dict of readable entries:

- `data.train`, `data.eval`: rows, arrays and a SHA-256 of their bytes (NumPy data), or the
  element spec and cardinality (a `tf.data.Dataset`, whose content is not read);
- `model.*`: the builder's model built once with ReLU under a fixed seed: a SHA-256 of its
  architecture (`model.to_json()`, auto-numbered names removed) and compile config, its
  optimizer class, learning rate and parameter count;
- `version.*`: keras, numpy, the Keras backend and keras-smelu (they change the numbers);
- `model.warm_start`, `model.warm_start_sha256`: a warm-start builder's saved model file
  (`keras_smelu.models.warm_start`) and a digest of its bytes: the same architecture with
  other weights is another experiment;
- `job.data.*`, `job.model.*`: a job file's `[data]` and `[model]` sections (readable diffs).

From Python the builder is opaque: what it closes over is fingerprinted only through the model
it builds and its compile config (e.g. a callback or a data pipeline inside it is not).

The fingerprint joins the search space and trial settings in `_trial.comparable_setup`: one
record per study, one diff on resume.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata as _metadata
from typing import Any

import numpy as np

MODEL_KEY = "model.config_sha256"
UNAVAILABLE = "unavailable"
_HASH_CHARS = 16  # a shortened digest: enough to tell data sets apart, short in a diff
_SEED = 0
_AUTO_NUMBER = re.compile(r"_\d+$")
# `[data]` fields that do not change the rows (the files' content is hashed instead).
_DATA_FIELDS_SKIPPED = ("path",)
# `[model]` fields that do not change a model's own study (each model has one).
_MODEL_FIELDS_SKIPPED = ("name",)


def data_fingerprint(data: Any) -> str:
    """A readable identity of training or evaluation data.

    NumPy data (`(x, y)` or `(x, y, sample_weight)`, x may be a dict or list of arrays):
    `"<rows> rows, <n> arrays, sha256 <digest>"`, the digest over every array's name, dtype,
    shape and bytes. A `tf.data.Dataset`: `"tf.data <element_spec>, cardinality <n>"`. Any
    other object (e.g. a streamed split): its type and its attributes that are plain numbers
    or strings; its content is not read.

    Args:
        data: The data as `train_replicas` takes it.

    Returns:
        The identity string.

    Example:

    >>> data_fingerprint((np.zeros((3, 2)), np.ones(3)))[:15]
    '3 rows, 2 array'
    """
    if hasattr(data, "element_spec"):
        cardinality = int(data.cardinality())
        return f"tf.data {data.element_spec!r}, cardinality {cardinality}"
    if not isinstance(data, (tuple, list, Mapping, np.ndarray)):
        plain = (str, int, float, bool, type(None))
        attributes = sorted(getattr(data, "__dict__", {}).items())
        fields = {k: v for k, v in attributes if isinstance(v, plain)}
        return f"{type(data).__name__} {fields}"
    digest = hashlib.sha256()
    leaves = list(_leaves(data))
    rows = set()
    for path, value in leaves:
        array = np.ascontiguousarray(np.asarray(value))
        rows.add(array.shape[0] if array.ndim else 0)
        digest.update(f"{path}|{array.dtype.str}|{array.shape}|".encode())
        if array.dtype == object:  # strings and the like: their text
            digest.update(repr(array.tolist()).encode())
        else:
            digest.update(array.tobytes())
    row_text = "/".join(str(r) for r in sorted(rows))
    return f"{row_text} rows, {len(leaves)} arrays, sha256 {digest.hexdigest()[:_HASH_CHARS]}"


def _leaves(data: Any, path: str = "") -> Any:
    """`(path, array)` for every array of a nested tuple/list/dict, in a stable order."""
    if isinstance(data, Mapping):
        for key in sorted(data, key=str):
            yield from _leaves(data[key], f"{path}/{key}")
    elif isinstance(data, (tuple, list)):
        for i, item in enumerate(data):
            yield from _leaves(item, f"{path}/{i}")
    elif data is not None:
        yield path, data


def model_fingerprint(build: Callable[[Any], Any]) -> dict[str, Any]:
    """The identity of the model `build("relu")` makes under a fixed seed.

    Layer and model names that Keras numbers automatically (`dense_3`) are taken without their
    number, so building the model again in the same process gives the same fingerprint.

    Args:
        build: `activation -> compiled keras.Model`.

    Returns:
        `{"model.config_sha256", "model.optimizer", "model.learning_rate", "model.parameters"}`;
        when the model cannot be built, `{"model.config_sha256": "unavailable (<error>)"}`.
    """
    import keras

    keras.utils.set_random_seed(_SEED)
    with warnings.catch_warnings():  # serializing a lambda loss warns; only hashed here
        warnings.filterwarnings("ignore", message="The object being serialized includes")
        try:
            model = build("relu")
            architecture = json.loads(model.to_json())
            compile_config = model.get_compile_config() or {}
        except Exception as error:  # the trials will say why; the study still gets an identity
            return {MODEL_KEY: f"{UNAVAILABLE} ({type(error).__name__})"}
    text = json.dumps(
        _without_numbers([architecture, compile_config]), sort_keys=True, default=repr
    )
    optimizer = getattr(model, "optimizer", None)
    learning_rate = None
    if optimizer is not None:
        try:
            learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        except (TypeError, ValueError):  # a schedule: its config is in the digest
            learning_rate = None
    return {
        MODEL_KEY: hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS],
        "model.optimizer": None if optimizer is None else type(optimizer).__name__,
        "model.learning_rate": learning_rate,
        "model.parameters": int(model.count_params()),
    }


def _without_numbers(obj: Any) -> Any:
    """`obj` with Keras's automatic name suffixes (`_<n>`) removed from every string."""
    if isinstance(obj, dict):
        return {k: _without_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without_numbers(v) for v in obj]
    if isinstance(obj, str):
        return _AUTO_NUMBER.sub("", obj)
    return obj


def warm_start_fingerprint(build: Any) -> dict[str, str]:
    """`{"model.warm_start": path, "model.warm_start_sha256": digest}` of a warm-start builder
    (`keras_smelu.models.warm_start`); empty for other builders."""
    path, digest = getattr(build, "path", None), getattr(build, "sha256", None)
    if path is None or digest is None or not callable(build):
        return {}
    return {"model.warm_start": str(path), "model.warm_start_sha256": str(digest)}


def version_fingerprint() -> dict[str, str]:
    """Versions that change the numbers: keras, numpy, the Keras backend and keras-smelu."""
    import keras

    import keras_smelu

    backend = keras.config.backend()
    package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend)
    try:
        backend_version = _metadata.version(package)
    except _metadata.PackageNotFoundError:
        backend_version = "unknown"
    return {
        "version.keras": keras.__version__,
        "version.numpy": np.__version__,
        "version.backend": f"{backend} {backend_version}",
        "version.keras_smelu": keras_smelu.__version__,
    }


def experiment_fingerprint(
    build: Callable[[Any], Any],
    train_data: Any,
    eval_data: Any,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole fingerprint of one model's study: data, model, versions and `extra` entries.

    Args:
        build: `activation -> compiled keras.Model` (built once, with ReLU).
        train_data: The training data.
        eval_data: The evaluation data.
        extra: More entries, e.g. `job_fingerprint(job)`.

    Returns:
        A flat dict of JSON-shaped values.

    Example:

    >>> sorted(experiment_fingerprint(build, (x, y), (xv, yv)))[:2]  # doctest: +SKIP
    ['data.eval', 'data.train']
    """
    fingerprint: dict[str, Any] = {
        "data.train": data_fingerprint(train_data),
        "data.eval": data_fingerprint(eval_data),
    }
    fingerprint.update(model_fingerprint(build))
    fingerprint.update(warm_start_fingerprint(build))
    fingerprint.update(version_fingerprint())
    fingerprint.update(extra or {})
    return json.loads(json.dumps(fingerprint, default=repr))


def job_fingerprint(job: Any) -> dict[str, Any]:
    """A job's `[data]` and `[model]` sections as fingerprint entries (`job.data.<field>`,
    `job.model.<field>`), the data path and model names aside."""
    sections = job.to_dict()
    out = {}
    for section, skipped in (("data", _DATA_FIELDS_SKIPPED), ("model", _MODEL_FIELDS_SKIPPED)):
        for name, value in sections.get(section, {}).items():
            if name not in skipped:
                out[f"job.{section}.{name}"] = value
    return json.loads(json.dumps(out, default=repr))


def suffixed_names(name: str, limit: int = 1000):
    """`name`, then `name.2`, `name.3`, ...: the names a new study may take when the first
    ones hold other experiments."""
    yield name
    for k in range(2, limit + 2):
        yield f"{name}.{k}"


def check_output_folder(output: Any, study_name: str) -> None:
    """Refuses an output folder that is a file, or that holds another job's results.

    A folder's `results.json` names the study that wrote it (`metadata.study_name`); a run
    of another study would overwrite those results.

    Args:
        output: The output folder.
        study_name: The study (job) name of this run.

    Raises:
        ValueError: naming the folder and the other job.
    """
    from pathlib import Path

    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(
            f"Argument `output` must be a folder; received: {str(output)!r}, which is a file"
        )
    path = output / "results.json"
    if not path.is_file():
        return
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        other = document["metadata"]["study_name"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(
            f"Argument `output` holds a {path.name} that is not a keras-smelu results file "
            f"(or is damaged); expected a new folder or one of job {study_name!r}; received: "
            f"{str(output)!r}"
        ) from None
    if other != study_name:
        raise ValueError(
            f"Argument `output` holds the results of another job, {other!r}; this job "
            f"({study_name!r}) would overwrite them. Expected a new folder or one of job "
            f"{study_name!r}; received: {str(output)!r}"
        )
