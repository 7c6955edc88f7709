"""Bench tests: ``@pytest.mark.gpu`` tests are skipped without CUDA."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run pytest -m gpu on the GPU machine)")
    for item in items:
        if "gpu" in item.keywords and "tests/bench" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
