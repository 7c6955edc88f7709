"""Small pruned models for the compression tests."""

import pytest
import torch
from torch import nn

from prunekit.weights import prune_weights


def lenet_300_100(in_features: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10))


@pytest.fixture
def make_mlp():
    return lenet_300_100


@pytest.fixture
def make_cnn():
    return small_cnn


@pytest.fixture
def pruned_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = lenet_300_100()
    prune_weights(model, 0.9, scope="layer")
    return model


@pytest.fixture
def pruned_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    model = small_cnn()
    prune_weights(model, 0.8, scope="layer")
    return model
