"""Smoothness tuning: search space, job files, Pareto frontier of (accuracy, PD), results.

Imports without Optuna, keras-tuner or matplotlib; the parts that need them raise an
`ImportError` saying `pip install "keras-smelu[tuning]"` when used.
"""

from keras_smelu.tuning._export import (
    ExportedModel,
    evidence_path_of,
    export_run,
    fetch_model,
    read_evidence,
)
from keras_smelu.tuning._job import (
    DataSection,
    Job,
    JobError,
    JobSection,
    ModelSection,
    ObjectiveSection,
    SearchSection,
    TrainingSection,
    job_from_dict,
    load_job,
    parse_override,
)
from keras_smelu.tuning._model_card import model_card
from keras_smelu.tuning._objective import METRIC_DIRECTIONS, Objective, infer_direction
from keras_smelu.tuning._pareto import (
    hypervolume_2d,
    knee_point,
    pareto_front_indices,
    pareto_mask,
    recommend,
)
from keras_smelu.tuning._record import TrialRecord, system_info
from keras_smelu.tuning._results import TuningReport, TuningResult
from keras_smelu.tuning._space import (
    FAMILIES,
    REFERENCE_FAMILY,
    SearchPoint,
    SearchSpace,
    make_activation,
)
from keras_smelu.tuning._trial import TrialFailedError, TrialSettings
from keras_smelu.tuning._tuner import tune, tune_job

__all__ = [
    "FAMILIES",
    "REFERENCE_FAMILY",
    "DataSection",
    "ExportedModel",
    "Job",
    "JobError",
    "JobSection",
    "METRIC_DIRECTIONS",
    "ModelSection",
    "Objective",
    "ObjectiveSection",
    "SearchPoint",
    "SearchSection",
    "SearchSpace",
    "TrainingSection",
    "TrialFailedError",
    "TrialRecord",
    "TrialSettings",
    "TuningReport",
    "TuningResult",
    "evidence_path_of",
    "export_run",
    "fetch_model",
    "hypervolume_2d",
    "infer_direction",
    "job_from_dict",
    "knee_point",
    "load_job",
    "make_activation",
    "model_card",
    "pareto_front_indices",
    "pareto_mask",
    "read_evidence",
    "parse_override",
    "recommend",
    "system_info",
    "tune",
    "tune_job",
]
