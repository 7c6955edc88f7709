"""The bench/analyze commands (tiny models, few repeats; no timed assertions)."""

import json

import torch
from typer.testing import CliRunner

from prunekit.cli import app

runner = CliRunner()


def test_bench_cli_two_models(tmp_path):
    r = runner.invoke(app, ["bench", "torchvision:resnet18", "torchvision:resnet18",
                            "--input-shape", "1,3,32,32", "--batch", "1,2", "--repeats", "2", "--max-repeats", "2",
                            "--warmup", "0", "--runtime", "eager,cudagraph", "-o",
                            str(tmp_path), "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert "Speedup over" in r.output and "What this means" in r.output
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["command"].startswith("prunekit bench")
    assert {c["runtime"] for c in data["cells"] if c["status"] == "failed"} == {"cudagraph"}
    assert (tmp_path / "index.html").exists()


def test_bench_cli_errors_name_option():
    if not torch.cuda.is_available():
        r = runner.invoke(app, ["bench", "torchvision:resnet18", "--device", "cuda"])
        assert r.exit_code != 0 and "--device" in r.output and "CUDA" in r.output
    r = runner.invoke(app, ["bench", "torchvision:resnet18", "--runtime", "tensorrt"])
    assert r.exit_code != 0 and "--runtime" in r.output and "unknown" in r.output
    r = runner.invoke(app, ["bench", "torchvision:resnet18", "--batch", "a,b"])
    assert r.exit_code != 0 and "--batch" in r.output


def test_analyze_cli_with_eval_file(tmp_path):
    ev = tmp_path / "my_eval.py"
    ev.write_text(
        "import torch\n"
        "def evaluate(model):\n"
        "    zeros = sum(int((p == 0).sum()) for p in model.parameters())\n"
        "    total = sum(p.numel() for p in model.parameters())\n"
        "    if zeros / total > 0.45:\n"
        "        raise RuntimeError('dataset not found')\n"
        "    return 1.0 - zeros / total\n")
    out = tmp_path / "rep"
    r = runner.invoke(app, ["analyze", "torchvision:squeezenet1_1", "--input-shape", "1,3,64,64",
                            "--methods", "magnitude-unstructured,2:4", "--ratios", "0.2",
                            "--eval", f"{ev}:evaluate", "--repeats", "2", "--max-repeats", "2", "--warmup", "0",
                            "--threads", "1", "--no-sparse-backends", "-o", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "report.json").read_text())
    status = {e["method"]: e["status"] for e in data["sweep"]}
    assert status == {"magnitude-unstructured": "ok", "2:4": "failed"}
    assert "dataset not found" in r.output
    assert (out / "index.html").exists() and (out / "report.md").exists()


def test_analyze_cli_bad_eval_spec():
    r = runner.invoke(app, ["analyze", "torchvision:resnet18", "--eval", "nofile.py:evaluate"])
    assert r.exit_code != 0 and "--eval" in r.output
