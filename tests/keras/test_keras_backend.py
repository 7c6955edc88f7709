"""A non-torch Keras backend is refused with instructions to switch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import prunekit
from prunekit.keras._backend import KerasBackendError, require_torch_keras


def test_other_backend_is_refused_with_how_to_switch(keras, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(KerasBackendError, match="'tensorflow'.*KERAS_BACKEND=torch"):
        require_torch_keras()


@pytest.mark.slow
def test_backend_that_cannot_load_is_refused_with_how_to_switch(keras):
    src = str(Path(prunekit.__file__).resolve().parents[1])
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=src)
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('jax') else 3)"
    if subprocess.run([sys.executable, "-c", probe], env=env).returncode == 0:
        pytest.skip("jax is installed: the jax backend would load")
    r = subprocess.run([sys.executable, "-c", "import prunekit.keras"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "KerasBackendError" in r.stderr and "'jax'" in r.stderr
    assert "KERAS_BACKEND=torch" in r.stderr
