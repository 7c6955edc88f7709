"""analyze: the sweep goes on past failing cells and marks them; the report is written."""

import json

import pytest
import torch
from torch import nn

from prunekit.bench.analyze import analyze
from prunekit.bench.config import BenchConfig
from prunekit.bench.methods import parse_method


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()


def _cfg(**kw):
    return BenchConfig(repeats=2, max_repeats=2, warmup=0, number=1, memory=False, **kw)


def test_parse_method():
    assert parse_method("2:4").kind == "nm" and parse_method("2:4").fixed_ratio == 0.5
    assert parse_method("magnitude-unstructured").criterion == "magnitude"
    assert parse_method("unstructured").criterion == "l1"
    assert parse_method("taylor").kind == "structured"
    with pytest.raises(ValueError, match="methods entry '4:2'"):
        parse_method("4:2")
    with pytest.raises(ValueError, match="methods entries"):
        parse_method("")


def test_sweep_continues_after_failing_eval(tmp_path):
    calls = []

    def evaluate(model):
        w = torch.cat([model[0].weight.flatten(), model[2].weight.flatten()])
        sparsity = float((w == 0).float().mean())
        calls.append(sparsity)
        if 0.35 < sparsity < 0.45:
            raise KeyError("labels missing")
        return {"accuracy": 1.0 - sparsity / 2}

    res = analyze(_model(), torch.randn(4, 16), methods=["magnitude-unstructured", "2:4"],
                  ratios=[0.2, 0.4], eval_fn=evaluate, config=_cfg(), out_dir=str(tmp_path))
    by = {e.name: e for e in res.entries}
    assert set(by) == {"magnitude-unstructured@0.2", "magnitude-unstructured@0.4", "2:4@0.5"}
    bad = by["magnitude-unstructured@0.4"]
    assert bad.status == "failed" and "eval: KeyError" in bad.error
    ok = by["2:4@0.5"]
    assert ok.status == "ok" and ok.accuracy == pytest.approx(0.75, abs=0.01)
    assert ok.sparsity == pytest.approx(0.5, abs=0.01)
    assert res.baseline_accuracy == pytest.approx(1.0)
    assert res.bench.cell("2:4@0.5", "eager", 1).ok
    assert res.bench.cell("magnitude-unstructured@0.4", "eager", 1) is None  # not timed
    data = json.loads((tmp_path / "report.json").read_text())
    assert [e["status"] for e in data["sweep"]] == ["ok", "failed", "ok"]
    assert data["sweep"][0]["latency_ms"] > 0 and data["sweep"][0]["layers"]
    assert "FAILED: eval: KeyError" in (tmp_path / "index.html").read_text()


class _NoOnnx(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 8)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            raise NotImplementedError("custom op has no ONNX symbolic")
        return self.lin(x)


def test_failed_export_marks_cell_and_structured_missing_is_clear(tmp_path):
    res = analyze(_NoOnnx(), torch.randn(2, 16), methods=["magnitude-unstructured"],
                  ratios=[0.5], config=_cfg(runtimes=("onnxruntime", "eager")))
    d = res.to_dict()
    assert d["sweep"][0]["status"] == "failed" and "ONNX export" in d["sweep"][0]["error"]
    assert res.bench.cell("magnitude-unstructured@0.5", "eager", 1).ok


def test_bad_ratio_names_argument():
    with pytest.raises(ValueError, match="ratios entries"):
        analyze(_model(), torch.randn(1, 16), ratios=[1.5])


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 4)).eval()


def test_structured_method_through_planner():
    res = analyze(_cnn(), torch.randn(2, 3, 8, 8), methods=["l1"], ratios=[0.5], config=_cfg())
    e = res.to_dict()["sweep"][0]
    assert e["status"] == "ok", e["error"]
    assert e["unit"] == "channels" and e["macs_ratio"] > 1.5
    assert any(lay["kept"] < 1.0 for lay in e["layers"])
