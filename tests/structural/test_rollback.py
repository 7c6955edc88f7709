"""A failure at any step of apply() leaves the model bit-identical (RNN flat weights too)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit.handlers import rnn as rnn_handler
from prunekit.structural import apply as apply_mod


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 8)
        self.gru = nn.GRU(8, 8, num_layers=2, batch_first=True)
        self.lstm = nn.LSTM(8, 6, batch_first=True, bidirectional=True)
        self.mha = nn.MultiheadAttention(12, 2, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.gru(torch.relu(self.emb(x)))
        y, _ = self.lstm(y)
        return self.head(self.mha(y, y, y)[0])


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(model, x, out, state):
    with torch.no_grad():
        torch.testing.assert_close(model(x), out, atol=0, rtol=0)
    now = model.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], state[k]) for k in state)
    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            named = [getattr(m, n) for n in m._flat_weights_names]
            assert all(a is b for a, b in zip(m._flat_weights, named, strict=True))


def _failing_plan():
    model, x = Recurrent().eval(), torch.randn(2, 5, 4)
    plan = pk.plan_structured(model, x, ratio=0.5)
    with torch.no_grad():
        out = model(x)
    return model, x, plan, out, _state(model)


def test_failure_after_each_edit(monkeypatch):
    model, x, plan, out, state = _failing_plan()
    real = apply_mod._mutate
    for k in range(len(plan.edits) + 1):
        def partial(p, modules, k=k):
            edits, pedits = p.edits, p.param_edits
            try:
                p.edits, p.param_edits = edits[:k], (pedits if k == len(edits) else [])
                real(p, modules)
            finally:
                p.edits, p.param_edits = edits, pedits
            raise RuntimeError(f"forced after {k} edits")
        monkeypatch.setattr(apply_mod, "_mutate", partial)
        with pytest.raises(RuntimeError, match="forced"):
            plan.apply()
        _assert_same(model, x, out, state)


@pytest.mark.parametrize("n", range(1, 16))
def test_failure_inside_rnn_surgery(monkeypatch, n):
    model, x, plan, out, state = _failing_plan()
    real, calls = rnn_handler.slice_param, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise RuntimeError("forced inside RNN surgery")
        return real(*a, **k)

    monkeypatch.setattr(rnn_handler, "slice_param", flaky)
    try:
        plan.apply()
    except pk.PruneError:
        pass
    else:
        pytest.skip("fewer slice calls than n")
    _assert_same(model, x, out, state)


def test_failure_in_final_check(monkeypatch):
    model, x, plan, out, state = _failing_plan()

    def fail(p, m):
        raise pk.PruneError("forced in the check")
    monkeypatch.setattr(apply_mod, "_check_forward", fail)
    with pytest.raises(pk.PruneError):
        plan.apply(validate=True)
    _assert_same(model, x, out, state)
