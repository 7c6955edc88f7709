"""Small models shared by the dynamic-pruning tests."""

import pytest
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int = 32, h: int = 64) -> None:
        super().__init__()
        self.up = nn.Linear(d, h)
        self.act = nn.SiLU()
        self.down = nn.Linear(h, d, bias=False)

    def forward(self, x):
        return x + self.down(self.act(self.up(x)))


class TinyNet(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(d), Block(d))
        self.head = nn.Linear(d, 4)

    def forward(self, x):
        return self.head(self.blocks(x))


@pytest.fixture
def tiny():
    return TinyNet().eval()


@pytest.fixture
def calib():
    return torch.randn(40, 8, 32)  # 40 samples of 8 tokens


def build_tiny() -> nn.Module:
    """Builder used by ``prunekit.save`` specs in the tests."""
    return TinyNet()
