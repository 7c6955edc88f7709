"""Latency-targeted search converges on a fake latency model; LUT rounding from fake curves."""

import json

import pytest
import torch
from torch import nn

from prunekit.bench.latency_lut import (
    LatencyLUT, choose_round_to, default_counts, layer_signature, measure_curve,
    preferred_multiple, rounding_savings, with_out_channels,
)
from prunekit.bench.latency_target import parse_latency_target, prune_for_latency, search_latency
from prunekit.bench.reliability import SpeedupEstimate


class Fake(nn.Module):
    def __init__(self, ratio):
        super().__init__()
        self.ratio = ratio


def exact(rel):
    """A verification estimate with no spread at relative latency ``rel``."""
    return SpeedupEstimate(1 / rel, 1 / rel, 1 / rel, 1 / rel, rounds=30)


def fake_latency(noise=0.0, floor=0.0):
    """Relative latency falls with the ratio, in steps (like kernel tiles), plus fixed noise."""
    def rel(m):
        steps = int(m.ratio * 20) / 20
        return max(floor, 1.0 - 0.8 * steps) * (1 + noise)
    return rel


def test_parse_latency_target():
    assert parse_latency_target("0.5x") == 0.5
    assert parse_latency_target("40%") == pytest.approx(0.4)
    assert parse_latency_target(0.7) == 0.7
    for bad in ("fast", "1.5x", 0, "0x"):
        with pytest.raises(ValueError, match="target latency"):
            parse_latency_target(bad)


@pytest.mark.parametrize("target", [0.3, 0.5, 0.8])
def test_search_converges_to_least_pruning_meeting_target(target):
    made = []

    def make(r):
        made.append(r)
        return Fake(r)

    res = search_latency(Fake(0.0), make, fake_latency(), target, tol=0.005)
    assert res.met and res.relative_latency <= target
    # the smallest ratio meeting the target on this latency model, within tolerance
    needed = min(k / 20 for k in range(21) if 1.0 - 0.8 * k / 20 <= target + 1e-12)
    assert needed - 1e-9 <= res.ratio <= needed + 0.01
    assert len(made) <= 14
    assert res.trace[0][0] == 0.9  # first probe: the most pruning


def test_unreachable_target_returns_fastest_not_slower():
    res = search_latency(Fake(0.0), Fake, fake_latency(floor=0.7), 0.5)
    assert not res.met and res.relative_latency == pytest.approx(0.7) and res.ratio == 0.9
    dense = Fake(0.0)
    res = search_latency(dense, Fake, lambda m: 1.2, 0.5)  # pruning only slows this model down
    assert res.model is dense and res.relative_latency == 1.0 and not res.met
    assert "dense" in res.notes[0]


def test_prune_for_latency_with_injected_functions():
    res = prune_for_latency(nn.Linear(4, 4), torch.randn(1, 4), "0.6x", make=Fake,
                            rel_latency=fake_latency(), round_to=8,
                            verify=lambda m: exact(fake_latency()(m)))
    assert res.met and res.relative_latency <= 0.6 and res.round_to == 8
    assert res.to_dict()["trace"]


def test_rounding_from_curves():
    # latency jumps when the count is not a multiple of 8 (like a tensor-core tile)
    curve = {c: (1.0 if c % 8 == 0 else 2.0) * c for c in range(40, 73)}
    assert rounding_savings(curve, 1) == 0.0
    assert preferred_multiple(curve) == 8
    flat = {c: float(c) for c in range(40, 73)}  # proportional: rounding up only costs
    assert preferred_multiple(flat) == 1


class CurveTimer:
    def __init__(self):
        self.calls = 0

    def __call__(self, mods, x):
        self.calls += 1
        return {c: (1.0 if c % 16 == 0 else 3.0) for c in mods}


def test_choose_round_to_caches_tables(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 36, 64))
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "lut.json"
    timer = CurveTimer()
    lut = LatencyLUT(path, "cpu:test|float32|batch2")
    g, details = choose_round_to(model, x, lut, timer=timer)
    assert g == 16 and timer.calls == 2 and set(details) == {"0", "3"}
    data = json.loads(path.read_text())
    assert len(data["cpu:test|float32|batch2"]) == 2
    g2, _ = choose_round_to(model, x, LatencyLUT(path, "cpu:test|float32|batch2"), timer=timer)
    assert g2 == 16 and timer.calls == 2  # served from the cache


def test_lut_helpers():
    conv = nn.Conv2d(8, 24, 3, padding=1)
    x = torch.randn(1, 8, 6, 6)
    assert "Conv2d(in=8" in layer_signature(conv, x)
    assert with_out_channels(conv, 5)(x).shape == (1, 5, 6, 6)
    assert 24 in default_counts(24) and 12 in default_counts(24)
    curve = measure_curve(nn.Linear(16, 32), torch.randn(4, 16), [8, 16])  # real timer, CPU
    assert set(curve) == {8, 16} and all(v > 0 for v in curve.values())
    with pytest.raises(ValueError, match="no latency table"):
        layer_signature(nn.ReLU(), x)


def test_lut_bad_json(tmp_path):
    p = tmp_path / "lut.json"
    p.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        LatencyLUT(p, "k")


def test_prune_for_latency_with_real_planner_and_fake_latency():
    """Real structural planner makes the candidates; a fake latency model (MACs-based) judges."""
    from prunekit.bench.metrics import count_macs

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4)).eval()
    x = torch.randn(1, 3, 8, 8)
    dense_macs = count_macs(model, x)[0]
    rel = lambda m: count_macs(m, x)[0] / dense_macs  # noqa: E731
    res = prune_for_latency(model, x, 0.6, round_to=4, max_iters=5, rel_latency=rel,
                            verify=lambda m: exact(rel(m)))
    assert res.met and res.relative_latency <= 0.6 and 0 < res.ratio < 0.9
    assert res.model(x).shape == (1, 4)
    assert model[0].out_channels == 32  # the input model is untouched
