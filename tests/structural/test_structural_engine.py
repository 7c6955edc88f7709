"""Equivalence of every handler / coupling rule: masked dense model == physically pruned model."""

from __future__ import annotations

import pytest
import torch
from struct_models import CASES, randomize_norms
from torch import nn

import prunekit as pk


def _build(name):
    factory, shape = CASES[name]
    torch.manual_seed(0)
    model = randomize_norms(factory()).eval()
    return model, torch.randn(*shape)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("scope", ["local", "global"])
def test_equivalence(name, scope):
    model, x = _build(name)
    ref = model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = pk.plan_structured(model, x, ratio=0.5, scope=scope)
    assert plan.groups, plan.summary()
    assert sum(g.removed for g in plan.groups) > 0
    for k, v in model.state_dict().items():  # planning does not mutate
        assert torch.equal(v, before[k])
    assert not [w for _, _, w in plan.fixed if "label rule failed" in w], plan.fixed
    res = pk.verify(model, plan)
    assert res.ok, (res, plan.summary())
    pruned = plan.apply(copy=True)
    assert pruned(x).shape == ref.shape
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_apply_in_place_updates_attributes():
    model, x = _build("residual_grouped")
    plan = pk.plan_structured(model, x, ratio=0.5)
    out = plan.apply()
    assert out is model
    assert model.stem.out_channels == model.stem.weight.shape[0] < 16
    assert model.gn.num_channels == model.stem.out_channels
    assert model.gn.num_channels % model.gn.num_groups == 0
    assert model.dw.groups == model.dw.in_channels == model.dw.out_channels
    assert model.dwm.groups == model.dwm.in_channels
    assert model.act.num_parameters == model.stem.out_channels
    assert model.head.in_features == model.head.weight.shape[1]
    assert model(x).shape == (2, 4)


def test_grouped_conv_removes_whole_groups():
    model, x = _build("residual_grouped")
    plan = pk.plan_structured(model, x, ratio=0.5)
    e = {e.name: e for e in plan.edits}["grp"]
    assert e.keep_out is not None and len(e.keep_out) % 4 == 0
    blocks = e.keep_out.reshape(-1, 4)
    assert bool((blocks[:, 0] % 4 == 0).all())


def test_output_layers_never_pruned_and_reported():
    model, x = _build("conv2d")
    plan = pk.plan_structured(model, x, ratio=0.5)
    assert all(e.name != "fc" or e.keep_out is None for e in plan.edits)
    assert any("fc" in n and "model output" in why for n, _, why in plan.fixed)
    assert plan.apply(copy=True).fc.out_features == 5


def test_flatten_prunes_linear_in_blocks():
    model, x = _build("conv2d")
    plan = pk.plan_structured(model, x, ratio=0.5)
    fc = {e.name: e for e in plan.edits}["fc"]
    c2 = {e.name: e for e in plan.edits}["c2"]
    assert len(fc.keep_in) == 4 * len(c2.keep_out)


def test_free_params_sliced():
    model, x = _build("mlp_scale")
    plan = pk.plan_structured(model, x, ratio=0.5)
    names = {f"{p.owner}.{p.attr}".lstrip(".") for p in plan.param_edits}
    assert {"gamma", "pos"} <= names, plan.summary()
    pruned = plan.apply(copy=True)
    assert pruned.gamma.shape[0] == pruned.fc2.out_features == pruned.norm.normalized_shape[0]


def test_summary_and_dict():
    model, x = _build("concat_split_shuffle")
    plan = pk.plan_structured(model, x, ratio=0.5)
    text = plan.summary()
    assert "groups" in text and "->" in text
    d = plan.to_dict()
    assert d["params"][1] < d["params"][0]
    import json

    json.dumps(d)


def test_unknown_op_makes_group_unprunable():
    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

        def forward(self, x):
            y = self.a(x)
            y = torch.cumsum(y, dim=1)  # mixes channels: group a must be refused
            return self.b(y)

    m = Weird().eval()
    x = torch.randn(1, 3, 4, 4)
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert not plan.groups
    assert any("a.out" == n and "cumsum" in why for n, _, why in plan.fixed), plan.fixed
