"""The backend-sensitive tests on the torch backend, where torch is installed (not in CI)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests._subprocess import REPO


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_backend_tests_pass_on_torch():
    env = dict(os.environ, KERAS_BACKEND="torch")
    files = ["test_activations.py", "test_gradients.py", "test_layers.py", "test_registry.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "backend", "-p", "no:cacheprovider"]
        + [f"tests/{f}" for f in files],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
