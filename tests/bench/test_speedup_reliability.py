"""Paired-speedup intervals, adaptive repetition and the contention probe (fake timers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunekit.bench.adaptive import AdaptivePlan, adaptive_samples
from prunekit.bench.config import BenchConfig
from prunekit.bench.contention import ContentionProbe
from prunekit.bench.harness import compare
from prunekit.bench.reliability import bootstrap_median_ci, paired_speedup


class NoisyClock:
    """Fake clock: the callable's name decides the base duration; multiplicative noise."""

    def __init__(self, base: dict[str, float], noise: float, seed: int = 0) -> None:
        self.base, self.noise = base, noise
        self.rng = np.random.default_rng(seed)
        self.current = ""

    def time_call(self, fn):
        fn()
        return self.base[self.current] * float(np.exp(self.rng.normal(0, self.noise)))


def _fns(clock: NoisyClock):
    def make(name):
        def run(x):
            clock.current = name
        return run
    return {"dense": make("dense"), "pruned": make("pruned")}


def _rounds(n: int, noise: float, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    return (list(4.0 * np.exp(rng.normal(0, noise, n))), list(2.0 * np.exp(rng.normal(0, noise, n))))


def test_interval_shrinks_with_rounds():
    widths = [paired_speedup(*_rounds(n, 0.1)).half_width for n in (10, 40, 160, 640)]
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < widths[0] / 3


def test_clean_rounds_are_reliable_and_noisy_are_not():
    clean = paired_speedup(*_rounds(40, 0.005))
    assert clean.reliable and clean.ci_low <= 2.0 <= clean.ci_high
    noisy = paired_speedup(*_rounds(40, 0.4))
    assert not noisy.reliable and "wider than" in noisy.reasons[0]
    few = paired_speedup([4.0, 4.0], [2.0, 2.0])
    assert not few.reliable and "rounds" in few.reasons[0]


def test_median_of_ratios_and_ratio_of_medians_disagreement_is_flagged():
    # the model's slow rounds coincide with the baseline's slow rounds (contention that comes
    # and goes): per-round ratios say 1.15x, the medians say the model is 3x slower
    base = [0.236] * 12 + [2.6] * 8
    model = [0.21] * 8 + [0.752] * 4 + [2.3] * 8
    est = paired_speedup(base, model)
    assert any("disagree" in r for r in est.reasons)
    assert est.ratio_of_medians < 0.5


def test_bootstrap_is_deterministic_and_validates():
    v = [1.0, 1.1, 0.9, 1.05, 1.0]
    assert bootstrap_median_ci(v) == bootstrap_median_ci(v)
    with pytest.raises(ValueError, match="level"):
        bootstrap_median_ci(v, level=1.5)
    with pytest.raises(ValueError, match="paired"):
        paired_speedup([1.0, 2.0], [1.0])


@pytest.mark.parametrize("noise,expect_more", [(0.002, False), (0.3, True)])
def test_adaptive_repetition_stops_when_tight(noise, expect_more):
    clock = NoisyClock({"dense": 4.0, "pruned": 2.0}, noise)
    plan = AdaptivePlan(repeats=10, max_repeats=200, tolerance=0.05, budget_s=60)
    stats = adaptive_samples(_fns(clock), [None], baseline="dense", plan=plan, warmup=0,
                             numbers={"dense": 1, "pruned": 1}, clock=clock)
    n = stats["dense"].repeats
    assert n == stats["pruned"].repeats
    assert (n > 10) == expect_more
    if expect_more:  # kept going until tight or out of rounds
        est = paired_speedup(stats["dense"].samples, stats["pruned"].samples)
        assert n == 200 or est.half_width <= 0.05


def test_adaptive_respects_budget():
    clock = NoisyClock({"dense": 4.0, "pruned": 2.0}, 0.5)
    t = iter(range(1000))
    plan = AdaptivePlan(repeats=10, max_repeats=500, budget_s=2)
    stats = adaptive_samples(_fns(clock), [None], baseline="dense", plan=plan, warmup=0,
                             numbers={"dense": 1, "pruned": 1}, clock=clock,
                             now=lambda: float(next(t)))
    assert stats["dense"].repeats == 10 + 5  # first chunk, one more, then out of budget


def test_config_validates_adaptive_options():
    with pytest.raises(ValueError, match="tolerance"):
        BenchConfig(tolerance=0)
    with pytest.raises(ValueError, match="max_repeats"):
        BenchConfig(repeats=10, max_repeats=5)
    with pytest.raises(ValueError, match="budget_s"):
        BenchConfig(budget_s=-1)
    assert BenchConfig(repeats=7).max_repeats == 200


def test_compare_reports_interval_and_verdict():
    clock = NoisyClock({"dense": 4.0, "pruned": 1.0}, 0.0)

    class Named(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name, self.lin = name, nn.Linear(4, 4)

        def forward(self, x):
            clock.current = self.name
            return self.lin(x)

    cfg = BenchConfig(repeats=6, warmup=0, number=1, clock=clock, memory=False, fold_bn=False)
    row = compare({"dense": Named("dense"), "pruned": Named("pruned")}, torch.randn(1, 4),
                  cfg).speedups()[0]
    assert row["speedup"] == pytest.approx(4.0) and row["reliable"]
    assert row["ci_low"] == pytest.approx(4.0) and row["ratio_of_medians"] == pytest.approx(4.0)
    assert row["rounds"] == 6


def test_probe_flags_a_starved_workload():
    calls = {"n": 0}
    # thresholds loose enough that the shared test machine itself never trips them
    quiet = ContentionProbe(threads=1, workload=lambda: sum(range(20000)), load_fn=lambda: 0.1,
                            min_share=0.0, max_drift=10.0)
    quiet.sample("before")
    quiet.sample("after")
    assert not quiet.verdict().busy

    def drifting():  # slower every time: a hog arriving mid-run
        calls["n"] += 1
        sum(range(20000 * calls["n"] ** 2))

    probe = ContentionProbe(threads=1, workload=drifting, load_fn=lambda: 9.0, reps=1)
    for label in ("before", "between", "after"):
        probe.sample(label)
    v = probe.verdict()
    assert v.busy and "varied" in v.reason and "load average 9.0" in v.reason
