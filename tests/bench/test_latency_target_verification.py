"""A latency target is met only when a fresh interleaved re-measurement says so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit.bench.latency_target as lt
from prunekit.bench.config import BenchConfig
from prunekit.bench.reliability import SpeedupEstimate


class Fake(nn.Module):
    def __init__(self, ratio):
        super().__init__()
        self.ratio, self.lin = ratio, nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


def est(rel, lo=None, hi=None):
    lo, hi = lo or rel, hi or rel  # relative-latency bounds -> speedup bounds
    return SpeedupEstimate(1 / rel, 1 / rel, 1 / hi, 1 / lo, rounds=40)


def _run(verify, target=0.6, **kw):
    return lt.prune_for_latency(nn.Linear(4, 4), torch.randn(1, 4), target, make=Fake,
                                rel_latency=lambda m: 1.0 - 0.5 * m.ratio, round_to=1,
                                verify=verify, config=BenchConfig(batches=(1,)), **kw)


def test_search_figure_is_not_the_verdict():
    res = _run(lambda m: est(0.62))  # the search saw <= 0.6, a fresh run sees 0.62
    assert res.search_relative_latency <= 0.6
    assert not res.met and res.relative_latency == pytest.approx(0.62)
    assert any("NOT met" in n for n in res.notes)


@pytest.mark.parametrize("hi,met", [(0.58, True), (0.61, False)])
def test_met_needs_the_upper_bound_under_target(hi, met):
    res = _run(lambda m: est(0.55, 0.52, hi))
    assert res.met is met
    assert res.relative_interval == pytest.approx((0.52, hi))
    assert res.to_dict()["verified"]["relative_ci_high"] == pytest.approx(hi)


def test_a_missed_target_is_searched_again_below_the_miss():
    calls = []

    def verify(m):
        calls.append(m.ratio)
        return est(0.62) if len(calls) == 1 else est(0.55, 0.52, 0.58)

    res = _run(verify)
    assert len(calls) == 2 and calls[1] > calls[0]  # the second search pruned more
    assert res.met and res.relative_latency == pytest.approx(0.55)
    assert any("searched again for 0.581x" in n for n in res.notes)


def test_default_verification_is_a_fresh_interleaved_run(monkeypatch):
    seen = []
    real = lt.compare

    def spy(models, x, cfg, **kw):
        seen.append(dict(models))
        return real(models, x, cfg, **kw)

    monkeypatch.setattr(lt, "compare", spy)
    dense = nn.Linear(4, 4)
    cfg = BenchConfig(batches=(2,), repeats=5, max_repeats=5, warmup=0, number=1,
                      memory=False, probe=False)
    res = lt.prune_for_latency(dense, torch.randn(2, 4), 0.9, make=Fake,
                               rel_latency=lambda m: 0.5, round_to=1, config=cfg)
    # equal speed: the fresh run (real timing) usually misses 0.9x and one re-search follows
    assert len(seen) in (1, 2) and any(s["candidate"] is res.model for s in seen)
    assert all(s["dense"] is not dense for s in seen)  # fresh copies, not the searched-against
    assert (len(seen) == 2) == any("searched again" in n for n in res.notes)
    assert res.verified is not None and res.verified.rounds == 5
    assert res.setting == f"cpu, fp32, eager, batch 2, {cfg.threads} threads"


def test_default_setting_is_announced_with_the_example_batch():
    with pytest.warns(UserWarning, match="batch 4 \\(the batch of example_inputs\\)"):
        res = lt.prune_for_latency(nn.Linear(4, 4), torch.randn(4, 4), 0.6, make=Fake,
                                   rel_latency=lambda m: 0.5, round_to=1,
                                   verify=lambda m: est(0.5))
    assert res.met and "batch 4" in res.setting
    with pytest.warns(UserWarning, match="timing at batch 1 from config"):
        lt.prune_for_latency(nn.Linear(4, 4), torch.randn(4, 4), 0.6, make=Fake,
                             rel_latency=lambda m: 0.5, round_to=1, verify=lambda m: est(0.5),
                             config=BenchConfig(batches=(1,)))
