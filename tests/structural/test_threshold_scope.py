"""scope='threshold': one threshold on raw scores (Network Slimming), not per-layer means."""

from __future__ import annotations

import torch
from torch import nn

import prunekit as pk


class TwoStages(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 16, 1), nn.BatchNorm2d(16)
        self.c2, self.b2 = nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16)
        self.head = nn.Conv2d(16, 2, 1)
        with torch.no_grad():
            self.b1.weight.copy_(torch.linspace(0.001, 0.01, 16))  # every gamma small
            self.b2.weight.copy_(torch.linspace(0.5, 1.0, 16))  # every gamma large

    def forward(self, x):
        return self.head(self.b2(self.c2(self.b1(self.c1(x)))))


def test_threshold_scope_removes_the_small_layer_first():
    model, x = TwoStages().eval(), torch.randn(1, 3, 4, 4)
    raw = pk.plan_structured(model, x, criterion="bn_scale", scope="threshold", ratio=0.375,
                             per_layer_max=1.0)
    removed = {g.name: g.removed for g in raw.groups}
    assert removed["c1"] == 12 and removed["c2"] == 0  # 37.5% of 32 = 12, all from the small layer
    norm = pk.plan_structured(model, x, criterion="bn_scale", scope="global", ratio=0.375,
                              per_layer_max=1.0)
    assert {g.name: g.removed for g in norm.groups}["c2"] > 0  # per-layer normalisation


def test_bad_scope_names_the_argument():
    import pytest

    with pytest.raises(ValueError, match="scope"):
        pk.plan_structured(TwoStages(), torch.randn(1, 3, 4, 4), scope="everywhere")
