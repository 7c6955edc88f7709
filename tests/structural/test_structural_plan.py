"""Plan options, targets, criteria and transactional failure modes."""

from __future__ import annotations

import pytest
import torch
from struct_models import CASES, randomize_norms
from torch import nn

import prunekit as pk
from prunekit.config import TargetSpec
from prunekit.handlers.base import HANDLERS, Handler, PruneError


def _model(name="residual_grouped"):
    factory, shape = CASES[name]
    torch.manual_seed(0)
    return randomize_norms(factory()).eval(), torch.randn(*shape)


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def _same(m, before):
    after = m.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("kw", [dict(ratio=1.0), dict(ratio=-0.1), dict(ratio="0.5"),
                                dict(scope="bogus"), dict(round_to=0), dict(criterion="nope"),
                                dict(per_layer_min=0.8, per_layer_max=0.2)])
def test_bad_options_raise_value_error(kw):
    m, x = _model()
    before = _state(m)
    with pytest.raises(ValueError):
        pk.plan_structured(m, x, **kw)
    assert _same(m, before)


def test_excluded_name_not_found():
    m, x = _model()
    with pytest.raises(ValueError, match="no_such_layer"):
        pk.plan_structured(m, x, exclude=["no_such_layer"])


def test_exclude_keeps_module_untouched():
    m, x = _model("conv2d")
    plan = pk.plan_structured(m, x, exclude=["c1"])
    assert all(e.name not in ("c1", "b1") for e in plan.edits)
    assert any(e.name == "c2" for e in plan.edits)
    assert any(n == "c1.out" and "excluded" in why for n, _, why in plan.fixed)


def test_wrong_input_shape_names_module_and_leaves_model():
    m, _ = _model("conv2d")
    before = _state(m)
    with pytest.raises(ValueError, match="c1"):
        pk.plan_structured(m, torch.randn(2, 5, 8, 8))
    assert _same(m, before) and not m.training


class Custom(nn.Module):
    """A user layer with its own parameter used by an op we cannot slice through."""

    def __init__(self, c):
        super().__init__()
        self.w = nn.Parameter(torch.randn(c, c))

    def forward(self, x):
        return torch.einsum("bchw,cd->bdhw", x, self.w)


class WithCustom(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.custom, self.b = nn.Conv2d(3, 8, 1), Custom(8), nn.Conv2d(8, 4, 1)
        self.c = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.c(torch.relu(self.b(self.custom(self.a(x)))))


def test_unsupported_custom_layer_is_refused_with_reason():
    m = WithCustom().eval()
    x = torch.randn(1, 3, 4, 4)
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert [g.producers for g in plan.groups] == [["b"]]
    reasons = " ".join(w for n, _, w in plan.fixed if n == "a.out")
    assert "custom" in reasons or "matmul" in reasons or "mm" in reasons, plan.fixed
    assert pk.verify(m, plan).ok


class BrokenHandler(Handler):
    def in_channels(self, m):
        return m.in_features

    def out_channels(self, m):
        return m.out_features

    def prune_out(self, m, keep):
        m.out_features = len(keep)
        raise RuntimeError("boom")


class MyLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x)


def test_failed_apply_leaves_model_untouched_and_names_module(request):
    pk.register_handler(MyLinear, BrokenHandler())
    request.addfinalizer(lambda: HANDLERS._table.pop(MyLinear, None))  # no example: unregister
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), MyLinear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    before = _state(m)
    with pytest.raises(PruneError, match=r"2 \(MyLinear\) prune_out"):
        pk.plan_structured(m, x, ratio=0.5)  # the trial on a copy fails
    plan = pk.plan_structured(m, x, ratio=0.5, check=False)
    with pytest.raises(PruneError, match=r"2 \(MyLinear\) prune_out"):
        plan.apply()
    assert _same(m, before)
    assert m[0].out_features == 8 and m[2].out_features == 8


@pytest.mark.parametrize("kind", ["params", "macs"])
@pytest.mark.parametrize("scope", ["local", "global"])
def test_targets_are_met(kind, scope):
    m, x = _model("concat_split_shuffle")
    plan = pk.plan_structured(m, x, target=TargetSpec(**{kind: 0.5}), scope=scope,
                              per_layer_max=1.0)
    dense, got = plan.params if kind == "params" else plan.macs
    assert got <= 0.5 * dense
    loose = pk.plan_structured(m, x, target=TargetSpec(**{kind: 0.8}), scope=scope)
    assert (loose.params if kind == "params" else loose.macs)[1] >= got
    assert pk.verify(m, plan).ok


