"""Declarative tuning jobs: a TOML file parsed into frozen dataclasses, validated before training.

A job file has six tables; only `[job] name` and `[data] dataset` are required. Every field is
described on its section's dataclass below and in `tuning/README.md`. Relative paths (`[job]
output`, `[data] path`, a journal storage) are relative to the current working directory.

    [job]        name, backend, sampler, trials, seed, storage, output, timeout_s
    [data]       dataset, path, label, n_train, n_test, seed, streaming, shuffle_buffer, options
    [model]      name, hidden, embedding_dim, normalization, dropout, cross_layers, low_rank,
                 stacked, optimizer, learning_rate, warm_start
    [training]   epochs, batch_size, pairs, vary, report_epoch, eval_every
    [search]     families, width_low, width_high, width_range, log, slope_left_low,
                 slope_left_high, reference, ensembles
    [objective]  accuracy, direction, pd, level, max_accuracy_cost, churn_threshold, group,
                 top_k, rbo_p, confirm_pairs, prune

Any problem (an unknown table or field, a wrong type, a value out of range, a real dataset whose
files cannot be found) raises `JobError`, whose message starts with `[section] field:`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from keras_smelu._settings import (
    SettingError,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_str,
)
from keras_smelu.datasets._base import DATA_ENV_VAR
from keras_smelu.datasets._registry import DATA_FOLDERS, LOADERS
from keras_smelu.replicas import ReplicaSettings
from keras_smelu.tuning._backends import BACKEND_NAMES, BACKENDS, SAMPLER_NAMES
from keras_smelu.tuning._objective import Objective
from keras_smelu.tuning._space import SearchSpace
from keras_smelu.tuning._trial import TrialSettings

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None  # type: ignore[assignment]

DATASETS = tuple(LOADERS)
MODELS = ("embedding_mlp", "deep_cross")
NORMALIZATIONS = ("none", "layer", "batch")
OPTIMIZERS = ("adam", "adagrad", "sgd")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# `[job] storage = "env:NAME"`: the storage URL is the value of the environment variable NAME.
STORAGE_ENV_PREFIX = "env:"
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JobError(ValueError):
    """A job file is malformed; `field` is `"[section] name"` (or `"[section]"`, or `None`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _fail(section: str, name: str, message: str) -> JobError:
    return JobError(f"[{section}] {name}: {message}", field=f"[{section}] {name}")


def _check_storage_form(url: str, received: str) -> None:
    """An RDB URL (`<scheme>://...`) or `journal:<file>`; the rest is checked on opening it."""
    is_url = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) is not None
    is_journal = url.startswith("journal:") and len(url) > len("journal:")
    if not (is_url or is_journal):
        raise _fail(
            "job",
            "storage",
            "expected an RDB URL such as 'sqlite:///study.db' or 'postgresql://host/db', "
            f"'journal:<file>' or 'env:<NAME>', got {received}",
        )


@contextlib.contextmanager
def _naming(section: str) -> Iterator[None]:
    """Turns a settings object's `SettingError` into a `JobError` naming `[section] field`."""
    try:
        yield
    except SettingError as error:
        raise _fail(section, error.field, error.field_message()) from None


def _check_str(section: str, name: str, value: Any, choices: Sequence[str] | None = None) -> None:
    with _naming(section):
        check_str(name, value)
        if choices is not None:
            check_choice(name, value, choices)


def _check_int(section: str, name: str, value: Any, minimum: int | None = None) -> None:
    with _naming(section):
        check_int(name, value, minimum)


def _check_float(section: str, name: str, value: Any, **bounds: Any) -> None:
    with _naming(section):
        check_number(name, value, **bounds)


def _check_bool(section: str, name: str, value: Any) -> None:
    with _naming(section):
        check_bool(name, value)


def _from_table(cls: type, section: str, table: Any) -> Any:
    """Build a section dataclass from a TOML table, rejecting unknown fields."""
    if not isinstance(table, Mapping):
        raise JobError(f"[{section}]: expected a table, got {table!r}", field=f"[{section}]")
    names = [f.name for f in fields(cls) if f.name not in getattr(cls, "NOT_IN_JOB_FILES", ())]
    kwargs = {}
    for key, value in table.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(section, key, f"unknown field; expected one of {names}{hint}")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        with _naming(section):
            return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in kwargs and f.default is MISSING and f.default_factory is MISSING
        ]
        name = missing[0] if missing else "?"
        raise _fail(section, name, "this field is required") from exc


