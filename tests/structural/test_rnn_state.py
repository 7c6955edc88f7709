"""RNN initial states from a prunable layer are coupled to the RNN's hidden units."""

from __future__ import annotations

import torch
from masked_reference import zero_reference
from torch import nn

import prunekit as pk


class StateFromLayer(nn.Module):
    def __init__(self, kind: str = "gru", width: int = 8, state_width: int = 8) -> None:
        super().__init__()
        self.kind = kind
        self.fc = nn.Linear(4, state_width)
        self.fc_c = nn.Linear(4, state_width)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[kind]
        self.rnn = rnn(6, width, batch_first=True)
        self.head = nn.Linear(width, 3)

    def forward(self, x, z):
        h0 = self.fc(z).unsqueeze(0)
        hx = (h0, self.fc_c(z).unsqueeze(0)) if self.kind == "lstm" else h0
        out, _ = self.rnn(x, hx)
        return self.head(out)


def _inputs():
    return torch.randn(2, 5, 6), torch.randn(2, 4)


def test_h0_pruned_with_hidden_units_for_every_rnn_kind():
    for kind in ("gru", "lstm", "rnn"):
        model = StateFromLayer(kind).eval()
        x = _inputs()
        plan = pk.plan_structured(model, x, ratio=0.5)
        pruned = plan.apply(copy=True)
        assert pruned.rnn.hidden_size == 4 and pruned.fc.out_features == 4
        ref = zero_reference(model, plan)
        other = _inputs()
        for inp in (x, other):
            torch.testing.assert_close(pruned(*inp), ref(*inp), atol=1e-5, rtol=1e-5)
        assert pk.verify(model, plan).ok


def test_h0_of_another_width_is_refused_not_wrong():
    model = StateFromLayer("gru", width=8, state_width=8).eval()
    model.rnn = nn.GRU(6, 8, batch_first=True)
    x = _inputs()
    plan = pk.plan_structured(model, x, ratio=0.5)
    assert pk.verify(model, plan).ok


def test_lstm_state_tuple_consumed_downstream_verifies():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.lstm, self.o = nn.Linear(4, 8), nn.LSTM(8, 6, batch_first=True), nn.Linear(6, 2)

        def forward(self, x):
            out, (h, c) = self.lstm(self.a(x))
            return self.o(out) + self.o(h[-1]).unsqueeze(1) + self.o(c[-1]).unsqueeze(1)

    model, x = M().eval(), torch.randn(2, 5, 4)
    plan = pk.plan_structured(model, x, ratio=0.5)
    res = pk.verify(model, plan)
    assert res.ok and plan.apply(copy=True).lstm.hidden_size == 3
    torch.testing.assert_close(plan.apply(copy=True)(x), zero_reference(model, plan)(x))
