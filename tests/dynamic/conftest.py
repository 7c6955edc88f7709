"""Fixtures shared by the dynamic-pruning tests."""

import pytest
import torch
from dynamic_models import TinyNet


@pytest.fixture
def tiny():
    return TinyNet().eval()


@pytest.fixture
def calib():
    return torch.randn(40, 8, 32)  # 40 samples of 8 tokens