@dataclass(frozen=True)
class JobSection:
    """`[job]`: what to run and where to keep it.

    Attributes:
        name: Job name (letters, digits, `.`, `_`, `-`); names the study (`"<name>/<model>"`)
            and the default output folder. Required.
        backend: `"optuna"` (default; multi-objective samplers, resumable storage) or
            `"keras_tuner"` (a keras-tuner Tuner; our code computes the frontier).
        sampler: `"tpe"` (default; Optuna's multi-objective TPE), `"nsga2"`, `"random"`, or
            `"grid"` (`trials` widths split evenly over the families, log-spaced). keras-tuner
            supports `"random"` and `"grid"` only.
        trials: Number of search trials per model, not counting the ReLU reference (>= 1).
        seed: Base seed: the sampler's seed and the replica seeds of pair k (the same in every
            trial: common random numbers).
        storage: Optuna storage. Omitted or `""`: a SQLite file `study.db` in the output folder
            (resumable). `"journal:<file>"`: a journal file, for several processes on one machine.
            An RDB URL (`"postgresql://user@host/db"`, `"sqlite:///path.db"`): many machines.
            `"env:<NAME>"`: the URL is read from the environment variable `NAME` when the job
            runs (e.g. `"env:KERAS_SMELU_STORAGE"`), so one job file serves every machine and
            a password stays out of it. Not used by keras-tuner (it keeps its state in the
            output folder).
        output: Output folder (results, plots, default storage). Default `keras-smelu-runs/<name>`.
        timeout_s: Stop starting new trials after this many seconds (optional).
    """

    name: str
    backend: str = "optuna"
    sampler: str = "tpe"
    trials: int = 20
    seed: int = 0
    storage: str | None = None
    output: str | None = None
    timeout_s: float | None = None

    def validate(self) -> None:
        s = "job"
        _check_str(s, "name", self.name)
        if not _NAME_RE.match(self.name):
            raise _fail(
                s,
                "name",
                "expected letters, digits, '.', '_' or '-' (starting with a letter or digit), "
                f"got {self.name!r}",
            )
        _check_str(s, "backend", self.backend, BACKEND_NAMES)
        _check_str(s, "sampler", self.sampler, SAMPLER_NAMES)
        supported = BACKENDS[self.backend].samplers
        if self.sampler not in supported:
            others = [b.name for b in BACKENDS.values() if self.sampler in b.samplers]
            raise _fail(
                s,
                "sampler",
                f'{self.sampler!r} needs backend = "{others[0]}"; {self.backend} supports '
                f"{list(supported)}",
            )
        _check_int(s, "trials", self.trials, minimum=1)
        _check_int(s, "seed", self.seed, minimum=0)
        if self.storage is not None:
            _check_str(s, "storage", self.storage)
            if self.storage:
                if self.backend == "keras_tuner":
                    raise _fail(
                        s,
                        "storage",
                        "keras_tuner keeps its state in the output folder; remove storage, "
                        f"got {self.storage!r}",
                    )
                if self.storage.startswith(STORAGE_ENV_PREFIX):
                    name = self.storage[len(STORAGE_ENV_PREFIX) :]
                    if not _ENV_NAME_RE.match(name):
                        raise _fail(
                            s,
                            "storage",
                            "expected 'env:<NAME>' with NAME an environment variable name "
                            f"(letters, digits, '_'), got {self.storage!r}",
                        )
                else:
                    _check_storage_form(self.storage, repr(self.storage))
        if self.output is not None:
            _check_str(s, "output", self.output)
        if self.timeout_s is not None:
            _check_float(s, "timeout_s", self.timeout_s, low=0.0, low_open=True)

    def storage_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The storage to open: `storage`, with `"env:<NAME>"` replaced by the value of the
        environment variable `NAME`; `None` when omitted or `""` (the default storage).

        Raises:
            JobError: `NAME` is unset or empty, or does not hold a storage URL.
        """
        if not self.storage or not self.storage.startswith(STORAGE_ENV_PREFIX):
            return self.storage or None
        name = self.storage[len(STORAGE_ENV_PREFIX) :]
        value = (os.environ if environ is None else environ).get(name, "")
        if not value:
            raise _fail(
                "job",
                "storage",
                f"the environment variable {name} is not set; expected it to hold the "
                f"storage URL (e.g. 'postgresql://user:password@host/db'), as storage = "
                f"{self.storage!r} asks; received: {name} unset or empty",
            )
        _check_storage_form(value, f"{name} = {value!r} (from {self.storage!r})")
        return value


@dataclass(frozen=True)
class DataSection:
    """`[data]`: the training and evaluation data.

    Attributes:
        dataset: `"synthetic"` (generated by the package, no files), `"movielens-100k"`,
            `"criteo"`, `"avazu"` or `"libsvm"`. Required.
        path: Folder of the dataset's files (a file for `"libsvm"`). Omitted: the folder
            `movielens-100k/`, `criteo-dac-8k/` (or `criteo/`), `avazu-9k/` (or `avazu/`) under
            `$KERAS_SMELU_DATA`.
        label: Which label to learn, dataset-specific: MovieLens `"liked"` (rating >= 4, the
            loader's default) or `"rating"` (regression); omitted: the loader's default.
        n_train: Use at most this many training rows (optional; the synthetic data's size).
        n_test: Use at most this many held-out rows, where loss and PD are measured (optional).
        seed: Seed for generating or splitting the data; omitted: `[job] seed`.
        streaming: Read the training split from the files in chunks every epoch (bounded
            memory; `datasets.load(..., streaming=True)`, needs pyarrow) instead of loading
            it; the test split is read into memory once. `n_train` / `n_test` then bound the
            rows read. Not for `"synthetic"` (write a log with `datasets.write_click_log`).
        shuffle_buffer: With `streaming`: rows of each replica's bounded shuffle (0: file
            order; omitted: 100,000).
        options: A table passed as keyword arguments to the dataset loader, which checks it
            (e.g. `test_fraction`, `min_count`, `split = "temporal"` for the papers' regime of
            training on the past and measuring on the latest data; libsvm: `task`; streamed:
            also `hash_buckets`, `chunk_bytes`, `workers`, `cache_dir`: parse the files once
            into a cache there, read by every later epoch, replica and trial).
    """

    dataset: str
    path: str | None = None
    label: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    seed: int | None = None
    streaming: bool | None = None
    shuffle_buffer: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolve_path(self, environ: Mapping[str, str] | None = None) -> Path | None:
        """Where the dataset's files are: `path`, else under `$KERAS_SMELU_DATA`; `None` for the
        synthetic data or when neither is given."""
        if self.dataset == "synthetic":
            return None
        if self.path:
            return Path(self.path).expanduser()
        environ = os.environ if environ is None else environ
        root = environ.get(DATA_ENV_VAR)
        if root and self.dataset in DATA_FOLDERS:
            candidates = [Path(root).expanduser() / f for f in DATA_FOLDERS[self.dataset]]
            return next((c for c in candidates if c.exists()), candidates[0])
        return None

    def _check_loader_arguments(self) -> None:
        """`label` and every `[data.options]` key must be arguments of the dataset's loader."""
        import inspect

        from keras_smelu.datasets import make_synthetic_click_log

        loader = LOADERS[self.dataset]
        if self.dataset == "synthetic":
            loader = make_synthetic_click_log
        accepted = {
            name
            for name, p in inspect.signature(loader).parameters.items()
            if name != "path" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        if self.streaming:  # the streaming reader's own options
            accepted |= {"split", "test_fraction", "seed", "min_count", "hash_buckets"}
            accepted |= {"chunk_bytes", "cache_dir", "max_features", "workers"}
        accepted = sorted(accepted)
        if self.label is not None and "label" not in accepted:
            raise _fail("data", "label", f"dataset {self.dataset!r} has no label choice")
        for key in self.options:
            if key not in accepted:
                raise _fail(
                    "data.options",
                    key,
                    f"not an option of dataset {self.dataset!r}; its loader takes {accepted}",
                )

    def validate(self, check_paths: bool = True, environ: Mapping[str, str] | None = None) -> None:
        s = "data"
        _check_str(s, "dataset", self.dataset, DATASETS)
        for name in ("path", "label"):
            value = getattr(self, name)
            if value is not None:
                _check_str(s, name, value)
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None:
                _check_int(s, name, value, minimum=1)
        if self.seed is not None:
            _check_int(s, "seed", self.seed, minimum=0)
        if not isinstance(self.options, Mapping):
            raise _fail(s, "options", f"expected a table, got {self.options!r}")
        if self.streaming is not None:
            _check_bool(s, "streaming", self.streaming)
        if self.streaming and self.dataset == "synthetic":
            raise _fail(
                s,
                "streaming",
                "the synthetic data is generated in memory; write a log with "
                "keras_smelu.datasets.write_click_log and stream that file (dataset = "
                '"criteo")',
            )
        if self.shuffle_buffer is not None:
            _check_int(s, "shuffle_buffer", self.shuffle_buffer, minimum=0)
            if not self.streaming:
                raise _fail(s, "shuffle_buffer", "applies to streamed data: set streaming = true")
        self._check_loader_arguments()
        if self.dataset == "synthetic":
            if self.path:
                raise _fail(s, "path", f"the synthetic dataset reads no files, got {self.path!r}")
            return
        if not check_paths:
            return
        resolved = self.resolve_path(environ)
        if resolved is None:
            if self.dataset == "libsvm":
                where = 'set path = "<file in LIBSVM format>"'
            else:
                folder = DATA_FOLDERS[self.dataset][0]
                where = (
                    f'set path = "<folder with the {self.dataset} files>", or set the '
                    f"{DATA_ENV_VAR} environment variable to the folder holding {folder}/"
                )
            raise _fail(s, "path", f"dataset {self.dataset!r} needs its files: {where}")
        if not resolved.exists():
            source = "path" if self.path else f"{DATA_ENV_VAR}"
            raise _fail(
                s,
                "path",
                f"no such file or folder {str(resolved)!r} (from {source}); put the "
                f"{self.dataset} files there or point path / {DATA_ENV_VAR} at them",
            )


@dataclass(frozen=True)
class ModelSection:
    """`[model]`: the recommender model(s) to tune; each gets its own study and frontier.

    Attributes:
        name: `"embedding_mlp"` or `"deep_cross"`, or a list of both (same settings).
        hidden: Hidden layer sizes of the MLP tower (default `[256, 128, 64]`).
        embedding_dim: Size of each categorical feature's embedding (default 8).
        normalization: `"none"` (default), `"layer"` or `"batch"`: applied before each hidden
            activation. It sets the scale of the pre-activations, hence what a width means.
        dropout: Dropout rate after each hidden activation, in [0, 1) (default 0).
        cross_layers: Number of cross layers (`"deep_cross"` only; >= 0, default 2).
        low_rank: Rank of the cross layers' weights (`"deep_cross"` only; omitted: full rank).
        stacked: Stack the deep part on the cross part instead of running them in parallel
            (`"deep_cross"` only; default false).
        optimizer: `"adam"` (default), `"adagrad"` or `"sgd"`.
        learning_rate: Optimizer learning rate, > 0 (default 0.001).
        warm_start: A saved, compiled `.keras` model (e.g. a trained ReLU model) that every
            replica starts from (`keras_smelu.models.warm_start`): its activations named
            `"relu"` are swapped for the trial's, the ReLU reference is the model as saved,
            and each is compiled with `optimizer` and `learning_rate` and trained. The
            architecture fields above are then unused (`name` still names the study). The
            file's path and a digest of its bytes are part of the experiment: a resume with
            another file is refused. With it, `[training] vary = "init"` is refused (every
            replica starts from the same weights) and `"both"` varies the data order only.
    """

    name: str | tuple[str, ...] = "embedding_mlp"
    hidden: tuple[int, ...] = (256, 128, 64)
    embedding_dim: int = 8
    normalization: str = "none"
    dropout: float = 0.0
    cross_layers: int = 2
    low_rank: int | None = None
    stacked: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    warm_start: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The model names as a tuple."""
        return (self.name,) if isinstance(self.name, str) else tuple(self.name)

    def validate(self) -> None:
        s = "model"
        if isinstance(self.name, str):
            _check_str(s, "name", self.name, MODELS)
        elif isinstance(self.name, tuple) and self.name:
            for name in self.name:
                _check_str(s, "name", name, MODELS)
            if len(set(self.name)) != len(self.name):
                raise _fail(s, "name", f"duplicate model names in {list(self.name)}")
        else:
            raise _fail(s, "name", f"expected a model name or a list of them, got {self.name!r}")
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise _fail(
                s, "hidden", f"expected a non-empty list of layer sizes, got {self.hidden!r}"
            )
        for size in self.hidden:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise _fail(s, "hidden", f"expected positive integers, got {list(self.hidden)!r}")
        _check_int(s, "embedding_dim", self.embedding_dim, minimum=1)
        _check_str(s, "normalization", self.normalization, NORMALIZATIONS)
        _check_float(s, "dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _check_int(s, "cross_layers", self.cross_layers, minimum=0)
        if self.low_rank is not None:
            _check_int(s, "low_rank", self.low_rank, minimum=1)
        _check_bool(s, "stacked", self.stacked)
        _check_str(s, "optimizer", self.optimizer, OPTIMIZERS)
        _check_float(s, "learning_rate", self.learning_rate, low=0.0, low_open=True)
        if self.warm_start is not None:
            _check_str(s, "warm_start", self.warm_start)
            if not self.warm_start.endswith(".keras"):
                raise _fail(
                    s,
                    "warm_start",
                    f"expected a saved model file '*.keras', got {self.warm_start!r}",
                )

    def check_warm_start_file(self) -> None:
        """`warm_start` names an existing file (relative to the working directory)."""
        if self.warm_start is not None and not Path(self.warm_start).expanduser().is_file():
            raise _fail(
                "model",
                "warm_start",
                f"expected an existing .keras file (relative paths are relative to the working "
                f"directory), got {self.warm_start!r}, which does not exist",
            )


@dataclass(frozen=True)
class TrainingSection(ReplicaSettings):
    """`[training]`: how each replica is trained and how PD is measured: a `ReplicaSettings`
    (the object that reaches `train_replicas`), with the job's seed (`[job] seed`).

    Attributes:
        epochs: Training epochs per replica (>= 1; default 3). Loss and PD are evaluated on the
            evaluation set after every epoch and the whole trajectory is recorded.
        batch_size: Batch size (default 256).
        pairs: Replica pairs per trial (default 5; docs/findings.md: at least 5 per point, 10 for a
            claim). Pair k uses the same seeds in every trial.
        vary: What differs between the two replicas of a pair: `"data_order"` (default: the
            data order, identical initial weights), `"init"` (the initial weights), `"both"`, or
            `"none"` (a control: PD is exactly 0).
        report_epoch: Which epoch's values a trial reports: `"last"` (default) or `"best"` (the
            epoch with the lowest evaluation loss, as `keras_smelu.replicas.train_replicas`).
        task: `"auto"` (default), `"binary"`, `"multiclass"` or `"regression"`.
        fused: Train the two replicas of a pair as one program: `"auto"` (default), true, false.
        eval_every: Training steps between checkpoints within an epoch (omitted: one per
            epoch). With `epochs = 1` and `[data] streaming`, the papers' one-pass regime: PD
            measured at checkpoints along the stream; each checkpoint counts as an epoch of
            the trajectory (`report_epoch`, early stopping).
    """

    # The job seed; pairs start at 0; ensembles are reference points (`[search] ensembles`).
    NOT_IN_JOB_FILES = ("seed", "first_pair", "ensemble")

    pairs: int = 5
    epochs: int = 3


@dataclass(frozen=True)
class SearchSection(SearchSpace):
    """`[search]`: the activation families and the width range: a `SearchSpace`.

    Attributes:
        families: Families to search, from `"smelu"` (default), `"generalized_smelu"`, `"gelu"`,
            `"swish"`, `"softplus"`; comparators are placed on SmeLU's width axis by matching
            the curvature at 0.
        width_low: Smallest width, in SmeLU `beta` units (> 0; default 0.01).
        width_high: Largest width (> width_low; default 10).
        width_range: `"auto"`: search the range measured from the ReLU reference's
            pre-activation scales (`SearchSpace.width_range`), within `width_low`-`width_high`
            (then at least a decade apart); recorded in the results and with the study.
            Omitted: search `width_low`-`width_high`.
        log: Sample widths on a log scale (default true; the useful range spans decades).
        slope_left_low: g-SmeLU's smallest left slope (default 0).
        slope_left_high: g-SmeLU's largest left slope (< 1; default 0.3).
        reference: Evaluate the ReLU reference once per model (default true).
        ensembles: Sizes of ReLU ensembles evaluated as reference points, e.g. `[2, 4]`
            (default `[]`: none): each replica averages k ReLU models, at k times the compute;
            shown with their cost in the table, files and plot, and the report says which
            ensemble size the recommended width matches in PD (`SearchSpace.ensembles`).
    """

    NOT_IN_JOB_FILES = ("measured_range",)  # measured by the study

    def space(self) -> SearchSpace:
        """The `SearchSpace` this section describes."""
        return SearchSpace(**{f.name: getattr(self, f.name) for f in fields(SearchSpace)})


@dataclass(frozen=True)
class ObjectiveSection(Objective):
    """`[objective]`: the two objectives, `(accuracy objective, PD)`, the confidence level
    and the accuracy budget of the decision: an `Objective` (its fields, documented there and
    in `tuning/README.md`)."""


_SECTIONS = {
    "job": JobSection,
    "data": DataSection,
    "model": ModelSection,
    "training": TrainingSection,
    "search": SearchSection,
    "objective": ObjectiveSection,
}
_REQUIRED = ("job", "data")


@dataclass(frozen=True)
class Job:
    """A parsed tuning job: one dataclass per TOML table (see the module docstring)."""

    job: JobSection
    data: DataSection
    model: ModelSection = field(default_factory=ModelSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    search: SearchSection = field(default_factory=SearchSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    source: str | None = None

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def directions(self) -> tuple[str, str]:
        return self.objective.directions

    @property
    def objective_names(self) -> tuple[str, str]:
        return self.objective.names

    def validate(self, check_paths: bool = True, environ: Mapping[str, str] | None = None) -> Job:
        """Check every section; raise `JobError` naming the first bad field. Returns `self`."""
        self.job.validate()
        self.data.validate(check_paths=check_paths, environ=environ)
        self.model.validate()
        if check_paths:
            self.model.check_warm_start_file()
        if self.model.warm_start is not None and self.training.vary == "init":
            raise _fail(
                "training",
                "vary",
                "with [model] warm_start every replica starts from the saved weights, so "
                '"init" would vary nothing; expected "data_order" (or "both", the same '
                "here), got 'init'",
            )
        return self

    def output_dir(self) -> Path:
        """The output folder (`[job] output`, default `keras-smelu-runs/<name>`)."""
        return Path(self.job.output or os.path.join("keras-smelu-runs", self.job.name)).expanduser()

    def search_space(self) -> SearchSpace:
        return self.search.space()

    def trial_settings(self) -> TrialSettings:
        """What every trial of this job trains and reports: its `[training]` and
        `[objective]` sections, as they are."""
        return TrialSettings(training=self.training, objective=self.objective)

    def dataset_kwargs(self) -> dict[str, Any]:
        """Arguments for `keras_smelu.datasets.load(**kwargs)`: `name`, `path` (resolved, or
        `None`), the seed, the label and the loader options. For the synthetic data `n_train`
        / `n_test` are generator arguments; for real data apply them with
        `RecDataset.subset(n_train, n_test)`."""
        d = self.data
        path = d.resolve_path()
        kwargs: dict[str, Any] = {
            "name": d.dataset,
            "path": None if path is None else str(path),
            "seed": self.job.seed if d.seed is None else d.seed,
        }
        if d.label is not None:
            kwargs["label"] = d.label
        if d.streaming:
            kwargs["streaming"] = True
        if d.dataset == "synthetic":
            kwargs.update({k: v for k, v in (("n_train", d.n_train), ("n_test", d.n_test)) if v})
        kwargs.update(dict(d.options))
        return kwargs

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        """Keyword arguments for the builder `keras_smelu.models.<model_name>(data, activation,
        **kwargs)`."""
        if model_name not in self.model.names:
            raise ValueError(f"model {model_name!r} is not in this job's {self.model.names}")
        m = self.model
        kwargs: dict[str, Any] = {
            "embedding_dim": m.embedding_dim,
            "hidden": tuple(m.hidden),
            "normalization": None if m.normalization == "none" else m.normalization,
            "dropout": m.dropout,
            "optimizer": m.optimizer,
            "learning_rate": m.learning_rate,
        }
        if model_name == "deep_cross":
            kwargs.update(cross_layers=m.cross_layers, low_rank=m.low_rank, stacked=m.stacked)
        return kwargs

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The job as nested plain data (tuples as lists, unset optional fields left out)."""
        out: dict[str, dict[str, Any]] = {}
        for section in _SECTIONS:
            table = {}
            obj = getattr(self, section)
            for f in fields(obj):
                value = getattr(obj, f.name)
                if value is None or f.name in getattr(obj, "NOT_IN_JOB_FILES", ()):
                    continue
                if isinstance(value, tuple):
                    value = list(value)
                elif isinstance(value, Mapping):
                    value = dict(value)
                table[f.name] = value
            out[section] = table
        return out


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `"section.field=value"` (the value in TOML syntax, or a bare string)."""
    if "=" not in text:
        raise JobError(f"override {text!r}: expected 'section.field=value'")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = _require_toml().loads(f"v = {raw}")["v"]
    except Exception:  # a bare word such as nsga2: take it as a string
        value = raw
    return key, value


def _apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any] | Sequence[str]
) -> dict[str, Any]:
    items = (
        overrides.items()
        if isinstance(overrides, Mapping)
        else (parse_override(text) for text in overrides)
    )
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for key, value in items:
        section, _, name = key.partition(".")
        if not name:
            raise JobError(f"override {key!r}: expected 'section.field'")
        if section not in _SECTIONS:
            raise JobError(
                f"[{section}]: unknown section in override {key!r}; expected one of "
                f"{list(_SECTIONS)}",
                field=f"[{section}]",
            )
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise JobError(f"[{section}]: expected a table", field=f"[{section}]")
        table[name] = value
    return data


def job_from_dict(
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    source: str | None = None,
    check_paths: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Job:
    """Build and validate a `Job` from nested tables (what `tomllib` returns)."""
    data = dict(data)
    if overrides:
        data = _apply_overrides(data, overrides)
    unknown = [key for key in data if key not in _SECTIONS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(_SECTIONS), n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        raise JobError(
            f"[{unknown[0]}]: unknown section; expected {list(_SECTIONS)}{hint}",
            field=f"[{unknown[0]}]",
        )
    for section in _REQUIRED:
        if section not in data:
            raise JobError(f"[{section}]: this section is required", field=f"[{section}]")
    sections = {}
    for section, cls in _SECTIONS.items():
        if section in data:
            sections[section] = _from_table(cls, section, data[section])
    sections["job"].validate()
    # The job's seed is the replicas' base seed: the training settings carry it from here on.
    training = sections.get("training", TrainingSection())
    sections["training"] = dataclasses.replace(training, seed=sections["job"].seed)
    job = Job(**sections, source=source)
    return job.validate(check_paths=check_paths, environ=environ)


def _require_toml():
    if _toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise ImportError(
            "Reading job files on Python 3.10 needs 'tomli': pip install tomli "
            "(Python 3.11+ has tomllib built in)"
        )
    return _toml


def load_job(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    check_paths: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Job:
    """Read, parse and validate a TOML job file.

    Args:
        path: The job file.
        overrides: Changes applied before validation: a mapping `{"training.pairs": 1}` or
            strings `["training.pairs=1", "job.sampler=random"]` (values in TOML syntax).
        check_paths: Check that a real dataset's files exist (default true).
        environ: Environment to read `KERAS_SMELU_DATA` from (default `os.environ`).

    Returns:
        The validated `Job`.

    Raises:
        JobError: the file is not valid TOML or a field is wrong; the message names the field.
        FileNotFoundError: the file does not exist.
    """
    toml = _require_toml()
    path = Path(path)
    with path.open("rb") as handle:
        try:
            data = toml.load(handle)
        except toml.TOMLDecodeError as exc:
            raise JobError(f"{path}: not valid TOML: {exc}") from exc
    return job_from_dict(
        data, overrides, source=str(path), check_paths=check_paths, environ=environ
    )


@contextlib.contextmanager
def demo_job_path() -> Iterator[Path]:
    """The embedded demo job (`keras-smelu demo`): package data of `keras_smelu.tuning`, the
    file `tuning/synthetic-demo.toml` links to, as a path while the context lasts."""
    from importlib import resources

    with resources.as_file(resources.files("keras_smelu.tuning") / "demo.toml") as path:
        yield Path(path)
