"""Channel shuffles and size arithmetic: pruned exactly or refused, never wrong."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from masked_reference import zero_reference
from torch import nn

import prunekit as pk


class Shuffle(nn.Module):
    def __init__(self, kind: str, groups: int, c: int = 8) -> None:
        super().__init__()
        self.kind, self.g = kind, groups
        self.a, self.b, self.h = nn.Conv2d(3, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, 4, 1)
        self.shuffle = nn.ChannelShuffle(groups)

    def forward(self, x):
        y = F.relu(self.a(x))
        if self.kind == "functional":
            y = F.channel_shuffle(y, self.g)
        elif self.kind == "module":
            y = self.shuffle(y)
        else:
            b, c, h, w = y.shape
            y = y.view(b, self.g, c // self.g, h, w).transpose(1, 2).reshape(b, c, h, w)
        return self.h(F.relu(self.b(y)))


class SizeArithmetic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        y = self.a(x)
        return self.b(y * y.shape[-1] ** -0.5)


def _check(model, x):
    plan = pk.plan_structured(model, x, ratio=0.5)
    pruned = plan.apply(copy=True)
    ref = zero_reference(model, plan)
    for inp in (x, torch.randn_like(x)):
        torch.testing.assert_close(pruned(inp), ref(inp), atol=1e-5, rtol=1e-5)
    assert pk.verify(model, plan).ok
    return plan


@pytest.mark.parametrize("kind", ["functional", "module", "view"])
@pytest.mark.parametrize("groups", [2, 4])
def test_shuffle_never_wrong(kind, groups):
    plan = _check(Shuffle(kind, groups).eval(), torch.randn(2, 3, 4, 4))
    assert plan.params[1] < plan.params[0]  # the convs after the shuffle are still pruned


def test_size_arithmetic_channels_frozen_with_reason():
    model, x = SizeArithmetic().eval(), torch.randn(2, 4)
    plan = _check(model, x)
    assert not any(e.name == "a" and e.keep_out is not None for e in plan.edits)
    assert any("size is read as a number" in why for _, _, why in plan.fixed)
