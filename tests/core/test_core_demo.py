import json

import pytest

from prunekit.demo import run_demo


@pytest.mark.slow
def test_demo_end_to_end_small(tmp_path):
    rows = run_demo(tmp_path, epochs=2, finetune_epochs=1, seed=0, repeats=10)
    names = [r.variant for r in rows]
    assert names[:5] == ["dense", "unstructured 50%", "unstructured 70%", "unstructured 90%", "2:4"]
    by = {r.variant: r for r in rows}
    assert by["dense"].accuracy > 0.5
    assert abs(by["unstructured 90%"].sparsity - 0.9) < 0.02
    assert by["unstructured 90%"].size_compressed_bytes < by["dense"].size_compressed_bytes
    assert all(r.latency_b1_ms > 0 and r.speedup_b1 > 0 for r in rows)
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["rows"]) == len(rows) and report["meta"]["runtime"]
    assert "| dense |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "dense.safetensors").exists()
