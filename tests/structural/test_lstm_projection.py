"""LSTM with projections: cell units stay above proj_size instead of refusing the plan."""

from __future__ import annotations

import torch
from torch import nn

import prunekit as pk


class ProjLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.lstm = nn.LSTM(8, 8, proj_size=4, batch_first=True)

    def forward(self, x):
        return self.lstm(self.a(x))[0]  # the projected units reach the output: kept


def test_hidden_cut_stops_above_proj_size():
    model, x = ProjLSTM().eval(), torch.randn(2, 5, 4)
    plan = pk.plan_structured(model, x, ratio=0.5)
    pruned = plan.apply(copy=True)
    assert pruned.lstm.proj_size == 4 and pruned.lstm.hidden_size == 5
    assert pk.verify(model, plan).ok