def test_param_count_matches_real_model():
    m, x = _model("conv2d")
    plan = pk.plan_structured(m, x, ratio=0.5)
    pruned = plan.apply(copy=True)
    assert plan.params[0] == sum(p.numel() for p in m.parameters())
    assert plan.params[1] == sum(p.numel() for p in pruned.parameters())


def test_round_to():
    m, x = _model("conv2d")
    plan = pk.plan_structured(m, x, ratio=0.3, round_to=4)
    for e in plan.edits:
        if e.name == "c1":
            assert len(e.keep_out) % 4 == 0


@pytest.mark.parametrize("criterion", ["l1", "l2", "random", "bn_scale"])
def test_data_free_criteria(criterion):
    m, x = _model("residual_grouped")
    plan = pk.plan_structured(m, x, criterion=criterion, ratio=0.5)
    assert pk.verify(m, plan).ok


def test_l1_removes_smallest_filters():
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([1.0, 0.01, 2.0, 0.02]).view(4, 1, 1, 1).expand(4, 3, 1, 1))
        m[0].bias.zero_()
        m[2].weight.fill_(0.1)
    plan = pk.plan_structured(m, torch.randn(1, 3, 2, 2), ratio=0.5)
    assert {e.name: e for e in plan.edits}["0"].keep_out.tolist() == [0, 2]


@pytest.mark.parametrize("criterion", ["taylor", "activation", "apoz"])
def test_data_driven_criteria(criterion):
    m, x = _model("conv2d")
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))) for _ in range(2)]
    before = _state(m)
    with pytest.raises(ValueError, match="calib_data"):
        pk.plan_structured(m, x, criterion=criterion)
    calib = batches if criterion == "taylor" else [b[0] for b in batches]
    plan = pk.plan_structured(m, x, criterion=criterion, calib_data=calib,
                              loss_fn=nn.functional.cross_entropy)
    assert _same(m, before) and all(p.grad is None for p in m.parameters())
    assert pk.verify(m, plan).ok
    assert sum(g.removed for g in plan.groups) > 0


class HardCoded(nn.Module):
    """Reshape with a channel count written as a constant: cannot survive pruning."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1)
        self.c, self.d = nn.Conv2d(8, 6, 1), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.a(x)
        n, c, h, w = y.shape
        y = self.b(y.reshape(n, 8, h * w).reshape(n, c, h, w))
        return self.d(torch.relu(self.c(y)))


def test_hard_coded_reshape_is_refused_after_trial():
    m = HardCoded().eval()
    x = torch.randn(1, 3, 4, 4)
    before = _state(m)
    with pytest.raises(PruneError):
        pk.plan_structured(m, x, ratio=0.5, check=False).apply()
    assert _same(m, before) and m.a.out_channels == 8
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert all(e.name != "a" for e in plan.edits)
    assert any(n == "a.out" and "fixed in the code" in why for n, _, why in plan.fixed), plan.fixed
    assert any(e.name == "c" for e in plan.edits)  # the rest is still pruned
    assert pk.verify(m, plan).ok


def test_trial_shares_parameters_and_leaves_the_model_untouched():
    from prunekit.structural.apply import shared_copy

    m, x = _model()
    params = {n: p for n, p in m.named_parameters()}
    before = _state(m)
    cp = shared_copy(m)
    assert all(cp.get_parameter(n) is p for n, p in params.items())  # no second copy
    assert all(a is not b for a, b in zip(cp.buffers(), m.buffers(), strict=True))  # buffers are copied
    plan = pk.plan_structured(m, x, ratio=0.5)  # the trial prunes a shared copy
    assert plan.checked
    assert _same(m, before)
    assert all(m.get_parameter(n) is p for n, p in params.items())
    # the masked reference runs on the model itself: every hook it set is gone
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())
    pruned = plan.apply()
    assert sum(p.numel() for p in pruned.parameters()) < sum(t.numel() for t in params.values())
