"""Timing statistics on a fake clock: no timed assertions."""

import numpy as np
import pytest
import torch
from torch import nn

from prunekit.bench.harness import interleaved_samples
from prunekit.bench.timer import (
    LatencyStats, WallClock, calibrate_number, measure_latency, percentile, time_samples,
)


class FakeClock:
    """Returns scripted durations (ms) and still calls the function."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.calls = 0

    def time_call(self, fn):
        fn()
        d = self.durations[self.calls % len(self.durations)]
        self.calls += 1
        return d


def test_percentile_matches_numpy():
    xs = [5.0, 1.0, 3.0, 9.0, 7.0, 2.0]
    for q in (0, 10, 50, 90, 100):
        assert percentile(xs, q) == pytest.approx(np.percentile(xs, q))
    with pytest.raises(ValueError):
        percentile([], 50)


def test_stats_on_fake_clock():
    durations = [float(v) for v in range(1, 12)]  # 1..11 ms
    stats = time_samples(lambda x: x, [torch.ones(1)], warmup=3, repeats=11, number=1,
                         clock=FakeClock(durations))
    assert stats.median == pytest.approx(6.0)
    assert stats.p10 == pytest.approx(2.0)
    assert stats.p90 == pytest.approx(10.0)
    assert stats.spread == pytest.approx(8.0 / 6.0)
    assert stats.repeats == 11
    d = stats.to_dict()
    assert d["median_ms"] == pytest.approx(6.0) and len(d["samples_ms"]) == 11


def test_number_divides_sample():
    seen = []
    stats = time_samples(seen.append, [1, 2, 3], warmup=0, repeats=2, number=4,
                         clock=FakeClock([8.0]))
    assert stats.samples == (2.0, 2.0)
    assert len(seen) == 8
    assert seen[:4] == [1, 2, 3, 1]  # rotates over the inputs


def test_calibrate_number():
    assert calibrate_number(FakeClock([0.1]), lambda: None, 2.0) == 20
    assert calibrate_number(FakeClock([5.0]), lambda: None, 2.0) == 1
    assert calibrate_number(FakeClock([0.0]), lambda: None, 2.0, cap=50) == 50


def test_invalid_counts():
    with pytest.raises(ValueError, match="repeats"):
        time_samples(lambda x: x, [1], repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        time_samples(lambda x: x, [1], warmup=-1)
    with pytest.raises(ValueError, match="inputs"):
        time_samples(lambda x: x, [])
    with pytest.raises(ValueError, match="samples"):
        LatencyStats(())


def test_measure_latency_rotates_distinct_nonzero_inputs():
    seen = []

    class Rec(nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x * 2

    stats = measure_latency(Rec(), torch.randn(2, 8), warmup=1, repeats=5, clock=FakeClock([1.0]))
    assert stats.median == 1.0
    assert all(bool((t != 0).any()) for t in seen)
    assert not torch.equal(seen[1], seen[2])  # distinct inputs rotate
    assert all(t.shape == (2, 8) for t in seen)


def test_wall_clock_measures_something():
    stats = measure_latency(nn.Linear(8, 8), torch.randn(1, 8), warmup=1, repeats=3,
                            clock=WallClock())
    assert stats.median > 0 and stats.p10 <= stats.median <= stats.p90


def test_interleaved_order_alternates():
    order = []
    fns = {"a": lambda x: order.append("a"), "b": lambda x: order.append("b")}
    stats = interleaved_samples(fns, [0], warmup=0, repeats=4, numbers={"a": 1, "b": 1},
                                clock=FakeClock([1.0]))
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert stats["a"].repeats == 4 and stats["b"].repeats == 4


def test_foundation_api_kept():
    """compare_latency(models, make_inputs) and LatencyStats.*_ms as the demo uses them."""
    from prunekit.bench.timer import compare_latency

    made = []

    def make(i):
        made.append(i)
        return torch.full((1, 4), float(i + 1))

    res = compare_latency({"a": nn.Linear(4, 4), "b": nn.Linear(4, 2)}, make, warmup=1,
                          repeats=3, rotate=3, clock=FakeClock([2.0, 4.0]))
    assert made == [0, 1, 2]
    assert res["a"].median_ms == res["a"].median and res["a"].n == 3
    assert res["a"].p10_ms <= res["a"].median_ms <= res["a"].p90_ms
    s = LatencyStats.from_samples([1.0, 2.0, 3.0])
    assert s.median_ms == 2.0 and s.mean_ms == 2.0
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])


def test_process_cpu_clock_counts_cpu_not_sleep():
    import time as _time

    from prunekit.bench.timer import ProcessCpuClock

    ms = ProcessCpuClock().time_call(lambda: _time.sleep(0.05))
    assert ms < 25  # sleeping uses (almost) no CPU time; no upper bound on work is asserted
