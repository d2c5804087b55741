"""JAX's persistent compilation cache, for the many identical programs of replica training.

Every replica is a freshly built model, so Keras traces and compiles its train, evaluate and
predict functions anew; on JAX that compilation (seconds) dominates short trainings. With the
persistent cache, identical programs (same architecture, activation and shapes) compile once and
are loaded afterwards. It changes only the speed, never a number: the cached executable is the
one XLA compiled for the same program.
"""

from __future__ import annotations

import os
from pathlib import Path


def enable_compilation_cache(directory: str | os.PathLike[str]) -> bool:
    """Turns on JAX's persistent compilation cache in `directory` (process-wide).

    A no-op on the other backends, where it returns False.

    Args:
        directory: Folder of the cache; created if needed and reusable across runs.

    Returns:
        True when the cache is on (the JAX backend), False otherwise.

    Example:

    >>> keras_smelu.enable_compilation_cache("keras-smelu-runs/.jax-cache")  # doctest: +SKIP
    True
    """
    import keras

    if keras.backend.backend() != "jax":
        return False
    import jax

    Path(directory).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Cache every program: a replica's small programs are exactly the ones compiled again.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return True
