"""``analyze`` with the dynamic methods: what each did stands beside the measured latency."""

import pytest
import torch
from torch import nn

import prunekit.dynamic  # noqa: F401 - registers the analyze methods
from prunekit.bench import BenchConfig, analyze
from prunekit.bench.methods import EXTRA_METHODS, parse_method
from prunekit.report.tables import sweep_table

FAST = BenchConfig(repeats=3, max_repeats=3, memory=False)


def test_methods_are_registered_and_parsed():
    assert {"dynamic", "tome"} <= set(EXTRA_METHODS)
    assert parse_method("dynamic").kind == "dynamic"


def test_activation_sparsity_cell_reports_realised_sparsity(tiny, calib):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    res = analyze(tiny, torch.randn(1, 32), methods=["dynamic"], ratios=[0.5],
                  calib_data=list(calib), sparse_backends=False, config=FAST)
    (e,) = res.entries
    assert e.status == "ok", e.error
    assert abs(e.dynamic["realised sparsity"] - 0.5) <= 0.05
    assert all(torch.equal(v, tiny.state_dict()[k]) for k, v in before.items())  # untouched
    assert not any("forward" in m.__dict__ for m in tiny.modules())
    data = res.to_dict()
    title, header, rows = sweep_table(data)
    assert "dynamic (measured)" in header and "latency ms" in header
    assert "realised sparsity" in rows[0][-1] and rows[0][6] != "–"


def test_tome_cell_reports_tokens_kept():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=3,
                                              num_heads=2, hidden_dim=32, mlp_dim=64,
                                              num_classes=5).eval()
    nn.init.normal_(vit.heads.head.weight)
    res = analyze(vit, torch.randn(1, 3, 32, 32), methods=["tome"], ratios=[0.25],
                  sparse_backends=False, config=FAST)
    (e,) = res.entries
    assert e.status == "ok", e.error
    assert e.dynamic["tokens kept"] == pytest.approx(8 / 17)
    assert "tokens kept 47.1%" in sweep_table(res.to_dict())[2][0][-1]
