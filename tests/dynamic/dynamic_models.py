"""Small models for the dynamic-pruning tests (importable by `module:dynamic_models:NAME` specs)."""

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


def build_tiny() -> nn.Module:
    """Builder used by ``prunekit.save`` specs in the tests."""
    return TinyNet()
