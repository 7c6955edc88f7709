"""Report rendering: JSON/Markdown/HTML content, and the HTML in real headless Chromium."""

import base64
import json
import re
import shutil
import subprocess

import pytest

from prunekit.report import render_html, summarize, write_report


def _cell(model, rt, batch, ms, status="ok", error=None):
    if status != "ok":
        return {"model": model, "runtime": rt, "batch": batch, "status": "failed",
                "error": error, "throughput": None}
    return {"model": model, "runtime": rt, "batch": batch, "status": "ok", "error": None,
            "median_ms": ms, "p10_ms": ms * 0.95, "p90_ms": ms * 1.1, "spread": 0.15,
            "throughput": batch * 1000 / ms, "peak_bytes": 1 << 20, "energy_j": None}


def sample_data():
    layers = [{"name": f"layer{i}", "kept": 0.5 + 0.05 * i, "total": 64} for i in range(6)]
    return {
        "kind": "analyze", "title": "test report", "baseline": "dense",
        "config": {"device": "cpu", "dtype": "fp32", "batches": [1], "runtimes": ["eager",
                   "onnxruntime"], "threads": 2},
        "environment": {"date": "2025-01-01", "cpu": "test cpu", "threads": 2},
        "notes": ["dense: folded 2 BatchNorm layers into the preceding conv/linear (fx); 0 left"],
        "models": {"dense": {"params": 1000, "nonzero_params": 1000, "size_bytes": 4000,
                             "macs": 10**6, "effective_macs": 10**6},
                   "l1@0.4": {"params": 500, "nonzero_params": 500, "size_bytes": 2000,
                              "macs": 4 * 10**5, "effective_macs": 4 * 10**5}},
        "cells": [_cell("dense", "eager", 1, 2.0), _cell("l1@0.4", "eager", 1, 1.0),
                  _cell("dense", "onnxruntime", 1, 1.5),
                  _cell("l1@0.4", "onnxruntime", 1, None, "failed", "ONNX export failed: boom")],
        "speedups": [
            {"model": "l1@0.4", "baseline": "dense", "runtime": "eager", "batch": 1,
             "macs_ratio": 2.5, "effective_macs_ratio": 2.5, "status": "ok", "speedup": 2.0,
             "speedup_p10": 1.9, "speedup_p90": 2.1, "baseline_ms": 2.0, "model_ms": 1.0},
            {"model": "l1@0.4", "baseline": "dense", "runtime": "onnxruntime", "batch": 1,
             "macs_ratio": 2.5, "status": "failed", "error": "ONNX export failed: boom"}],
        "sweep": [
            {"method": "l1", "ratio": 0.4, "status": "ok", "accuracy": 0.91, "macs_ratio": 2.5,
             "sparsity": 0.6, "latency_ms": 1.0, "layers": layers, "unit": "channels"},
            {"method": "l1", "ratio": 0.2, "status": "ok", "accuracy": 0.95, "macs_ratio": 1.5,
             "sparsity": 0.8, "latency_ms": 1.5, "layers": layers, "unit": "channels"},
            {"method": "taylor", "ratio": 0.4, "status": "failed", "error": "eval raised KeyError"},
        ],
        "baseline_accuracy": 0.96, "baseline_latency_ms": 2.0,
        "sparse_decisions": [{"layer": "fc", "shape": [64, 64], "sparsity": 0.95,
                              "backend": "csr", "timings_ms": {"dense": 1.0, "csr": 0.5}}],
    }


def test_write_report_formats(tmp_path):
    paths = write_report(sample_data(), tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["sweep"][2]["status"] == "failed"
    md = paths["md"].read_text()
    assert "## What this means" in md and "**FAILED: eval raised KeyError**" in md
    assert "(plots/speedup_vs_macs.png)" in md and (tmp_path / "plots" / "pareto.png").exists()
    html = paths["html"].read_text()
    assert html.count('src="data:image/png;base64,') == 5  # all five plots inline
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert 'class="failed"' in html and "ONNX export failed" in html
    for b64 in re.findall(r'base64,([A-Za-z0-9+/=]+)"', html):
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_says_where_we_lose():
    d = sample_data()
    d["speedups"][0].update(speedup=0.8, speedup_p10=0.75, speedup_p90=0.85)
    text = summarize(d)
    assert text[0].startswith("SLOWER than the baseline")
    assert any("failed" in s for s in text)
    assert any("BatchNorm was folded" in s for s in text)
    assert any("Sparse kernels were measured faster than dense on 1 of 1" in s for s in text)


def test_empty_report_renders():
    html = render_html({"title": "empty"}, {})
    assert "Nothing was compared" in html


def test_write_report_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="formats"):
        write_report({}, tmp_path, formats=("pdf",))


_CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const d = document.createElement('div');
  d.id = 'pk-check';
  d.setAttribute('data-images', imgs.length);
  d.setAttribute('data-broken', broken);
  d.setAttribute('data-errors', window.__errors.join(';'));
  document.body.appendChild(d);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None,
                    reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
@pytest.mark.slow
def test_html_renders_in_headless_chromium(tmp_path):
    paths = write_report(sample_data(), tmp_path / "rep", formats=("html",))
    html = paths["html"].read_text()
    # the test harness (not the report) adds a probe that records JS errors and image loads
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + _CHECK, 1))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<div id="pk-check" data-images="(\d+)" data-broken="(\d+)" '
                  r'data-errors="([^"]*)"', proc.stdout)
    assert m, "probe did not run: " + proc.stdout[-500:] + proc.stderr[-1500:]
    assert int(m.group(1)) == 5 and m.group(2) == "0" and m.group(3) == ""
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console


def test_report_files_are_readable_by_others(tmp_path):
    paths = write_report(sample_data(), tmp_path, formats=("json",))
    assert paths["json"].stat().st_mode & 0o044 == 0o044
