"""A sweep whose sparse kernel wins (forced with a fake layer timer) is reported, not a crash."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit.bench.analyze import analyze
from prunekit.bench.config import BenchConfig
from prunekit.bench.sparse import CSRLinear


def _csr_wins(mods, x):
    return {k: (1.0 if k == "csr" else 2.0) for k in mods}


def _cfg():
    return BenchConfig(repeats=3, max_repeats=3, warmup=0, number=1, memory=False,
                       energy=False, probe=False)


def test_csr_linear_deepcopies_and_matches():
    lin = nn.Linear(32, 16)
    with torch.no_grad():
        lin.weight[torch.rand(16, 32) < 0.9] = 0
    m = CSRLinear(lin)
    c = copy.deepcopy(m)
    x = torch.randn(3, 32)
    assert c.weight.layout == torch.sparse_csr and c.weight is not m.weight
    torch.testing.assert_close(c(x), lin(x), rtol=1e-4, atol=1e-5)


def test_mlp_sweep_at_90_percent_reports_the_csr_cell():
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    res = analyze(model, torch.randn(2, 64), methods=["magnitude-unstructured"], ratios=[0.9],
                  config=_cfg(), sparse_timer=_csr_wins)
    assert {d["backend"] for d in res.sparse_decisions} == {"csr"}
    row = {r["model"]: r for r in res.bench.speedups()}["magnitude-unstructured@0.9+sparse"]
    assert row["status"] == "ok" and row["speedup"] > 0
    assert res.bench.costs["magnitude-unstructured@0.9+sparse"].size_bytes < \
        res.bench.costs["dense"].size_bytes


@pytest.mark.slow
def test_resnet18_sweep_at_90_percent_reports_the_csr_cell():
    tv = pytest.importorskip("torchvision")
    model = tv.models.resnet18(num_classes=10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = analyze(model, torch.randn(1, 3, 32, 32), methods=["magnitude-unstructured"],
                  ratios=[0.9], config=_cfg(), sparse_timer=_csr_wins)
    chosen = [d for d in res.sparse_decisions if d["backend"] == "csr"]
    assert chosen and chosen[0]["layer"] == "fc"
    rows = {r["model"]: r for r in res.bench.speedups()}
    assert rows["magnitude-unstructured@0.9+sparse"]["status"] == "ok"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
