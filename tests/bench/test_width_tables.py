"""Width latency tables for depthwise/grouped convs, heads, MLP widths; time-aware selection."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.bench.width_tables import (
    attention_heads_curve, depthwise_curve, grouped_curve, mlp_width_curve, time_per_unit,
)
from prunekit.structural.select import select_global


def by_weight_numel(mods, x):
    """Fake timer: time proportional to the parameters (plus a fixed overhead)."""
    return {k: 10.0 + sum(p.numel() for p in m.parameters()) / 1000 for k, m in mods.items()}


def test_depthwise_and_grouped_curves_build_valid_layers():
    dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
    curve = depthwise_curve(dw, torch.randn(1, 32, 8, 8), [8, 16, 32], timer=by_weight_numel)
    assert list(curve) == [8, 16, 32] and curve[8] < curve[32]
    g = nn.Conv2d(32, 64, 3, padding=1, groups=4)
    curve = grouped_curve(g, torch.randn(1, 32, 8, 8), [30, 32, 48, 64], timer=by_weight_numel)
    assert list(curve) == [32, 48, 64]  # 30 is not divisible by the 4 groups
    with pytest.raises(ValueError, match="depthwise"):
        depthwise_curve(g, torch.randn(1, 32, 8, 8), [8])
    with pytest.raises(ValueError, match="grouped"):
        grouped_curve(nn.Conv2d(4, 4, 1), torch.randn(1, 4, 2, 2), [4])


def test_heads_and_mlp_curves():
    heads = attention_heads_curve(64, 16, [2, 4], tokens=8, timer=by_weight_numel)
    assert heads[2] < heads[4]
    mlp = mlp_width_curve(32, [64, 128], tokens=4, timer=by_weight_numel)
    assert mlp[64] < mlp[128]


def test_time_per_unit_sees_fixed_overheads():
    proportional = {c: float(c) for c in (32, 48, 64)}
    assert time_per_unit(proportional, 64) == pytest.approx(1.0)
    overhead = {c: 50.0 + c for c in (32, 48, 64)}  # most of the time does not shrink
    assert time_per_unit(overhead, 64) < 0.6
    with pytest.raises(ValueError, match="full width"):
        time_per_unit({1: 1.0}, 64)


def test_global_selection_spends_removals_where_time_is_saved():
    scores = [torch.ones(8), torch.ones(8)]  # equal importance everywhere
    plain = select_global(scores, 4, 0.0, 1.0, 1, [1, 1])
    timed = select_global(scores, 4, 0.0, 1.0, 1, [1, 1], time_weights=[0.2, 1.0])
    assert int(plain[0].sum()) == 4  # stable ties: first group
    assert int(timed[0].sum()) == 0 and int(timed[1].sum()) == 4  # group 1 saves more time
    with pytest.raises(ValueError, match="time_weights"):
        select_global(scores, 4, 0.0, 1.0, 1, [1, 1], time_weights=[1.0])


@pytest.mark.slow
def test_heads_curve_times_real_modules():
    heads = attention_heads_curve(64, 16, [2, 4], tokens=8)
    assert set(heads) == {2, 4} and all(v > 0 for v in heads.values())


def test_module_time_weights_times_at_the_batch_asked(monkeypatch):
    import prunekit.bench.width_tables as wt

    seen = []

    def fake_curve(m, x, clock):
        seen.append(x.shape[0])
        full = m.out_channels
        return {full // 2: 1.0, full: 2.0}, full

    monkeypatch.setattr(wt, "_curve_for", fake_curve)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    assert wt.module_time_weights(net, x) == {"0": 1.0, "2": 1.0} and seen == [1, 1]
    seen.clear()
    wt.module_time_weights(net, x, batch=16)
    assert seen == [16, 16] and x.shape[0] == 1  # the caller's inputs are not changed
    with pytest.raises(ValueError, match="batch"):
        wt.module_time_weights(net, x, batch=0)
