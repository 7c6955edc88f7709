"""pk.verify: cross-attention, keyword arguments, tuple outputs, wrong inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit as pk


class CrossAttention(nn.Module):
    def __init__(self, by_keyword: bool = False) -> None:
        super().__init__()
        self.kw = by_keyword
        self.q, self.kv = nn.Linear(4, 8), nn.Linear(4, 8)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.o = nn.Linear(8, 2)

    def forward(self, x, z):
        kv = self.kv(z)
        if self.kw:
            y = self.mha(self.q(x), key=kv, value=kv, need_weights=False)[0]
        else:
            y = self.mha(self.q(x), kv, kv)[0]
        return self.o(y)


class PositionThenAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 8)
        self.pos = nn.Parameter(torch.randn(1, 5, 8))
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.o = nn.Linear(8, 2)

    def forward(self, x):
        h = self.emb(x) + self.pos
        return self.o(self.mha(h, h, h)[0]), self.mha(h, h, h)[1]


@pytest.mark.parametrize("kw", [False, True])
def test_cross_attention_verifies(kw):
    model = CrossAttention(kw).eval()
    x = (torch.randn(2, 3, 4), torch.randn(2, 5, 4))
    plan = pk.plan_structured(model, x, ratio=0.5)
    assert plan.edits
    assert pk.verify(model, plan).ok


def test_attention_weights_compared_and_no_false_alarm():
    model = PositionThenAttention().eval()
    x = torch.randn(2, 5, 4)
    plan = pk.plan_structured(model, x, ratio=0.5)
    res = pk.verify(model, plan)
    assert res.ok, res


def test_verify_detects_a_wrong_model():
    model = CrossAttention().eval()
    x = (torch.randn(2, 3, 4), torch.randn(2, 5, 4))
    plan = pk.plan_structured(model, x, ratio=0.5)
    pruned = plan.apply(copy=True)
    with torch.no_grad():
        pruned.o.weight.add_(0.5)
    res = pk.verify(model, plan, pruned=pruned)
    assert not res.ok and "output 0" in res.detail


def test_wrong_inputs_raise_value_error_and_leave_model_alone():
    model = CrossAttention().eval()
    x = (torch.randn(2, 3, 4), torch.randn(2, 5, 4))
    plan = pk.plan_structured(model, x, ratio=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="example_inputs"):
        pk.verify(model, plan, example_inputs=torch.randn(2, 3, 7))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
