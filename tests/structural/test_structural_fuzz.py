"""Hypothesis-generated conv/linear/norm/residual/concat/split stacks: prune, then verify."""

from __future__ import annotations

import pytest

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from struct_models import randomize_norms
from torch import nn

import prunekit as pk

BLOCKS = ["conv", "residual", "concat", "split", "depthwise", "grouped", "gn", "se"]


class Block(nn.Module):
    def __init__(self, kind: str, c: int, out: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "conv":
            self.a, self.n = nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out)
        elif kind == "residual":
            self.a, self.n = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
            self.b = nn.Conv2d(c, c, 1)
        elif kind == "concat":
            self.a, self.b = nn.Conv2d(c, out // 2, 1), nn.Conv2d(c, out - out // 2, 3, padding=1)
        elif kind == "split":
            self.a = nn.Conv2d(c // 2, c // 2, 3, padding=1)
        elif kind == "depthwise":
            self.a, self.n = nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c)
        elif kind == "grouped":
            self.a = nn.Conv2d(c, 2 * c, 1, groups=2)
            self.n = nn.GroupNorm(2, 2 * c)
        elif kind == "gn":
            self.a, self.n = nn.Conv2d(c, out, 1), nn.GroupNorm(2, out)
        elif kind == "se":
            self.a, self.b = nn.Conv2d(c, max(c // 2, 1), 1), nn.Conv2d(max(c // 2, 1), c, 1)

    def forward(self, x):
        k = self.kind
        if k in ("conv", "depthwise", "grouped", "gn"):
            return F.relu(self.n(self.a(x)))
        if k == "residual":
            return F.relu(x + self.b(F.relu(self.n(self.a(x)))))
        if k == "concat":
            return torch.cat([self.a(x), F.relu(self.b(x))], 1)
        if k == "split":
            p, q = x.chunk(2, dim=1)
            return torch.cat([F.relu(self.a(p)), q], 1)
        return x * torch.sigmoid(self.b(F.relu(self.a(x.mean((2, 3), keepdim=True)))))


def out_channels(kind: str, c: int, out: int) -> int:
    return {"conv": out, "concat": out, "gn": out, "grouped": 2 * c}.get(kind, c)


class Stack(nn.Module):
    def __init__(self, spec: list[tuple[str, int]], head: str) -> None:
        super().__init__()
        c, blocks = 4, []
        for kind, out in spec:
            blocks.append(Block(kind, c, out))
            c = out_channels(kind, c, out)
        self.blocks = nn.Sequential(*blocks)
        self.head = head
        self.fc = nn.Linear(c * (4 if head == "flatten" else 1), 3)

    def forward(self, x):
        x = self.blocks(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 2), 1) if self.head == "flatten" else x.mean((2, 3))
        return self.fc(x)


spec_st = st.lists(st.tuples(st.sampled_from(BLOCKS), st.sampled_from([4, 6, 8])),
                   min_size=1, max_size=5)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=spec_st, head=st.sampled_from(["flatten", "mean"]),
       scope=st.sampled_from(["local", "global"]), ratio=st.sampled_from([0.25, 0.5, 0.75]),
       seed=st.integers(0, 3))
@pytest.mark.slow
def test_random_stacks_prune_and_verify(spec, head, scope, ratio, seed):
    torch.manual_seed(seed)
    model = randomize_norms(Stack(spec, head), seed).eval()
    x = torch.randn(2, 4, 6, 6)
    plan = pk.plan_structured(model, x, ratio=ratio, scope=scope, seed=seed)
    pruned = plan.apply(copy=True)
    res = pk.verify(model, plan, pruned=pruned)
    assert res.ok, (res, plan.summary())
    assert pruned(x).shape == (2, 3)
