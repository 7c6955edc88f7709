"""A pruned nn.MultiheadAttention trains under an in-place residual, like the dense one."""

from __future__ import annotations

import torch
from torch import nn

import prunekit as pk


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.o = nn.Linear(4, 8), nn.Linear(8, 2)
        self.mha = nn.MultiheadAttention(8, 4, batch_first=True)

    def forward(self, x):
        x = self.a(x)
        x += self.mha(x, x, x)[0]
        return self.o(x)


def test_backward_after_inplace_residual():
    model, x = Block(), torch.randn(2, 5, 4)
    model(x).sum().backward()  # dense trains
    plan = pk.plan_structured(model, x, ratio=0.5)
    pruned = plan.apply(copy=True)
    assert pruned.mha.num_heads == 2
    pruned.train()
    pruned(x).sum().backward()
    assert pruned.mha.in_proj_weight.grad is not None
