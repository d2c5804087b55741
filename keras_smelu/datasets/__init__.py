"""Dataset loaders for recommender / CTR experiments, returning `RecDataset` containers.

Real data is read at run time from an explicit `path`, else from the directory named by the
`KERAS_SMELU_DATA` environment variable (holding `movielens-100k/`, `criteo-dac-8k/` or `criteo/`,
`avazu-9k/` or `avazu/`); the embedded default is a generated synthetic click log. Files too large
for memory stream: `load(name, path, streaming=True)` returns a `StreamingDataset`.
"""

from keras_smelu.datasets._avazu import load_avazu
from keras_smelu.datasets._base import DATA_ENV_VAR, RecDataset
from keras_smelu.datasets._criteo import load_criteo
from keras_smelu.datasets._libsvm import load_libsvm
from keras_smelu.datasets._movielens import load_movielens, load_movielens_100k
from keras_smelu.datasets._registry import available, load
from keras_smelu.datasets._streaming import StreamingDataset
from keras_smelu.datasets._synthetic import load_synthetic, make_synthetic_click_log, oracle_auc
from keras_smelu.datasets._synthetic_log_writer import write_click_log

__all__ = [
    "DATA_ENV_VAR",
    "RecDataset",
    "StreamingDataset",
    "available",
    "load",
    "load_avazu",
    "load_criteo",
    "load_libsvm",
    "load_movielens",
    "load_movielens_100k",
    "load_synthetic",
    "make_synthetic_click_log",
    "oracle_auc",
    "write_click_log",
]
