"""Test configuration.

Keras fixes its backend once per process, so the backend is chosen here, before any test module
imports Keras: JAX by default (the faster one on a CPU); the README's test command runs the
`backend`-marked tests a second time with `KERAS_BACKEND=tensorflow`.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
