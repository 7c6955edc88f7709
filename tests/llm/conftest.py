"""Skip @pytest.mark.gpu tests on machines without CUDA."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):  # skip @pytest.mark.gpu without CUDA
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
