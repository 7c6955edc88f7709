"""The harness: config validation, costs, paired speedups on a fake clock, failing cells."""

import pytest
import torch
from torch import nn

from prunekit.bench.config import BenchConfig
from prunekit.bench.harness import bench, compare
from prunekit.bench.metrics import count_macs, model_cost


def test_config_validation_names_argument():
    with pytest.raises(ValueError, match="dtype"):
        BenchConfig(dtype="fp8")
    with pytest.raises(ValueError, match="batches"):
        BenchConfig(batches=(0,))
    with pytest.raises(ValueError, match="repeats"):
        BenchConfig(repeats=0)
    with pytest.raises(ValueError, match="threads"):
        BenchConfig(threads=0)
    assert BenchConfig(batches=[1, 2]).batches == (1, 2)


def test_macs_dense_and_effective():
    lin = nn.Linear(10, 20, bias=False)
    with torch.no_grad():
        lin.weight[:, :5] = 0  # half the weights zero
    macs, eff = count_macs(lin, torch.randn(3, 10))
    assert macs == 3 * 10 * 20
    assert eff == macs // 2
    conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    macs, _ = count_macs(conv, torch.randn(1, 4, 5, 5))
    assert macs == 8 * 25 * 2 * 9
    cost = model_cost(lin, torch.randn(1, 10))
    assert cost.params == 200 and cost.nonzero_params == 100 and cost.size_bytes == 800


def test_compare_paired_speedups_with_fake_clock():
    calls = {"dense": 0, "pruned": 0}

    class Counting(nn.Module):
        def __init__(self, name, width):
            super().__init__()
            self.name, self.lin = name, nn.Linear(8, width)

        def forward(self, x):
            calls[self.name] += 1
            return self.lin(x)

    durations = {"dense": 4.0, "pruned": 1.0}

    class Clock:  # fake: the duration depends on which model ran
        def time_call(self, fn):
            before = dict(calls)
            fn()
            who = [k for k in calls if calls[k] != before[k]][0]
            return durations[who] * (calls[who] - before[who])

    cfg = BenchConfig(batches=(1, 4), repeats=5, warmup=1, number=2, clock=Clock(),
                      fold_bn=False, memory=False)
    res = compare({"dense": Counting("dense", 64), "pruned": Counting("pruned", 16)},
                  torch.randn(1, 8), cfg)
    rows = res.speedups()
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert all(r["speedup"] == pytest.approx(4.0) for r in rows)
    assert rows[0]["macs_ratio"] == pytest.approx(4.0)
    cell = res.cell("dense", "eager", 4)
    assert cell.latency.median == pytest.approx(4.0)
    assert cell.throughput == pytest.approx(1000.0)
    d = res.to_dict()
    assert d["models"]["dense"]["macs"] == 8 * 64
    assert d["environment"]["threads"] == cfg.threads


def test_compare_does_not_modify_models_and_measures_memory():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = bench(m, torch.randn(1, 3, 8, 8), BenchConfig(repeats=2, warmup=0, number=1))
    assert isinstance(m[1], nn.BatchNorm2d)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert any("folded 1 BatchNorm" in n for n in res.notes)
    c = res.cell("model", "eager", 1)
    assert c.ok and c.energy_j is None and "NVML" in c.energy_note
    assert c.peak_method  # tracker used, or why not


def test_unknown_baseline():
    with pytest.raises(ValueError, match="baseline"):
        compare({"a": nn.Linear(2, 2)}, torch.randn(1, 2), baseline="b")
