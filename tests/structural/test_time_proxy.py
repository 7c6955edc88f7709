"""The analytic layer-time estimate behind the default global selection: monotone in widths,
deterministic, fitted constants as committed, hardware-multiple widths, and a ranking that
moves the cut to where the estimate saves time."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from prunekit.bench.metrics import count_macs
from prunekit.config import TargetSpec
from prunekit.graph.dependency import DependencyGraph
from prunekit.structural import plan_structured, time_proxy
from prunekit.structural.select import CostModel
from prunekit.structural.time_proxy import (
    DEFAULT_TIME_MODEL, LayerTimeModel, estimate_time, estimated_time_weights,
    group_time_weights,
)

ROOT = Path(__file__).resolve().parents[2]
X = torch.randn(1, 3, 64, 64)


def _net() -> nn.Module:
    """Group "0": 1x1 convs on a 64x64 map (memory-bound); group "5": 3x3 on 16x16."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 1), nn.ReLU(),
                         nn.MaxPool2d(4), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.ReLU(),
                         nn.Conv2d(64, 10, 1)).eval()


def _cost(net: nn.Module) -> tuple[CostModel, list[int], list[int]]:
    graph = DependencyGraph.build(net, X)
    sizes = [g.size for g in graph.groups]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    return CostModel(graph, offsets, sum(sizes)), offsets, sizes


def test_constants_are_the_committed_fit():
    res = json.loads((ROOT / "benchmarks/results/time_proxy_fit.json").read_text())
    fitted = {r[0]: float(r[1]) for r in res["tables"][0]["rows"]}
    for name in ("grouped_mac", "weight_per_mac", "act_per_mac", "elementwise_per_mac",
                 "fixed_macs"):
        assert getattr(DEFAULT_TIME_MODEL, name) == pytest.approx(fitted[name], rel=1e-3)


@pytest.mark.parametrize("field", ["grouped_mac", "weight_per_mac", "act_per_mac",
                                   "elementwise_per_mac", "fixed_macs"])
def test_bad_constants_raise_naming_the_field(field):
    with pytest.raises(ValueError, match=field):
        LayerTimeModel(**{field: -1.0})
    with pytest.raises(ValueError, match=field):
        LayerTimeModel(**{field: float("nan")})


def test_layer_time_is_monotone_in_every_count():
    tm = DEFAULT_TIME_MODEL
    base = tm.layer_time(1e6, 1e4, 1e5, 1e5)
    for args in ((2e6, 1e4, 1e5, 1e5), (1e6, 2e4, 1e5, 1e5), (1e6, 1e4, 2e5, 1e5),
                 (1e6, 1e4, 1e5, 2e5)):
        assert tm.layer_time(*args) > base
    assert tm.layer_time(1e6, 1e4, 1e5, 1e5, grouped=True) > base  # off the GEMM path
    assert tm.layer_time(0, 10, 1e5, 1e5) == tm.elementwise_per_mac * 1e5  # a norm: one pass


def test_estimate_is_monotone_in_widths():
    cost, _, _ = _cost(_net())
    gen = torch.Generator().manual_seed(0)
    removed = torch.zeros(cost.total, dtype=torch.bool)
    last_t, last_m = estimate_time(cost, removed)
    for unit in torch.randperm(cost.total, generator=gen)[: cost.total // 2].tolist():
        removed[unit] = True
        t, m = estimate_time(cost, removed)
        assert t < last_t and m <= last_m
        last_t, last_m = t, m


def test_weights_are_deterministic_and_rank_memory_bound_groups_first():
    net = _net()
    a, b = group_time_weights(net, X), group_time_weights(net, X)
    assert a == b
    assert a[("0",)] > a[("2",)] > a[("5",)]  # 1x1 on a large map first, 3x3 on a small last
    cost, offsets, sizes = _cost(net)
    w = estimated_time_weights(cost, offsets, sizes, lo=0.9, hi=1.1)
    assert all(0.9 <= v <= 1.1 for v in w)


def test_default_plan_is_deterministic_hardware_multiple_and_meets_the_target():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plans = [plan_structured(net, X, scope="global", target=TargetSpec(macs=0.5))
             for _ in range(2)]
    widths = [[c.out_channels for c in p.apply(copy=True) if isinstance(c, nn.Conv2d)]
              for p in plans]
    assert widths[0] == widths[1]
    assert all(w % 16 == 0 for w in widths[0][:-1]) and widths[0][-1] == 10
    pruned = plans[0].apply(copy=True)
    assert count_macs(pruned, X)[0] <= 0.5 * count_macs(net, X)[0] * 1.02
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_default_moves_the_cut_to_where_the_estimate_saves_time():
    net = _net()
    kw = dict(scope="global", target=TargetSpec(macs=0.6), check=False)
    est = plan_structured(net, X, **kw).apply(copy=True)
    macs_only = plan_structured(net, X, time_weights=None, **kw).apply(copy=True)
    assert est[0].out_channels < macs_only[0].out_channels  # memory-bound group cut harder
    assert est[5].out_channels >= macs_only[5].out_channels
    cost, _, _ = _cost(net)
    assert count_macs(est, X)[0] <= 0.6 * count_macs(net, X)[0] * 1.02


@pytest.mark.parametrize("keep", [0.6, 0.35])
def test_default_cuts_no_group_far_beyond_the_macs_only_plan(keep):
    net = _net()
    kw = dict(scope="global", target=TargetSpec(macs=keep), check=False)
    est = plan_structured(net, X, **kw).apply(copy=True)
    macs_only = plan_structured(net, X, time_weights=None, **kw).apply(copy=True)
    for i in (0, 2, 5):
        extra = macs_only[i].out_channels - est[i].out_channels
        assert extra <= time_proxy.ESTIMATE_MAX_EXTRA * net[i].out_channels + 16  # + rounding


def test_caps_bound_each_groups_removals():
    from prunekit.structural.select import select_global

    flat, spread = torch.ones(64), torch.linspace(1.0, 2.0, 64)
    free = select_global([flat, spread], 64, 0.0, 0.9, 1, [1, 1], time_weights=[4.0, 1.0])
    capped = select_global([flat, spread], 64, 0.0, 0.9, 1, [1, 1], time_weights=[4.0, 1.0],
                           caps=[20, 64])
    assert int(free[0].sum()) > 20 and int(capped[0].sum()) == 20
    assert int(capped[0].sum() + capped[1].sum()) == 64


def test_estimate_option_is_ignored_by_local_scope_and_validated():
    net = _net()
    local = plan_structured(net, X, scope="local", ratio=0.25, check=False)
    explicit = plan_structured(net, X, scope="local", ratio=0.25, check=False,
                               time_weights="estimate")
    assert [e.keep_out.tolist() for e in local.edits if e.keep_out is not None] == [
        e.keep_out.tolist() for e in explicit.edits if e.keep_out is not None]
    with pytest.raises(ValueError, match="time_weights"):
        plan_structured(net, X, scope="global", time_weights="measured")


def test_docstring_examples_run():
    assert doctest.testmod(time_proxy).failed == 0
