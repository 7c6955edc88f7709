"""Kept widths the hardware likes: global selection rounds each group to a multiple of 16
(32 from 256 channels) to the nearest multiple by default; local scope keeps the exact ratio."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.bench.metrics import count_macs
from prunekit.config import TargetSpec
from prunekit.structural import plan_structured
from prunekit.structural.select import hardware_multiple, select_global


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(64, 256, 1), nn.ReLU(),
                         nn.Conv2d(256, 48, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(48, 24, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(24, 10, 1)).eval()


X = torch.randn(1, 3, 8, 8)


def _outs(m: nn.Module) -> list[int]:
    return [c.out_channels for c in m if isinstance(c, nn.Conv2d)]


@pytest.mark.parametrize(("size", "step"), [(8, 1), (24, 1), (31, 1), (32, 16), (48, 16),
                                            (64, 16), (96, 16), (255, 1), (256, 32),
                                            (1000, 8), (2048, 32), (40, 8)])
def test_hardware_multiple(size, step):
    assert hardware_multiple(size) == step


@pytest.mark.parametrize("target", [TargetSpec(macs=0.4), TargetSpec(params=0.5), None])
def test_default_global_widths_are_hardware_multiples(target):
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plan = plan_structured(net, X, scope="global", ratio=0.37, target=target)
    pruned = plan.apply(copy=True)
    w = _outs(pruned)
    assert w[0] % 16 == 0 and w[1] % 32 == 0 and w[2] % 16 == 0 and w[-1] == 10
    assert w[0] < 64 or w[1] < 256 or w[2] < 48  # something was pruned
    assert "round_to=auto" in plan.summary()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    if target is not None and target.macs is not None:
        assert count_macs(pruned, X)[0] <= 0.4 * count_macs(net, X)[0] * 1.02


def test_explicit_round_to_and_local_scope_keep_their_counts():
    net = _net()
    one = plan_structured(net, X, scope="global", ratio=0.37, round_to=1).apply(copy=True)
    assert any(c % 16 for c in _outs(one)[:3])  # exact counts, as before the rule
    local = plan_structured(net, X, scope="local", ratio=0.3).apply(copy=True)
    assert _outs(local)[:4] == [64 - 19, 256 - 76, 48 - 14, 24 - 7]  # floor(0.3 * n) removed
    eight = plan_structured(net, X, scope="global", ratio=0.37, round_to=8).apply(copy=True)
    assert all(c % 8 == 0 for c in _outs(eight)[:4])


def test_nearest_rounding_removes_or_gives_back_by_score():
    # group 0: 64 units, 20 lowest fall under the threshold -> 44 kept -> nearest 48 (give back 4)
    # group 1: 64 units, 28 removed -> 36 kept -> nearest 32 (remove 4 more, the worst kept)
    first = torch.cat([torch.linspace(0.1, 0.2, 20), torch.linspace(2.0, 3.0, 44)])
    second = torch.cat([torch.linspace(0.1, 0.2, 28), torch.linspace(1.0, 3.0, 36)])
    masks = select_global([first, second], 48, 0.0, 0.9, [16, 16], [1, 1], normalize=False,
                          nearest=True)
    assert int((~masks[0]).sum()) == 48 and int((~masks[1]).sum()) == 32
    assert bool(masks[0][:16].all()) and not bool(masks[0][16:20].any())  # best 4 given back
    assert bool(masks[1][:32].all()) and not bool(masks[1][32:].any())  # next-worst 4 removed
    up = select_global([first, second], 48, 0.0, 0.9, [16, 16], [1, 1], normalize=False)
    assert [int((~m).sum()) for m in up] == [48, 48]  # the former rule only rounds up


def test_nearest_rounding_respects_per_layer_max():
    s = torch.linspace(0.1, 1.0, 64)
    masks = select_global([s], 57, 0.0, 0.9, [16], [1], normalize=False, nearest=True)
    assert int((~masks[0]).sum()) == 16  # at most 90% removed: 7 kept -> 16, never 0


@pytest.mark.parametrize("bad", [0, -8, 2.5, "auto", True])
def test_bad_round_to(bad):
    with pytest.raises(ValueError, match="round_to"):
        plan_structured(_net(), X, scope="global", round_to=bad)
